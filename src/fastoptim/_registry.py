"""The kernel registry: every fused kernel described once.

One :class:`Kernel` per update rule says what the rest of the package derives from it:

* its **arrays**: the two inputs (``param, grad``; ``average, value`` for the EWA), the
  state buffers it always updates, and the optional ones with the hyperparameter condition
  that enables each (``max_exp_avg_sq`` when ``amsgrad``);
* its **per-call coefficients** by name, in the order of the C kernel's scalar arguments
  (``kernels.pxd``), each with the C type, and the hyperparameters that
  ``coefficients.pxd``'s ``<name>_coefficients`` helper takes to compute them;
* its **hyperparameters**: name, validation kind (see ``_validation.SCALAR_KINDS``) and
  default, plus rules between them (Nesterov needs momentum).

Validation and dispatch (:mod:`fastoptim._dispatch`), the Cython glue (``_glue.pxi``,
generated from ``_glue.pxi.tp`` at build time), the Numba entry points, the multi-tensor
kernels, the optimizer classes' state, the benchmark cases and the generic tests read this
table. The formulas are not here: each is written once per backend (the C header
``csrc/<name>.h``, the Numba twin in ``numba_kernels.py``, the hand-written NumPy
reference in ``reference.py``, which never reads this table: it is the independent oracle).

This module imports nothing from the package (``setup.py`` loads it by path to generate
the glue before anything is compiled).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

__all__ = ["REQUIRED", "Hyper", "State", "Kernel", "KERNELS", "kernel"]


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


@dataclass(frozen=True)
class State:
    """A state buffer. ``enabled_by`` is ``None`` for a buffer the kernel always updates, or
    the name of a flag hyperparameter (``"amsgrad"``), or ``"<name> > 0"`` for a positive
    real one (``"momentum > 0"``). ``deprecated`` is an old functional keyword name that
    still works for one release, with a ``DeprecationWarning``."""

    name: str
    enabled_by: Optional[str] = None
    deprecated: Optional[str] = None

    def enabled(self, hyper: Dict[str, object]) -> bool:
        """Whether this buffer takes part in a call with hyperparameters ``hyper``."""
        if self.enabled_by is None:
            return True
        if self.enabled_by.endswith(" > 0"):
            return hyper[self.enabled_by[:-4]] > 0.0
        return bool(hyper[self.enabled_by])


@dataclass(frozen=True)
class Kernel:
    """One fused kernel and everything derived from it (see the module docstring)."""

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

    @property
    def arrays(self) -> Tuple[str, ...]:
        """Every array argument of the C kernel, in order (inputs, then every state)."""
        return self.inputs + tuple(s.name for s in self.states)

    @property
    def struct(self) -> str:
        """The coefficient struct of ``coefficients.pxd`` (``AdamCoefficients``)."""
        return _STRUCT_NAMES.get(self.name, self.name.capitalize()) + "Coefficients"

    def active_states(self, hyper: dict) -> Tuple[State, ...]:
        return tuple(s for s in self.states if s.enabled(hyper))

    def traffic_arrays(self, hyper: dict) -> int:
        """Arrays one call touches (inputs and enabled states)."""
        return 2 + len(self.active_states(hyper))

    def defaults(self) -> Dict[str, object]:
        return {h.name: h.default for h in self.hyperparameters if h.default is not REQUIRED}


_STRUCT_NAMES = {"sgd": "SGD", "rmsprop": "RMSprop", "ewa": "EWA"}


def _nesterov_rule(func: str, h: dict) -> None:
    if h["nesterov"] and (h["momentum"] <= 0.0 or h["dampening"] != 0.0):
        raise ValueError(
            f"{func}: nesterov=True needs momentum > 0 and dampening == 0, got "
            f"momentum={h['momentum']!r}, dampening={h['dampening']!r}")


F = "floating"
_MAXIMIZE = Hyper("maximize", "flag", False)
_WD = Hyper("weight_decay", "nonnegative", 0.0)

KERNELS: Dict[str, Kernel] = {k.name: k for k in (
    Kernel(
        name="sgd", function="sgd_step", inputs=("param", "grad"), states=(),
        coefficients=(("lr", F), ("grad_sign", F), ("weight_decay", F)),
        coefficient_args=("lr", "weight_decay", "maximize"),
        hyperparameters=(Hyper("lr", "nonnegative"), _WD, _MAXIMIZE),
        summary="mini-batch gradient descent"),
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
        summary="gradient descent with momentum (classical, EWA or Nesterov)"),
    Kernel(
        name="rmsprop", function="rmsprop_step", inputs=("param", "grad"),
        states=(State("square_avg"), State("momentum_buffer", "momentum > 0"),
                State("grad_avg", "centered")),
        coefficients=(("lr", F), ("grad_sign", F), ("weight_decay", F), ("alpha", F),
                      ("one_minus_alpha", F), ("eps", F), ("momentum", F)),
        coefficient_args=("lr", "alpha", "eps", "weight_decay", "momentum", "maximize"),
        hyperparameters=(Hyper("lr", "nonnegative", 1e-2),
                         Hyper("alpha", "unit_interval", 0.99), Hyper("eps", "positive", 1e-8),
                         _WD, Hyper("momentum", "nonnegative", 0.0),
                         Hyper("centered", "flag", False), _MAXIMIZE),
        eps="eps", summary="RMSprop (centered, with momentum)"),
    Kernel(
        name="adam", function="adam_step", inputs=("param", "grad"),
        states=(State("exp_avg"), State("exp_avg_sq"), State("max_exp_avg_sq", "amsgrad")),
        coefficients=(("grad_sign", F), ("weight_decay", F), ("param_scale", F), ("beta1", F),
                      ("one_minus_beta1", F), ("beta2", F), ("one_minus_beta2", F),
                      ("step_size", F), ("inv_bias_correction2_sqrt", F), ("eps", F)),
        coefficient_args=("step", "lr", "beta1", "beta2", "eps", "weight_decay",
                          "decoupled_weight_decay", "maximize"),
        hyperparameters=(Hyper("step", "step_count"), Hyper("lr", "nonnegative", 1e-3),
                         Hyper("beta1", "unit_interval", 0.9),
                         Hyper("beta2", "unit_interval", 0.999),
                         Hyper("eps", "positive", 1e-8), _WD,
                         Hyper("decoupled_weight_decay", "flag", False),
                         Hyper("amsgrad", "flag", False), _MAXIMIZE),
        eps="eps", summary="Adam with bias correction (AdamW, AMSGrad)"),
    Kernel(
        name="adagrad", function="adagrad_step", inputs=("param", "grad"),
        states=(State("state_sum"),),
        coefficients=(("clr", F), ("grad_sign", F), ("weight_decay", F), ("eps", F)),
        coefficient_args=("step", "lr", "lr_decay", "weight_decay", "eps", "maximize"),
        hyperparameters=(Hyper("step", "step_count"), Hyper("lr", "nonnegative", 1e-2),
                         Hyper("lr_decay", "nonnegative", 0.0), _WD,
                         Hyper("eps", "positive", 1e-10), _MAXIMIZE),
        eps="eps", summary="Adagrad"),
    Kernel(
        name="ewa", function="ewa_update", inputs=("average", "value"), states=(),
        coefficients=(("beta", F), ("one_minus_beta", F)),
        coefficient_args=("beta",),
        hyperparameters=(Hyper("beta", "unit_interval"),),
        summary="exponentially weighted average"),
)}


def kernel(name: str) -> Kernel:
    """The registry entry of ``name`` (``KeyError`` naming the known kernels)."""
    try:
        return KERNELS[name]
    except KeyError:
        raise KeyError(f"no kernel {name!r}; the registry has {sorted(KERNELS)}") from None
