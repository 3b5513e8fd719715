"""A user's own @njit training loop calling fastoptim's Numba Adam kernel
(examples/embedding/numba_user_step.py) matches the NumPy reference step for step."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fastoptim import reference

from testing_settings import DTYPES, TOLERANCE

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "embedding" / "numba_user_step.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("numba_user_step", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_user_njit_loop_calling_adam_kernel_matches_reference(example, dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((64, 7)).astype(dtype)
    y = rng.standard_normal(64).astype(dtype)
    w0 = rng.standard_normal(7).astype(dtype)
    steps, lr = 30, 0.01

    w = w0.copy()
    example.fit(X, y, w, steps, lr)

    expected, g = w0.copy(), np.empty_like(w0)
    m, v = np.zeros_like(w0), np.zeros_like(w0)
    for t in range(1, steps + 1):
        example.mse_grad(X, y, expected, g)  # the same gradient, then the reference step
        reference.adam_step(expected, g, m, v, step=t, lr=lr)
    assert not np.array_equal(w, w0)
    np.testing.assert_allclose(w, expected, **TOLERANCE[np.dtype(dtype)])
