"""Every error path of the functional API: the right exception, a message naming the
argument, and no array touched."""
import numpy as np
import pytest
from testing_settings import ALL_BACKENDS
from kernel_cases import CASES, case_id, make_arrays, make_grad, state_names, step

import fastoptim as fo

# one case per kernel, with every optional state array present
FULL_CASES = [
    ("sgd", dict(lr=0.1)),
    ("momentum", dict(lr=0.1, momentum=0.9)),
    ("rmsprop", dict(lr=0.1, momentum=0.9, centered=True)),
    ("adam", dict(lr=0.1, amsgrad=True)),
    ("adagrad", dict(lr=0.1)),
    ("ewa", dict(beta=0.9)),
]
FUNC = {"sgd": "sgd_step", "momentum": "momentum_step", "rmsprop": "rmsprop_step",
        "adam": "adam_step", "adagrad": "adagrad_step", "ewa": "ewa_update"}
FIRST = {"ewa": ("average", "value")}


def setup_call(case, rng, shape=(6, 5), dtype=np.float32, order="C"):
    kernel, opts = case
    param, states, kw = make_arrays(kernel, opts, shape, dtype, order, rng)
    for s in states + list(kw.values()):
        s[...] = 1.0 + rng.random(shape)  # non-zero state, so a touch shows
    if "grad_avg" in kw:
        kw["grad_avg"][...] = 0.5 * rng.random(shape)  # keeps square_avg - grad_avg**2 > 0
    grad = make_grad(shape, dtype, order, rng)
    return param, grad, states, kw


def array_names(kernel, opts):
    pos, kw = state_names(kernel, opts)
    return FIRST.get(kernel, ("param", "grad")) + pos + kw


def arrays_in_order(param, grad, states, kw):
    return [param, grad] + list(states) + list(kw.values())


def snapshot(arrays):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in arrays]


def assert_unchanged(arrays, before):
    for a, b in zip(arrays, before):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


def call_with(case, arrays, t=1, backend="cython", **override):
    """Call the kernel of ``case`` with ``arrays`` (param, grad, state..., kw state...)."""
    kernel, opts = case
    pos, kw_names = state_names(kernel, opts)
    param, grad = arrays[0], arrays[1]
    states = arrays[2:2 + len(pos)]
    kw = dict(zip(kw_names, arrays[2 + len(pos):]))
    return step(kernel, dict(opts, **override), param, grad, states, kw, t, backend)


