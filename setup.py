"""Build the compiled kernels. Metadata lives in pyproject.toml; this file holds only
the extension modules and their compiler flags."""
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

# -O3 turns on the loop vectorizer; -fno-math-errno lets gcc emit vector sqrt (sqrtps/pd)
# instead of a scalar libm call that sets errno. No -march=native: the default build is
# portable; the kernels' loops (_simd_body.h) are compiled for SSE2, AVX2+FMA and AVX-512 by
# _simd_kernels.h and the best one for the CPU is picked at import (runtime dispatch).
# -ffp-contract=off: no fused multiply-add contraction in the AVX2/AVX-512 variants, so every
# SIMD variant, the Numba backend and the NumPy reference round alike; "auto" may switch
# between Cython and Numba with the thread count, and results must not depend on it.
COMPILE_ARGS = ["-O3", "-fno-math-errno", "-ffp-contract=off"]
HEADERS = ["_simd_kernels.h", "_simd_body.h", "_multi_tensor.pxi"]
# The multi-tensor kernels run one OpenMP parallel region (Cython prange) per call. Without
# OpenMP (Apple's clang has none) the same code compiles to a serial loop.
OPENMP_FLAGS = {"linux": ["-fopenmp"], "win32": ["/openmp"]}.get(sys.platform, [])
OPENMP = {"kernels": OPENMP_FLAGS}
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}


def extension(name):
    return Extension(
        f"fastoptim.{name}",
        [f"src/fastoptim/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=COMPILE_ARGS + OPENMP.get(name, []),
        extra_link_args=OPENMP.get(name, []),
        depends=[f"src/fastoptim/{h}" for h in HEADERS],
    )


setup(
    ext_modules=cythonize(
        [extension("kernels"), extension("_checks"), extension("_reductions"),
         extension("_coefficients")],
        compiler_directives=DIRECTIVES,
    ),
)
