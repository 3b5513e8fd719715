"""The kernel registry (fastoptim._registry) against everything that must agree with it:
the public cimport declarations, the coefficient structs, the compiled and Numba entry
points, the functional API's signatures, the NumPy reference and the optimizer classes.

Also what makes the generic tests and the benchmark trustworthy: every kernel is added
completely (each backend, the reference, the public function), and its examples take every
branch of its formula."""
import inspect
import re
from pathlib import Path

import pytest

import fastoptim as fo
from fastoptim import _coefficients, kernels, optim, reference
from fastoptim._registry import KERNELS, REQUIRED, optimizer_classes

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
    # the kernel's scalars, then the carried scalar state after the step (NAdam's mu_product)
    assert fields == [name for name, _ in spec.coefficients] + list(spec.carried)


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


# ---- a kernel is added completely or the suite says what is missing ------------------------
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_kernel_is_fully_added(spec):
    """Every piece a kernel needs besides its registry entry (the generic tests and the
    benchmark derive the rest): the NumPy reference, the Numba twin, the Cython entry points
    (single-array, multi-tensor, coefficients), the public functional function, and a
    traffic loop for the benchmark's access pattern of each example."""
    from fastoptim import functional, numba_kernels
    from fastoptim.bench import KERNELS as BENCH_KERNELS
    from fastoptim.bench import bandwidth
    wanted = {
        f"fastoptim.reference.{spec.function} (the NumPy oracle)": (reference, spec.function),
        f"fastoptim.numba_kernels.{spec.name}_kernel (the Numba twin)":
            (numba_kernels, spec.name + "_kernel"),
        f"fastoptim.numba_kernels.{spec.name} (its entry point)": (numba_kernels, spec.name),
        f"fastoptim.kernels.{spec.name} (the Cython entry point)": (kernels, spec.name),
        f"fastoptim.kernels.{spec.name}_multi (multi-tensor)": (kernels, spec.name + "_multi"),
        f"fastoptim.kernels.coefficients_{spec.name}":
            (kernels, "coefficients_" + spec.name),
        f"fastoptim.functional.{spec.function}": (functional, spec.function),
        f"fastoptim.{spec.function}": (fo, spec.function),
    }
    missing = [what for what, (module, name) in wanted.items()
               if not callable(getattr(module, name, None))]
    if spec.name not in KERNEL_DECLS:
        missing.append(f"{spec.name}_kernel in kernels.pxd")
    if spec.name not in BENCH_KERNELS:
        missing.append("a fastoptim bench case")
    for example in spec.examples:
        n_read, n_rw = bandwidth.access_pattern(spec.name, example)
        if n_read != 1 or not 1 <= n_rw <= bandwidth.MAX_READ_WRITE:
            missing.append(f"a traffic loop of {n_read} read-only and {n_rw} read-write "
                           f"arrays (fastoptim.bench.bandwidth) for {dict(example)}")
    assert not missing, f"{spec.name} lacks: {', '.join(missing)}"


HYPER_NAMES = {spec.name: [h.name for h in spec.hyperparameters] for spec in SPECS}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_examples_are_valid_calls(spec):
    """Each example names hyperparameters of the kernel (``step`` is the caller's), has
    every required one and passes the rules."""
    assert spec.examples, f"{spec.name} has no examples"
    required = {h.name for h in spec.hyperparameters if h.default is REQUIRED} - {"step"}
    for example in spec.examples:
        assert set(example) <= set(HYPER_NAMES[spec.name]) - {"step"}, example
        assert required <= set(example), f"{example} lacks {required - set(example)}"
        for rule in spec.rules:
            rule(spec.function, spec.complete(example))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_examples_take_every_branch(spec):
    """Together the examples enable and disable every optional state (and enable all of
    them at once, for the error-path tests), set every flag and move every other
    hyperparameter away from its default."""
    active = [{s.name for s in spec.active_states(e)} for e in spec.examples]
    for state in spec.optional_states:
        assert any(state.name in a for a in active), f"no example enables {state.name}"
        assert any(state.name not in a for a in active), f"every example enables {state.name}"
    every = {s.name for s in spec.states}
    assert every in active, f"no example of {spec.name} enables every state at once"
    for h in spec.hyperparameters:
        if h.name == "step" or h.default is REQUIRED:
            continue
        assert any(h.name in e and e[h.name] != h.default for e in spec.examples), \
            f"no example of {spec.name} sets {h.name} to other than {h.default!r}"


