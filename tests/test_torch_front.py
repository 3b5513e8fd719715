"""fastoptim.torch: fastoptim's kernels behind torch.optim's interface.

Parity with torch.optim (for-loop implementation) on a small MLP over 50 steps for every
class and its registry option sets; bitwise equality with the fastoptim class of the same
name on NumPy copies; schedulers; state dicts from torch.optim and back; None gradients;
errors that change nothing; hooks, closures, zero-copy views."""
import copy
import io
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastoptim  # noqa: E402
import fastoptim.torch as ft  # noqa: E402
from fastoptim._registry import KERNELS  # noqa: E402
from kernel_cases import CLASS_CASES, class_case_id, entry  # noqa: E402

TORCH_TWINS = [n for n in ft.CLASSES if hasattr(torch.optim, n)]
# float64 trajectories of an MLP against torch's own arithmetic (a different but equally
# exact order of operations; 50 steps of training amplify the last bits: Adadelta at lr=1.0
# drifted 4.9e-9 on one of 135 parameters of size ~1 on an AVX-512 machine, where torch's
# own kernels take other code paths)
CLOSE64 = dict(rtol=1e-7, atol=2e-8)


def _mlp(dtype, seed=0, bias=True, fortran=False):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8, bias=bias), torch.nn.Tanh(),
                                torch.nn.Linear(8, 7, bias=bias), torch.nn.Tanh(),
                                torch.nn.Linear(7, 3, bias=bias)).to(dtype)
    if fortran:     # the first weight F-contiguous (a transposed leaf)
        w = model[0].weight
        model[0].weight = torch.nn.Parameter(w.detach().t().contiguous().t())
    return model


def _data(dtype):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(32, 5, generator=g, dtype=dtype),
            torch.randn(32, 3, generator=g, dtype=dtype))


def _train(model, opt, steps, dtype, scheduler=None, skip=()):
    X, Y = _data(dtype)
    lrs = []
    for k in range(steps):
        opt.zero_grad()
        loss = ((model(X) - Y) ** 2).mean()
        loss.backward()
        for i in skip:
            list(model.parameters())[i].grad = None
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        if scheduler is not None:
            scheduler.step()
    return lrs


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()


def _torch_cases():
    """Registry class cases whose torch.optim twin computes the same (the registry's
    TorchPeer.agrees), with an lr that keeps 50 steps of an MLP tame."""
    out = []
    for name, kernel, opts in CLASS_CASES:
        spec, e = KERNELS[kernel], entry(name, kernel)
        if e.torch and spec.torch and spec.torch.agrees(spec, e.hyperparameters(spec, opts)):
            out.append((name, kernel, opts))
    return out


@pytest.fixture
def scalar_dtype_for():
    """torch keeps NAdam's mu_product in its default dtype: float64 while such a test runs,
    as fastoptim's is (ASGD's eta and mu are rounded to torch's float32 default on
    fastoptim's side, so ASGD keeps float32)."""
    before = torch.get_default_dtype()

    def use(name):
        torch.set_default_dtype(torch.float64 if name == "NAdam" else before)
    yield use
    torch.set_default_dtype(before)


@pytest.mark.parametrize("case", _torch_cases(), ids=class_case_id)
def test_matches_torch_optim_on_an_mlp(case, scalar_dtype_for):
    name, kernel, opts = case
    scalar_dtype_for(name)
    e = entry(name, kernel)
    runs = []
    for make in (getattr(torch.optim, e.torch), getattr(ft, name)):
        model = _mlp(torch.float64)
        extra = dict(foreach=False) if make is not getattr(ft, name) else {}
        opt = make(model.parameters(), **opts, **extra)
        _train(model, opt, 50, torch.float64)
        runs.append((model, opt))
    (tm, to), (fm, fo) = runs
    np.testing.assert_allclose(_flat(fm), _flat(tm), **CLOSE64)
    assert not np.array_equal(_flat(fm), _flat(_mlp(torch.float64)))
    # the state in torch's layout: the same names and values
    ts, fs = to.state_dict(), fo.state_dict()
    assert ts["state"].keys() == fs["state"].keys()
    for pid, theirs in ts["state"].items():
        assert theirs.keys() == fs["state"][pid].keys()
        for key, value in theirs.items():
            np.testing.assert_allclose(fs["state"][pid][key].numpy(), value.numpy(),
                                       **CLOSE64, err_msg=key)
    assert [sorted(g) for g in ts["param_groups"]] == [
        sorted(k for k in g if k != "eps_root") for g in fs["param_groups"]]


@pytest.mark.parametrize("opts", [{}, dict(beta2_decay=-0.5, d=2.0, weight_decay=0.1),
                                  dict(eps=(1e-30, 1e-3), maximize=True)])
def test_adafactor_matches_torch(opts):
    runs = []
    for make in (torch.optim.Adafactor, ft.Adafactor):
        model = _mlp(torch.float64)
        kw = dict(foreach=False) if make is torch.optim.Adafactor else {}
        opt = make(model.parameters(), lr=1e-2, **opts, **kw)
        _train(model, opt, 50, torch.float64)
        runs.append(_flat(model))
    np.testing.assert_allclose(runs[1], runs[0], **CLOSE64)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "RMSprop", "Adagrad"])
