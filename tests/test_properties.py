"""Property-based tests, with hypothesis.

1. parity: every kernel x option x compiled backend against the NumPy reference over several
   steps, on random shapes (0-d, empty, around the SIMD widths, one above the parallel
   crossover), both layouts, both dtypes and hyperparameters at their edges; "auto" with 1
   and 2 threads equals "cython" bit for bit;
2. refusals change nothing: the aliasing, layout and dtype zoo, read-only arrays and shape
   mismatches raise TypeError/ValueError naming the function and an argument, and every
   array is bit-identical after;
3. the subclass zoo: MaskedArray refused, other ndarray subclasses updated like plain arrays;
4. numerics: AMSGrad NaN propagation, inf parameters with weight_decay=0, underflowing eps;
5. the optimizer classes against the functional reference, per array.

Kernels, optimizer classes and the hyperparameter strategies come from the kernel registry:
each hyperparameter is drawn by its validation kind, and a draw the registry's rules refuse
(Nesterov without momentum) is drawn again.

The example budget comes from the hypothesis profile loaded in conftest.py ("ci" by
default; FASTOPTIM_HYPOTHESIS_PROFILE=thorough or FASTOPTIM_HYPOTHESIS_EXAMPLES=N for more).
Each test scales it by a factor that reflects its cost.
"""
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from hypothesis import Phase, assume, given, note, settings
from hypothesis import strategies as st
from kernel_cases import (CLASS_TYPICAL_CASES, FULL_CASES, arg_names, class_case_id,
                          class_state_names, make_arrays, make_grad, optimizer_class,
                          state_names, step)
from testing_settings import ALL_BACKENDS, COMPILED_BACKENDS, DTYPES, TOLERANCE

import fastoptim as fo
from fastoptim import _backends, kernels, reference
from fastoptim._registry import KERNELS as SPECS

BASE_EXAMPLES = settings.default.max_examples


def budget(scale, **kwargs):
    """The loaded profile's budget times ``scale`` (at least 1 example)."""
    return settings(max_examples=max(1, int(round(BASE_EXAMPLES * scale))), **kwargs)


# Tests that are expected to fail until other branches merge: no shrinking (it would only
# spend time on a known failure).
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)

KERNELS = list(SPECS)
FUNC_NAME = {name: spec.function for name, spec in SPECS.items()}
FULL = dict(FULL_CASES)
EVERY_BACKEND = ALL_BACKENDS + ["auto"]


# ---- strategies ----------------------------------------------------------------------------
# 1-D sizes around the SIMD widths (4, 8, 16 lanes) and the unrolled bodies, plus tails.
SIZES_1D = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 64 + 13, 127, 128 + 7]


def small_shapes(nonempty=False):
    options = [
        st.just(()),                                                     # 0-d
        st.sampled_from(SIZES_1D).map(lambda n: (n,)),
        st.tuples(st.integers(1, 9), st.integers(1, 17)),
        st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 9)),
    ]
    if not nonempty:
        options.append(st.sampled_from([(0,), (0, 3), (4, 0), (2, 0, 3)]))  # empty
    return st.one_of(*options)


