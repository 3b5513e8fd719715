"""The Cython embedding surface, used the way a downstream library uses it.

Modelled on scipy's ``linalg/tests/test_extending.py``: in a temporary folder we build
``examples/embedding/consumer.pyx`` (a downstream extension that ``cimport``s fastoptim's
Adam kernel and coefficient helper) with ``examples/embedding/setup.py``, against the
importable fastoptim (``fastoptim.get_include()``), then run it next to the reference. The
same build compiles ``coefficients_probe.pyx``, written from the kernel registry
(:func:`probe_source`), which exposes every kernel's inline helper of
``fastoptim/coefficients.pxd`` so that they can be compared with ``fastoptim._coefficients``.
"""
import fnmatch
import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from build_probe import cannot_build

import fastoptim
from fastoptim import _coefficients as coef
from fastoptim import reference
from fastoptim._registry import KERNELS

from testing_settings import DTYPES, TOLERANCE

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "embedding"
PACKAGE = Path(fastoptim.__file__).resolve().parent


def probe_source():
    """A test-only Cython module exposing each kernel's ``<name>_coefficients`` inline
    helper of coefficients.pxd to Python (each struct comes back as a dict in field order),
    with the registry's ``coefficient_args`` as its arguments."""
    lines = ["# cython: language_level=3",
             "from fastoptim cimport coefficients as c", ""]
    for spec in KERNELS.values():
        args = ", ".join(spec.coefficient_args)
        lines += ["", f"def {spec.name}({args}):",
                  f"    return c.{spec.name}_coefficients({args})", ""]
    return "\n".join(lines)


def _why_cannot_build():
    """A reason to skip the consumer build, or None when it can run."""
    try:
        import Cython  # noqa: F401
        import setuptools  # noqa: F401
    except ImportError as exc:
        return f"building a Cython consumer needs Cython and setuptools ({exc})"
    if cannot_build() is not None:
        return cannot_build()
    if not (EXAMPLE / "consumer.pyx").is_file():
        return f"{EXAMPLE} not found (tests run outside a source checkout)"
    return None


needs_build = pytest.mark.skipif(_why_cannot_build() is not None,
                                 reason=str(_why_cannot_build()))


def _load(folder, name):
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}{suffix}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # binds fastoptim.kernels' C functions
    return module