def test_float32_matches_torch(name):
    runs = []
    for make in (getattr(torch.optim, name), getattr(ft, name)):
        model = _mlp(torch.float32)
        kw = dict(foreach=False) if make is getattr(torch.optim, name) else {}
        opt = make(model.parameters(), lr=1e-2, **kw)
        _train(model, opt, 50, torch.float32)
        runs.append(_flat(model))
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-4, atol=1e-5)


# one option set per class that exercises its state: equal, bit for bit, to the fastoptim
# class of the same name stepping NumPy copies with the same gradients
ENGINE_CASES = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("RMSprop", dict(lr=1e-2, centered=True, momentum=0.5)),
    ("Adam", dict(lr=1e-2, amsgrad=True)), ("AdamW", dict(lr=1e-2)),
    ("Adagrad", dict(lr=0.1, lr_decay=1e-3, initial_accumulator_value=0.1)),
    ("Adamax", dict(lr=1e-2)), ("RAdam", dict(lr=1e-2, decoupled_weight_decay=True,
                                              weight_decay=0.1)),
    ("NAdam", dict(lr=1e-2)), ("Adadelta", {}), ("Rprop", dict(lr=1e-2)),
    ("ASGD", dict(lr=1e-2, t0=3)), ("Muon", dict(lr=1e-2, nesterov=True)),
    ("Adafactor", dict(lr=1e-2)), ("LAMB", dict(lr=1e-2, weight_decay=0.01)),
    ("Lion", dict(lr=1e-3, weight_decay=0.1)),
]


@pytest.mark.parametrize("name,opts", ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_the_fastoptim_class_bit_for_bit(name, opts, dtype):
    model = _mlp(dtype, bias=name != "Muon", fortran=name != "Muon")
    params = list(model.parameters())
    arrays = [p.detach().numpy().copy(order="K") for p in params]
    front = getattr(ft, name)(params, **opts)
    engine = getattr(fastoptim, name)(arrays, **opts)
    rng = np.random.default_rng(0)
    for k in range(20):
        grads = [rng.standard_normal(a.shape).astype(a.dtype) for a in arrays]
        grads = [np.asfortranarray(g) if a.flags.f_contiguous and a.ndim == 2 else g
                 for a, g in zip(arrays, grads)]
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g.copy(order="K"))
        front.step()
        engine.step(grads)
    for p, a in zip(params, arrays):
        assert np.array_equal(p.detach().numpy(), a)
    assert front.state_dict()["state"].keys() == set(range(len(params)))


def _accepts(name, opts, kind):
    try:
        getattr(fastoptim, name)([np.zeros(8, np.float32)], state_dtype=kind, **opts)
    except ValueError:          # (amsgrad, centered RMSprop: float state only)
        return False
    return True


COMPRESSED_CASES = [(name, opts, kind) for name, opts in ENGINE_CASES
                    for kind in getattr(getattr(fastoptim, name), "_compressed", ())
                    if _accepts(name, opts, kind)]


def _bits(a):
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _compressed_params(seed):
    """float32 tensors: over MIN_8BIT_SIZE with a partial block, a 2-D one in Fortran order
    (a transposed leaf), and one under MIN_8BIT_SIZE (int8 keeps float32 state there)."""
    torch.manual_seed(seed)
    big = torch.randn(4096 + 300)
    wide = torch.randn(90, 70).t()              # (70, 90), F-contiguous
    small = torch.randn(33)
    return [torch.nn.Parameter(t) for t in (big, wide, small)]


@pytest.mark.parametrize("name,opts,kind", COMPRESSED_CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in COMPRESSED_CASES])
def test_compressed_state_equals_the_fastoptim_class_bit_for_bit(name, opts, kind):
    """state_dtype="bfloat16" / "int8": the front end's parameters and state are the
    fastoptim class's with the same state_dtype, bit for bit, over 8 steps with exact-zero
    gradients among them; self.state views the engine's compressed buffers (torch.bfloat16,
    or uint8 codes and float32 scales)."""
    from fastoptim import lowmem
    params = _compressed_params(0)
    arrays = [p.detach().numpy().copy(order="K") for p in params]
    front = getattr(ft, name)(params, state_dtype=kind, **opts)
    engine = getattr(fastoptim, name)(arrays, state_dtype=kind, **opts)
    rng = np.random.default_rng(1)
    for k in range(8):
        grads = [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]
        grads = [np.asfortranarray(g) if a.flags.f_contiguous and a.ndim == 2 else g
                 for a, g in zip(arrays, grads)]
        grads[0][:300] = 0.0
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g.copy(order="K"))
        front.step()
        engine.step(grads)
    for p, a in zip(params, arrays):
        assert np.array_equal(_bits(p.detach().numpy()), _bits(a))
    for name_, bufs in engine._state.items():
        for i, (p, b) in enumerate(zip(params, bufs)):
            if b is None:
                continue
            mine = front._engine._state[name_][i]
            assert np.array_equal(_bits(mine), _bits(b)), (name_, i)
            view = front.state[p][front._torch_names.get(name_, name_)]
            expected = (torch.bfloat16 if kind == "bfloat16" and mine.dtype == lowmem.bfloat16
                        else torch.uint8 if mine.dtype == np.uint8 else torch.float32)
            assert view.dtype == expected and view.numel() == mine.size
            assert view.data_ptr() == mine.ctypes.data or mine.size == 0
    assert front._engine.state_dtype == kind


