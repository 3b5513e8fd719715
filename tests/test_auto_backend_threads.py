"""backend="auto" may pick a different backend with the thread count (serial Cython with one
thread, parallel kernels with more above the crossover); the results must not change.
Every kernel of the registry, with every state buffer (kernel_cases.FULL_CASES)."""
import numpy as np
import pytest

import fastoptim as fo
from fastoptim import _backends
from kernel_cases import FULL_CASES, case_id, make_arrays, step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", FULL_CASES, ids=case_id)
def test_auto_gives_bitwise_identical_results_for_1_and_2_threads(case, dtype):
    kernel, opts = case
    n = _backends.crossover(np.dtype(dtype).itemsize) + 17   # above the crossover, odd tail
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
    saved = fo.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fo.set_num_threads(threads)
            param, pos, kw = make_arrays(kernel, opts, (n,), dtype, "C",
                                         np.random.default_rng(6))
            start = param.copy()
            for t, g in enumerate(grads, start=1):
                step(kernel, opts, param, g, pos, kw, t, "auto")
            results.append([param, *pos, *kw.values()])
    finally:
        fo.set_num_threads(saved)
    assert not np.array_equal(results[0][0], start)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
