"""No allocation: a compiled step on 1e6 elements allocates no array (tracemalloc sees the
buffers NumPy allocates), while the naive reference allocates several temporaries."""
import tracemalloc

import numpy as np
import pytest
from testing_settings import COMPILED_BACKENDS
from kernel_cases import CASES, case_id, make_arrays, make_grad, step

N = 1_000_000
SMALL = 64 * 1024  # bytes: far below one 1e6-element float32 buffer (4 MB)


def peak_bytes_of_step(kernel, opts, backend, dtype, rng):
    param, states, kw = make_arrays(kernel, opts, (N,), dtype, "C", rng)
    grad = make_grad((N,), dtype, "C", rng)
    step(kernel, opts, param, grad, states, kw, 1, backend)  # warm up (JIT, caches)
    tracemalloc.start()
    try:
        step(kernel, opts, param, grad, states, kw, 2, backend)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_compiled_step_allocates_no_array(case, dtype, backend, rng):
    assert peak_bytes_of_step(*case, backend, dtype, rng) < SMALL


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_reference_allocates_temporaries(case, rng):
    """The measurement can fail: the naive reference makes at least one full temporary."""
    assert peak_bytes_of_step(*case, "numpy", np.float32, rng) >= 4 * N
