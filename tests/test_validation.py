"""Every error path of the functional API: the right exception, a message naming the
argument, and no array touched.

Every kernel of the registry: the array errors on one case per kernel with every optional
state present (kernel_cases.FULL_CASES), bad values of every hyperparameter from its
validation kind, and the optional-state rules from each state's enabling condition."""

import numpy as np
import pytest
from testing_settings import ALL_BACKENDS
from kernel_cases import (CASES, FULL_CASES, TYPICAL_CASES, arg_names, case_id, make_arrays,
                          make_grad, state_names, step)

import fastoptim as fo
from fastoptim._registry import KERNELS

FUNC = {name: spec.function for name, spec in KERNELS.items()}


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
    return arg_names(kernel, opts)


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


# bad values of each validation kind (fastoptim._validation.SCALAR_KINDS): (value, exception)
BAD_VALUES = {
    # 10**400: an int beyond float's range (float() would raise a bare OverflowError)
    "nonnegative": [(-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                    ("0.1", TypeError), (True, TypeError), (None, TypeError),
                    (10**400, ValueError)],
    "positive": [(0.0, ValueError), (-1e-8, ValueError), (float("nan"), ValueError),
                 ("1e-8", TypeError), (10**400, ValueError)],
    "unit_interval": [(1.0, ValueError), (-0.1, ValueError), (1.5, ValueError),
                      (float("nan"), ValueError), ("0.9", TypeError), (-10**400, ValueError)],
    "closed_unit_interval": [(1.5, ValueError), (-0.1, ValueError), (float("inf"), ValueError),
                             ("0.5", TypeError), (10**400, ValueError)],
    "flag": [(1, TypeError), (0, TypeError), ("yes", TypeError), (None, TypeError)],
    "step_count": [(0, ValueError), (-3, ValueError), (1.5, TypeError), (3.7, TypeError),
                   (True, TypeError), (2**63, ValueError),       # C long long would overflow
                   (2**64, ValueError)],
}
# eps values that are not normal float32 numbers (the arrays below are float32): 0 in
# float32 (0/0 on a zero gradient), subnormal
BAD_EPS = [(1e-50, ValueError), (1e-39, ValueError), (1e-45, ValueError)]

# (kernel, hyperparameter, bad value, exception)
BAD_HYPERPARAMETERS = [
    (spec.name, h.name, value, exc)
    for spec in KERNELS.values() for h in spec.hyperparameters
    for value, exc in BAD_VALUES[h.kind] + (BAD_EPS if h.name == spec.eps else [])
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
@pytest.mark.parametrize("case", [c for c in TYPICAL_CASES if KERNELS[c[0]].eps], ids=case_id)
def test_tiny_eps_is_fine_where_the_dtype_holds_it(case, backend):
    """eps=1e-50 is a normal float64: accepted there, and a zero gradient stays finite."""
    kernel, opts = case
    opts = dict(opts, **{KERNELS[kernel].eps: 1e-50})
    results = {}
    for b in (backend, "numpy"):
        param, states, kw = make_arrays(kernel, opts, (5,), np.float64, "C",
                                        np.random.default_rng(0))
        for t in (1, 2):
            step(kernel, opts, param, np.zeros(5), states, kw, t, b)
        results[b] = [param, *states, *kw.values()]
    for ours, ref in zip(results[backend], results["numpy"]):
        assert np.isfinite(ours).all()
        np.testing.assert_array_equal(ours, ref)


def _as_numpy_scalars(opts):
    """Every hyperparameter as a NumPy scalar (float32 and float64 in turn, np.bool_)."""
    out = {}
    for i, (k, v) in enumerate(opts.items()):
        if isinstance(v, bool):
            out[k] = np.bool_(v)
        elif isinstance(v, int):
            out[k] = np.int64(v)
        else:
            out[k] = (np.float32 if i % 2 == 0 else np.float64)(v)
    return out


@pytest.mark.parametrize("case", FULL_CASES, ids=case_id)
def test_numpy_scalars_are_accepted(case, rng):
    """NumPy scalars are taken for their value: the same step as with Python scalars."""
    kernel, opts = case
    numpy_opts = _as_numpy_scalars(opts)
    plain_opts = {k: v.item() for k, v in numpy_opts.items()}
    param, grad, states, kw = setup_call(case, rng)
    start = arrays_in_order(param, grad, states, kw)
    copies = [snapshot(start), snapshot(start)]
    call_with((kernel, numpy_opts), copies[0], t=np.int64(3))
    call_with((kernel, plain_opts), copies[1], t=3)
    for a, b in zip(*copies):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(copies[0][0], param)


@pytest.mark.parametrize("backend", ["fast", "", None, "CYTHON"])
@pytest.mark.parametrize("case", FULL_CASES, ids=case_id)
def test_bad_backend(case, backend, rng):
    arrays = arrays_in_order(*setup_call(case, rng))
    before = snapshot(arrays)
    with pytest.raises(ValueError, match="backend") as info:
        call_with(case, arrays, backend=backend)
    assert FUNC[case[0]] in str(info.value)
    assert_unchanged(arrays, before)


def test_nesterov_needs_momentum_and_no_dampening(rng):
    param, grad, (v,), _ = setup_call(("momentum", {}), rng)
    before = snapshot([param, v])
    with pytest.raises(ValueError, match="nesterov"):
        fo.momentum_step(param, grad, v, lr=0.1, momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="dampening"):
        fo.momentum_step(param, grad, v, lr=0.1, momentum=0.9, dampening=0.1,
                         nesterov=True)
    assert_unchanged([param, v], before)


# (kernel, optional state, an example that enables it, one that does not)
OPTIONAL_STATES = [
    (spec.name, state.name,
     next(dict(e) for e in spec.examples if state.enabled(spec.complete(e))),
     next(dict(e) for e in spec.examples if not state.enabled(spec.complete(e))))
    for spec in KERNELS.values() for state in spec.optional_states
]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("kernel,state,enabling,disabling", OPTIONAL_STATES,
                         ids=lambda x: x if isinstance(x, str) else None)
def test_optional_state_missing_or_unused_is_refused(kernel, state, enabling, disabling,
                                                     backend, rng):
    """An option that needs a buffer, without it; a buffer the options do not use."""
    spec = KERNELS[kernel]
    for opts, present in ((enabling, False), (disabling, True)):
        param, grad, states, kw = setup_call((kernel, opts), rng)
        kw.pop(state, None)
        if present:
            kw[state] = np.zeros_like(param)
        arrays = [param, grad, *states, *kw.values()]
        before = snapshot(arrays)
        with pytest.raises(ValueError, match=state) as info:
            step(kernel, opts, param, grad, states, kw, 1, backend)
        assert spec.function in str(info.value)
        assert_unchanged(arrays, before)


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
