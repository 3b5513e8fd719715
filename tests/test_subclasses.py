"""ndarray subclasses: one policy in the shared validation, the same on every backend.

* ``numpy.ma.MaskedArray`` anywhere is refused with ``TypeError`` (the mask would be
  ignored), nothing changed;
* any other subclass (``np.matrix``, ``np.memmap``, a user's own) is updated in place
  through a plain ``ndarray`` view, exactly like a plain array.

Before this policy, ``np.matrix`` with ``backend="numba"`` wrote out of bounds (a raveled
matrix is ``(1, n)``), the ``"numpy"`` backend squared a matrix as a matrix power (and raised
after ``exp_avg`` was written), and masked arrays got three behaviours from three backends.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from kernel_cases import CASES, case_id, make_arrays, make_grad, state_names, step
from testing_settings import ALL_BACKENDS, TOLERANCE

import fastoptim as fo
from fastoptim import kernels
from fastoptim._registry import KERNELS

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")


class Tagged(np.ndarray):
    """A trivial user subclass."""


def _as_matrix(a):
    return np.asmatrix(a)


def _as_tagged(a):
    return a.view(Tagged)


def _arrays(case, rng, shape=(3, 7), dtype=np.float64):
    kernel, opts = case
    param, states, kw = make_arrays(kernel, opts, shape, dtype, "C", rng)
    grad = make_grad(shape, dtype, "C", rng)
    return param, grad, states, kw


def _run(case, param, grad, states, kw, backend, steps=3):
    kernel, opts = case
    for t in range(1, steps + 1):
        step(kernel, opts, param, grad, states, kw, t, backend)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("wrap", [_as_matrix, _as_tagged], ids=["matrix", "subclass"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_subclass_is_updated_in_place_like_a_plain_array(case, wrap, backend, rng):
    param, grad, states, kw = _arrays(case, rng)
    expected = [param.copy(), grad.copy(), [s.copy() for s in states],
                {k: v.copy() for k, v in kw.items()}]
    _run(case, *expected, backend="numpy")
    wrapped = [wrap(param), wrap(grad), [wrap(s) for s in states],
               {k: wrap(v) for k, v in kw.items()}]
    _run(case, *wrapped, backend=backend)
    assert type(wrapped[0]) is not np.ndarray      # still the user's object
    got = [param] + states + list(kw.values())    # the same memory, seen plainly
    want = [expected[0]] + expected[2] + list(expected[3].values())
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **TOLERANCE[g.dtype])


@pytest.mark.parametrize("backend", ["numba", "cython", "numpy"])
def test_matrix_with_numba_does_not_corrupt_memory(backend):
    """Run in a subprocess: before the fix this crashed with a heap corruption."""
    code = textwrap.dedent(f"""
        import numpy as np, fastoptim as fo
        for n in (5, 64, 1001):
            p = np.asmatrix(np.ones((1, n)))
            g = np.asmatrix(np.full((1, n), 0.5))
            m, v = np.asmatrix(np.zeros((1, n))), np.asmatrix(np.zeros((1, n)))
            for t in range(1, 4):
                fo.adam_step(p, g, m, v, step=t, lr=0.1, backend={backend!r})
            q = np.ones(n); mm = np.zeros(n); vv = np.zeros(n)
            for t in range(1, 4):
                fo.adam_step(q, np.full(n, 0.5), mm, vv, step=t, lr=0.1, backend="numpy")
            np.testing.assert_allclose(np.asarray(p).ravel(), q, rtol=1e-12)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_memmap_is_updated_in_the_file(tmp_path, rng):
    path = tmp_path / "w.dat"
    w = np.memmap(path, dtype=np.float32, mode="w+", shape=(100,))
    w[:] = 1.0
    g = np.full(100, 0.25, np.float32)
    fo.sgd_step(w, g, lr=0.5)
    w.flush()
    np.testing.assert_array_equal(np.fromfile(path, np.float32), np.full(100, 0.875))


# (case, which array is masked): the first input, the second, a state buffer if any
MASKED_POSITIONS = [(case, where) for case in CASES for where in ("param", "grad", "state")
                    if where != "state" or KERNELS[case[0]].active_states(case[1])]


@pytest.mark.parametrize("backend", ALL_BACKENDS + ["auto"])
@pytest.mark.parametrize("case,where", MASKED_POSITIONS,
                         ids=lambda x: x if isinstance(x, str) else case_id(x))
def test_masked_array_is_refused_and_nothing_changes(case, where, backend, rng):
    kernel, opts = case
    param, grad, states, kw = _arrays(case, rng)
    mask = np.zeros(param.shape, bool)
    mask[0, 0] = True
    if where == "param":
        param = np.ma.MaskedArray(param, mask=mask)
        name = KERNELS[kernel].inputs[0]
    elif where == "grad":
        grad = np.ma.MaskedArray(grad, mask=mask)
        name = KERNELS[kernel].inputs[1]
    elif states:
        states[0] = np.ma.MaskedArray(states[0], mask=mask)
        name = state_names(kernel, opts)[0][0]
    else:
        key = next(iter(kw))
        kw[key] = np.ma.MaskedArray(kw[key], mask=mask)
        name = key
    arrays = [param, grad] + states + list(kw.values())
    before = [np.array(np.ma.getdata(a), copy=True) for a in arrays]
    with pytest.raises(TypeError, match="MaskedArray") as info:
        step(kernel, opts, param, grad, states, kw, 1, backend)
    assert name in str(info.value)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(np.ma.getdata(a), b)


def test_masked_arrays_are_refused_by_the_multi_tensor_kernels():
    p = [np.ones(10, np.float32)]
    g = [np.ma.MaskedArray(np.ones(10, np.float32), mask=np.zeros(10, bool))]
    with pytest.raises(TypeError, match=r"grads\[0\].*MaskedArray"):
        kernels.sgd_multi(p, g, kernels.coefficients_sgd(0.1, 0.0, False))
    np.testing.assert_array_equal(p[0], 1.0)


def test_numpy_backend_is_never_half_updated_under_seterr_raise():
    """An overflow in a temporary of the reference, with np.seterr(all="raise"), used to
    raise after exp_avg was written; the reference now ignores floating-point errors like
    the compiled kernels, so the call completes (inf where the maths overflows)."""
    p = np.ones(4)
    g = np.array([1e200, 1.0, 2.0, 3.0])
    m, v = np.zeros(4), np.zeros(4)
    with np.errstate(all="raise"):
        fo.adam_step(p, g, m, v, step=1, lr=0.1, backend="numpy")
    q, mm, vv = np.ones(4), np.zeros(4), np.zeros(4)
    fo.adam_step(q, g, mm, vv, step=1, lr=0.1, backend="cython")
    np.testing.assert_array_equal(m, mm)
    np.testing.assert_array_equal(v, vv)
    np.testing.assert_allclose(p, q, rtol=1e-12)
