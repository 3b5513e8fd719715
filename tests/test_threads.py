"""Thread safety of the functional API: the compiled kernels release the GIL and keep no
shared state, so threads may step *different* arrays concurrently. Every kernel of the
registry, with every state buffer (kernel_cases.FULL_CASES)."""
import threading

import numpy as np
import pytest

from kernel_cases import FULL_CASES, case_id, make_arrays, step
from testing_settings import COMPILED_BACKENDS, DTYPES

N_THREADS, N_STEPS, SIZE = 2, 15, 1 << 18


def _problem(case, seed, dtype):
    """The arrays of one call (param, positional states, keyword states) and the gradients
    of every step."""
    kernel, opts = case
    rng = np.random.default_rng(seed)
    arrays = make_arrays(kernel, opts, (SIZE,), dtype, "C", rng)
    grads = rng.standard_normal((N_STEPS, SIZE)).astype(dtype)
    return arrays, grads


def _flat(arrays):
    param, pos, kw = arrays
    return [param, *pos, *kw.values()]


def _copy(arrays):
    param, pos, kw = arrays
    return param.copy(), [s.copy() for s in pos], {k: s.copy() for k, s in kw.items()}


def _train(case, arrays, grads, backend, start=None):
    kernel, opts = case
    param, pos, kw = arrays
    if start is not None:
        start.wait()  # every thread enters its step loop at the same moment
    for t, grad in enumerate(grads, 1):
        step(kernel, opts, param, grad, pos, kw, t, backend)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("case", FULL_CASES, ids=case_id)
def test_threads_step_different_arrays_concurrently(case, backend, dtype):
    problems = [_problem(case, seed, dtype) for seed in range(N_THREADS)]
    serial = [_copy(arrays) for arrays, _ in problems]
    for arrays, (_, grads) in zip(serial, problems):
        _train(case, arrays, grads, backend)

    start = threading.Barrier(N_THREADS)
    errors = []

    def run(arrays, grads):
        try:
            _train(case, arrays, grads, backend, start)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=problem) for problem in problems]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for (arrays, _), want in zip(problems, serial):
        for got, expected in zip(_flat(arrays), _flat(want)):
            np.testing.assert_array_equal(got, expected)
