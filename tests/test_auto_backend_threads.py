"""backend="auto" may pick a different backend with the thread count (serial Cython with one
thread, parallel kernels with more above the crossover); the results must not change."""
import numpy as np
import pytest

import fastoptim as fo
from fastoptim import _backends


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auto_gives_bitwise_identical_results_for_1_and_2_threads(dtype):
    n = _backends.crossover(np.dtype(dtype).itemsize) + 17   # above the crossover, odd tail
    rng = np.random.default_rng(5)
    start = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
    saved = fo.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fo.set_num_threads(threads)
            p = start.copy()
            m, v = np.zeros_like(p), np.zeros_like(p)
            for t, g in enumerate(grads, start=1):
                fo.adam_step(p, g, m, v, step=t, lr=1e-2, weight_decay=0.01)
            results.append((p, m, v))
    finally:
        fo.set_num_threads(saved)
    assert not np.array_equal(results[0][0], start)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