@st.composite
def layouts(draw, allow_big=False, nonempty=False, dtypes=DTYPES):
    """(shape, order, dtype); with ``allow_big``, rarely a shape above the parallel crossover
    of ``"auto"`` (for every kernel: the crossover of two arrays is the largest)."""
    dtype = np.dtype(draw(st.sampled_from(dtypes), label="dtype"))
    order = draw(st.sampled_from("CF"), label="order")
    if allow_big and draw(st.integers(0, 15)) == 15:
        n = _backends.crossover(dtype.itemsize, 2) + 5
        shape = draw(st.sampled_from([(n,), (-(-n // 61), 61)]))
    else:
        shape = draw(small_shapes(nonempty))
    note(f"shape={shape} order={order} dtype={dtype}")
    return shape, order, dtype


FRACTION = st.one_of(st.just(0.0), st.floats(0.0, 0.999))          # beta, alpha: [0, 1)
FLAG = st.booleans()
# a value of each validation kind (step counts: first_step)
KIND = {
    "nonnegative": st.one_of(st.just(0.0), st.floats(0.0, 0.3), st.floats(0.0, 0.99)),
    "positive": st.floats(1e-3, 10.0),
    "unit_interval": FRACTION,
    "closed_unit_interval": st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)),
    "flag": FLAG,
}


def eps_for(dtype):
    """eps from the smallest normal number of the dtype to huge (but finite and normal)."""
    info = np.finfo(dtype)
    huge = 1e30 if np.dtype(dtype) == np.float32 else 1e200
    return st.one_of(st.sampled_from([float(info.tiny), 1e-8, 1.0, huge]),
                     st.floats(1e-12, 1e-2))


# Ill-conditioned corners of a formula (not kernel defects), kept out of the draws:
# (kernel, flag) -> narrower strategies for some hyperparameters when the flag is drawn true.
# Centered RMSprop: sqrt(square_avg - grad_avg**2) cancels catastrophically when alpha -> 0
# (the difference is alpha*(1-alpha)*(g1-g2)**2) and a tiny eps does not damp it: any two
# correct roundings then differ far beyond the tolerance.
WELL_CONDITIONED = {
    ("rmsprop", "centered"): dict(alpha=st.floats(0.5, 0.99),
                                  eps=st.one_of(st.floats(1e-6, 1.0), st.just(1e30))),
}


def _obeys_rules(spec, opts):
    try:
        for rule in spec.rules:
            rule(spec.function, opts)
    except ValueError:
        return False
    return True


@st.composite
def hyperparameters(draw, kernel, dtype):
    """Every hyperparameter of ``kernel`` but ``step``, each drawn by its kind (the kernel's
    eps by :func:`eps_for` the dtype). The flags are drawn first; the other values are drawn
    again (up to 20 times) until the registry's rules accept them."""
    spec = SPECS[kernel]
    hypers = [h for h in spec.hyperparameters if h.name != "step"]
    flags = {h.name: draw(FLAG, label=h.name) for h in hypers if h.kind == "flag"}
    narrow = {}
    for (name, flag), strategies in WELL_CONDITIONED.items():
        if name == kernel and flags[flag]:
            narrow.update(strategies)
    for _ in range(20):
        opts = {}
        for h in hypers:
            if h.kind == "flag":
                opts[h.name] = flags[h.name]
                continue
            default = eps_for(dtype) if h.name == spec.eps else KIND[h.kind]
            opts[h.name] = draw(narrow.get(h.name, default), label=h.name)
        if _obeys_rules(spec, opts):
            return opts
    assume(False)


def first_step(kernel):
    """The step count of the first call (for the kernels that take one)."""
    return st.one_of(st.just(1), st.integers(1, 10**6)) if SPECS[kernel].takes_step \
        else st.just(1)


# ---- helpers -------------------------------------------------------------------------------
def copy_arrays(arrays):
    param, pos, kw = arrays
    return (param.copy(order="K"), [s.copy(order="K") for s in pos],
            {k: s.copy(order="K") for k, s in kw.items()})


def flat_list(arrays):
    param, pos, kw = arrays
    return [param, *pos, *kw.values()]


def run_steps(kernel, opts, arrays, grads, t0, backend):
    param, pos, kw = arrays
    for i, grad in enumerate(grads):
        assert step(kernel, opts, param, grad, pos, kw, t0 + i, backend) is None


def assert_close(ours, ref, dtype, what=""):
    for i, (a, b) in enumerate(zip(ours, ref)):
        np.testing.assert_allclose(a, b, **TOLERANCE[np.dtype(dtype)], err_msg=f"{what} #{i}")


def assert_bits_equal(ours, ref, what=""):
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a.dtype == b.dtype and a.shape == b.shape
        same_size_int = np.dtype(f"u{a.dtype.itemsize}")
        np.testing.assert_array_equal(a.view(same_size_int), b.view(same_size_int),
                                      err_msg=f"{what} #{i}")


def make_case(data, kernel, **layout_kwargs):
    shape, order, dtype = data.draw(layouts(**layout_kwargs), label="layout")
    opts = data.draw(hyperparameters(kernel, dtype), label="opts")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    return shape, order, dtype, opts, np.random.default_rng(seed)


# ---- 1. parity -----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("kernel", KERNELS)
@budget(1.5)
@given(data=st.data())
def test_compiled_backends_match_the_reference(kernel, backend, data):
    shape, order, dtype, opts, rng = make_case(data, kernel, allow_big=True)
    t0 = data.draw(first_step(kernel), label="t0")
    n_steps = data.draw(st.integers(1, 4), label="steps")
    ours = make_arrays(kernel, opts, shape, dtype, order, rng)
    ref = copy_arrays(ours)
    grads = [make_grad(shape, dtype, order, rng) for _ in range(n_steps)]
    run_steps(kernel, opts, ours, grads, t0, backend)
    with np.errstate(all="ignore"):
        run_steps(kernel, opts, ref, grads, t0, "numpy")
    assert_close(flat_list(ours), flat_list(ref), dtype, f"{kernel} {backend}")
    for a in flat_list(ours):
        assert a.dtype == dtype and a.shape == shape
        assert a.flags.c_contiguous if order == "C" else a.flags.f_contiguous


@pytest.mark.parametrize("kernel", KERNELS)
@budget(1)
@given(data=st.data())
def test_auto_with_1_and_2_threads_equals_cython_bit_for_bit(kernel, data):
    if _backends.DEFAULT_BACKEND != "auto":
        pytest.skip("FASTOPTIM_BACKEND changes what 'auto' means")
    shape, order, dtype, opts, rng = make_case(data, kernel, allow_big=True)
    # Also take the parallel path on small arrays (threshold 0), where chunk tails show.
    force_parallel = data.draw(st.booleans(), label="force_parallel")
    t0 = data.draw(first_step(kernel), label="t0")
    n_steps = data.draw(st.integers(1, 3), label="steps")
    start = make_arrays(kernel, opts, shape, dtype, order, rng)
    grads = [make_grad(shape, dtype, order, rng) for _ in range(n_steps)]
    serial = copy_arrays(start)
    run_steps(kernel, opts, serial, grads, t0, "cython")
    saved_threads = fo.get_num_threads()
    saved_traffic = _backends.PARALLEL_MIN_TRAFFIC
    try:
        if force_parallel:
            _backends.PARALLEL_MIN_TRAFFIC = 0
            kernels.set_parallel_min_traffic(0)
        for threads in (1, 2):
            fo.set_num_threads(threads)
            auto = copy_arrays(start)
            run_steps(kernel, opts, auto, grads, t0, "auto")
            assert_bits_equal(flat_list(auto), flat_list(serial), f"auto, {threads} threads")
    finally:
        fo.set_num_threads(saved_threads)
        _backends.PARALLEL_MIN_TRAFFIC = saved_traffic
        kernels.set_parallel_min_traffic(saved_traffic)


# ---- 2. refusals change nothing ------------------------------------------------------------
ZOO = ["same_object", "overlapping_slices", "view_of_another", "reshaped_view",
       "other_dtype_view", "strided", "reversed", "mixed_order", "bad_dtype", "byte_swapped",
       "read_only", "shape_mismatch", "not_an_array"]
BAD_DTYPES = [np.float16, np.int32, np.int64, np.complex64, np.complex128, np.bool_,
              np.longdouble]


def random_like(shape, dtype, order, rng):
    return np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)


def corrupt(kind, data, arrays, names, shape, order, dtype, rng):
    """Replace one or two of ``arrays`` (in place in the list) so that the call is invalid."""
    n = len(arrays)
    i = data.draw(st.integers(0, n - 1), label="i")
    j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i), label="j")
    size = int(np.prod(shape))
    if kind == "same_object":
        arrays[j] = arrays[i]
    elif kind == "overlapping_slices":
        k = data.draw(st.integers(0, max(0, size - 1)), label="offset")
        buf = np.asarray(rng.standard_normal(size + k), dtype=dtype)
        arrays[i] = buf[:size].reshape(shape, order=order)
        arrays[j] = buf[k:k + size].reshape(shape, order=order)
    elif kind == "view_of_another":
        arrays[j] = arrays[i].view() if data.draw(FLAG) else arrays[i][...]
    elif kind == "reshaped_view":
        arrays[j] = arrays[i].reshape(-1, order="A").reshape(shape, order="A")
        assert np.shares_memory(arrays[i], arrays[j])
    elif kind == "other_dtype_view":
        arrays[j] = arrays[i].view(np.dtype(f"i{dtype.itemsize}"))
    elif kind == "strided":
        axes = [a for a, s in enumerate(shape) if s >= 2]
        assume(axes)
        a = data.draw(st.sampled_from(axes), label="axis")
        wide = list(shape)
        wide[a] *= 2
        index = [slice(None)] * len(shape)
        index[a] = slice(None, None, 2)
        arrays[i] = random_like(tuple(wide), dtype, order, rng)[tuple(index)]
    elif kind == "reversed":
        assume(size >= 2 and max(shape) >= 2)
        a = int(np.argmax(shape))
        index = [slice(None)] * len(shape)
        index[a] = slice(None, None, -1)
        arrays[i] = random_like(shape, dtype, order, rng)[tuple(index)]
    elif kind == "mixed_order":
        assume(sum(s > 1 for s in shape) >= 2)
        arrays[i] = random_like(shape, dtype, "F" if order == "C" else "C", rng)
    elif kind == "bad_dtype":
        bad = data.draw(st.sampled_from(BAD_DTYPES + [np.float64 if dtype == np.float32
                                                      else np.float32]), label="bad dtype")
        arrays[i] = arrays[i].astype(bad)
    elif kind == "byte_swapped":
        arrays[i] = arrays[i].astype(dtype.newbyteorder())
    elif kind == "read_only":
        i = data.draw(st.sampled_from([k for k in range(n) if k != 1]), label="read-only")
        arrays[i].flags.writeable = False
    elif kind == "shape_mismatch":
        other = data.draw(st.sampled_from([shape + (1,), (size + 1,), shape + (2,),
                                           (1,) + shape]), label="other shape")
        arrays[i] = random_like(other, dtype, order, rng)
    elif kind == "not_an_array":
        arrays[i] = arrays[i].tolist()
    note(f"{kind}: arrays {i}, {j} of {names}")