def replace_array(case, rng, index, new):
    param, grad, states, kw = setup_call(case, rng)
    arrays = arrays_in_order(param, grad, states, kw)
    arrays[index] = new(arrays[index])
    return arrays


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("case", FULL_CASES, ids=case_id)
class TestArrayErrors:
    def check(self, case, arrays, exc, name, backend, match=None):
        before = snapshot(arrays)
        with pytest.raises(exc) as info:
            call_with(case, arrays, backend=backend)
        msg = str(info.value)
        assert FUNC[case[0]] in msg and name in msg, msg
        if match:
            assert match in msg, msg
        assert_unchanged(arrays, before)

    def test_not_an_ndarray(self, case, backend, rng):
        for i, name in enumerate(array_names(*case)):
            arrays = replace_array(case, rng, i, lambda a: a.tolist())
            self.check(case, arrays, TypeError, name, backend, "numpy.ndarray")

    def test_integer_dtype(self, case, backend, rng):
        arrays = replace_array(case, rng, 0, lambda a: a.astype(np.int64))
        self.check(case, arrays, TypeError, array_names(*case)[0], backend, "float32 or float64")

    def test_float16_dtype(self, case, backend, rng):
        arrays = arrays_in_order(*setup_call(case, rng))
        arrays = [a.astype(np.float16) for a in arrays]
        self.check(case, arrays, TypeError, array_names(*case)[0], backend, "float16")

    def test_mixed_dtypes(self, case, backend, rng):
        for i, name in enumerate(array_names(*case)[1:], start=1):
            arrays = replace_array(case, rng, i, lambda a: a.astype(np.float64))
            self.check(case, arrays, TypeError, name, backend, "dtype")

    def test_shape_mismatch(self, case, backend, rng):
        for i, name in enumerate(array_names(*case)[1:], start=1):
            arrays = replace_array(case, rng, i, lambda a: np.ascontiguousarray(a.T))
            self.check(case, arrays, ValueError, name, backend, "shape")

    def test_same_size_other_shape(self, case, backend, rng):
        arrays = replace_array(case, rng, 1, lambda a: a.reshape(-1).copy())
        self.check(case, arrays, ValueError, array_names(*case)[1], backend, "shape")

    def test_not_contiguous(self, case, backend, rng):
        for i, name in enumerate(array_names(*case)):
            arrays = replace_array(
                case, rng, i, lambda a: np.repeat(a, 2, axis=1)[:, ::2])
            self.check(case, arrays, ValueError, name, backend, "contiguous")

    def test_mixed_layouts(self, case, backend, rng):
        arrays = replace_array(case, rng, 1, lambda a: np.asfortranarray(a))
        self.check(case, arrays, ValueError, array_names(*case)[1], backend, "F-contiguous")

    def test_read_only(self, case, backend, rng):
        names = array_names(*case)
        for i, name in enumerate(names):
            if i == 1:
                continue  # grad / value may be read-only
            def freeze(a):
                a.setflags(write=False)
                return a
            arrays = replace_array(case, rng, i, freeze)
            self.check(case, arrays, ValueError, name, backend, "read-only")

    def test_read_only_grad_is_fine(self, case, backend, rng):
        param, grad, states, kw = setup_call(case, rng)
        grad.setflags(write=False)
        before = param.copy()
        call_with(case, arrays_in_order(param, grad, states, kw), backend=backend)
        assert not np.array_equal(param, before)

    def test_shared_memory(self, case, backend, rng):
        names = array_names(*case)
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                arrays = arrays_in_order(*setup_call(case, rng))
                arrays[j] = arrays[i]  # the same buffer twice
                self.check(case, arrays, ValueError, f"{names[i]} and {names[j]}", backend,
                           "share memory")

    def test_overlapping_views(self, case, backend, rng):
        arrays = arrays_in_order(*setup_call(case, rng, shape=(30,)))
        base = np.zeros(31, np.float32)
        arrays[0], arrays[-1] = base[:30], base[1:]
        names = array_names(*case)
        self.check(case, arrays, ValueError, f"{names[0]} and {names[-1]}", backend,
                   "share memory")

    def test_byteswapped(self, case, backend, rng):
        arrays = replace_array(case, rng, 1, lambda a: a.astype(a.dtype.newbyteorder()))
        self.check(case, arrays, TypeError, array_names(*case)[1], backend, "byte order")


