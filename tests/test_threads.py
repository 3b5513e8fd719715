"""Thread safety of the functional API: the compiled kernels release the GIL and keep no
shared state, so threads may step *different* arrays concurrently."""
import threading

import numpy as np
import pytest

import fastoptim
from testing_settings import COMPILED_BACKENDS, DTYPES

N_THREADS, N_STEPS, SIZE = 2, 15, 1 << 18
HYPER = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-3)


def _problem(seed, dtype):
    """(param, exp_avg, exp_avg_sq) and the gradients of every step."""
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(SIZE).astype(dtype)
    grads = rng.standard_normal((N_STEPS, SIZE)).astype(dtype)
    return (param, np.zeros_like(param), np.zeros_like(param)), grads


def _train(arrays, grads, backend, start=None):
    param, exp_avg, exp_avg_sq = arrays
    if start is not None:
        start.wait()  # every thread enters its step loop at the same moment
    for step, grad in enumerate(grads, 1):
        fastoptim.adam_step(param, grad, exp_avg, exp_avg_sq, step=step, backend=backend,
                            **HYPER)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_threads_step_different_arrays_concurrently(backend, dtype):
    problems = [_problem(seed, dtype) for seed in range(N_THREADS)]
    serial = [tuple(a.copy() for a in arrays) for arrays, _ in problems]
    for arrays, (_, grads) in zip(serial, problems):
        _train(arrays, grads, backend)

    start = threading.Barrier(N_THREADS)
    errors = []

    def run(arrays, grads):
        try:
            _train(arrays, grads, backend, start)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=problem) for problem in problems]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for (arrays, _), want in zip(problems, serial):
        for got, expected in zip(arrays, want):
            np.testing.assert_array_equal(got, expected)
