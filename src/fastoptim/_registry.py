"""The kernel registry: every fused kernel described once.

One :class:`Kernel` per update rule says what the rest of the package derives from it:

* its **arrays**: the two inputs (``param, grad``; ``average, value`` for the EWA), the
  state buffers it always updates, and the optional ones with the hyperparameter condition
  that enables each (``max_exp_avg_sq`` when ``amsgrad``);
* its **per-call coefficients** by name, in the order of the C kernel's scalar arguments
  (``kernels.pxd``), each with the C type, and the hyperparameters that
  ``coefficients.pxd``'s ``<name>_coefficients`` helper takes to compute them;
* its **hyperparameters**: name, validation kind (see ``_validation.SCALAR_KINDS``) and
  default, plus rules between them (Nesterov needs momentum);
* its **examples**: option sets of the functional API that together take every branch of
  the formula (the generic tests run each of them; the benchmark times the first);
* its **peer** in ``torch.optim`` (the benchmark's competitor, and an oracle of the tests
  when torch is installed) and the fastoptim **optimizer classes** that step with it, with
  how their constructor keywords map to the functional hyperparameters and examples of them.

Validation and dispatch (:mod:`fastoptim._dispatch`), the Cython glue (``_glue.pxi``,
generated from ``_glue.pxi.tp`` at build time), the Numba entry points, the multi-tensor
kernels, the optimizer classes' state, the benchmark (cases, access patterns, peers) and
the generic tests (``tests/kernel_cases.py`` and everything built on it) read this table:
a kernel's entry here is all the tests and the benchmark need (``tests/test_registry.py``
says which backend pieces a new kernel still lacks). The formulas are not here: each is
written once per backend (the C header ``csrc/<name>.h``, the Numba twin in
``numba_kernels/<name>.py``, the hand-written NumPy reference in ``reference.py``, which never reads
this table: it is the independent oracle).

This module imports nothing from the package (``setup.py`` loads it by path to generate
the glue before anything is compiled).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Dict, Mapping, Optional, Tuple

__all__ = ["REQUIRED", "Hyper", "State", "TorchPeer", "OptimizerClass", "Kernel", "KERNELS",
           "kernel", "optimizer_classes", "holds", "eps_zero_rule"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()   # a hyperparameter without default (``lr`` of SGD, ``step``)


@dataclass(frozen=True)
class Hyper:
    """A hyperparameter of the functional API: its name, validation kind and default."""

    name: str
    kind: str
    default: object = REQUIRED


def holds(condition: str, hyper: Mapping[str, object]) -> bool:
    """Whether ``condition`` holds for the hyperparameters ``hyper`` (a complete set: see
    :meth:`Kernel.complete`). A condition is the name of a flag (``"amsgrad"``: it is true),
    ``"<name> > 0"`` (a positive real) or ``"<name> == 0"``."""
    if condition.endswith(" > 0"):
        return hyper[condition[:-4]] > 0.0
    if condition.endswith(" == 0"):
        return hyper[condition[:-5]] == 0.0
    return bool(hyper[condition])


@dataclass(frozen=True)
class State:
    """A state buffer. ``enabled_by`` is ``None`` for a buffer the kernel always updates, or
    a condition on the hyperparameters (see :func:`holds`): the name of a flag
    (``"amsgrad"``) or ``"<name> > 0"`` for a positive real one (``"momentum > 0"``).
    ``nonnegative``: the formula keeps the buffer ``>= 0`` (squared averages, sums of squares,
    step sizes), so ``state_dtype="int8"`` stores it with the unsigned 8-bit code.
    ``deprecated`` is an old functional keyword name that still works for one release, with
    a ``DeprecationWarning``."""

    name: str
    enabled_by: Optional[str] = None
    deprecated: Optional[str] = None
    nonnegative: bool = False   # the kernel keeps it >= 0: 8-bit state uses the unsigned code

    def enabled(self, hyper: Dict[str, object]) -> bool:
        """Whether this buffer takes part in a call with hyperparameters ``hyper``."""
        return self.enabled_by is None or holds(self.enabled_by, hyper)


# ``"betas[0]"``: element 0 of the tuple keyword ``betas``.
_ELEMENT = re.compile(r"^(\w+)\[(\d+)\]$")


def _frozen(mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


def _pack(values: Mapping[str, object], renames: Mapping[str, str]) -> dict:
    """``values`` under the names ``renames`` gives (a name not in ``renames`` keeps its
    own); targets ``"x[i]"`` gather into one tuple ``x``, whose elements must all be given."""
    out, parts = {}, {}
    for name, value in values.items():
        target = renames.get(name, name)
        element = _ELEMENT.match(target)
        if element:
            parts.setdefault(element.group(1), {})[int(element.group(2))] = value
        else:
            out[target] = value
    for name, items in parts.items():
        if sorted(items) != list(range(len(items))):
            raise KeyError(f"{name}: elements {sorted(items)} given, not every one")
        out[name] = tuple(items[i] for i in range(len(items)))
    return out


def _unpack(values: Mapping[str, object], renames: Mapping[str, str]) -> dict:
    """The inverse of :func:`_pack`: keyword arguments under their own names again."""
    elements = {}
    for name, target in renames.items():
        element = _ELEMENT.match(target)
        if element:
            elements.setdefault(element.group(1), []).append((int(element.group(2)), name))
    inverse = {target: name for name, target in renames.items()}
    out = {}
    for key, value in values.items():
        if key in elements:
            for i, name in elements[key]:
                out[name] = value[i]
        else:
            out[inverse.get(key, key)] = value
    return out


@dataclass(frozen=True)
class TorchPeer:
    """The same update rule in ``torch.optim``: the benchmark's peer, and an oracle of the
    tests when torch is installed.

    * ``optimizer``: the class name in ``torch.optim`` (``"Adam"``);
    * ``renames``: functional hyperparameter -> torch keyword, where they differ;
      ``"betas[0]"`` is element 0 of the pair ``betas`` (``{"beta1": "betas[0]"}``). Every
      other hyperparameter is passed under its own name, except ``step`` (torch counts its
      steps itself);
    * ``differs_when``: conditions (see :func:`holds`) under which torch computes something
      else by design, e.g. momentum with dampening (torch's buffer starts as a copy of the
      first gradient, fastoptim's at zero).
    * ``absent``: hyperparameters torch does not take (``eps_root``): left out of
      :meth:`kwargs`; a ``differs_when`` condition covers their values other than the
      default.
    """

    optimizer: str
    renames: Mapping[str, str] = field(default_factory=dict, compare=False)
    differs_when: Tuple[str, ...] = ()
    absent: Tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "renames", _frozen(self.renames))

    def kwargs(self, kernel: "Kernel", hyper: Mapping[str, object]) -> dict:
        """``torch.optim.<optimizer>`` keyword arguments (besides the params) of the
        functional hyperparameters ``hyper`` of ``kernel`` (completed with its defaults)."""
        full = {k: v for k, v in kernel.complete(hyper).items()
                if k != "step" and k not in self.absent
                and k not in kernel.carried}
        return _pack(full, self.renames)

    def agrees(self, kernel: "Kernel", hyper: Mapping[str, object]) -> bool:
        """Whether torch computes the same as ``kernel`` with ``hyper`` (no ``differs_when``
        condition holds)."""
        full = kernel.complete(hyper)
        if any(full.get(name, first) != first for name, first in kernel.carried.items()):
            return False            # torch starts its scalar state at the initial value
        return not any(holds(c, full) for c in self.differs_when)


@dataclass(frozen=True)
class OptimizerClass:
    """An optimizer class of :mod:`fastoptim.optim` whose steps run this kernel (one class
    may run several: ``SGD`` runs ``momentum`` when ``momentum > 0``, else ``sgd``).

    * ``name``: the class (``fastoptim.<name>`` and ``fastoptim.optim.<name>``);
    * ``examples``: constructor keyword arguments (besides the params, ``backend`` and
      ``skip_nonfinite``) that together give every constructor keyword a value other than its
      default and enable every optional state; the first is the typical one, which trains
      the course's small network (``tests/test_optim.py``);
    * ``renames``: functional hyperparameter -> constructor keyword where they differ
      (``{"beta1": "betas[0]", "beta2": "betas[1]"}``, as in :class:`TorchPeer`);
    * ``fixed``: functional hyperparameters the class sets itself
      (AdamW: ``decoupled_weight_decay=True``);
    * ``defaults``: the constructor defaults that are not the functional API's default of
      the same name: a different value (AdamW's ``weight_decay=1e-2``) or a keyword the
      kernel does not take (``SGD``'s ``momentum=0`` for ``sgd``, Adagrad's
      ``initial_accumulator_value``);
    * ``initial``: state buffer -> the constructor keyword of its initial value, for buffers
      that do not start at zero (Adagrad's ``state_sum``);
    * ``selected_when``: the condition (see :func:`holds`, on the constructor keywords) under
      which the class runs this kernel; ``None``: always;
    * ``torch``: the ``torch.optim`` class of the same constructor (names and defaults), or
      ``None``.
    """

    name: str
    examples: Tuple[Mapping[str, object], ...] = field(default=(), compare=False)
    renames: Mapping[str, str] = field(default_factory=dict, compare=False)
    fixed: Mapping[str, object] = field(default_factory=dict, compare=False)
    defaults: Mapping[str, object] = field(default_factory=dict, compare=False)
    initial: Mapping[str, str] = field(default_factory=dict, compare=False)
    selected_when: Optional[str] = None
    torch: Optional[str] = None

    def __post_init__(self):
        for name in ("renames", "fixed", "defaults", "initial"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "examples", tuple(_frozen(e) for e in self.examples))

    def _given(self, kernel: "Kernel", kwargs: Mapping[str, object]) -> dict:
        """Every constructor keyword under its functional name, defaults filled in."""
        return {**kernel.defaults(), **_unpack({**self.defaults, **kwargs}, self.renames)}

    def hyperparameters(self, kernel: "Kernel", kwargs: Mapping[str, object]) -> dict:
        """The functional hyperparameters of ``kernel`` (``step`` and the carried scalars
        aside) of one step of this class constructed with ``kwargs``: defaults filled in,
        keywords the kernel does not take left out, ``fixed`` applied. ``lr`` is as given
        (a schedule stays callable)."""
        given = self._given(kernel, kwargs)
        names = [h.name for h in kernel.hyperparameters
                 if h.name != "step" and h.name not in kernel.carried]
        hyper = {name: given[name] for name in names if name in given}
        hyper.update(self.fixed)
        return hyper

    def initial_values(self, kwargs: Mapping[str, object]) -> Dict[str, object]:
        """State buffer -> its initial value, for those that do not start at zero."""
        ctor = {**self.defaults, **kwargs}
        return {state: ctor[keyword] for state, keyword in self.initial.items()}

    def constructor_kwargs(self, kernel: "Kernel", hyper: Mapping[str, object]) -> dict:
        """The inverse of :meth:`hyperparameters`: constructor keywords for the functional
        hyperparameters ``hyper`` (``step``, the carried scalars and the ``fixed`` ones left
        out)."""
        return _pack({k: v for k, v in hyper.items()
                      if k != "step" and k not in self.fixed and k not in kernel.carried},
                     self.renames)

    def selects(self, kernel: "Kernel", kwargs: Mapping[str, object]) -> bool:
        """Whether the class constructed with ``kwargs`` runs ``kernel``."""
        return self.selected_when is None or holds(self.selected_when,
                                                   self._given(kernel, kwargs))


@dataclass(frozen=True)
class Kernel:
    """One fused kernel and everything derived from it (see the module docstring).

    * ``name``: the entry points' name (``kernels.<name>``, ``kernels.<name>_multi``,
      ``numba_kernels.<name>_kernel``, ``_coefficients.<name>``);
    * ``function``: the public functional name (``fastoptim.functional.<function>``, and
      ``fastoptim.reference.<function>``, the NumPy oracle);
    * ``inputs``: the two input arrays (the first is updated, the second only read);
    * ``states``: every state buffer, in the C kernel's order (see :class:`State`);
    * ``coefficients``: (name, C type) of the C kernel's scalars, in order;
    * ``coefficient_args``: the hyperparameters of ``<name>_coefficients``, in order;
    * ``hyperparameters``: the functional API's keyword arguments (see :class:`Hyper`);
    * ``rules``: checks between hyperparameters, ``rule(function name, hyper)`` raising
      ``ValueError``; a rule marked by :func:`eps_zero_rule` can only fail when ``eps``
      is 0, and the functional API consults it only when ``eps`` is below the smallest
      normal float32 (so that it costs nothing on a typical call);
    * ``eps``: the hyperparameter that must be a normal number of the arrays' dtype
      (unless it is 0, which a rule allows with a positive ``eps_root``: then ``eps_root``
      must be one);
    * ``summary``: one line for listings;
    * ``examples``: functional hyperparameters (``step`` is the caller's) that together take
      every branch of the formula: every optional state enabled and disabled (and all at
      once in one example), every flag true, every hyperparameter away from its default.
      Each includes the required ones (``lr`` of SGD). The first is the typical step, the
      one the benchmark times;
    * ``torch``: the peer in ``torch.optim`` (:class:`TorchPeer`), or ``None``;
    * ``optimizers``: the optimizer classes that run this kernel (:class:`OptimizerClass`);
    * ``optional_coefficients``: the last coefficients, added after the kernel's
      ``kernels.pxd`` declaration was published: optional arguments there (``=*``, default
      0, which must give the formula as it was), so that a Cython caller's source still
      compiles; the hyperparameter of the same name, last of ``coefficient_args``, is an
      optional argument (default 0) of the coefficient helpers.
    * ``carried``: scalar state -> its initial value (NAdam's ``mu_product``: 1). A carried
      scalar is a hyperparameter of the functional API holding the value before the step;
      the functional returns the value after it (the one exception to "returns ``None``"),
      which ``coefficients.pxd``'s struct holds in a field of the same name after the
      kernel's scalars. Optimizer classes (and torch) keep it themselves, like ``step``.
    """

    name: str
    function: str
    inputs: Tuple[str, str]
    states: Tuple[State, ...]
    coefficients: Tuple[Tuple[str, str], ...]   # (name, C type: "floating" or "bint")
    coefficient_args: Tuple[str, ...]            # hyperparameters of <name>_coefficients
    hyperparameters: Tuple[Hyper, ...]
    rules: Tuple[Callable[[str, dict], None], ...] = ()
    eps: Optional[str] = None                    # must be a normal number of the dtype
    summary: str = ""
    examples: Tuple[Mapping[str, object], ...] = field(default=(), compare=False)
    torch: Optional[TorchPeer] = None
    optimizers: Tuple[OptimizerClass, ...] = ()
    optional_coefficients: Tuple[str, ...] = ()
    carried: Mapping[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "examples", tuple(_frozen(e) for e in self.examples))
        object.__setattr__(self, "carried", _frozen(self.carried))
        trailing = tuple(name for name, _ in self.coefficients[
            len(self.coefficients) - len(self.optional_coefficients):])
        if self.optional_coefficients and trailing != self.optional_coefficients:
            raise ValueError(f"{self.name}: optional coefficients must be the last ones")

    @property
    def arrays(self) -> Tuple[str, ...]:
        """Every array argument of the C kernel, in order (inputs, then every state)."""
        return self.inputs + tuple(s.name for s in self.states)

    @property
    def struct(self) -> str:
        """The coefficient struct of ``coefficients.pxd`` (``AdamCoefficients``)."""
        return _STRUCT_NAMES.get(self.name, self.name.capitalize()) + "Coefficients"

    @property
    def required_states(self) -> Tuple[State, ...]:
        """The buffers every call updates: positional arguments of the functional API."""
        return tuple(s for s in self.states if s.enabled_by is None)

    @property
    def optional_states(self) -> Tuple[State, ...]:
        """The buffers an option enables: keyword arguments (default ``None``)."""
        return tuple(s for s in self.states if s.enabled_by is not None)

    @property
    def takes_step(self) -> bool:
        """Whether the functional API takes the step count ``step`` (bias correction)."""
        return any(h.name == "step" for h in self.hyperparameters)

    @property
    def typical(self) -> Mapping[str, object]:
        """The first example: a typical step (what the benchmark times)."""
        return self.examples[0]

    def hyperparameter(self, name: str) -> Hyper:
        return next(h for h in self.hyperparameters if h.name == name)

    def active_states(self, hyper: Mapping[str, object]) -> Tuple[State, ...]:
        """The buffers a call with ``hyper`` (completed with the defaults) updates."""
        full = self.complete(hyper)
        return tuple(s for s in self.states if s.enabled(full))

    def traffic_arrays(self, hyper: dict) -> int:
        """Arrays one call touches (inputs and enabled states)."""
        return 2 + len(self.active_states(hyper))

    def defaults(self) -> Dict[str, object]:
        return {h.name: h.default for h in self.hyperparameters if h.default is not REQUIRED}

    def complete(self, hyper: Mapping[str, object]) -> Dict[str, object]:
        """``hyper`` with every other hyperparameter at its default."""
        return {**self.defaults(), **hyper}


_STRUCT_NAMES = {"sgd": "SGD", "rmsprop": "RMSprop", "ewa": "EWA"}


def _nesterov_rule(func: str, h: dict) -> None:
    if h["nesterov"] and (h["momentum"] <= 0.0 or h["dampening"] != 0.0):
        raise ValueError(
            f"{func}: nesterov=True needs momentum > 0 and dampening == 0, got "
            f"momentum={h['momentum']!r}, dampening={h['dampening']!r}")


def eps_zero_rule(rule: Callable[[str, dict], None]) -> Callable[[str, dict], None]:
    """Mark ``rule`` as one that can only fail when the kernel's ``eps`` is 0 and reads
    only ``eps`` and ``eps_root`` (see :class:`Kernel`'s ``rules``): the functional API
    passes it just those two."""
    rule.eps_zero = True
    return rule


_RPROP = {"etaminus": "etas[0]", "etaplus": "etas[1]", "step_size_min": "step_sizes[0]",
          "step_size_max": "step_sizes[1]"}


def _rprop_rule(func: str, h: dict) -> None:
    if not 0.0 < h["etaminus"] < 1.0 < h["etaplus"]:
        raise ValueError(
            f"{func}: etas must satisfy 0 < etaminus < 1 < etaplus, got "
            f"etaminus={h['etaminus']!r}, etaplus={h['etaplus']!r}")
    if h["step_size_min"] > h["step_size_max"]:
        raise ValueError(
            f"{func}: step_sizes must satisfy step_size_min <= step_size_max, got "
            f"step_size_min={h['step_size_min']!r}, step_size_max={h['step_size_max']!r}")

@eps_zero_rule
def _eps_root_rule(func: str, h: dict) -> None:
    # both are >= 0 (their kind); with both 0 the denominator is 0 on a zero gradient
    if h["eps"] == 0.0 and h["eps_root"] == 0.0:
        raise ValueError(
            f"{func}: eps must be > 0 unless eps_root > 0 (with both 0 the denominator "
            f"sqrt(... + eps_root) + eps is 0 on a zero gradient), got eps={h['eps']!r}, "
            f"eps_root={h['eps_root']!r}")


F = "floating"
_MAXIMIZE = Hyper("maximize", "flag", False)
_WD = Hyper("weight_decay", "nonnegative", 0.0)

_BETAS = {"beta1": "betas[0]", "beta2": "betas[1]"}

KERNELS: Dict[str, Kernel] = {k.name: k for k in (
    Kernel(
        name="sgd", function="sgd_step", inputs=("param", "grad"), states=(),
        coefficients=(("lr", F), ("grad_sign", F), ("weight_decay", F)),
        coefficient_args=("lr", "weight_decay", "maximize"),
        hyperparameters=(Hyper("lr", "nonnegative"), _WD, _MAXIMIZE),
        summary="mini-batch gradient descent",
        examples=(
            dict(lr=0.05),
            dict(lr=0.05, weight_decay=0.1),
            dict(lr=0.05, weight_decay=0.1, maximize=True),
        ),
        torch=TorchPeer("SGD"),
        optimizers=(
            OptimizerClass(
                "SGD", selected_when="momentum == 0", torch="SGD",
                defaults=dict(momentum=0.0, dampening=0.0, nesterov=False),
                examples=(
                    dict(lr=0.5),
                    dict(lr=0.05),
                    dict(lr=0.05, weight_decay=0.01, maximize=True),
                )),
        )),
    Kernel(
        name="momentum", function="momentum_step", inputs=("param", "grad"),
        states=(State("momentum_buffer", deprecated="velocity"),),
        coefficients=(("lr", F), ("grad_sign", F), ("weight_decay", F), ("momentum", F),
                      ("one_minus_dampening", F), ("nesterov", "bint")),
        coefficient_args=("lr", "momentum", "dampening", "nesterov", "weight_decay",
                          "maximize"),
        hyperparameters=(Hyper("lr", "nonnegative"), Hyper("momentum", "nonnegative", 0.9),
                         Hyper("dampening", "closed_unit_interval", 0.0),
                         Hyper("nesterov", "flag", False), _WD, _MAXIMIZE),
        rules=(_nesterov_rule,),
        summary="gradient descent with momentum (classical, EWA or Nesterov)",
        examples=(
            dict(lr=0.05, momentum=0.9),                      # classical
            dict(lr=0.05, momentum=0.9, dampening=0.9),       # the course's EWA form
            dict(lr=0.05, momentum=0.8, nesterov=True),
            dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.05, maximize=True),
            dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05),
        ),
        # torch's buffer starts as a copy of the first gradient, fastoptim's at zero: the
        # same when dampening is 0
        torch=TorchPeer("SGD", differs_when=("dampening > 0",)),
        optimizers=(
            OptimizerClass(
                "SGD", selected_when="momentum > 0", torch="SGD",
                defaults=dict(momentum=0.0),
                examples=(
                    dict(lr=0.5, momentum=0.9, dampening=0.9),   # the course's EWA momentum
                    dict(lr=0.05, momentum=0.9),
                    dict(lr=0.05, momentum=0.9, dampening=0.9, weight_decay=0.1),
                    dict(lr=0.05, momentum=0.8, nesterov=True),
                    dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True),
                )),
        )),
    Kernel(
        name="rmsprop", function="rmsprop_step", inputs=("param", "grad"),
        states=(State("square_avg", nonnegative=True), State("momentum_buffer", "momentum > 0"),
                State("grad_avg", "centered")),
        coefficients=(("lr", F), ("grad_sign", F), ("weight_decay", F), ("alpha", F),
                      ("one_minus_alpha", F), ("eps", F), ("momentum", F), ("eps_root", F)),
        coefficient_args=("lr", "alpha", "eps", "weight_decay", "momentum", "maximize",
                          "eps_root"),
        hyperparameters=(Hyper("lr", "nonnegative", 1e-2),
                         Hyper("alpha", "unit_interval", 0.99),
                         Hyper("eps", "nonnegative", 1e-8),
                         _WD, Hyper("momentum", "nonnegative", 0.0),
                         Hyper("centered", "flag", False), _MAXIMIZE,
                         Hyper("eps_root", "nonnegative", 0.0)),
        rules=(_eps_root_rule,),
        eps="eps", summary="RMSprop (centered, with momentum)",
        examples=(
            dict(lr=0.01),
            dict(lr=0.03, alpha=0.9, eps=1e-6, weight_decay=0.1),
            dict(lr=0.01, centered=True),
            dict(lr=0.01, momentum=0.9),
            dict(lr=0.01, momentum=0.9, centered=True, maximize=True),
            dict(lr=0.01, eps=0.0, eps_root=1e-8),              # the course's sqrt(s + eps)
            dict(lr=0.01, eps_root=1e-6, centered=True, momentum=0.9, weight_decay=0.1),
        ),
        # torch has no eps_root
        torch=TorchPeer("RMSprop", differs_when=("eps_root > 0",), absent=("eps_root",)),
        optimizers=(
            OptimizerClass(
                "RMSprop", torch="RMSprop",
                examples=(
                    dict(lr=0.01),
                    dict(),
                    dict(lr=1e-3, momentum=0.9, weight_decay=0.01),
                    dict(lr=1e-3, centered=True, alpha=0.9, eps=1e-6),
                    dict(lr=1e-3, centered=True, momentum=0.5, maximize=True),
                    dict(lr=1e-3, eps=0.0, eps_root=1e-8),
                    dict(lr=1e-3, centered=True, momentum=0.5, eps_root=1e-6),
                )),
        ),
        optional_coefficients=("eps_root",)),
    Kernel(
        name="adam", function="adam_step", inputs=("param", "grad"),
        states=(State("exp_avg"), State("exp_avg_sq", nonnegative=True),
                State("max_exp_avg_sq", "amsgrad", nonnegative=True)),
        coefficients=(("grad_sign", F), ("weight_decay", F), ("param_scale", F), ("beta1", F),
                      ("one_minus_beta1", F), ("beta2", F), ("one_minus_beta2", F),
                      ("step_size", F), ("inv_bias_correction2_sqrt", F), ("eps", F),
                      ("eps_root", F)),
        coefficient_args=("step", "lr", "beta1", "beta2", "eps", "weight_decay",
                          "decoupled_weight_decay", "maximize", "eps_root"),
        hyperparameters=(Hyper("step", "step_count"), Hyper("lr", "nonnegative", 1e-3),
                         Hyper("beta1", "unit_interval", 0.9),
                         Hyper("beta2", "unit_interval", 0.999),
                         Hyper("eps", "nonnegative", 1e-8), _WD,
                         Hyper("decoupled_weight_decay", "flag", False),
                         Hyper("amsgrad", "flag", False), _MAXIMIZE,
                         Hyper("eps_root", "nonnegative", 0.0)),
        rules=(_eps_root_rule,),
        eps="eps", summary="Adam with bias correction (AdamW, AMSGrad)",
        examples=(
            dict(lr=0.01),
            dict(lr=0.01, beta1=0.0, beta2=0.99, eps=1e-6),
            dict(lr=0.01, weight_decay=0.1),                                   # L2
            dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),      # AdamW
            dict(lr=0.01, amsgrad=True),
            dict(lr=0.01, amsgrad=True, weight_decay=0.1, decoupled_weight_decay=True,
                 maximize=True),
            dict(lr=0.01, eps=0.0, eps_root=1e-8),          # the course's sqrt(v_hat + eps)
            dict(lr=0.01, eps_root=1e-6, weight_decay=0.1),
            dict(lr=0.01, eps=0.0, eps_root=1e-8, amsgrad=True, weight_decay=0.1,
                 decoupled_weight_decay=True),
        ),
        # torch has no eps_root
        torch=TorchPeer("Adam", renames=_BETAS, differs_when=("eps_root > 0",),
                        absent=("eps_root",)),
        optimizers=(
            OptimizerClass(
                "Adam", renames=_BETAS, torch="Adam",
                examples=(
                    dict(lr=0.02),
                    dict(),
                    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                    dict(lr=1e-2, amsgrad=True, maximize=True),
                    dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
                    dict(lr=1e-2, eps=0.0, eps_root=1e-8),
                    dict(lr=1e-2, amsgrad=True, eps_root=1e-6),
                )),
            OptimizerClass(
                "AdamW", renames=_BETAS, fixed=dict(decoupled_weight_decay=True),
                defaults=dict(weight_decay=1e-2), torch="AdamW",
                examples=(
                    dict(lr=0.02),
                    dict(),
                    dict(lr=1e-2, amsgrad=True, weight_decay=0.1),
                    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, maximize=True),
                    dict(lr=1e-2, eps=0.0, eps_root=1e-8, amsgrad=True),
                )),
        ),
        optional_coefficients=("eps_root",)),
    Kernel(
        name="adagrad", function="adagrad_step", inputs=("param", "grad"),
        states=(State("state_sum", nonnegative=True),),
        coefficients=(("clr", F), ("grad_sign", F), ("weight_decay", F), ("eps", F)),
        coefficient_args=("step", "lr", "lr_decay", "weight_decay", "eps", "maximize"),
        hyperparameters=(Hyper("step", "step_count"), Hyper("lr", "nonnegative", 1e-2),
                         Hyper("lr_decay", "nonnegative", 0.0), _WD,
                         Hyper("eps", "positive", 1e-10), _MAXIMIZE),
        eps="eps", summary="Adagrad",
        examples=(
            dict(lr=0.05),
            dict(lr=0.05, lr_decay=0.01, weight_decay=0.1),
            dict(lr=0.05, maximize=True, eps=1e-8),
        ),
        torch=TorchPeer("Adagrad"),
        optimizers=(
            OptimizerClass(
                "Adagrad", torch="Adagrad",
                defaults=dict(initial_accumulator_value=0.0),
                initial=dict(state_sum="initial_accumulator_value"),
                examples=(
                    dict(lr=0.2),
                    dict(),
                    dict(lr=0.1, lr_decay=0.01, weight_decay=0.01,
                         initial_accumulator_value=0.1),
                    dict(lr=0.1, eps=1e-8, maximize=True),
                )),
        )),
    Kernel(
        name="ewa", function="ewa_update", inputs=("average", "value"), states=(),
        coefficients=(("beta", F), ("one_minus_beta", F)),
        coefficient_args=("beta",),
        hyperparameters=(Hyper("beta", "unit_interval"),),
        summary="exponentially weighted average",
        examples=(
            dict(beta=0.9),
            dict(beta=0.0),
        )),
    Kernel(
        name="adamax", function="adamax_step", inputs=("param", "grad"),
        states=(State("exp_avg"), State("exp_inf", nonnegative=True)),
        coefficients=(("grad_sign", F), ("weight_decay", F), ("beta1", F),
                      ("one_minus_beta1", F), ("beta2", F), ("eps", F), ("step_size", F)),
        coefficient_args=("step", "lr", "beta1", "beta2", "eps", "weight_decay", "maximize"),
        hyperparameters=(Hyper("step", "step_count"), Hyper("lr", "nonnegative", 2e-3),
                         Hyper("beta1", "unit_interval", 0.9),
                         Hyper("beta2", "unit_interval", 0.999),
                         Hyper("eps", "positive", 1e-8), _WD, _MAXIMIZE),
        eps="eps", summary="Adamax (Adam with the infinity norm)",
        examples=(
            dict(lr=0.01),
            dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6),
            dict(lr=0.01, weight_decay=0.1),
            dict(lr=0.01, beta1=0.0, weight_decay=0.1, maximize=True),
        ),
        torch=TorchPeer("Adamax", renames=_BETAS),
        optimizers=(
            OptimizerClass(
                "Adamax", renames=_BETAS, torch="Adamax",
                examples=(
                    dict(lr=0.02),
                    dict(),
                    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                    dict(lr=1e-2, maximize=True),
                )),
        )),
    Kernel(
        name="radam", function="radam_step", inputs=("param", "grad"),
        states=(State("exp_avg"), State("exp_avg_sq", nonnegative=True)),
        coefficients=(("grad_sign", F), ("weight_decay", F), ("param_scale", F), ("beta1", F),
                      ("one_minus_beta1", F), ("beta2", F), ("one_minus_beta2", F),
                      ("bias_correction1", F), ("lr", F), ("rectify", "bint"), ("rect", F),
                      ("bias_correction2_sqrt", F), ("eps", F)),
        coefficient_args=("step", "lr", "beta1", "beta2", "eps", "weight_decay",
                          "decoupled_weight_decay", "maximize"),
        hyperparameters=(Hyper("step", "step_count"), Hyper("lr", "nonnegative", 1e-3),
                         Hyper("beta1", "unit_interval", 0.9),
                         Hyper("beta2", "unit_interval", 0.999),
                         Hyper("eps", "positive", 1e-8), _WD,
                         Hyper("decoupled_weight_decay", "flag", False), _MAXIMIZE),
        eps="eps", summary="RAdam (rectified Adam, decoupled weight decay)",
        examples=(
            dict(lr=0.01),
            dict(lr=0.01, beta1=0.0, beta2=0.99, eps=1e-6),
            dict(lr=0.01, weight_decay=0.1),                                   # L2
            dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
        ),
        torch=TorchPeer("RAdam", renames=_BETAS),
        optimizers=(
            OptimizerClass(
                "RAdam", renames=_BETAS, torch="RAdam",
                examples=(
                    dict(lr=0.02),
                    dict(),
                    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                    dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True,
                         maximize=True),
                )),
        )),
    Kernel(
        name="rprop", function="rprop_step", inputs=("param", "grad"),
        states=(State("prev"), State("step_size", nonnegative=True)),
        coefficients=(("grad_sign", F), ("lr", F), ("etaminus", F), ("etaplus", F),
                      ("step_size_min", F), ("step_size_max", F), ("first_step", "bint")),
        coefficient_args=("step", "lr", "etaminus", "etaplus", "step_size_min",
                          "step_size_max", "maximize"),
        hyperparameters=(Hyper("step", "step_count"), Hyper("lr", "nonnegative", 1e-2),
                         Hyper("etaminus", "positive", 0.5), Hyper("etaplus", "positive", 1.2),
                         Hyper("step_size_min", "nonnegative", 1e-6),
                         Hyper("step_size_max", "nonnegative", 50.0), _MAXIMIZE),
        rules=(_rprop_rule,),
        summary="resilient backpropagation (Rprop)",
        examples=(
            dict(lr=0.01),
            dict(lr=0.05, etaminus=0.3, etaplus=1.5, step_size_min=1e-4, step_size_max=1.0),
            dict(lr=0.01, maximize=True),
        ),
        torch=TorchPeer("Rprop", renames=_RPROP),
        optimizers=(
            OptimizerClass(
                "Rprop", renames=_RPROP, torch="Rprop",
                examples=(
                    dict(lr=0.01),
                    dict(),
                    dict(lr=0.02, etas=(0.4, 1.3), step_sizes=(1e-3, 0.05), maximize=True),
                )),
        )),
    Kernel(
        name="asgd", function="asgd_step", inputs=("param", "grad"),
        states=(State("ax"),),
        coefficients=(("grad_sign", F), ("weight_decay", F), ("param_scale", F), ("eta", F),
                      ("mu", F)),
        coefficient_args=("step", "lr", "lambd", "alpha", "t0", "weight_decay", "maximize"),
        hyperparameters=(Hyper("step", "step_count"), Hyper("lr", "nonnegative", 1e-2),
                         Hyper("lambd", "nonnegative", 1e-4), Hyper("alpha", "nonnegative", 0.75),
                         Hyper("t0", "nonnegative", 1e6), _WD, _MAXIMIZE),
        summary="averaged stochastic gradient descent (ASGD)",
        examples=(
            dict(lr=0.01),
            dict(lr=0.01, t0=5.0),                      # averaging from step 7 on
            dict(lr=0.05, lambd=0.01, alpha=0.5, t0=10.0, weight_decay=0.1, maximize=True),
        ),
        torch=TorchPeer("ASGD"),
        optimizers=(
            OptimizerClass(
                "ASGD", torch="ASGD",
                examples=(
                    dict(lr=0.05),
                    dict(),
                    dict(lr=0.02, lambd=1e-3, alpha=0.5, t0=3.0, weight_decay=0.01,
                         maximize=True),
                )),
        )),
    Kernel(
        name="lion", function="lion_step", inputs=("param", "grad"),
        states=(State("exp_avg"),),
        coefficients=(("lr", F), ("grad_sign", F), ("weight_decay", F), ("beta1", F),
                      ("one_minus_beta1", F), ("beta2", F), ("one_minus_beta2", F)),
        coefficient_args=("lr", "beta1", "beta2", "weight_decay", "maximize"),
        hyperparameters=(Hyper("lr", "nonnegative", 1e-4),
                         Hyper("beta1", "unit_interval", 0.9),
                         Hyper("beta2", "unit_interval", 0.99), _WD, _MAXIMIZE),
        summary="Lion (evolved sign momentum)",
        # every example decays: without it an element whose signed steps of +-lr cancel
        # lands back on its start exactly, which the generic tests read as a skipped
        # element (tests/test_lion.py covers weight_decay == 0 on every backend)
        examples=(
            dict(lr=1e-3, weight_decay=0.1),
            dict(lr=1e-3, beta1=0.8, beta2=0.9, weight_decay=0.5),
            dict(lr=1e-3, beta1=0.0, weight_decay=0.5, maximize=True),
        ),
        optimizers=(
            OptimizerClass(
                "Lion", renames=_BETAS,
                examples=(
                    # with decay: two signed steps of +-lr could bring an element back
                    dict(lr=0.01, weight_decay=0.01),
                    dict(),
                    dict(lr=1e-3, betas=(0.8, 0.9), weight_decay=0.1),
                    dict(lr=1e-3, maximize=True),
                )),
        )),
    Kernel(
        name="nadam", function="nadam_step", inputs=("param", "grad"),
        states=(State("exp_avg"), State("exp_avg_sq", nonnegative=True)),
        coefficients=(("grad_sign", F), ("weight_decay", F), ("param_scale", F), ("beta1", F),
                      ("one_minus_beta1", F), ("beta2", F), ("one_minus_beta2", F),
                      ("bias_correction2", F), ("eps", F), ("grad_coef", F),
                      ("exp_avg_coef", F)),
        coefficient_args=("step", "mu_product", "lr", "beta1", "beta2", "eps", "weight_decay",
                          "momentum_decay", "decoupled_weight_decay", "maximize"),
        hyperparameters=(Hyper("step", "step_count"),
                         Hyper("mu_product", "closed_unit_interval"),
                         Hyper("lr", "nonnegative", 2e-3),
                         Hyper("beta1", "unit_interval", 0.9),
                         Hyper("beta2", "unit_interval", 0.999),
                         Hyper("eps", "positive", 1e-8), _WD,
                         Hyper("momentum_decay", "nonnegative", 4e-3),
                         Hyper("decoupled_weight_decay", "flag", False), _MAXIMIZE),
        eps="eps", summary="NAdam (Nesterov momentum in Adam, decoupled weight decay)",
        carried={"mu_product": 1.0},
        examples=(
            dict(mu_product=1.0, lr=0.01),
            dict(mu_product=1.0, lr=0.01, beta1=0.0, beta2=0.99, eps=1e-6,
                 momentum_decay=0.0),
            dict(mu_product=1.0, lr=0.01, weight_decay=0.1, momentum_decay=0.04),   # L2
            dict(mu_product=1.0, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True,
                 maximize=True),
            dict(mu_product=0.5, lr=0.01),              # resumed: a product of earlier steps
        ),
        torch=TorchPeer("NAdam", renames=_BETAS),
        optimizers=(
            OptimizerClass(
                "NAdam", renames=_BETAS, torch="NAdam",
                examples=(
                    dict(lr=0.02),
                    dict(),
                    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
                         momentum_decay=0.04),
                    dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True,
                         maximize=True),
                )),
        )),
    Kernel(
        name="adadelta", function="adadelta_step", inputs=("param", "grad"),
        states=(State("square_avg", nonnegative=True), State("acc_delta", nonnegative=True)),
        coefficients=(("lr", F), ("grad_sign", F), ("weight_decay", F), ("rho", F),
                      ("one_minus_rho", F), ("eps", F)),
        coefficient_args=("lr", "rho", "eps", "weight_decay", "maximize"),
        hyperparameters=(Hyper("lr", "nonnegative", 1.0),
                         Hyper("rho", "closed_unit_interval", 0.9),
                         Hyper("eps", "positive", 1e-6), _WD, _MAXIMIZE),
        eps="eps", summary="Adadelta",
        examples=(
            dict(lr=1.0),
            dict(lr=0.5, rho=0.95, eps=1e-5),
            dict(lr=1.0, weight_decay=0.1, maximize=True),
        ),
        torch=TorchPeer("Adadelta"),
        optimizers=(
            OptimizerClass(
                "Adadelta", torch="Adadelta",
                examples=(
                    dict(lr=1.0, eps=1e-4),
                    dict(),
                    dict(lr=0.5, rho=0.95, eps=1e-5, weight_decay=0.01),
                    dict(maximize=True),
                )),
        )),
)}


def kernel(name: str) -> Kernel:
    """The registry entry of ``name`` (``KeyError`` naming the known kernels)."""
    try:
        return KERNELS[name]
    except KeyError:
        raise KeyError(f"no kernel {name!r}; the registry has {sorted(KERNELS)}") from None


def optimizer_classes() -> Dict[str, Tuple[Tuple[Kernel, OptimizerClass], ...]]:
    """Optimizer class name -> every (kernel, class entry) it runs, in registry order."""
    out: Dict[str, list] = {}
    for k in KERNELS.values():
        for oc in k.optimizers:
            out.setdefault(oc.name, []).append((k, oc))
    return {name: tuple(pairs) for name, pairs in out.items()}
