r"""fastoptim's fused kernels behind ``torch.optim``'s interface, for CPU training.

``fastoptim.torch.Adam(model.parameters(), lr=1e-3)`` is a ``torch.optim.Optimizer``:
``param_groups``, ``add_param_group``, ``zero_grad``, ``step(closure)``, step hooks,
``torch.optim.lr_scheduler`` and ``state_dict``/``load_state_dict`` in torch's layout (a
state dict saved by ``torch.optim.Adam`` loads into ``fastoptim.torch.Adam`` and back)
work as torch users expect. Its step is fastoptim's: one fused, in-place pass per group
over all of its tensors (:class:`fastoptim.Adam`'s multi-tensor kernel), on zero-copy NumPy
views of the parameters, their ``.grad`` and the state.

There is one class per fastoptim optimizer, with torch's name, argument names, defaults and
state names: SGD, RMSprop, Adam, AdamW, Adagrad, Adamax, RAdam, NAdam, Adadelta, Rprop,
ASGD, Muon, Adafactor (torch.optim's), and LAMB and Lion (fastoptim's). The update of each
is the fastoptim class's of the same name; its docstring has the formula.

* Parameters and gradients: CPU, dense (strided), ``torch.float32`` or ``torch.float64``,
  C- or F-contiguous; anything else raises naming the tensor. ``None`` gradients skip
  their parameter, as in torch. ``Adam`` and ``AdamW`` also step ``torch.bfloat16`` and
  ``torch.float16`` parameters (with gradients of their dtype), computed in float32 with
  float32 moments, as :class:`fastoptim.Adam` does: ``master_weights=True`` keeps a float32
  copy of each parameter (state ``"master"``) and writes it rounded, ``stochastic_rounding
  =True`` rounds bfloat16 parameters stochastically (reproducibly, from ``seed``);
  neither rounds each update to nearest, as torch.optim does on half parameters.
* torch's ``foreach`` and ``fused`` flags are accepted and ignored (the step is always
  fused); ``capturable=True`` and ``differentiable=True`` are refused.
* fastoptim's ``backend`` and ``skip_nonfinite`` are keyword arguments of the
  constructor, and so is ``state_dtype`` where the fastoptim class has it: ``"bfloat16"``
  or ``"int8"`` keep the state compressed (:mod:`fastoptim.lowmem`; float32 parameters),
  ``self.state`` and the state dict then hold ``torch.bfloat16`` tensors, or ``uint8``
  codes with their ``float32`` ``*_absmax`` scales, and load only into an optimizer with
  the same ``state_dtype``.
* The optimizer is built on the parameters' memory: replacing a parameter's ``.data``
  afterwards (``module.to(dtype)`` does) makes the next step raise; build the optimizer
  after moving the model. Cannot be pickled: save its ``state_dict()``.

Importing :mod:`fastoptim` never imports torch; this module does (``pip install
".[torch]"`` from a checkout).
"""
from __future__ import annotations

import inspect
from typing import Dict, List

import numpy as np
import torch

from .. import optimizers as _optimizers
from ._front import FrontEnd

__all__ = ["FrontEnd"]

_FLAGS = ("foreach", "capturable", "differentiable", "fused")
# fastoptim's, keyword-only, last (each where the engine class has it)
_OWN = ("backend", "skip_nonfinite", "state_dtype", "master_weights", "stochastic_rounding",
        "seed")


