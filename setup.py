"""Build the compiled kernels. Metadata lives in pyproject.toml; this file holds only
the extension modules and their compiler flags."""
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

# -O3 turns on the loop vectorizer; -fno-math-errno lets gcc emit vector sqrt (sqrtps/pd)
# instead of a scalar libm call that sets errno. No -march=native: the default build is
# portable (see issue on runtime SIMD dispatch for AVX2/AVX-512).
COMPILE_ARGS = ["-O3", "-fno-math-errno"]
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
        extra_compile_args=COMPILE_ARGS,
    )


setup(
    ext_modules=cythonize(
        [extension("kernels"), extension("_checks"), extension("_reductions")],
        compiler_directives=DIRECTIVES,
    ),
)
