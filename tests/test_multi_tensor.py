"""The multi-tensor entry points (kernels.<kernel>_multi) against the single-array kernels:
many arrays of mixed sizes (0, 1, odd, larger than a chunk) and dtypes, several steps,
1 and 2 threads; the results must be identical bit for bit. Then what the multi-tensor
entry points refuse before touching anything, and that they allocate nothing. Every kernel
of the registry (its examples, and kernel_cases.FULL_CASES for the error paths)."""
import numpy as np
import pytest
from kernel_cases import CASES, FULL_CASES, case_id

from fastoptim import _coefficients as coef
from fastoptim import kernels
from fastoptim._registry import KERNELS

SIZES = [0, 1, 7, 64, 1000, 16384, 16385, 40000, 100003, 150001]


def test_sizes_cover_chunking():
    assert kernels.MULTI_CHUNK in SIZES and kernels.MULTI_CHUNK + 1 in SIZES


@pytest.fixture(autouse=True)
def parallel_at_every_size():
    """num_threads=2 runs the OpenMP region whatever the size (1 runs the serial loop)."""
    previous = kernels.set_parallel_min_traffic(0)
    yield
    kernels.set_parallel_min_traffic(previous)


def coefficients(kernel, opts, t):
    """The per-call coefficients, from the registry's defaults and ``opts``."""
    spec = KERNELS[kernel]
    hyper = dict(spec.complete(opts), step=t)
    return getattr(coef, kernel)(*(hyper[name] for name in spec.coefficient_args))


def make_lists(kernel, opts, rng, dtypes):
    """One entry per size: [param, grad, every state (None when ``opts`` does not use it)]."""
    spec = KERNELS[kernel]
    active = {s.name for s in spec.active_states(opts)}
    entries = []
    for i, n in enumerate(SIZES):
        dtype = dtypes[i % len(dtypes)]
        param = rng.standard_normal(n).astype(dtype)
        states = [np.zeros(n, dtype) if s.name in active else None for s in spec.states]
        entries.append([param, None] + states)
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


# Several of the kernels' 64-element tiles, the prefetch 1,024 elements ahead
# (csrc/common.h) and a partial last tile.
TILED_N = 1024 + 3 * 64 + 5


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_tiles_cover_every_element_once(case, dtype, rng):
    """One call over TILED_N elements against one call per element (no tile, no vector
    body): the same bits after several steps, so the tiles take every element once."""
    kernel, opts = case
    spec = KERNELS[kernel]
    active = {s.name for s in spec.active_states(opts)}
    start = rng.standard_normal(TILED_N).astype(dtype)
    whole = [start.copy(), None] + [np.zeros(TILED_N, dtype) if s.name in active else None
                                    for s in spec.states]
    apart = [None if a is None else a.copy() for a in whole]
    for t in range(1, 4):
        c = coefficients(kernel, opts, t)
        grad = rng.standard_normal(TILED_N).astype(dtype)
        grad[grad == 0] = 0.5
        whole[1] = apart[1] = grad
        getattr(kernels, kernel)(*whole, c)
        for i in range(TILED_N):
            getattr(kernels, kernel)(*[None if a is None else a[i:i + 1] for a in apart], c)
    assert not np.array_equal(whole[0], start)
    for j, (a, b) in enumerate(zip(whole, apart)):
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=f"array {j}")


FULL = dict(FULL_CASES)
KERNEL_NAMES = list(KERNELS)


def full_lists(kernel, n=3, size=10, dtype=np.float32):
    """One list per array role of ``kernel``'s case with every state (inputs, states), all
    zeros, and the coefficients of that case."""
    spec = KERNELS[kernel]
    roles = len(spec.inputs) + len(spec.active_states(FULL[kernel]))
    return ([[np.zeros(size, dtype) for _ in range(n)] for _ in range(roles)],
            coefficients(kernel, FULL[kernel], 1))


def call_multi(kernel, lists, c, **kwargs):
    """kernels.<kernel>_multi on the role lists (None for the states the case leaves out)."""
    spec = KERNELS[kernel]
    by_name = dict(zip([s.name for s in spec.active_states(FULL[kernel])], lists[2:]))
    args = lists[:2] + [by_name.get(s.name) for s in spec.states]
    return getattr(kernels, kernel + "_multi")(*args, c, **kwargs)


def role_names(kernel):
    """The names the multi-tensor entry point gives its lists (``exp_avg_sqs``)."""
    spec = KERNELS[kernel]
    return [a + "s" for a in spec.inputs + tuple(s.name for s in
                                                 spec.active_states(FULL[kernel]))]


def _misaligned(n):
    """A float32 array of n elements whose data starts one byte past an aligned address."""
    raw = np.zeros(4 * n + 8, np.uint8)
    start = 1 + (-raw.ctypes.data % 4)
    return raw[start:start + 4 * n].view(np.float32)


_BUFFER = np.zeros(25, np.float32)


def _halves():
    """Two 10-element views of one buffer that overlap by five elements."""
    return _BUFFER[:10], _BUFFER[5:15]


def _set(L, role, i, value):
    L[role][i] = value


def _read_only(a):
    a.setflags(write=False)