def snapshot(objects):
    """Every ndarray among ``objects`` and their bases, with a copy of its bytes."""
    seen, out = set(), []
    for a in objects:
        while isinstance(a, np.ndarray):
            if id(a) not in seen:
                seen.add(id(a))
                out.append((a, a.tobytes(order="A"), a.flags.writeable))
            a = a.base
    return out


def assert_unchanged(snap):
    for a, before, writeable in snap:
        assert a.tobytes(order="A") == before, "an array changed in a refused call"
        assert a.flags.writeable == writeable


def call_with(kernel, opts, names, arrays, backend, t=1):
    n_pos = 2 + len(state_names(kernel, opts)[0])
    return step(kernel, opts, arrays[0], arrays[1], arrays[2:n_pos],
                dict(zip(names[n_pos:], arrays[n_pos:])), t, backend)


@pytest.mark.parametrize("kind", ZOO)
@budget(1.5)
@given(data=st.data())
def test_refused_calls_change_nothing(kind, data):
    kernel = data.draw(st.sampled_from(KERNELS), label="kernel")
    backend = data.draw(st.sampled_from(EVERY_BACKEND), label="backend")
    shape, order, dtype, opts, rng = make_case(data, kernel, nonempty=True)
    param, pos, kw = make_arrays(kernel, opts, shape, dtype, order, rng)
    arrays = [param, make_grad(shape, dtype, order, rng), *pos, *kw.values()]
    names = arg_names(kernel, opts)
    corrupt(kind, data, arrays, names, shape, order, dtype, rng)
    snap = snapshot(arrays)
    with pytest.raises((TypeError, ValueError)) as info:
        call_with(kernel, opts, names, arrays, backend)
    message = str(info.value)
    assert FUNC_NAME[kernel] in message, message
    assert any(name in message for name in names), message
    assert_unchanged(snap)