def _signature(name: str, engine: type, lr_default: float):
    """torch's signature of ``torch.optim.<name>`` (order, positional or keyword-only,
    flags), with fastoptim's extra hyperparameters and ``backend``/``skip_nonfinite``
    keyword-only at the end; for a class torch lacks, the engine's."""
    engine_sig = inspect.signature(engine.__init__)
    engine_params = {k: v for k, v in engine_sig.parameters.items()
                     if k not in _OWN}
    torch_class = getattr(torch.optim, name, None)
    P = inspect.Parameter
    out: List[inspect.Parameter] = []
    if torch_class is not None:
        for k, v in inspect.signature(torch_class.__init__).parameters.items():
            if k in engine_params:
                default = engine_params[k].default
                if k == "lr" and default is P.empty:
                    default = lr_default
                out.append(v.replace(default=default,
                                     annotation=engine_params[k].annotation))
            elif k in _FLAGS:
                out.append(v)
    names = {p.name for p in out}
    for k, v in engine_params.items():
        if k not in names:
            kind = P.KEYWORD_ONLY if torch_class is not None and k != "params" and \
                k != "self" else v.kind
            if kind == P.VAR_KEYWORD:
                continue
            out.append(v.replace(kind=kind))
    out += [engine_sig.parameters[k].replace(kind=P.KEYWORD_ONLY) for k in _OWN
            if k in engine_sig.parameters]
    positional = [p for p in out if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    keyword = [p for p in out if p.kind == P.KEYWORD_ONLY]
    return inspect.Signature(positional + keyword, return_annotation=None), torch_class


def _doc(name: str, sig: inspect.Signature, torch_class) -> str:
    twin = (f"``torch.optim.{name}``" if torch_class is not None
            else "the fastoptim optimizer of that name (torch has none)")
    lines = [
        f"{name} on fastoptim's fused multi-tensor kernel, behind torch.optim's interface.",
        "",
        f"A ``torch.optim.Optimizer`` with {twin}'s arguments, defaults, "
        f"``param_groups`` and ``state_dict`` layout; the update is "
        f":class:`fastoptim.{name}`'s (its docstring has the formula), run in place on "
        f"zero-copy NumPy views of the CPU float32/float64 (Adam, AdamW: also "
        f"float16/bfloat16) parameters, their gradients and the state. See "
        f":mod:`fastoptim.torch`.",
        "",
        "Parameters",
        "----------",
        "params : iterable of torch.Tensor, or of dicts",
        "    The parameters, or parameter groups (dicts with ``\"params\"`` and any "
        "hyperparameter), as torch takes them.",
    ]
    for p in list(sig.parameters.values())[2:]:
        if p.name in _FLAGS:
            meaning = ("accepted and ignored: the step is always fused"
                       if p.name in ("foreach", "fused") else
                       "must be False: refused (CUDA graphs / autograd through the step)")
        elif p.name == "backend":
            meaning = ("fastoptim's backend: ``\"auto\"``, ``\"cython\"``, "
                       "``\"numba\"`` or ``\"numpy\"``")
        elif p.name == "skip_nonfinite":
            meaning = ("skip a step whose gradients hold an inf or a NaN (nothing "
                       "changes)")
        elif p.name == "master_weights":
            meaning = ("for float16/bfloat16 parameters: keep a float32 master copy of each "
                       "(state ``\"master\"``) that takes the update, the parameter its "
                       "value rounded to nearest")
        elif p.name == "stochastic_rounding":
            meaning = ("for bfloat16 parameters: round each new value stochastically (no "
                       "master copy; reproducible for a given ``seed``)")
        elif p.name == "seed":
            meaning = "the stochastic rounding's seed (parameter ``k`` uses ``seed + k``)"
        elif p.name == "state_dtype":
            meaning = (f"the state's storage, as in :class:`fastoptim.{name}`: ``None`` "
                       f"(the parameters' dtype, torch's layout), or ``\"bfloat16\"`` or "
                       f"``\"int8\"`` (float32 parameters; ``self.state`` then holds "
                       f"torch.bfloat16 tensors, or uint8 codes and their float32 "
                       f"``*_absmax`` scales per block of 256)")
        else:
            meaning = f"as in :class:`fastoptim.{name}`"
        # the first letter up, the rest as written (str.capitalize would lower the
        # cross-references' class names)
        lines += [f"{p.name} : default {p.default!r}",
                  f"    {meaning[:1].upper()}{meaning[1:]}."]
    return "\n".join(lines) + "\n"


def _make(name: str, torch_names: Dict[str, str] = {}, has_step: bool = True,
          eager_state: bool = False, lr_default: float = 1e-3, base: type = FrontEnd,
          group_keys: Dict[str, object] = {}) -> type:
    engine = getattr(_optimizers, name)
    sig, torch_class = _signature(name, engine, lr_default)

    def __init__(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        del values["self"]
        params = values.pop("params")
        own = {k: values.pop(k) for k in _OWN if k in values}
        base.__init__(self, params, {**values, **group_keys}, **own)

    __init__.__signature__ = sig
    __init__.__doc__ = f"See :class:`{name}`."
    return type(name, (base,), {
        "__init__": __init__, "__doc__": _doc(name, sig, torch_class),
        "__module__": __name__, "__qualname__": name,
        "_engine_class": engine, "_torch_names": dict(torch_names),
        "_has_step": has_step, "_eager_state": eager_state,
    })


class _ASGDFront(FrontEnd):
    """torch's ASGD keeps ``eta`` and ``mu`` per parameter; fastoptim derives them from the
    step count and lr (the same formulas), so they are written out after each step."""

    def _scalars(self):
        out = dict(super()._scalars())
        counts = np.asarray(self._engine._step_counts(), dtype=np.float64)
        eta = np.empty_like(counts)
        for g, tg in zip(self._engine._groups, self.param_groups):
            lr = float(tg["lr"])
            lambd, alpha, t0 = (g.hyper[k] for k in ("lambd", "alpha", "t0"))
            s = counts[g.start:g.stop]
            eta[g.start:g.stop] = lr / (1 + lambd * lr * s) ** alpha
            out.setdefault("mu", np.empty_like(counts))[g.start:g.stop] = \
                1 / np.maximum(1, s - t0)
        out["eta"] = eta
        return out


SGD = _make("SGD", has_step=False)
RMSprop = _make("RMSprop")
Adam = _make("Adam")
# torch's AdamW groups carry decoupled_weight_decay=True (an Adam with it): the same keys
AdamW = _make("AdamW", group_keys={"decoupled_weight_decay": True})
Adagrad = _make("Adagrad", {"state_sum": "sum"}, eager_state=True)
Adamax = _make("Adamax")
RAdam = _make("RAdam")
NAdam = _make("NAdam")
Adadelta = _make("Adadelta")
Rprop = _make("Rprop")
ASGD = _make("ASGD", base=_ASGDFront)
Muon = _make("Muon", has_step=False)
Adafactor = _make("Adafactor")
LAMB = _make("LAMB")
Lion = _make("Lion")

CLASSES = ("SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adamax", "RAdam", "NAdam",
           "Adadelta", "Rprop", "ASGD", "Muon", "Adafactor", "LAMB", "Lion")
__all__ = list(CLASSES) + ["FrontEnd", "CLASSES"]
