"""The multi-tensor entry points (kernels.<kernel>_multi) against the single-array kernels:
many arrays of mixed sizes (0, 1, odd, larger than a chunk) and dtypes, several steps,
1 and 2 threads; the results must be identical bit for bit."""
import inspect

import numpy as np
import pytest
from kernel_cases import CASES, case_id, state_names

from fastoptim import _coefficients as coef
from fastoptim import functional as F
from fastoptim import kernels

SIZES = [0, 1, 7, 64, 1000, 16384, 16385, 40000, 100003, 150001]


def test_sizes_cover_chunking():
    assert kernels.MULTI_CHUNK in SIZES and kernels.MULTI_CHUNK + 1 in SIZES


@pytest.fixture(autouse=True)
def parallel_at_every_size():
    """num_threads=2 runs the OpenMP region whatever the size (1 runs the serial loop)."""
    previous = kernels.set_parallel_min_traffic(0)
    yield
    kernels.set_parallel_min_traffic(previous)


FUNC = {"sgd": F.sgd_step, "momentum": F.momentum_step, "rmsprop": F.rmsprop_step,
        "adam": F.adam_step, "adagrad": F.adagrad_step, "ewa": F.ewa_update}
# optional state of a kernel's single-array entry point, in its positional order
OPTIONAL = {"rmsprop": ("momentum_buffer", "grad_avg"), "adam": ("max_exp_avg_sq",)}


def coefficients(kernel, opts, t):
    """The per-call coefficients, from the functional API's defaults and ``opts``."""
    hyper = {name: p.default for name, p in inspect.signature(FUNC[kernel]).parameters.items()
             if p.default is not inspect.Parameter.empty}
    hyper.update(opts, step=t)
    fn = getattr(coef, kernel)
    return fn(*(hyper[name] for name in inspect.signature(fn).parameters))


def make_lists(kernel, opts, rng, dtypes):
    """One entry per size: [param, grad, state..., optional state or None]."""
    pos, kw = state_names(kernel, opts)
    entries = []
    for i, n in enumerate(SIZES):
        dtype = dtypes[i % len(dtypes)]
        param = rng.standard_normal(n).astype(dtype)
        states = [np.zeros(n, dtype) for _ in pos]
        optional = [np.zeros(n, dtype) if name in kw else None
                    for name in OPTIONAL.get(kernel, ())]
        entries.append([param, None] + states + optional)
    return entries


def step_single(kernel, entries, c):
    for e in entries:
        getattr(kernels, kernel)(*e, c)


def step_multi(kernel, entries, c, num_threads):
    lists = [None if e0 is None else list(col) for e0, col in zip(entries[0], zip(*entries))]
    getattr(kernels, f"{kernel}_multi")(*lists, c, num_threads=num_threads)