# ---- 3. the subclass zoo -------------------------------------------------------------------
def mask_for(shape, rng):
    return rng.random(shape) < 0.5


@pytest.mark.parametrize("backend", EVERY_BACKEND)
@budget(0.3, phases=NO_SHRINK)
@given(data=st.data())
def test_masked_array_is_refused_by_the_functions(backend, data):
    kernel = data.draw(st.sampled_from(KERNELS), label="kernel")
    shape, order, dtype, opts, rng = make_case(data, kernel, nonempty=True)
    param, pos, kw = make_arrays(kernel, opts, shape, dtype, order, rng)
    arrays = [param, make_grad(shape, dtype, order, rng), *pos, *kw.values()]
    names = arg_names(kernel, opts)
    i = data.draw(st.integers(0, len(arrays) - 1), label="masked")
    arrays[i] = np.ma.MaskedArray(arrays[i], mask=mask_for(shape, rng))
    snap = snapshot(arrays + [arrays[i].mask])
    with pytest.raises(TypeError) as info:
        call_with(kernel, opts, names, arrays, backend)
    assert FUNC_NAME[kernel] in str(info.value) and names[i] in str(info.value)
    assert_unchanged(snap)


@pytest.mark.parametrize("backend", EVERY_BACKEND)
@pytest.mark.parametrize("where", ["params", "grads"])
@pytest.mark.parametrize("case", CLASS_TYPICAL_CASES, ids=class_case_id)
def test_masked_array_is_refused_by_the_optimizer_classes(case, where, backend, rng):
    name, _, opts = case
    cls = optimizer_class(name)
    params = [rng.standard_normal((3, 5)), rng.standard_normal(7)]
    grads = [rng.standard_normal((3, 5)), rng.standard_normal(7)]
    if where == "params":
        params[0] = np.ma.MaskedArray(params[0], mask=mask_for((3, 5), rng))
        snap = snapshot(params + [params[0].mask])
        with pytest.raises(TypeError, match=name):
            cls(params, backend=backend, **opts)
    else:
        opt = cls(params, backend=backend, **opts)
        grads[1] = np.ma.MaskedArray(grads[1], mask=mask_for(7, rng))
        snap = snapshot(params + grads + [grads[1].mask]
                        + [s for bufs in opt.state_dict()["state"].values() for s in bufs])
        with pytest.raises(TypeError, match=f"{name}.step"):
            opt.step(grads)
        assert opt.t == 0
    assert_unchanged(snap)


