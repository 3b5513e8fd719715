"""Build the compiled kernels. Metadata lives in pyproject.toml; this file holds only
the extension modules and their compiler flags."""
import importlib.util
import os
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from Cython.Tempita import Template
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(HERE, "src", "fastoptim")


def load_registry():
    """fastoptim/_registry.py, loaded by path: it imports nothing from the package, which is
    not built yet."""
    spec = importlib.util.spec_from_file_location("_fastoptim_registry",
                                                  os.path.join(PACKAGE, "_registry.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module      # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def render(template, registry):
    """Render `template` (a Tempita template in the package, "<name>.tp") into <name> from
    the kernel registry; rewritten only when its text changes, so that an unchanged build is
    not recompiled."""
    with open(os.path.join(PACKAGE, template)) as fh:
        text = Template(fh.read(), name=template).substitute(
            kernels=list(registry.KERNELS.values()))
    target = os.path.join(PACKAGE, template[:-len(".tp")])
    if os.path.exists(target):
        with open(target) as fh:
            if fh.read() == text:
                return
    with open(target, "w") as fh:
        fh.write(text)


REGISTRY = load_registry()
# _glue.pxi: the per-kernel Cython glue of fastoptim.kernels; _simd_kernels.h: the C side,
# every kernel compiled from csrc/<name>.h per SIMD level and dtype, and the dispatch table.
render("_glue.pxi.tp", REGISTRY)
render("_simd_kernels.h.tp", REGISTRY)

# -O3 turns on the loop vectorizer; -fno-math-errno lets gcc emit vector sqrt (sqrtps/pd)
# instead of a scalar libm call that sets errno. No -march=native: the default build is
# portable; the kernels' loops (csrc/<kernel>.h) are compiled for SSE2, AVX2+FMA and AVX-512
# by _simd_kernels.h and the best one for the CPU is picked at import (runtime dispatch).
# -ffp-contract=off: no fused multiply-add contraction in the AVX2/AVX-512 variants, so every
# SIMD variant, the Numba backend and the NumPy reference round alike; "auto" may switch
# between Cython and Numba with the thread count, and results must not depend on it.
COMPILE_ARGS = ["-O3", "-fno-math-errno", "-ffp-contract=off"]
HEADERS = ["_simd_kernels.h", "_multi_tensor.pxi", "_extents.pxi", "_compressed_state.pxi", "_lowmem.pxd",
           "_glue.pxi", "_registry.py",
           "coefficients.pxd", "csrc/common.h", "csrc/prefetch.h"] + [
               f"csrc/{name}.h" for name in REGISTRY.KERNELS]
# The multi-tensor kernels run one OpenMP parallel region (Cython prange) per call. Without
# OpenMP (Apple's clang has none) the same code compiles to a serial loop.
OPENMP_FLAGS = {"linux": ["-fopenmp"], "win32": ["/openmp"]}.get(sys.platform, [])
OPENMP = {"kernels": OPENMP_FLAGS, "_reductions": OPENMP_FLAGS, "_lamb": OPENMP_FLAGS,
          "_adafactor": OPENMP_FLAGS, "_lowmem": OPENMP_FLAGS}
OPENMP_PROBE = """#include <omp.h>
int main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }
"""


def compiler_has_openmp(compiler, flags):
    """Whether `compiler` compiles and links a program that uses OpenMP, given `flags`
    (a clang without its OpenMP runtime, libomp, accepts -fopenmp but has no omp.h)."""
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "openmp_probe.c")
        with open(source, "w") as fh:
            fh.write(OPENMP_PROBE)
        try:
            objects = compiler.compile([source], output_dir=folder, extra_postargs=flags)
            compiler.link_executable(objects, "openmp_probe", output_dir=folder,
                                     extra_postargs=flags)
        except Exception:       # distutils' CompileError, LinkError (their module varies)
            return False
    return True


class BuildExt(build_ext):
    """build_ext that drops the OpenMP flags when the compiler cannot build with them: the
    kernels then run on one thread (as with Apple's clang), with the same results."""

    def build_extensions(self):
        if OPENMP_FLAGS and not compiler_has_openmp(self.compiler, OPENMP_FLAGS):
            print(f"fastoptim: the C compiler cannot build with {' '.join(OPENMP_FLAGS)}; "
                  "building without OpenMP (one thread per call)", file=sys.stderr)
            for ext in self.extensions:
                ext.extra_compile_args = [a for a in ext.extra_compile_args
                                          if a not in OPENMP_FLAGS]
                ext.extra_link_args = [a for a in ext.extra_link_args if a not in OPENMP_FLAGS]
        super().build_extensions()


DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}


def extension(name, headers=HEADERS):
    return Extension(
        f"fastoptim.{name}",
        [f"src/fastoptim/{name.replace('.', '/')}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=COMPILE_ARGS + OPENMP.get(name, []),
        extra_link_args=OPENMP.get(name, []),
        depends=[f"src/fastoptim/{h}" for h in headers],
    )


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        [extension("kernels"), extension("_checks"), extension("_reductions"),
         # LAMB's trust ratio is a reduction: its own module, not a registry kernel
         extension("_lamb", ["coefficients.pxd", "csrc/lamb.h", "csrc/prefetch.h", "_lamb.pxd",
                             "_simd_switch.pxi"]),
         # Muon's element-wise passes (its Newton-Schulz iteration is matrix products)
         extension("_muon", ["csrc/muon.h", "_muon.pxd"]),
         # Adafactor's factored moments and update clipping are reductions: its own module
         extension("_adafactor", ["_adafactor.pxd", "csrc/adafactor.h", "csrc/prefetch.h",
                                   "_simd_switch.pxi", "coefficients.pxd"]),
         # Adam with bfloat16 / 8-bit moments (fastoptim.lowmem): its own module
         extension("_lowmem", ["_lowmem.pxd", "lowmem_kernels.pxd", "csrc/adam_lowmem.h", "csrc/quant8.h",
                                "csrc/adam_mixed.h", "csrc/half_convert.h", "csrc/fp_exact.h",
                                "csrc/prefetch.h", "_simd_switch.pxi"]),
         # fastoptim.torch: NumPy views of torch gradients without tensor.numpy()'s cost
         extension("torch._views", []),
         ],
        compiler_directives=DIRECTIVES,
    ),
)