def _resume_through_state_dict(make, params, copies, grads, split):
    """Step ``make(params)`` with ``grads[:split]``; copy the parameters into ``copies``,
    load its state_dict (through torch.save) into ``make(copies)``; step both with the rest
    of ``grads``. Returns both optimizers."""
    first = make(params)
    for k in range(split):
        for p, g in zip(params, grads[k]):
            p.grad = g.clone()
        first.step()
    with torch.no_grad():
        for c, p in zip(copies, params):
            c.copy_(p)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make(copies)
    second.load_state_dict(torch.load(buffer))
    for k in range(split, len(grads)):
        for p, c, g in zip(params, copies, grads[k]):
            p.grad, c.grad = g.clone(), g.clone()
        first.step()
        second.step()
    return first, second


@pytest.mark.parametrize("name,opts,kind", COMPRESSED_CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in COMPRESSED_CASES])
def test_compressed_state_dict_resumes_bit_exact(name, opts, kind):
    """A compressed front end's state_dict (through torch.save) loads into a fresh one with
    the same state_dtype: the next 3 steps equal the uninterrupted run's, bit for bit."""
    params, copies = _compressed_params(2), _compressed_params(2)
    rng = np.random.default_rng(3)
    grads = [[torch.empty_like(p).copy_(torch.from_numpy(
        rng.standard_normal(tuple(p.shape)).astype(np.float32))) for p in params]
        for _ in range(7)]
    _resume_through_state_dict(lambda ps: getattr(ft, name)(ps, state_dtype=kind, **opts),
                               params, copies, grads, 4)
    for p, c in zip(params, copies):
        assert torch.equal(p, c)


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_float_state_dict_into_compressed_state_is_refused_and_changes_nothing(kind):
    """torch.optim.Adam's float32 state dict does not load into a compressed front end
    (nor the reverse): the error names the buffer and the dtypes; nothing changes."""
    params = _compressed_params(4)
    topt = torch.optim.Adam(_compressed_params(4), lr=1e-2, foreach=False)
    for p in topt.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    topt.step()
    front = ft.Adam(params, lr=1e-2, state_dtype=kind)
    for p in params:
        p.grad = torch.ones_like(p)
    front.step()
    before = {k: v.clone() for k, v in front.state[params[0]].items()}
    with pytest.raises(ValueError, match="exp_avg.*dtype"):
        front.load_state_dict(topt.state_dict())
    for k, v in front.state[params[0]].items():
        assert torch.equal(v, before[k])
    plain = ft.Adam(_compressed_params(4), lr=1e-2)
    with pytest.raises(ValueError):
        plain.load_state_dict(front.state_dict())


def test_state_dtype_is_refused_where_the_class_has_none_and_when_unknown():
    with pytest.raises(TypeError, match="state_dtype"):
        ft.LAMB(_compressed_params(5), state_dtype="int8")
    with pytest.raises(ValueError, match="state_dtype"):
        ft.Adam(_compressed_params(5), state_dtype="int4")
    model = _mlp(torch.float64)
    with pytest.raises(ValueError, match="state_dtype"):
        ft.Adam(model.parameters(), state_dtype="int8")      # float64 parameters


@pytest.mark.parametrize("make_scheduler", [
    lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
    lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda epoch: 1 / (1 + epoch)),
    lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=40),
], ids=["StepLR", "LambdaLR", "OneCycleLR (lr and betas)"])
def test_schedulers_drive_lr_and_betas(make_scheduler):
    runs = []
    for make in (torch.optim.Adam, ft.Adam):
        model = _mlp(torch.float64)
        kw = dict(foreach=False) if make is torch.optim.Adam else {}
        opt = make(model.parameters(), lr=1e-2, **kw)
        lrs = _train(model, opt, 40, torch.float64, scheduler=make_scheduler(opt))
        runs.append((_flat(model), lrs, opt))
    assert runs[0][1] == runs[1][1] and len(set(runs[1][1])) > 1
    np.testing.assert_allclose(runs[1][0], runs[0][0], **CLOSE64)
    assert runs[1][2]._engine.param_groups[0]["lr"] == runs[1][1][-1]   # the last step's


def _torch_opts(name):
    return {"SGD": dict(lr=0.05, momentum=0.9), "RMSprop": dict(lr=1e-2, momentum=0.5,
                                                                  centered=True),
            "Adadelta": {}, "Adam": dict(lr=1e-2, amsgrad=True)}.get(name, dict(lr=1e-2))