def _multi_roles(kernel):
    """The list names of kernels.<kernel>_multi for its case with every state."""
    return [a + "s" for a in arg_names(kernel, FULL[kernel])]


@pytest.mark.parametrize("which", [(k, i) for k in KERNELS for i in range(len(_multi_roles(k)))],
                         ids=lambda x: f"{x[0]}-{_multi_roles(x[0])[x[1]]}")
def test_masked_array_is_refused_by_the_multi_tensor_kernels(which, rng):
    from fastoptim import _coefficients as coef
    kernel, index = which
    spec = SPECS[kernel]
    roles = _multi_roles(kernel)
    lists = {role: [np.abs(rng.standard_normal(9)), np.abs(rng.standard_normal((2, 3)))]
             for role in roles}
    lists[roles[index]][1] = np.ma.MaskedArray(lists[roles[index]][1],
                                               mask=mask_for((2, 3), rng))
    snap = snapshot([a for arrays in lists.values() for a in arrays]
                    + [lists[roles[index]][1].mask])
    full = spec.complete(FULL[kernel])
    c = getattr(coef, kernel)(*[dict(full, step=1)[a] for a in spec.coefficient_args])
    by_role = [lists.get(a + "s") for a in spec.arrays]      # None: a state the case leaves out
    with pytest.raises(TypeError, match=f"{kernel}_multi.*{roles[index]}"):
        getattr(kernels, kernel + "_multi")(*by_role, c)
    assert_unchanged(snap)


class Sub(np.ndarray):
    """A trivial ndarray subclass."""