# ---- the optimizer classes -----------------------------------------------------------------
CLASSES = optimizer_classes()
ENTRIES = [(spec, e) for spec in SPECS for e in spec.optimizers]
ENTRY_IDS = [f"{e.name}-{spec.name}" for spec, e in ENTRIES]
# constructor keywords of every class that are not hyperparameters of a formula (options of
# the class, not of its kernel, each with tests of its own: state_dtype in test_state_dtype,
# the half-parameter options in test_half_params_class)
COMMON = {"self", "params", "backend", "skip_nonfinite", "state_dtype", "master_weights",
          "stochastic_rounding", "seed"}


def test_every_optimizer_class_is_in_the_registry():
    exported = {name for name in optim.__all__
                if isinstance(getattr(optim, name), type)
                and issubclass(getattr(optim, name), optim.Optimizer)
                and getattr(optim, name) is not optim.Optimizer}
    # rules that are not registry kernels (LAMB, Muon, Adafactor: _elementwise = False) have their own
    # modules and tests (tests/test_<name>.py)
    rules = {name for name in exported if not getattr(optim, name)._elementwise}
    for name in rules:
        assert (Path(__file__).parent / f"test_{name.lower()}.py").is_file(), name
    assert exported - rules == set(CLASSES)
    for name in CLASSES:
        assert getattr(fo, name) is getattr(optim, name)


@pytest.mark.parametrize("spec,entry", ENTRIES, ids=ENTRY_IDS)
def test_class_constructor_defaults_are_described(spec, entry):
    """Each constructor default is the functional API's (under the class's name for it) or
    listed in the entry's ``defaults``; a keyword without default is a required
    hyperparameter."""
    defaults = {h.name: h.default for h in spec.hyperparameters
                if h.name != "step" and h.name not in entry.fixed}
    renamed = entry.constructor_kwargs(spec, {k: v for k, v in defaults.items()
                                              if v is not REQUIRED})
    expected = {**renamed, **entry.defaults}
    required = {k for k, v in defaults.items() if v is REQUIRED}
    for name, p in inspect.signature(getattr(optim, entry.name).__init__).parameters.items():
        if name in COMMON:
            continue
        if p.default is p.empty:
            assert name in required, f"{entry.name}({name}) has no default"
        else:
            assert name in expected, f"{entry.name}({name}=...) is not described"
            assert p.default == expected[name], name


@pytest.mark.parametrize("name", list(CLASSES))
def test_class_examples_set_every_constructor_keyword(name):
    examples = [ex for _, e in CLASSES[name] for ex in e.examples]
    signature = inspect.signature(getattr(optim, name).__init__).parameters
    for keyword, p in signature.items():
        if keyword in COMMON or p.default is p.empty:
            continue
        assert any(keyword in ex and ex[keyword] != p.default for ex in examples), \
            f"no example of {name} sets {keyword}"


@pytest.mark.parametrize("spec,entry", ENTRIES, ids=ENTRY_IDS)
def test_class_examples_select_their_kernel_and_enable_every_optional_state(spec, entry):
    assert entry.examples
    active = set()
    for example in entry.examples:
        assert entry.selects(spec, example), example
        active |= {s.name for s in spec.active_states(entry.hyperparameters(spec, example))}
    assert {s.name for s in spec.states} <= active
    for state in entry.initial:
        assert state in {s.name for s in spec.states}