@pytest.mark.parametrize("name", TORCH_TWINS)
def test_state_dict_from_torch_optim_and_back(name, scalar_dtype_for):
    """torch.optim.X trained 5 steps -> its state dict (through torch.save) loads into
    fastoptim.torch.X; 5 more steps on each equal; then fastoptim's state dict loads back
    into a fresh torch.optim.X, and 5 more steps on each equal again."""
    scalar_dtype_for(name)
    opts = _torch_opts(name)
    bias = name != "Muon"
    tmodel = _mlp(torch.float64, bias=bias)
    topt = getattr(torch.optim, name)(tmodel.parameters(), **opts,
                                      **({} if name == "Muon" else dict(foreach=False)))
    _train(tmodel, topt, 5, torch.float64)
    fmodel = copy.deepcopy(tmodel)
    fopt = getattr(ft, name)(fmodel.parameters(), **opts)
    buffer = io.BytesIO()
    torch.save(topt.state_dict(), buffer)
    buffer.seek(0)
    fopt.load_state_dict(torch.load(buffer))
    assert fopt._engine._step_counts() == [5] * len(fopt._tensors) or name in ("SGD", "Muon")
    for _ in range(2):
        if name == "Muon":      # torch's Newton-Schulz runs in bfloat16: compare the state
            assert _state_equal(fopt, topt)
        else:
            _train(tmodel, topt, 5, torch.float64)
            _train(fmodel, fopt, 5, torch.float64)
            np.testing.assert_allclose(_flat(fmodel), _flat(tmodel), **CLOSE64)
        # and back: a fresh torch.optim.X from fastoptim's state dict
        tmodel = copy.deepcopy(fmodel)
        topt = getattr(torch.optim, name)(tmodel.parameters(), **opts)
        buffer = io.BytesIO()
        torch.save(fopt.state_dict(), buffer)
        buffer.seek(0)
        topt.load_state_dict(torch.load(buffer))
    if name == "Muon":
        assert _state_equal(fopt, topt)


def _state_equal(a, b):
    sa, sb = a.state_dict()["state"], b.state_dict()["state"]
    return sa.keys() == sb.keys() and all(
        sa[k].keys() == sb[k].keys() and all(torch.equal(sa[k][n], sb[k][n]) for n in sa[k])
        for k in sa)


def test_none_grads_skip_their_parameter_as_torch_does():
    runs = []
    for make in (torch.optim.Adam, ft.Adam):
        model = _mlp(torch.float64)
        kw = dict(foreach=False) if make is torch.optim.Adam else {}
        opt = make(model.parameters(), lr=1e-2, **kw)
        _train(model, opt, 6, torch.float64, skip=(1, 4))
        _train(model, opt, 4, torch.float64, skip=(0,))
        runs.append((model, opt))
    np.testing.assert_allclose(_flat(runs[1][0]), _flat(runs[0][0]), rtol=1e-10)
    t_steps = {k: v["step"].item() for k, v in runs[0][1].state_dict()["state"].items()}
    f_steps = {k: v["step"].item() for k, v in runs[1][1].state_dict()["state"].items()}
    assert t_steps == f_steps and t_steps[0] == 6 and t_steps[1] == 4


def test_add_param_group_and_per_group_hyperparameters():
    runs = []
    for make in (torch.optim.SGD, ft.SGD):
        model = _mlp(torch.float64)
        first, rest = list(model[0].parameters()), list(model[2:].parameters())
        kw = dict(foreach=False) if make is torch.optim.SGD else {}
        opt = make(first, lr=0.1, momentum=0.9, **kw)
        _train(model, opt, 3, torch.float64)
        opt.add_param_group({"params": rest, "lr": 0.02, "nesterov": True})
        _train(model, opt, 7, torch.float64)
        opt.param_groups[0]["momentum"] = 0.5
        _train(model, opt, 3, torch.float64)
        runs.append(_flat(model))
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-10)


def _snapshot(opt):
    return ([p.detach().clone() for p in opt._tensors],
            copy.deepcopy({k: {n: v.clone() for n, v in s.items()}
                           for k, s in opt.state_dict()["state"].items()}))


def _same(a, b):
    assert all(torch.equal(x, y) for x, y in zip(a[0], b[0]))
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        assert all(torch.equal(a[1][k][n], b[1][k][n]) for n in a[1][k])


def _set_grads(params, make):
    for p in params:
        p.grad = make(p)


BAD_GRADS = {
    "sparse": (lambda p: torch.zeros_like(p).to_sparse() if p.dim() == 2 else
               torch.zeros_like(p), ValueError, "gradient of parameter 0 is torch.sparse_coo"),
    "other memory order": (lambda p: torch.zeros(p.shape[::-1], dtype=p.dtype).t()
                           if p.dim() == 2 else torch.zeros_like(p),
                           ValueError, r"params\[0\] is C-contiguous and grads\[0\] is F"),
    "broadcast (stride 0)": (lambda p: torch.zeros(1, dtype=p.dtype).expand(p.shape),
                             ValueError, r"grads\[0\] must be C- or F-contiguous"),
}