def to_subclass(kind, a, tmpdir):
    if kind == "sub":
        return a.view(Sub)
    if kind == "matrix":
        return np.asmatrix(a)
    m = np.memmap(os.path.join(tmpdir, f"{id(a)}.bin"), dtype=a.dtype, mode="w+",
                  shape=a.shape, order="F" if a.flags.f_contiguous and a.ndim > 1 else "C")
    m[...] = a
    return m


def subclass_step(kernel, opts, shape, order, dtype, rng, kind, backend, n_steps, t0):
    """Steps on subclass instances and the reference on plain copies; returns both, as
    plain arrays, and the subclass instances."""
    plain = make_arrays(kernel, opts, shape, dtype, order, rng)
    ref = copy_arrays(plain)
    grads = [make_grad(shape, dtype, order, rng) for _ in range(n_steps)]
    with tempfile.TemporaryDirectory() as tmpdir:
        param, pos, kw = plain
        ours = (to_subclass(kind, param, tmpdir), [to_subclass(kind, s, tmpdir) for s in pos],
                {k: to_subclass(kind, s, tmpdir) for k, s in kw.items()})
        sub_grads = [to_subclass(kind, g, tmpdir) for g in grads]
        objects = flat_list(ours)
        run_steps(kernel, opts, ours, sub_grads, t0, backend)
        with np.errstate(all="ignore"):
            run_steps(kernel, opts, ref, grads, t0, "numpy")
        result = [np.array(a.view(np.ndarray)) for a in flat_list(ours)]
        types = [type(a) for a in objects]
        del ours, objects, sub_grads
    return result, [np.asarray(a) for a in flat_list(ref)], types


# (np.matrix on the reference used to square as a matrix power: LinAlgError or wrong values.)
SUBCLASS_CASES = [(kind, backend) for kind in ("sub", "memmap", "matrix")
                  for backend in EVERY_BACKEND if (kind, backend) != ("matrix", "numba")]


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize("kind,backend", SUBCLASS_CASES)
@budget(0.5)
@given(data=st.data())
def test_ndarray_subclasses_are_updated_like_plain_arrays(kind, backend, data):
    kernel = data.draw(st.sampled_from(KERNELS), label="kernel")
    shape, order, dtype = data.draw(layouts(), label="layout")
    if kind == "matrix":
        shape = data.draw(st.tuples(st.integers(1, 9), st.integers(1, 17)), label="2-d shape")
    opts = data.draw(hyperparameters(kernel, dtype), label="opts")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    n_steps = data.draw(st.integers(1, 3), label="steps")
    ours, ref, types = subclass_step(kernel, opts, shape, order, dtype, rng, kind, backend,
                                     n_steps, 1)
    expected_type = {"sub": Sub, "matrix": np.matrix, "memmap": np.memmap}[kind]
    assert all(t is expected_type for t in types)
    if backend == "numpy":
        assert_bits_equal(ours, ref, f"{kind} on numpy")
    else:
        assert_close(ours, ref, dtype, f"{kind} on {backend}")


# np.matrix with backend="numba" corrupted the heap on main: run it in a child process so a
# crash fails this test instead of killing pytest.
MATRIX_NUMBA_SCRIPT = textwrap.dedent("""
    import numpy as np
    import test_properties as tp
    for kernel in tp.KERNELS:
        for dtype in (np.float32, np.float64):
            for order in "CF":
                for shape in [(1, 1), (3, 17), (8, 9)]:
                    rng = np.random.default_rng(7)
                    opts = tp.FULL[kernel]       # with every state buffer
                    ours, ref, types = tp.subclass_step(kernel, opts, shape, order,
                                                        np.dtype(dtype), rng, "matrix",
                                                        "numba", 3, 1)
                    assert all(t is np.matrix for t in types)
                    tp.assert_close(ours, ref, dtype, f"{kernel} {shape} {order}")
    print("ok")
""")


def test_matrix_on_numba_is_updated_like_plain_arrays_in_a_child_process():
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    paths = [here, os.path.dirname(os.path.dirname(os.path.abspath(fo.__file__)))]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", MATRIX_NUMBA_SCRIPT], env=env, cwd=here,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, (
        f"exit code {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}")