# Each refusal: (mutation of the role lists, exception, words of the message). ``w`` is the
# last role the kernel writes (a state, or the first input when there is none), ``N`` the
# role names (``params``, ``grads``, ``exp_avgs``...), ``last`` the last role.
REFUSALS = {
    "list_too_short": (lambda L, w, last: L[last].pop(), ValueError,
                       lambda N, w, last: f"{N[last]} has 2 arrays"),
    "not_an_array": (lambda L, w, last: _set(L, 1, 1, [0.0] * 10), TypeError,
                     lambda N, w, last: f"{N[1]}[1] must be a numpy.ndarray"),
    "other_dtype": (lambda L, w, last: _set(L, w, 0, np.zeros(10, np.float64)), TypeError,
                    lambda N, w, last: f"{N[w]}[0]"),
    "other_size": (lambda L, w, last: _set(L, w, 2, np.zeros(11, np.float32)), ValueError,
                   lambda N, w, last: f"{N[w]}[2]"),
    "integer_dtype": (lambda L, w, last: _set(L, 0, 0, np.zeros(10, np.int32)), TypeError,
                      lambda N, w, last: f"{N[0]}[0]"),
    "strided": (lambda L, w, last: _set(L, 0, 1, np.zeros(20, np.float32)[::2]), ValueError,
                lambda N, w, last: "contiguous"),
    "read_only": (lambda L, w, last: _read_only(L[w][2]), ValueError,
                  lambda N, w, last: f"{N[w]}[2] is read-only"),
    # what would compute garbage or read out of bounds
    "byte_swapped": (lambda L, w, last: _set(L, w, 1, np.zeros(10, ">f4")), TypeError,
                     lambda N, w, last: f"{N[w]}[1] must be in native"),
    "misaligned": (lambda L, w, last: _set(L, 1, 0, _misaligned(10)), ValueError,
                   lambda N, w, last: f"{N[1]}[0] is not aligned"),
    "masked_first": (lambda L, w, last: _set(L, 0, 2, np.ma.zeros(10, np.float32)), TypeError,
                     lambda N, w, last: "MaskedArray"),
    "masked_grad": (lambda L, w, last: _set(L, 1, 2, np.ma.zeros(10, np.float32)), TypeError,
                    lambda N, w, last: f"{N[1]}[2]"),
    "other_shape": (lambda L, w, last: _set(L, w, 0, np.zeros((2, 5), np.float32)),
                    ValueError, lambda N, w, last: "shape"),
    "grad_is_its_param": (lambda L, w, last: _set(L, 1, 0, L[0][0]), ValueError,
                          lambda N, w, last: f"{N[0]}[0] and {N[1]}[0] share memory"),
    "written_is_another_param": (lambda L, w, last: _set(L, w, 1, L[0][2]), ValueError,
                                 lambda N, w, last: "share memory"),
    "written_twice": (lambda L, w, last: _set(L, w, 2, L[w][0]), ValueError,
                      lambda N, w, last: f"{N[w]}[0] and {N[w]}[2]"),
    "overlapping_views": (lambda L, w, last: (_set(L, 0, 1, _halves()[0]),
                                              _set(L, w, 0, _halves()[1])), ValueError,
                          lambda N, w, last: "share memory"),
}


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_empty_list_is_a_no_op(kernel):
    lists, c = full_lists(kernel, n=0)
    call_multi(kernel, lists, c)


@pytest.mark.parametrize("refusal", list(REFUSALS))
@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_what_would_crash_is_refused_before_any_array_changes(kernel, refusal):
    mutate, exc, words = REFUSALS[refusal]
    lists, c = full_lists(kernel)
    last = len(lists) - 1
    w = last if last >= 2 else 0
    for x in lists[0]:
        x[...] = 1.0
    mutate(lists, w, last)
    before = [[np.array(a, copy=True) for a in L] for L in lists]
    text = words(role_names(kernel), w, last)
    with pytest.raises(exc, match=text.replace("[", r"\[").replace("]", r"\]")) as info:
        call_multi(kernel, lists, c)
    assert kernel + "_multi" in str(info.value)
    for L, B in zip(lists, before):
        for a, b in zip(L, B):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_gradients_may_share_memory_with_each_other(kernel):
    """Gradients are only read: one array may serve as the gradient of several entries."""
    lists, c = full_lists(kernel)
    g = np.ones(10, np.float32)
    lists[1] = [g, g, g]
    call_multi(kernel, lists, c)
    expected, _ = full_lists(kernel, n=1)
    expected[1] = [np.ones(10, np.float32)]
    call_multi(kernel, expected, c)
    assert not np.array_equal(expected[0][0], np.zeros(10, np.float32))
    for p in lists[0]:
        np.testing.assert_array_equal(p, expected[0][0])


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


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_a_sequence_of_fresh_arrays_is_held_for_the_whole_call(kernel):
    """The kernel used to keep raw pointers to arrays it did not hold: freed and reused
    memory (a crash, or another array's data used as the gradient)."""
    size = 4096
    for _ in range(20):
        lists, c = full_lists(kernel, 4, size)
        lists[1] = _FreshArrays(4, size)
        call_multi(kernel, lists, c)
        expected, _ = full_lists(kernel, 1, size)
        expected[1] = [np.full(size, 0.5, np.float32)]
        call_multi(kernel, expected, c)
        for p in lists[0]:
            np.testing.assert_array_equal(p, expected[0][0])


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_bad_thread_count(kernel, bad):
    lists, c = full_lists(kernel)
    with pytest.raises(ValueError, match="num_threads"):
        call_multi(kernel, lists, c, num_threads=bad)


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
@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_multi_tensor_step_allocates_no_array(kernel, num_threads, rng):
    """Like test_memory for the single-array kernels: a step over 50 arrays (300k elements,
    parallel path) allocates no array; tracemalloc sees NumPy's buffers."""
    import tracemalloc
    lists, c = full_lists(kernel, 50, 6000)
    for L in lists:
        for a in L:
            a[...] = rng.standard_normal(a.size)
    for a in (a for L in lists[2:] for a in L):
        np.abs(a, out=a)          # second moments are >= 0
    call_multi(kernel, lists, c, num_threads=num_threads)
    tracemalloc.start()
    try:
        call_multi(kernel, lists, c, num_threads=num_threads)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4096
