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


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The compiled consumer and probe modules, built once for this file."""
    folder = tmp_path_factory.mktemp("consumer")
    for source in (EXAMPLE / "consumer.pyx", EXAMPLE / "setup.py"):
        shutil.copy(source, folder)
    (folder / "coefficients_probe.pyx").write_text(probe_source(), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [fastoptim.get_include()] + [p for p in [env.get("PYTHONPATH")] if p])
    result = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                            cwd=folder, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building the consumer failed:\n{result.stdout}\n{result.stderr}")
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