# ---- 4. numerics ---------------------------------------------------------------------------
def numerics_params(failing):
    """Every backend (``failing`` named those that failed before the fix)."""
    return list(EVERY_BACKEND)


@pytest.mark.parametrize("backend", numerics_params({"cython", "numba", "auto"}))
@budget(0.5, phases=NO_SHRINK)
@given(data=st.data())
def test_amsgrad_propagates_nan_like_np_maximum(backend, data):
    shape, order, dtype, opts, rng = make_case(data, "adam", nonempty=True)
    opts["amsgrad"] = True
    param, pos, kw = make_arrays("adam", opts, shape, dtype, order, rng)
    grad = make_grad(shape, dtype, order, rng)
    nan_at = rng.random(shape) < 0.3
    nan_at.flat[data.draw(st.integers(0, grad.size - 1), label="nan index")] = True
    grad[nan_at] = np.nan
    ref = copy_arrays((param, pos, kw))
    with np.errstate(all="ignore"):
        run_steps("adam", opts, (param, pos, kw), [grad], 1, backend)
        run_steps("adam", opts, ref, [grad], 1, "numpy")
    np.testing.assert_array_equal(np.isnan(kw["max_exp_avg_sq"]), np.isnan(pos[1]))
    np.testing.assert_array_equal(np.isnan(kw["max_exp_avg_sq"]),
                                  np.isnan(ref[2]["max_exp_avg_sq"]))
    assert np.isnan(kw["max_exp_avg_sq"][nan_at]).all()


# the kernels with state buffers and a weight_decay (which must not be computed when 0)
WEIGHT_DECAY_KERNELS = [name for name, spec in SPECS.items()
                        if spec.states and any(h.name == "weight_decay"
                                               for h in spec.hyperparameters)]


@pytest.mark.parametrize("backend", numerics_params({"cython", "numba", "auto"}))
@budget(0.5, phases=NO_SHRINK)
@given(data=st.data())
def test_inf_parameter_with_zero_weight_decay_leaves_the_states_finite(backend, data):
    kernel = data.draw(st.sampled_from(WEIGHT_DECAY_KERNELS), label="kernel")
    shape, order, dtype, opts, rng = make_case(data, kernel, nonempty=True)
    opts["weight_decay"] = 0.0
    param, pos, kw = make_arrays(kernel, opts, shape, dtype, order, rng)
    inf_at = rng.random(shape) < 0.3
    inf_at.flat[data.draw(st.integers(0, param.size - 1), label="inf index")] = True
    param[inf_at] = np.where(rng.random(shape) < 0.5, np.inf, -np.inf)[inf_at]
    grads = [make_grad(shape, dtype, order, rng) for _ in range(data.draw(st.integers(1, 3)))]
    ref = copy_arrays((param, pos, kw))
    with np.errstate(all="ignore"):
        run_steps(kernel, opts, (param, pos, kw), grads, 1, backend)
        run_steps(kernel, opts, ref, grads, 1, "numpy")
    for name, state, expected in zip(arg_names(kernel, opts)[2:], [*pos, *kw.values()],
                                     [*ref[1], *ref[2].values()]):
        # no NaN from 0 * inf; a state that averages the parameters holds their
        # infinities, and inf - inf once it averages, as the reference and torch
        assert not (np.isnan(state) & ~np.isnan(expected)).any(), f"{name}: {state}"
        np.testing.assert_array_equal(np.isinf(state), np.isinf(expected), err_msg=name)


@pytest.mark.parametrize("backend", EVERY_BACKEND)
@budget(0.3, phases=NO_SHRINK)
@given(data=st.data())
def test_eps_that_underflows_the_dtype_is_refused(backend, data):
    kernel = data.draw(st.sampled_from([k for k in KERNELS if SPECS[k].eps]), label="kernel")
    shape, order, dtype, opts, rng = make_case(data, kernel)
    tiny = float(np.finfo(dtype).tiny)
    fixed = [tiny / 2] + ([1e-50] if np.dtype(dtype) == np.float32 else [1e-310])
    opts[SPECS[kernel].eps] = data.draw(st.one_of(st.sampled_from(fixed),
                                      st.floats(5e-324, tiny, exclude_max=True)), label="eps")
    arrays = make_arrays(kernel, opts, shape, dtype, order, rng)
    grad = make_grad(shape, dtype, order, rng)
    snap = snapshot(flat_list(arrays) + [grad])
    with pytest.raises(ValueError, match=SPECS[kernel].eps) as info:
        run_steps(kernel, opts, arrays, [grad], 1, backend)
    assert FUNC_NAME[kernel] in str(info.value)
    assert_unchanged(snap)