@pytest.mark.parametrize("dtypes", [[np.float32], [np.float64], [np.float32, np.float64]],
                         ids=["float32", "float64", "mixed"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_multi_equals_single_array_kernels(case, dtypes, rng):
    kernel, opts = case
    single = make_lists(kernel, opts, rng, dtypes)
    copies = {nt: [[None if a is None else a.copy() for a in e] for e in single]
              for nt in (1, 2)}
    for t in range(1, 6):
        c = coefficients(kernel, opts, t)
        for i, n in enumerate(SIZES):
            grad = rng.standard_normal(n).astype(single[i][0].dtype)
            grad[grad == 0] = 0.5
            for entries in [single] + list(copies.values()):
                entries[i][1] = grad
        step_single(kernel, single, c)
        for nt, entries in copies.items():
            step_multi(kernel, entries, c, nt)
    for nt, entries in copies.items():
        for i, (ours, ref) in enumerate(zip(entries, single)):
            for j, (a, b) in enumerate(zip(ours, ref)):
                if a is not None:
                    assert a.dtype == b.dtype
                    np.testing.assert_array_equal(a, b, err_msg=f"{nt} threads, entry {i}, "
                                                                f"array {j}")


def adam_lists(n=3, size=10, dtype=np.float32):
    return [[np.zeros(size, dtype) for _ in range(n)] for _ in range(4)]


C_ADAM = coef.adam(1, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False)


def _misaligned(n):
    """A float32 array of n elements whose data starts one byte past an aligned address."""
    raw = np.zeros(4 * n + 8, np.uint8)
    start = 1 + (-raw.ctypes.data % 4)
    return raw[start:start + 4 * n].view(np.float32)


_BUFFER = np.zeros(25, np.float32)


def _halves():
    """Two 10-element views of one buffer that overlap by five elements."""
    return _BUFFER[:10], _BUFFER[5:15]


def test_empty_list_is_a_no_op():
    kernels.adam_multi([], [], [], [], None, C_ADAM)


@pytest.mark.parametrize("mutate,exc,words", [
    (lambda L: L[2].pop(), ValueError, "exp_avgs has 2 arrays"),
    (lambda L: L[1].__setitem__(1, [0.0] * 10), TypeError, "grads[1] must be a numpy.ndarray"),
    (lambda L: L[3].__setitem__(0, np.zeros(10, np.float64)), TypeError, "exp_avg_sqs[0]"),
    (lambda L: L[2].__setitem__(2, np.zeros(11, np.float32)), ValueError, "exp_avgs[2]"),
    (lambda L: L[0].__setitem__(0, np.zeros(10, np.int32)), TypeError, "params[0]"),
    (lambda L: L[0].__setitem__(1, np.zeros(20, np.float32)[::2]), ValueError, "contiguous"),
    (lambda L: L[3][2].setflags(write=False), ValueError, "exp_avg_sqs[2] is read-only"),
    # what would compute garbage or read out of bounds
    (lambda L: L[2].__setitem__(1, np.zeros(10, ">f4")), TypeError, "exp_avgs[1] must be in native"),
    (lambda L: L[1].__setitem__(0, _misaligned(10)), ValueError, "grads[0] is not aligned"),
    (lambda L: L[0].__setitem__(2, np.ma.zeros(10, np.float32)), TypeError, "MaskedArray"),
    (lambda L: L[1].__setitem__(2, np.ma.zeros(10, np.float32)), TypeError, "grads[2]"),
    (lambda L: L[2].__setitem__(0, np.zeros((2, 5), np.float32)), ValueError, "shape"),
    (lambda L: L[1].__setitem__(0, L[0][0]), ValueError, "params[0] and grads[0] share memory"),
    (lambda L: L[2].__setitem__(1, L[0][2]), ValueError, "share memory"),
    (lambda L: L[3].__setitem__(2, L[3][0]), ValueError, "exp_avg_sqs[0] and exp_avg_sqs[2]"),
    (lambda L: L[0].__setitem__(1, _halves()[0]) or L[2].__setitem__(0, _halves()[1]),
     ValueError, "share memory"),
])
def test_what_would_crash_is_refused_before_any_array_changes(mutate, exc, words):
    lists = adam_lists()
    mutate(lists)
    for x in lists[0]:
        x[...] = 1.0
    before = [[np.array(a, copy=True) for a in L] for L in lists]
    with pytest.raises(exc, match=words.replace("[", r"\[").replace("]", r"\]")):
        kernels.adam_multi(*lists[:4], None, C_ADAM)
    for L, B in zip(lists, before):
        for a, b in zip(L, B):
            np.testing.assert_array_equal(a, b)


def test_gradients_may_share_memory_with_each_other():
    """Gradients are only read: one array may serve as the gradient of several entries."""
    params, _, ms, vs = adam_lists()
    g = np.ones(10, np.float32)
    kernels.adam_multi(params, [g, g, g], ms, vs, None, C_ADAM)
    expected = [np.zeros(10, np.float32) for _ in range(4)]
    kernels.adam_multi([expected[0]], [np.ones(10, np.float32)], [expected[1]], [expected[2]],
                       None, C_ADAM)
    for p in params:
        np.testing.assert_array_equal(p, expected[0])


class _FreshArrays:
    """A sequence whose __getitem__ makes a new array each time (nothing else holds it)."""

    def __init__(self, n, size):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return np.full(self.size, 0.5, np.float32)


def test_a_sequence_of_fresh_arrays_is_held_for_the_whole_call():
    """The kernel used to keep raw pointers to arrays it did not hold: freed and reused
    memory (a crash, or another array's data used as the gradient)."""
    size = 4096
    for _ in range(20):
        params, _, ms, vs = adam_lists(4, size)
        kernels.adam_multi(params, _FreshArrays(4, size), ms, vs, None, C_ADAM)
        expected = np.zeros(size, np.float32)
        kernels.adam(expected, np.full(size, 0.5, np.float32),
                     np.zeros(size, np.float32), np.zeros(size, np.float32), None, C_ADAM)
        for p in params:
            np.testing.assert_array_equal(p, expected)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_thread_count(bad):
    with pytest.raises(ValueError, match="num_threads"):
        kernels.adam_multi(*adam_lists(), None, C_ADAM, num_threads=bad)


@pytest.mark.parametrize("user_value", [None, "active"])
def test_openmp_wait_policy_does_not_leak_into_the_environment(user_value):
    """fastoptim sets OMP_WAIT_POLICY=passive only while libgomp loads, and never overrides
    the user's own value (see fastoptim._openmp)."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_value:
        env["OMP_WAIT_POLICY"] = user_value
    code = "import os, fastoptim; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == str(user_value)


@pytest.mark.parametrize("num_threads", [1, 2])
def test_multi_tensor_step_allocates_no_array(num_threads, rng):
    """Like test_memory for the single-array kernels: a step over 50 arrays (300k elements,
    parallel path) allocates no array; tracemalloc sees NumPy's buffers."""
    import tracemalloc
    lists = [[rng.standard_normal(6000).astype(np.float32) for _ in range(50)]
             for _ in range(4)]
    kernels.adam_multi(*lists, None, C_ADAM, num_threads=num_threads)
    tracemalloc.start()
    try:
        kernels.adam_multi(*lists, None, C_ADAM, num_threads=num_threads)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4096