@pytest.mark.parametrize("bad", BAD_GRADS)
def test_bad_gradient_raises_naming_it_and_changes_nothing(bad):
    make_grad, exc, msg = BAD_GRADS[bad]
    model = _mlp(torch.float32)
    opt = ft.Adam(model.parameters(), lr=1e-2)
    _train(model, opt, 2, torch.float32)
    before = _snapshot(opt)
    params = list(model.parameters())
    _set_grads(params, lambda p: torch.ones_like(p))
    params[0].grad = make_grad(params[0])
    with pytest.raises(exc, match=msg):
        opt.step()
    _same(before, _snapshot(opt))
    _set_grads(params, lambda p: torch.ones_like(p))
    opt.step()                                      # and it still works
    assert opt._engine._step_counts() == [3] * len(params)


def test_replaced_parameter_memory_is_refused_before_anything_changes():
    model = _mlp(torch.float32)
    opt = ft.Adam(model.parameters(), lr=1e-2)
    _train(model, opt, 2, torch.float32)
    params = list(model.parameters())
    params[3].data = params[3].data.clone()          # what module.to(...) does
    _set_grads(params, lambda p: torch.ones_like(p))
    before = _snapshot(opt)
    with pytest.raises(RuntimeError, match="parameter 3 no longer uses the memory"):
        opt.step()
    _same(before, _snapshot(opt))