# ---- 5. optimizer classes ------------------------------------------------------------------
ENTRIES = [(spec.name, e.name) for spec in SPECS.values() for e in spec.optimizers]


@st.composite
def optimizer_setups(draw):
    """(class name, kernel, constructor kwargs, reference hyperparameters, initial values
    of the state buffers that do not start at zero), from a registry class entry."""
    kernel, name = draw(st.sampled_from(ENTRIES), label="class")
    spec = SPECS[kernel]
    e = next(e for e in spec.optimizers if e.name == name)
    hyper = draw(hyperparameters(kernel, np.float32), label="hyper")   # eps normal in both
    hyper.update(e.fixed)
    kwargs = e.constructor_kwargs(spec, hyper)
    for keyword in e.initial.values():
        kwargs[keyword] = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)), label=keyword)
    assume(e.selects(spec, kwargs))          # SGD with momentum 0 runs sgd, not momentum
    return name, kernel, kwargs, e.hyperparameters(spec, kwargs), e.initial_values(kwargs)


@pytest.mark.parametrize("backend", EVERY_BACKEND)
@budget(1.5)
@given(data=st.data())
def test_optimizer_classes_match_the_functional_reference(backend, data):
    name, kernel, kwargs, ref_kwargs, initial = data.draw(optimizer_setups(),
                                                          label="optimizer")
    n = data.draw(st.integers(1, 5), label="arrays")
    layouts_ = [data.draw(layouts(), label=f"layout {i}") for i in range(n)]
    as_dict = data.draw(FLAG, label="dict")
    n_steps = data.draw(st.integers(1, 3), label="steps")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    params = [np.asarray(rng.standard_normal(s), dtype=d, order=o) for s, o, d in layouts_]
    ref_params = [p.copy(order="K") for p in params]
    slots = class_state_names(name, kernel, kwargs)
    ref_states = [{slot: np.full_like(p, initial.get(slot, 0.0), order="K") for slot in slots}
                  for p in params]
    keys = [f"w{i}" for i in range(n)]
    opt = optimizer_class(name)(dict(zip(keys, params)) if as_dict else params, **kwargs,
                                backend=backend)
    pos_names = state_names(kernel, ref_kwargs)[0]
    function = getattr(reference, SPECS[kernel].function)
    # carried scalar state (NAdam's mu_product), per array: the reference returns it
    carried = [dict(SPECS[kernel].carried) for _ in params]
    for t in range(1, n_steps + 1):
        grads = [make_grad(s, d, o, rng) for s, o, d in layouts_]
        opt.step(dict(zip(keys, grads)) if as_dict else grads)
        with np.errstate(all="ignore"):
            for p, g, states, scalars in zip(ref_params, grads, ref_states, carried):
                extra = dict(step=t) if SPECS[kernel].takes_step else {}
                out = function(p, g, *(states[s] for s in pos_names), **ref_kwargs, **extra,
                               **scalars,
                               **{s: a for s, a in states.items() if s not in pos_names})
                if scalars:
                    scalars.update(zip(scalars, out if len(scalars) > 1 else (out,)))
    saved = opt.state_dict()
    assert int(saved["step"]) == n_steps
    assert list(saved["state"]) == list(slots)
    for i, (p, rp) in enumerate(zip(params, ref_params)):
        check = assert_bits_equal if backend == "numpy" else \
            lambda a, b, w: assert_close(a, b, p.dtype, w)
        check([p], [rp], f"param {i}")
        check([saved["state"][s][i] for s in slots],
              [ref_states[i][s] for s in slots], f"states of param {i}")
