"""What is specific to NAdam: the running product of the momentum schedule, a scalar state
the functional step takes and returns (the generic tests carry it between steps)."""
import numpy as np
import pytest
from testing_settings import ALL_BACKENDS

import fastoptim as fo


def _torch_mu(t, beta1=0.9, momentum_decay=4e-3):
    """mu_t as torch.optim.nadam writes it."""
    return beta1 * (1.0 - 0.5 * (0.96 ** (t * momentum_decay)))


@pytest.mark.parametrize("shape", [(0,), (17,)])
def test_returns_the_running_product_the_same_on_every_backend(shape, rng):
    """Each call returns mu_product * mu_t, bit for bit torch's scalar formula and the same
    on every backend (an empty array included)."""
    got = {}
    for backend in ALL_BACKENDS:
        p = np.ones(shape)
        m, v = np.zeros(shape), np.zeros(shape)
        products = []
        mu_product = 1.0
        for t in range(1, 30):
            g = np.random.default_rng(t).standard_normal(shape)
            mu_product = fo.nadam_step(p, g, m, v, step=t, mu_product=mu_product,
                                       momentum_decay=0.01, backend=backend)
            assert type(mu_product) is float
            products.append(mu_product)
        got[backend] = products
    expected, product = [], 1.0
    for t in range(1, 30):
        product *= _torch_mu(t, momentum_decay=0.01)
        expected.append(product)
    for backend, products in got.items():
        assert products == expected, backend


def test_the_product_changes_the_step(rng):
    """A resumed run (mu_product of earlier steps) steps differently from a fresh one."""
    p = rng.standard_normal(100)
    g = rng.standard_normal(100)
    q = p.copy()
    fo.nadam_step(p, g, np.zeros(100), np.zeros(100), step=1, mu_product=1.0)
    fo.nadam_step(q, g, np.zeros(100), np.zeros(100), step=1, mu_product=0.5)
    assert not np.array_equal(p, q)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), None, "1"])
def test_a_bad_mu_product_raises_naming_it_before_any_array_changes(bad):
    p, g, m, v = np.ones(5), np.ones(5), np.zeros(5), np.zeros(5)
    with pytest.raises((TypeError, ValueError), match="mu_product"):
        fo.nadam_step(p, g, m, v, step=1, mu_product=bad)
    assert np.all(p == 1) and np.all(m == 0) and np.all(v == 0)


def test_matches_torch_with_its_float32_scalar_state(rng):
    """torch keeps mu_product in its default dtype (float32): the steps then agree to that
    precision (the generic parity test runs torch with float64 scalar state, to 1e-10)."""
    torch = pytest.importorskip("torch")
    assert torch.get_default_dtype() == torch.float32
    shape = (37, 29)
    p = rng.standard_normal(shape)
    m, v = np.zeros(shape), np.zeros(shape)
    tensor = torch.from_numpy(p.copy())
    peer = torch.optim.NAdam([tensor], lr=0.01, foreach=False)
    mu_product = 1.0
    for t in range(1, 51):
        g = rng.standard_normal(shape)
        mu_product = fo.nadam_step(p, g, m, v, step=t, mu_product=mu_product, lr=0.01)
        tensor.grad = torch.from_numpy(g)
        peer.step()
    np.testing.assert_allclose(p, tensor.numpy(), rtol=1e-6, atol=1e-9)
    assert mu_product == pytest.approx(peer.state[tensor]["mu_product"].item(), rel=1e-6)


# ---- the class: mu_product per array, in state dicts and checkpoints ----------------------
def _functional_chain(params, grads_seq, **hyper):
    """Each array stepped alone with nadam_step, its own step count and mu_product (a None
    gradient skips it)."""
    out = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in out]
    v = [np.zeros_like(p) for p in out]
    t = [0] * len(out)
    mu = [1.0] * len(out)
    for grads in grads_seq:
        for i, g in enumerate(grads):
            if g is not None:
                t[i] += 1
                mu[i] = fo.nadam_step(out[i], g, m[i], v[i], step=t[i], mu_product=mu[i],
                                      backend="numpy", **hyper)
    return out, mu


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_class_keeps_mu_product_per_array(backend, rng):
    """Arrays that skip steps (None gradients) keep their own count and mu_product; those
    with equal counts step together."""
    shapes = [(5, 3), (17,), (4,)]
    params = [rng.standard_normal(s) for s in shapes]
    grads_seq = []
    for k in range(12):
        grads = [rng.standard_normal(s) for s in shapes]
        if k in (1, 2, 5):
            grads[1] = None
        if k == 4:
            grads[0] = None
        grads_seq.append(grads)
    expected, mu = _functional_chain(params, grads_seq, lr=0.01, momentum_decay=0.05)
    opt = fo.NAdam([p.copy() for p in params], lr=0.01, momentum_decay=0.05,
                   backend=backend)
    for grads in grads_seq:
        opt.step(grads)
    for p, q in zip(opt.params, expected):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)
    assert opt.state_dict()["scalars"]["mu_product"] == mu
    assert len(set(mu)) == 3


def test_state_dict_and_checkpoint_resume_bit_for_bit(rng, tmp_path):
    shapes = [(8, 3), (33,)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads_seq = [[rng.standard_normal(s).astype(np.float32) for s in shapes]
                 for _ in range(10)]
    grads_seq[2][1] = None                     # the arrays' mu_products differ
    whole = fo.NAdam([p.copy() for p in params], lr=0.01)
    for grads in grads_seq:
        whole.step(grads)
    for how in ("state_dict", "checkpoint"):
        first = fo.NAdam([p.copy() for p in params], lr=0.01)
        for grads in grads_seq[:5]:
            first.step(grads)
        second = fo.NAdam([p.copy() for p in params], lr=0.01)
        if how == "state_dict":
            second.load_state_dict(first.state_dict())
        else:
            fo.save_state(first, tmp_path / "nadam.npz")
            fo.load_state(second, tmp_path / "nadam.npz")
        for grads in grads_seq[5:]:
            second.step(grads)
        for p, q in zip(second.params, whole.params):
            np.testing.assert_array_equal(p, q, err_msg=how)
        assert second.state_dict()["scalars"] == whole.state_dict()["scalars"]


@pytest.mark.parametrize("scalars,match", [
    (None, "scalars"), ({}, "scalars"), ({"mu_product": [0.5]}, "has 1 values"),
    ({"mu_product": [0.5, 2.0]}, r"scalars\['mu_product'\]\[1\]")])
def test_load_state_dict_checks_the_scalars_before_copying(scalars, match, rng):
    params = [rng.standard_normal(4), rng.standard_normal(3)]
    opt = fo.NAdam(params, lr=0.01)
    opt.step([np.ones(4), np.ones(3)])
    sd = opt.state_dict()
    if scalars is None:
        del sd["scalars"]
    else:
        sd["scalars"] = scalars
    sd["params"] = [p + 1 for p in sd["params"]]
    before = [p.copy() for p in opt.params]
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    for p, q in zip(opt.params, before):
        np.testing.assert_array_equal(p, q)