# (kernel, hyperparameter, bad value, exception)
BAD_HYPERPARAMETERS = [
    (k, "lr", v, e) for k in ("sgd", "momentum", "rmsprop", "adam", "adagrad")
    for v, e in ((-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                 ("0.1", TypeError), (True, TypeError), (None, TypeError))
] + [
    ("sgd", "weight_decay", -1.0, ValueError),
    ("sgd", "maximize", 1, TypeError),
    ("momentum", "momentum", -0.5, ValueError),
    ("momentum", "dampening", 1.5, ValueError),
    ("momentum", "dampening", -0.1, ValueError),
    ("momentum", "nesterov", "yes", TypeError),
    ("momentum", "weight_decay", float("nan"), ValueError),
    ("rmsprop", "alpha", 1.0, ValueError),
    ("rmsprop", "alpha", -0.1, ValueError),
    ("rmsprop", "eps", 0.0, ValueError),
    ("rmsprop", "momentum", -0.9, ValueError),
    ("rmsprop", "centered", 0, TypeError),
    ("adam", "beta1", 1.0, ValueError),
    ("adam", "beta2", -0.001, ValueError),
    ("adam", "beta2", 1.5, ValueError),
    ("adam", "eps", -1e-8, ValueError),
    ("adam", "weight_decay", -0.01, ValueError),
    ("adam", "step", 0, ValueError),
    ("adam", "step", -3, ValueError),
    ("adam", "step", 1.5, TypeError),
    ("adam", "step", True, TypeError),
    ("adam", "eps", 1e-50, ValueError),        # 0 in float32: 0/0 on a zero gradient
    ("adam", "eps", 1e-39, ValueError),        # subnormal in float32
    ("rmsprop", "eps", 1e-45, ValueError),
    ("adagrad", "eps", 1e-40, ValueError),
    ("adam", "step", 2**63, ValueError),       # C long long would overflow
    ("adam", "step", 2**64, ValueError),
    ("adam", "step", 3.7, TypeError),
    ("adagrad", "step", 2**63, ValueError),
    ("adam", "decoupled_weight_decay", None, TypeError),
    ("adagrad", "lr_decay", -0.1, ValueError),
    ("adagrad", "eps", 0.0, ValueError),
    ("adagrad", "step", 0, ValueError),
    ("ewa", "beta", 1.0, ValueError),
    ("ewa", "beta", -0.5, ValueError),
    ("ewa", "beta", "0.9", TypeError),
]
FULL = dict(FULL_CASES)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("kernel,name,value,exc", BAD_HYPERPARAMETERS,
                         ids=lambda x: repr(x) if not isinstance(x, type) else x.__name__)
def test_bad_hyperparameter(kernel, name, value, exc, backend, rng):
    case = (kernel, FULL[kernel])
    arrays = arrays_in_order(*setup_call(case, rng))
    before = snapshot(arrays)
    t = value if name == "step" else 1
    override = {} if name == "step" else {name: value}
    with pytest.raises(exc, match=name) as info:
        call_with(case, arrays, t=t, backend=backend, **override)
    assert FUNC[kernel] in str(info.value)
    assert_unchanged(arrays, before)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_tiny_eps_is_fine_where_the_dtype_holds_it(backend):
    """eps=1e-50 is a normal float64: accepted there, and a zero gradient stays finite."""
    p, g = np.ones(5), np.zeros(5)
    m, v = np.zeros(5), np.zeros(5)
    fo.adam_step(p, g, m, v, step=1, eps=1e-50, backend=backend)
    np.testing.assert_array_equal(p, 1.0)


def test_numpy_scalars_are_accepted(rng):
    case = ("adam", dict(lr=np.float32(0.1), beta1=np.float64(0.9)))
    param, grad, states, kw = setup_call(case, rng)
    fo.adam_step(param, grad, *states, step=np.int64(3), lr=np.float32(0.1),
                 beta1=np.float64(0.9), maximize=np.bool_(False))


@pytest.mark.parametrize("backend", ["fast", "", None, "CYTHON"])
def test_bad_backend(backend, rng):
    param, grad, states, kw = setup_call(("sgd", {}), rng)
    before = param.copy()
    with pytest.raises(ValueError, match="backend"):
        fo.sgd_step(param, grad, lr=0.1, backend=backend)
    np.testing.assert_array_equal(param, before)


class TestOptionalStateRules:
    def test_nesterov_needs_momentum_and_no_dampening(self, rng):
        param, grad, (v,), _ = setup_call(("momentum", {}), rng)
        before = snapshot([param, v])
        with pytest.raises(ValueError, match="nesterov"):
            fo.momentum_step(param, grad, v, lr=0.1, momentum=0.0, nesterov=True)
        with pytest.raises(ValueError, match="dampening"):
            fo.momentum_step(param, grad, v, lr=0.1, momentum=0.9, dampening=0.1,
                             nesterov=True)
        assert_unchanged([param, v], before)

    def test_amsgrad_needs_its_buffer(self, rng):
        param, grad, (m, v), _ = setup_call(("adam", {}), rng)
        before = snapshot([param, m, v])
        with pytest.raises(ValueError, match="max_exp_avg_sq"):
            fo.adam_step(param, grad, m, v, step=1, amsgrad=True)
        with pytest.raises(ValueError, match="max_exp_avg_sq"):
            fo.adam_step(param, grad, m, v, step=1, max_exp_avg_sq=np.zeros_like(param))
        assert_unchanged([param, m, v], before)

    def test_rmsprop_buffers(self, rng):
        param, grad, (s,), _ = setup_call(("rmsprop", {}), rng)
        before = snapshot([param, s])
        with pytest.raises(ValueError, match="momentum_buffer"):
            fo.rmsprop_step(param, grad, s, momentum=0.9)
        with pytest.raises(ValueError, match="grad_avg"):
            fo.rmsprop_step(param, grad, s, centered=True)
        with pytest.raises(ValueError, match="momentum_buffer"):
            fo.rmsprop_step(param, grad, s, momentum_buffer=np.zeros_like(param))
        with pytest.raises(ValueError, match="grad_avg"):
            fo.rmsprop_step(param, grad, s, grad_avg=np.zeros_like(param))
        assert_unchanged([param, s], before)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_in_place_same_buffers_returns_none(case, rng):
    """Each call updates the given buffers (same data pointers), returns None."""
    kernel, opts = case
    param, states, kw = make_arrays(kernel, opts, (50, 3), np.float64, "F", rng)
    ptrs = [a.__array_interface__["data"][0] for a in [param, *states, *kw.values()]]
    before = param.copy()
    for t in (1, 2):
        grad = make_grad((50, 3), np.float64, "F", rng)
        assert step(kernel, opts, param, grad, states, kw, t, "cython") is None
    assert [a.__array_interface__["data"][0] for a in [param, *states, *kw.values()]] == ptrs
    assert param.flags.f_contiguous and not np.array_equal(param, before)