@pytest.mark.parametrize("key,value,exc,msg", [
    ("betas", (1.5, 0.9), ValueError, "beta"),
    ("lr", -1.0, ValueError, "lr must be"),
    ("eps", "small", TypeError, "eps"),
    ("amsgrad", True, ValueError, "state buffers"),
    ("capturable", True, ValueError, "capturable"),
])
def test_bad_group_change_raises_at_step_and_changes_nothing(key, value, exc, msg):
    model = _mlp(torch.float64)
    opt = ft.Adam(model.parameters(), lr=1e-2)
    _train(model, opt, 2, torch.float64)
    good = opt.param_groups[0][key]
    opt.param_groups[0][key] = value
    before = _snapshot(opt)
    with pytest.raises(exc, match=msg):
        _train(model, opt, 1, torch.float64)
    _same(before, _snapshot(opt))
    opt.param_groups[0][key] = good
    _train(model, opt, 1, torch.float64)


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: [torch.zeros(3, device="meta", requires_grad=True)], ValueError, "is on meta"),
    (lambda: [torch.zeros(3, dtype=torch.complex64, requires_grad=True)], TypeError,
     "torch.complex64; fastoptim.torch supports"),
    (lambda: [torch.zeros(4, 4, requires_grad=True)[:, :2]], ValueError, "non-leaf"),
    (lambda: [torch.nn.Parameter(torch.zeros(6, 4)[:, :2])], ValueError, "contiguous"),
])
def test_bad_parameters_are_refused_at_construction(make, exc, msg):
    with pytest.raises(exc, match=msg):
        ft.Adam(make(), lr=1e-3)


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(capturable=True), ValueError, "capturable=True is for CUDA graphs"),
    (dict(differentiable=True), ValueError, "differentiable=True"),
    (dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\)"),
    (dict(lr=-1e-3), ValueError, "lr must be"),
    (dict(backend="gpu"), ValueError, "backend must be one of"),
])
def test_bad_options_are_refused_at_construction(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        ft.Adam(_mlp(torch.float32).parameters(), **kw)


def test_bad_param_group_leaves_the_optimizer_unchanged():
    model = _mlp(torch.float32)
    opt = ft.Adam(model[0].parameters(), lr=1e-2)
    for group in ({"params": model[2].parameters(), "betas": (2.0, 0.9)},
                  {"params": [torch.zeros(3, dtype=torch.float16, requires_grad=True)]},
                  {"params": model[0].parameters()}):           # already held
        with pytest.raises((ValueError, TypeError)):
            opt.add_param_group(group)
        assert len(opt.param_groups) == 1 and len(opt._engine.param_groups) == 1
        assert len(opt._tensors) == 2
    _train(model, opt, 2, torch.float32)


def test_closure_hooks_and_profiler():
    model = _mlp(torch.float64)
    opt = ft.Adam(model.parameters(), lr=1e-2)
    X, Y = _data(torch.float64)

    def closure():
        opt.zero_grad()
        loss = ((model(X) - Y) ** 2).mean()
        loss.backward()
        return loss

    calls = []
    pre = opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    post = opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    first = opt.step(closure)
    assert isinstance(first, torch.Tensor) and calls == ["pre", "post"]
    pre.remove(), post.remove()
    from torch.optim.optimizer import register_optimizer_step_post_hook
    handle = register_optimizer_step_post_hook(
        lambda o, a, k: calls.append("global"))
    try:
        opt.step(closure)
    finally:
        handle.remove()
    assert calls == ["pre", "post", "global"]
    with torch.profiler.profile() as prof:
        opt.step(closure)
    assert "Optimizer.step#Adam.step" in {e.name for e in prof.events()}
    assert opt.step(closure).item() < first.item()


def test_in_place_and_zero_copy():
    model = _mlp(torch.float32)
    params = list(model.parameters())
    addresses = [p.data_ptr() for p in params]
    opt = ft.Adam(params, lr=1e-2)
    _train(model, opt, 3, torch.float32)
    assert [p.data_ptr() for p in params] == addresses
    for i, p in enumerate(params):
        state = opt.state[p]
        engine = opt._engine._state
        assert np.shares_memory(state["exp_avg"].numpy(), engine["exp_avg"][i])
        assert state["step"].item() == 3
    # writing the state in place is seen by the next step, as in torch
    opt.state[params[0]]["exp_avg"].zero_()
    assert not opt._engine._state["exp_avg"][0].any()


def test_no_allocation_proportional_to_the_arrays():
    params = [torch.zeros(200_000, requires_grad=True), torch.zeros(300, 400,
                                                                    requires_grad=True)]
    opt = ft.Adam(params, lr=1e-3)
    _set_grads(params, lambda p: torch.ones_like(p))
    opt.step()
    tracemalloc.start()
    for _ in range(3):
        opt.step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 * 1024, peak


def test_pickling_is_refused_with_a_pointer_to_state_dict():
    opt = ft.Adam(_mlp(torch.float32).parameters())
    with pytest.raises(TypeError, match="state_dict"):
        copy.deepcopy(opt)


@pytest.mark.parametrize("name", TORCH_TWINS)
def test_signature_and_defaults_follow_torch(name):
    import inspect
    ours = inspect.signature(getattr(ft, name)).parameters
    theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
    for key, p in theirs.items():
        if key == "self":
            continue
        assert key in ours, key
        assert ours[key].kind == p.kind, key
        if p.default is not inspect.Parameter.empty:
            assert ours[key].default == p.default, key
    assert "backend" in ours and "skip_nonfinite" in ours


def test_every_fastoptim_optimizer_has_a_front_end():
    assert set(ft.CLASSES) == set(fastoptim._optimizers.CLASSES)
    for name in ft.CLASSES:
        cls = getattr(ft, name)
        assert issubclass(cls, torch.optim.Optimizer) and cls.__doc__


def test_import_fastoptim_does_not_import_torch():
    code = "import sys, fastoptim; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_gradients_kept_between_steps_match_torch():
    """zero_grad(set_to_none=False) and accumulation: the same gradient tensors every step
    (their views are reused), changed in place by backward."""
    runs = []
    for make in (torch.optim.Adam, ft.Adam):
        model = _mlp(torch.float64)
        kw = dict(foreach=False) if make is torch.optim.Adam else {}
        opt = make(model.parameters(), lr=1e-2, **kw)
        X, Y = _data(torch.float64)
        for k in range(12):
            opt.zero_grad(set_to_none=False)
            for half in (X[:16], X[16:]):           # two accumulated backward passes
                ((model(half) - Y[:16]) ** 2).mean().backward()
            opt.step()
        runs.append(_flat(model))
    np.testing.assert_allclose(runs[1], runs[0], **CLOSE64)


def test_a_gradient_whose_memory_changed_is_viewed_again_and_checked():
    model = _mlp(torch.float32)
    params = list(model.parameters())
    opt = ft.Adam(params, lr=1e-2)
    _set_grads(params, lambda p: torch.ones_like(p))
    opt.step()
    opt.step()                                       # the cached views
    before = _snapshot(opt)
    params[2].grad.data = torch.ones(10_000)         # same tensor object, new memory
    with pytest.raises(ValueError, match=r"grads\[2\] must have the shape of params\[2\]"):
        opt.step()
    _same(before, _snapshot(opt))
    params[2].grad.data = torch.full_like(params[2], 2.0)
    opt.step()
    np.testing.assert_array_equal(opt._engine._steps or [opt._engine._n.step_all], [3])


def test_a_gradient_changed_in_place_is_viewed_again_and_checked():
    """The same gradient tensor at the same address with its strides or shape changed in
    place (t_(), resize_()) is viewed again: a transposed gradient steps as torch's does,
    a resized one raises naming it; a gradient whose storage was freed (data_ptr() 0)
    raises naming it, and nothing changes."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(3, 3, dtype=torch.float64))
    q = torch.nn.Parameter(p.detach().clone())
    mine, theirs = ft.SGD([p], lr=0.1), torch.optim.SGD([q], lr=0.1, foreach=False)
    g = torch.randn(3, 5, dtype=torch.float64)[:, :3].contiguous()
    p.grad, q.grad = g.clone(), g.clone()
    mine.step()
    theirs.step()
    p.grad.t_()
    q.grad.t_()
    with pytest.raises(ValueError, match="contiguous"):      # an F-order gradient of a C one
        mine.step()
    p.grad, q.grad = p.grad.contiguous(), q.grad.contiguous()
    mine.step()
    theirs.step()
    np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), **CLOSE64)
    before = p.detach().clone()
    p.grad.resize_(2, 2)
    with pytest.raises(ValueError, match=r"grads\[0\] must have the shape of params\[0\]"):
        mine.step()
    assert torch.equal(p, before)
    freed = torch.randn(3, 3, dtype=torch.float64)
    freed.untyped_storage().resize_(0)
    p.grad = freed
    with pytest.raises(ValueError, match="gradient of parameter 0 has no memory"):
        mine.step()
    assert torch.equal(p, before)


@pytest.mark.parametrize("step", [float("nan"), float("inf"), -1.0, 2.5, True, "3"])
def test_a_state_dict_with_a_step_that_is_not_a_count_is_refused_by_name(step):
    model = _mlp(torch.float32)
    opt = ft.Adam(model.parameters(), lr=1e-2)
    _train(model, opt, 2, torch.float32)
    sd = opt.state_dict()
    before = copy.deepcopy(sd)
    bad = copy.deepcopy(sd)
    bad["state"][0]["step"] = torch.tensor(step) if isinstance(step, float) else step
    with pytest.raises(ValueError, match="the step of parameter 0 is .*, not a count"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert all(torch.equal(after["state"][i][k], before["state"][i][k])
               for i in after["state"] for k in after["state"][i])


# ---- half parameters (Adam, AdamW) ----------------------------------------------------------
HALF_CASES = [(torch.bfloat16, {}), (torch.bfloat16, dict(master_weights=True)),
              (torch.bfloat16, dict(stochastic_rounding=True, seed=7)),
              (torch.float16, {}), (torch.float16, dict(master_weights=True))]


def _half_id(case):
    return f"{str(case[0])[6:]}-{'-'.join(case[1]) or 'nearest'}"


def _half_params(dtype, seed):
    """Half tensors: a vector body and tail, a 2-D one in Fortran order (a transposed leaf),
    a small one."""
    torch.manual_seed(seed)
    big = torch.randn(4096 + 300)
    wide = torch.randn(90, 70).t()              # (70, 90), F-contiguous
    small = torch.randn(33)
    return [torch.nn.Parameter(t.to(dtype)) for t in (big, wide, small)]


def _as_numpy(t):
    """A copy of half tensor ``t`` as NumPy (bfloat16: ml_dtypes), in its memory order."""
    from fastoptim.torch._front import _numpy_view
    return _numpy_view(t).copy(order="K")


def _as_tensor(a):
    """A half NumPy array as a tensor on the same memory."""
    if a.dtype == np.float16:
        return torch.from_numpy(a)
    return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)


def _half_grads(arrays, rng):
    return [np.asarray(rng.standard_normal(a.shape), np.float32).astype(a.dtype, order="K")
            if a.ndim == 1 else np.asfortranarray(rng.standard_normal(a.shape)).astype(
                a.dtype, order="K") for a in arrays]


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("case", HALF_CASES, ids=_half_id)
def test_half_parameters_equal_the_fastoptim_class_bit_for_bit(name, case):
    """bfloat16 / float16 parameters: the front end's parameters and state are the fastoptim
    class's with the same options on NumPy copies, bit for bit, over 6 steps with a None
    gradient among them; self.state views the engine's float32 buffers (the master copy as
    "master")."""
    dtype, opts = case
    params = _half_params(dtype, 0)
    arrays = [_as_numpy(p) for p in params]
    front = getattr(ft, name)(params, lr=1e-2, weight_decay=0.1, **opts)
    engine = getattr(fastoptim, name)(arrays, lr=1e-2, weight_decay=0.1, **opts)
    rng = np.random.default_rng(1)
    for k in range(6):
        grads = _half_grads(arrays, rng)
        if k == 2:
            grads[1] = None
        for p, g in zip(params, grads):
            p.grad = None if g is None else _as_tensor(g.copy(order="K"))
        front.step()
        engine.step(grads)
    changed = 0
    for p, a, start in zip(params, arrays, _half_params(dtype, 0)):
        assert p.dtype == dtype and np.array_equal(_bits(_as_numpy(p)), _bits(a))
        changed += not torch.equal(p, start)
    assert changed == 3
    assert set(front._engine._state) == set(engine._state)
    assert ("master" in engine._state) == bool(opts.get("master_weights"))
    for key, bufs in engine._state.items():
        for i, (p, b) in enumerate(zip(params, bufs)):
            mine = front._engine._state[key][i]
            assert np.array_equal(_bits(mine), _bits(b)), (key, i)
            view = front.state[p][key]
            assert view.dtype == torch.float32 and view.data_ptr() == mine.ctypes.data


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_parameters_with_master_weights_follow_torch_on_float32(dtype):
    """master_weights=True: the master copies follow torch.optim.AdamW on float32 copies of
    the parameters with the same (half) gradients, over 20 steps; each parameter is its
    master rounded to nearest."""
    params = _half_params(dtype, 5)
    reference = [torch.nn.Parameter(p.detach().float()) for p in params]
    front = ft.AdamW(params, lr=1e-2, master_weights=True)
    twin = torch.optim.AdamW(reference, lr=1e-2, foreach=False)
    torch.manual_seed(6)
    for _ in range(20):
        for p, r in zip(params, reference):
            p.grad = torch.empty_like(p).copy_(torch.randn(p.shape))  # p's memory order
            r.grad = p.grad.float()
        front.step()
        twin.step()
    for p, r in zip(params, reference):
        master = front.state[p]["master"]
        np.testing.assert_allclose(master.numpy(), r.detach().numpy(), rtol=1e-5, atol=1e-6)
        assert torch.equal(p.detach(), master.to(dtype))


def test_half_parameter_state_dict_resumes_and_loads_torchs():
    """A half front end's state_dict (through torch.save) resumes bit-exact in a fresh one;
    torch.optim.AdamW's state dict of the same bfloat16 parameters (bfloat16 moments, no
    master copy) loads: the moments in float32, the master copy from the parameter."""
    params, copies = _half_params(torch.bfloat16, 2), _half_params(torch.bfloat16, 2)
    torch.manual_seed(3)
    grads = [[torch.empty_like(p).copy_(torch.randn(p.shape)) for p in params]
             for _ in range(6)]
    first, second = _resume_through_state_dict(
        lambda ps: ft.AdamW(ps, lr=1e-2, master_weights=True), params, copies, grads, 3)
    for p, c in zip(params, copies):
        assert torch.equal(p, c)
        assert torch.equal(first.state[p]["master"], second.state[c]["master"])

    theirs = _half_params(torch.bfloat16, 4)
    topt = torch.optim.AdamW(theirs, lr=1e-2, foreach=False)
    for p in theirs:
        p.grad = torch.ones_like(p)
    topt.step()
    mine = ft.AdamW(_half_params(torch.bfloat16, 4), lr=1e-2, master_weights=True)
    with torch.no_grad():
        for p, t in zip(mine.param_groups[0]["params"], theirs):
            p.copy_(t)
    mine.load_state_dict(topt.state_dict())
    for p, t in zip(mine.param_groups[0]["params"], theirs):
        state, tstate = mine.state[p], topt.state[t]
        assert int(state["step"]) == 1
        assert torch.equal(state["exp_avg"], tstate["exp_avg"].float())
        assert torch.equal(state["exp_avg_sq"], tstate["exp_avg_sq"].float())
        assert torch.equal(state["master"], t.detach().float())


@pytest.mark.parametrize("make,exc,msg", [
    (lambda ps: ft.SGD(ps, lr=0.1), TypeError, "parameter 0 is torch.bfloat16; fastoptim"),
    (lambda ps: ft.AdamW(ps, master_weights=True, stochastic_rounding=True), ValueError,
     "exclude each other"),
    (lambda ps: ft.AdamW([p.detach().half().requires_grad_() for p in ps],
                         stochastic_rounding=True), ValueError,
     "stochastic_rounding needs bfloat16"),
    (lambda ps: ft.AdamW([p.detach().float().requires_grad_() for p in ps],
                         master_weights=True), ValueError, "needs float16 or bfloat16"),
    (lambda ps: ft.AdamW([ps[0], torch.zeros(3, requires_grad=True)]), ValueError,
     "half or float parameters, not both"),
    (lambda ps: ft.AdamW(ps, state_dtype="int8"), ValueError, "state_dtype is for float32"),
])
def test_bad_half_parameter_options_are_refused(make, exc, msg):
    with pytest.raises(exc, match=msg):
        make(_half_params(torch.bfloat16, 0))


def test_a_bad_gradient_of_a_half_parameter_changes_nothing():
    params = _half_params(torch.bfloat16, 0)
    opt = ft.AdamW(params, lr=1e-2, master_weights=True)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    before = [p.detach().clone() for p in params]
    state = {k: v.clone() for k, v in opt.state[params[0]].items()}
    bf16 = torch.bfloat16
    for i, bad, exc, msg in [
            (1, torch.ones(70, 90, dtype=bf16), ValueError,
             r"grads\[1\] must be aligned and contiguous in the memory order of params\[1\]"),
            (0, torch.ones(1, dtype=bf16).expand(params[0].shape), ValueError,
             r"grads\[0\] must be aligned and contiguous"),
            (2, torch.ones(33), TypeError, r"grads\[2\] must be a numpy.ndarray of bfloat16"),
            (2, torch.ones(33, dtype=bf16).to_sparse(), ValueError,
             "gradient of parameter 2 is torch.sparse_coo")]:
        for p in params:
            p.grad = torch.ones_like(p)
        params[i].grad_dtype = None         # torch would refuse a float32 gradient itself
        params[i].grad = bad
        with pytest.raises(exc, match=msg):
            opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p, b)
    for k, v in opt.state[params[0]].items():
        assert torch.equal(v, state[k])
