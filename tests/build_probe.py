"""Whether C extensions can be built here: one real attempt per test session.

Tests that compile something (a Cython consumer of fastoptim's ``.pxd`` files, a C probe of
a header) skip with the reason when nothing can be built, as in a venv where fastoptim was
installed from its wheel on a machine without a compiler (``.ci/wheel_check``). The attempt
builds and imports a tiny extension the way setuptools builds every extension, so a
compiler that exists but cannot work (no Python headers, a broken linker) counts as none.
A plain module (not conftest.py) so that tests import it by a name no other folder uses.
"""
import functools
import os
import subprocess
import sys
import tempfile

import pytest

_SOURCE = r"""
#include <Python.h>
static struct PyModuleDef probe = {PyModuleDef_HEAD_INIT, "build_probe_ext", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_build_probe_ext(void) { return PyModule_Create(&probe); }
"""
_SETUP = ("from setuptools import Extension, setup\n"
          "setup(name='build_probe_ext', ext_modules=[Extension('build_probe_ext', "
          "['build_probe_ext.c'])])\n")


@functools.lru_cache(maxsize=None)
def cannot_build():
    """``None`` when a C extension builds and imports here, else why not (one line)."""
    try:
        import setuptools  # noqa: F401
    except ImportError as exc:
        return f"building C extensions needs setuptools ({exc})"
    with tempfile.TemporaryDirectory() as folder:
        for name, text in (("build_probe_ext.c", _SOURCE), ("setup.py", _SETUP)):
            with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                f.write(text)
        try:
            done = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                                  cwd=folder, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"no working C compiler ({exc})"
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            return f"no working C compiler (a minimal extension does not build: {last[0]})"
        check = subprocess.run([sys.executable, "-c", "import build_probe_ext"],
                               cwd=folder, capture_output=True, text=True, timeout=120)
        if check.returncode != 0:
            return "a minimal extension builds but does not import"
    return None


def require_build():
    """Skip the calling test when no C extension can be built here."""
    reason = cannot_build()
    if reason is not None:
        pytest.skip(reason)
