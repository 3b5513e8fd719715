"""The kernel registry (fastoptim._registry) against everything that must agree with it:
the public cimport declarations, the coefficient structs, the compiled and Numba entry
points, the functional API's signatures and the NumPy reference."""
import inspect
import re
from pathlib import Path

import pytest

import fastoptim as fo
from fastoptim import _coefficients, kernels, reference
from fastoptim._registry import KERNELS, REQUIRED

PACKAGE = Path(fo.__file__).parent
SPECS = list(KERNELS.values())


def _pxd_declarations(filename, pattern):
    text = (PACKAGE / filename).read_text(encoding="utf-8")
    return {name: re.findall(r"^\s*((?:const\s+)?[\w*]+)\s+(\w+)[,)]?", body, flags=re.M)
            for name, body in re.findall(pattern, text, flags=re.S)}


KERNEL_DECLS = _pxd_declarations("kernels.pxd",
                                 r"cdef void (\w+)_kernel\((.*?)\) noexcept nogil")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_public_pxd_declares_the_registry_kernel(spec):
    """kernels.pxd (the stable cimport API) has the registry's arrays, in order (only the
    gradient const), then n, then the coefficients by name and type."""
    decl = KERNEL_DECLS[spec.name]
    n = [name for _, name in decl].index("n")
    arrays, scalars = decl[:n], decl[n + 1:]
    assert [name for _, name in arrays] == list(spec.arrays)
    assert [ctype for ctype, _ in arrays] == [
        "const floating*" if i == 1 else "floating*" for i in range(len(spec.arrays))]
    assert [(name, "bint" if ctype == "bint" else "floating") for ctype, name in scalars] \
        == list(spec.coefficients)


def test_every_pxd_kernel_is_in_the_registry():
    assert set(KERNEL_DECLS) == set(KERNELS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_coefficient_struct_fields_are_named_like_the_kernel_scalars(spec):
    text = (PACKAGE / "coefficients.pxd").read_text(encoding="utf-8")
    body = re.search(rf"ctypedef struct {spec.struct}:\n(.*?)\n\n", text, flags=re.S).group(1)
    fields = re.findall(r"^\s+(?:double|bint)\s+(\w+)", body, flags=re.M)
    assert fields == [name for name, _ in spec.coefficients]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_entry_points_exist_for_every_backend(spec):
    from fastoptim import _cython_parallel, numba_kernels
    for module in (kernels, _cython_parallel, numba_kernels):
        assert callable(getattr(module, spec.name))
    assert callable(getattr(kernels, spec.name + "_multi"))
    assert callable(getattr(numba_kernels, spec.name + "_kernel"))
    c = getattr(_coefficients, spec.name)(*[
        {"step_count": 1, "flag": False}.get(h.kind, 0.5)
        for h in spec.hyperparameters if h.name in spec.coefficient_args
        for _ in [0]][:len(spec.coefficient_args)])
    assert c.kernel == spec.name
    assert [getattr(c, name) for name, _ in spec.coefficients] == list(c.values())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_functional_signature_matches_the_registry(spec):
    """Names, kinds (positional arrays, keyword-only hyperparameters) and defaults."""
    params = inspect.signature(getattr(fo, spec.function)).parameters
    required = [s.name for s in spec.states if s.enabled_by is None]
    positional = [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional[:2 + len(required)] == list(spec.inputs) + required
    for hyper in spec.hyperparameters:
        p = params[hyper.name]
        assert p.kind is p.KEYWORD_ONLY
        expected = p.empty if hyper.default is REQUIRED else hyper.default
        assert p.default == expected, hyper.name
    for state in spec.states:
        if state.enabled_by is not None:
            assert params[state.name].default is None


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_reference_exists_and_takes_the_same_hyperparameters(spec):
    """The reference is hand-written (never generated from the registry) but must accept
    the same names, so that one call pattern drives the oracle and the kernels."""
    params = inspect.signature(getattr(reference, spec.function)).parameters
    for hyper in spec.hyperparameters:
        assert hyper.name in params, hyper.name


def test_old_state_keyword_still_works_with_a_deprecation_warning():
    import numpy as np
    p, g, v = np.ones(3), np.full(3, 0.5), np.zeros(3)
    with pytest.warns(DeprecationWarning, match="velocity"):
        fo.momentum_step(p, g, velocity=v, lr=0.1)
    q, w = np.ones(3), np.zeros(3)
    fo.momentum_step(q, g, w, lr=0.1)
    np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(v, w)
    with pytest.raises(TypeError, match="momentum_buffer only"):
        fo.momentum_step(p, g, w, velocity=v, lr=0.1)
    with pytest.raises(TypeError, match="missing the state array momentum_buffer"):
        fo.momentum_step(p, g, lr=0.1)
