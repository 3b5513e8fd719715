"""What is specific to Rprop: torch's sign semantics bit for bit (a zero, underflowing, NaN
or infinite product g * prev), and the step sizes starting at lr on an array's first step
(torch fills them when it creates the state, with the group's lr at that moment)."""
import numpy as np
import pytest
from testing_settings import ALL_BACKENDS

import fastoptim as fo

torch = pytest.importorskip("torch")


def _special_grads(rng, n, dtype, steps):
    """Gradients with zeros, values whose product underflows, NaN and infinities, in the
    SIMD body and in the tail, and random signs elsewhere."""
    tiny = 1e-30 if dtype == np.float32 else 1e-200
    out = []
    for t in range(steps):
        g = rng.standard_normal(n)
        g[rng.random(n) < 0.15] = 0.0
        g[rng.random(n) < 0.1] = tiny * rng.choice([-1, 1])
        if t in (3, 7):
            g[[1, n // 2, n - 1]] = [np.nan, np.inf, -np.inf]
        out.append(g.astype(dtype))
    return out


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_bitwise_torch_with_zero_underflowing_and_nonfinite_products(dtype, maximize,
                                                                     backend):
    rng = np.random.default_rng(7)
    n, steps = 1003, 40
    opts = dict(lr=0.05, etaminus=0.3, etaplus=1.5, step_size_min=1e-4, step_size_max=1.0)
    param = rng.standard_normal(n).astype(dtype)
    prev, step_size = np.zeros(n, dtype), np.zeros(n, dtype)
    tensor = torch.from_numpy(param.copy())
    peer = torch.optim.Rprop([tensor], lr=opts["lr"], etas=(0.3, 1.5), step_sizes=(1e-4, 1.0),
                             maximize=maximize, foreach=False)
    for t, g in enumerate(_special_grads(rng, n, dtype, steps), start=1):
        fo.rprop_step(param, g, prev, step_size, step=t, maximize=maximize, backend=backend,
                      **opts)
        tensor.grad = torch.from_numpy(g.copy())
        peer.step()
    state = peer.state[tensor]
    np.testing.assert_array_equal(param, tensor.numpy())
    np.testing.assert_array_equal(prev, state["prev"].numpy())
    np.testing.assert_array_equal(step_size, state["step_size"].numpy())


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_first_step_starts_from_lr_whatever_the_buffer_holds(backend):
    g = np.linspace(-1, 1, 37).astype(np.float32)
    runs = []
    for fill in (0.0, 7.0):
        p, prev, s = np.ones(37, np.float32), np.zeros(37, np.float32), np.full(37, fill, np.float32)
        fo.rprop_step(p, g, prev, s, step=1, lr=0.03, backend=backend)
        runs.append((p, s))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[1][1], np.float32(0.03))
    # from step 2 on the buffer is read
    p, prev, s = np.ones(37, np.float32), g.copy(), np.full(37, 7.0, np.float32)
    fo.rprop_step(p, g, prev, s, step=2, lr=0.03, backend=backend)
    assert (s == 7.0).sum() == 1          # the zero gradient's factor is 1: 7 kept
    assert (s[g != 0] == np.float32(7.0) * np.float32(1.2)).all()


def test_class_takes_lr_at_each_arrays_first_step_like_torch():
    """torch creates an array's state (step sizes filled with the group's lr) at its first
    step with a gradient; lr changes after that do nothing."""
    rng = np.random.default_rng(3)
    params = [rng.standard_normal(20), rng.standard_normal(9)]
    tensors = [torch.from_numpy(p.copy()) for p in params]
    opt = fo.Rprop(params, lr=0.01, backend="cython")
    peer = torch.optim.Rprop(tensors, lr=0.01, foreach=False)
    for t in range(6):
        lr = {0: 0.05, 2: 0.2, 4: 0.001}.get(t)
        if lr is not None:
            opt.lr = lr
            peer.param_groups[0]["lr"] = lr
        grads = [rng.standard_normal(p.shape) for p in params]
        grads[1] = None if t < 2 else grads[1]     # the second array starts at step 3
        opt.step(grads)
        for tensor, g in zip(tensors, grads):
            tensor.grad = None if g is None else torch.from_numpy(g)
        peer.step()
    for p, tensor in zip(params, tensors):
        np.testing.assert_array_equal(p, tensor.numpy())
    sizes = opt._state["step_size"]
    for s, tensor in zip(sizes, tensors):
        np.testing.assert_array_equal(s, peer.state[tensor]["step_size"].numpy())


@pytest.mark.parametrize("kwargs, shown", [
    (dict(etaminus=1.0), "etaminus"), (dict(etaplus=1.0), "etaplus"),
    (dict(etaminus=0.0), "etaminus"),
    (dict(step_size_min=1.0, step_size_max=0.5), "step_size_min"),
])
def test_bad_etas_and_step_sizes_raise_naming_them_and_change_nothing(kwargs, shown):
    p, g, prev, s = np.ones(5), np.ones(5), np.zeros(5), np.zeros(5)
    with pytest.raises(ValueError, match=shown):
        fo.rprop_step(p, g, prev, s, step=1, **kwargs)
    assert (p == 1).all() and (prev == 0).all() and (s == 0).all()


@pytest.mark.parametrize("kwargs, shown", [
    (dict(etas=(0.5, 0.9)), "etas"), (dict(etas=(1.5, 2.0)), "etas"),
    (dict(etas=0.5), "etas"), (dict(step_sizes=(1.0, 0.1)), "step_sizes"),
    (dict(step_sizes=(-1.0, 0.1)), r"step_sizes\[0\]"),
])
def test_bad_constructor_pairs_raise_naming_them(kwargs, shown):
    with pytest.raises((ValueError, TypeError), match=shown):
        fo.Rprop([np.zeros(3)], **kwargs)