def _build_in(folder, what, compiler="default"):
    """``python setup.py build_ext --inplace`` in ``folder``, fastoptim importable, with
    Python's C compiler or the one named (setuptools reads ``CC``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [fastoptim.get_include()] + [p for p in [env.get("PYTHONPATH")] if p])
    if compiler != "default":
        env["CC"] = compiler
        env.pop("LDSHARED", None)       # setuptools then links with CC too
        # optimized (with CC set, setuptools leaves Python's -O3 out), math errno off as
        # clang has it on macOS: pow(x, 0.5) may become sqrt(x)
        env["CFLAGS"] = " ".join([env.get("CFLAGS", ""), "-O3 -fno-math-errno"]).strip()
    result = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                            cwd=folder, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building {what} failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="module", params=["default", "clang"])
def compiler(request):
    """The C compiler of the consumer builds: Python's own, and clang where it is installed.
    A consumer's compiler and flags are its own; the headers it includes must give
    fastoptim's bits with either (clang contracts to FMA by default, and turns pow(x, 0.5)
    into a square root when math errno is off, its default on macOS)."""
    if request.param != "default" and shutil.which(request.param) is None:
        pytest.skip(f"{request.param} is not installed")
    return request.param


@pytest.fixture(scope="module")
def built(tmp_path_factory, compiler):
    """The compiled consumer and probe modules, built once per compiler for this file."""
    folder = tmp_path_factory.mktemp(f"consumer_{compiler}")
    for source in (EXAMPLE / "consumer.pyx", EXAMPLE / "setup.py"):
        shutil.copy(source, folder)
    (folder / "coefficients_probe.pyx").write_text(probe_source(), encoding="utf-8")
    _build_in(folder, "the consumer", compiler)
    return {name: _load(folder, name) for name in ("consumer", "coefficients_probe")}


def test_get_include_holds_the_pxd_files():
    folder = Path(fastoptim.get_include())
    assert folder.is_absolute()
    for name in ("kernels.pxd", "coefficients.pxd"):
        assert (folder / "fastoptim" / name).is_file()


def test_wheel_ships_every_pxd():
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["fastoptim"]
    pxds = sorted(p.name for p in PACKAGE.glob("*.pxd"))
    assert {"kernels.pxd", "coefficients.pxd"} <= set(pxds)
    for name in pxds:
        assert any(fnmatch.fnmatch(name, pat) for pat in patterns), name


def test_readme_shows_the_code_the_test_builds():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Embedding fastoptim" in readme
    for name in ("consumer.pyx", "setup.py", "numba_user_step.py"):
        assert (EXAMPLE / name).read_text(encoding="utf-8") in readme, f"README is out of date with {name}"


@needs_build
@pytest.mark.parametrize("dtype", DTYPES)
def test_consumer_adam_matches_reference(built, dtype, rng):
    consumer = built["consumer"]
    n, hyper = 1001, dict(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-8, weight_decay=1e-2)
    param = rng.standard_normal(n).astype(dtype)
    ours = [param, np.zeros_like(param), np.zeros_like(param)]
    ref = [a.copy() for a in ours]
    functional = [a.copy() for a in ours]
    address = param.ctypes.data
    for step in range(1, 21):
        grad = rng.standard_normal(n).astype(dtype)
        grad.flags.writeable = False
        consumer.adam_step(ours[0], grad, ours[1], ours[2], step, **hyper)
        reference.adam_step(ref[0], grad, ref[1], ref[2], step=step, **hyper)
        fastoptim.adam_step(functional[0], grad, functional[1], functional[2], step=step,
                            backend="cython", **hyper)
    assert param.ctypes.data == address
    for got, want, same in zip(ours, ref, functional):
        np.testing.assert_allclose(got, want, **TOLERANCE[np.dtype(dtype)])
        # Same kernel, same coefficients: identical to fastoptim's own Cython backend.
        np.testing.assert_array_equal(got, same)


@needs_build
def test_consumer_empty_arrays(built):
    empty = [np.zeros(0) for _ in range(4)]
    built["consumer"].adam_step(*empty, 1)


def _kernel_scalar_names():
    """Kernel name -> its scalar arguments (after ``n``) in order, read from kernels.pxd."""
    text = (PACKAGE / "kernels.pxd").read_text(encoding="utf-8")
    names = {}
    for kernel, body in re.findall(r"cdef void (\w+)_kernel\((.*?)\) noexcept nogil", text,
                                   flags=re.S):
        # (an argument added later is optional: "name=*,")
        args = re.findall(r"^\s*(?:const\s+)?[\w*]+\s+(\w+)(?:=\*)?,", body, flags=re.M)
        names[kernel] = args[args.index("n") + 1:]
    return names


# Values of each validation kind for the coefficient helpers' arguments; every combination
# of a kernel's arguments is compared.
VALUES = {
    "step_count": [1, 2, 7, 1000],
    "nonnegative": [0.0, 1e-3, 0.5],
    "positive": [1e-8, 0.1],
    "unit_interval": [0.0, 0.9, 0.999],
    "closed_unit_interval": [0.0, 0.3, 1.0],
    "flag": [False, True],
}


def argument_grid(spec):
    return list(itertools.product(*(VALUES[spec.hyperparameter(a).kind]
                                    for a in spec.coefficient_args)))


@needs_build
@pytest.mark.parametrize("kernel", list(KERNELS))
def test_inline_coefficients_match_python(built, kernel):
    probe = built["coefficients_probe"]
    # the kernel's scalars, then its carried scalar state (NAdam's mu_product)
    fields = _kernel_scalar_names()[kernel] + list(KERNELS[kernel].carried)
    grid = argument_grid(KERNELS[kernel])
    for args in grid:
        got = getattr(probe, kernel)(*args)
        assert list(got) == fields, "struct fields must be the kernel's scalars, in order"
        # Bit for bit: same formulas, same double arithmetic.
        c = getattr(coef, kernel)(*args)
        assert tuple(got.values()) == c.values() + c.carried(), args
    assert len(grid) >= 2


@needs_build
def test_inline_square_roots_are_libms_pow(built):
    """RAdam's ``rect`` and ``sqrt(1 - beta2**t)`` are torch's ``x ** 0.5`` (libm's pow) bit
    for bit, over many steps: a square root instruction differs from pow in about one value
    in a thousand, and clang turns pow(x, 0.5) into one when math errno is off."""
    probe = built["coefficients_probe"]
    for beta2 in (0.99, 0.999, 0.9999):
        for t in range(1, 2001):
            got = probe.radam(t, 1e-3, 0.9, beta2, 1e-8, 0.0, False, False)
            bias_correction2 = 1 - beta2**t
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 * t * beta2**t / bias_correction2
            assert got["bias_correction2_sqrt"] == bias_correction2 ** 0.5, (beta2, t)
            if rho_t > 5:
                rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                        / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
                assert got["rect"] == rect, (beta2, t)


# ---- fastoptim/lowmem_kernels.pxd: the compressed-state kernels from a consumer's Cython ---
LOWMEM_PROBE = r'''# cython: language_level=3
cimport numpy as cnp
from libc.stdint cimport int32_t, uint8_t
from fastoptim.lowmem_kernels cimport (FO_Q8_PLANES, fo_lm_adam_coefficients, fo_lm_adam_q8,
                                       fo_lm_q8_decode, fo_lm_q8_decode_planes,
                                       fo_lm_q8_planes, fo_lm_q8_tables)

cnp.import_array()


cdef void* data(a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


def decode(codes, absmax, code, out, bint with_planes):
    cdef uint8_t planes[FO_Q8_PLANES]
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>codes)
    if with_planes:
        fo_lm_q8_planes(<const float*>data(code), planes)
        fo_lm_q8_decode_planes(<const uint8_t*>data(codes), <const float*>data(absmax),
                               <const float*>data(code), planes, <float*>data(out), n)
    else:
        fo_lm_q8_decode(<const uint8_t*>data(codes), <const float*>data(absmax),
                        <const float*>data(code), <float*>data(out), n)


def adam_q8(param, grad, m, m_absmax, v, v_absmax, tuple coefficients, tuple tables):
    cdef fo_lm_adam_coefficients c
    cdef fo_lm_q8_tables t
    (c.grad_sign, c.weight_decay, c.param_scale, c.beta1, c.one_minus_beta1, c.beta2,
     c.one_minus_beta2, c.step_size, c.inv_bias_correction2_sqrt, c.eps,
     c.m_bound) = coefficients
    t.m_code, t.v_code = <const float*>data(tables[0]), <const float*>data(tables[2])
    t.m_zero, t.v_zero = tables[4], tables[5]
    t.m_bucket = <const int32_t*>data(tables[6])
    t.v_bucket = <const int32_t*>data(tables[7])
    t.m_shift, t.v_shift = tables[8], tables[9]
    t.m_decades = <const float*>data(tables[10])
    t.v_decades = <const float*>data(tables[11])
    fo_lm_adam_q8(<float*>data(param), <const float*>data(grad), <uint8_t*>data(m),
                  <float*>data(m_absmax), <uint8_t*>data(v), <float*>data(v_absmax),
                  cnp.PyArray_SIZE(<cnp.ndarray>param), &c, &t, 1)
'''

LOWMEM_SETUP = r'''import fastoptim
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(name="lowmem-probe", ext_modules=cythonize(
    [Extension("lowmem_probe", ["lowmem_probe.pyx"], include_dirs=[np.get_include()])],
    include_path=[fastoptim.get_include()], compiler_directives={"language_level": 3}))
'''


@pytest.fixture(scope="module")
def lowmem_probe(tmp_path_factory, compiler):
    """A consumer module cimporting fastoptim/lowmem_kernels.pxd (the header compiles into
    it), built the way lowmem_kernels.pxd's docstring says."""
    folder = tmp_path_factory.mktemp(f"lowmem_consumer_{compiler}")
    (folder / "lowmem_probe.pyx").write_text(LOWMEM_PROBE, encoding="utf-8")
    (folder / "setup.py").write_text(LOWMEM_SETUP, encoding="utf-8")
    _build_in(folder, "the lowmem consumer", compiler)
    return _load(folder, "lowmem_probe")


@needs_build
def test_lowmem_consumer_decodes_like_the_reference(lowmem_probe, rng):
    from fastoptim import lowmem as lm
    for n in (1, 64, 65, 256 * 3 + 77):
        for signed in (True, False):
            codes = rng.integers(0, 256, n).astype(np.uint8)
            absmax = rng.random(-(-n // 256)).astype(np.float32)
            want = lm.dequantize_blockwise(codes, absmax, signed)
            for with_planes in (False, True):
                out = np.empty(n, np.float32)
                lowmem_probe.decode(codes, absmax, lm.dynamic_map(signed), out, with_planes)
                np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))


@needs_build
def test_lowmem_consumer_adam_int8_matches_fastoptim(lowmem_probe, rng):
    from fastoptim import lowmem as lm
    n, hyper = 256 * 20 + 33, dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8,
                                   weight_decay=1e-2, decoupled=True, maximize=False)
    param = rng.standard_normal(n).astype(np.float32)
    ours, theirs = param.copy(), param.copy()
    s_ours, s_theirs = lm.adam_state(ours, "int8"), lm.adam_state(theirs, "int8")
    for step in range(1, 8):
        grad = rng.standard_normal(n).astype(np.float32)
        c = lm._coefficients(step, hyper["lr"], hyper["beta1"], hyper["beta2"], hyper["eps"],
                             hyper["weight_decay"], hyper["decoupled"], hyper["maximize"])
        lowmem_probe.adam_q8(ours, grad, s_ours["exp_avg"], s_ours["exp_avg_absmax"],
                             s_ours["exp_avg_sq"], s_ours["exp_avg_sq_absmax"], c,
                             lm.code_tables())
        lm.adam_lowmem_step(theirs, grad, s_theirs, step=step, lr=hyper["lr"],
                            beta1=hyper["beta1"], beta2=hyper["beta2"], eps=hyper["eps"],
                            weight_decay=hyper["weight_decay"], decoupled_weight_decay=True,
                            backend="cython")
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    for key in s_ours:
        np.testing.assert_array_equal(s_ours[key].view(np.uint8), s_theirs[key].view(np.uint8))
