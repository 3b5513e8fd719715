"""Shared test settings: the backends under test and one tolerance table per dtype.

A plain module (not conftest.py) so that tests import it by a name no other folder uses."""
import numpy as np

# Every compiled backend is compared with the NumPy reference ("numpy").
COMPILED_BACKENDS = ["cython", "numba"]
ALL_BACKENDS = COMPILED_BACKENDS + ["numpy"]

# One tolerance table: (rtol, atol) per dtype, for parity with the reference over many steps.
TOLERANCE = {
    np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-13),
}

DTYPES = [np.float32, np.float64]
