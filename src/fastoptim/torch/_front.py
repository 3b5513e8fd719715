"""The torch.optim front end's base class: fastoptim's optimizer engine behind
``torch.optim.Optimizer``.

A front-end optimizer holds

* torch's own ``param_groups`` (plain dicts, torch's keys: what ``lr_scheduler`` and users
  change) and ``state`` (per parameter, in torch's layout and names);
* an **engine**: the fastoptim class of the same name (:class:`fastoptim.Adam`, ...) built
  on zero-copy NumPy views of the parameters. The engine owns the state buffers; the
  tensors in ``self.state[p]`` are ``torch.from_numpy`` views of them, so both see one
  memory, and the step counts are views of one small NumPy array the engine's counts are
  written to after each step.

A step

1. pushes any change of a torch group (``lr`` from a scheduler, any hyperparameter) to the
   engine's group, validated there;
2. takes a NumPy view of every ``p.grad`` (``None`` skips the parameter, as in torch),
   checking that every parameter still lives in the memory the engine was built on;
3. runs the engine's step: every gradient is checked against its parameter first, then one
   fused multi-tensor kernel call per group updates parameters and state in place.

Nothing is copied, and a bad gradient (CUDA, sparse, another dtype or shape, not
contiguous) raises naming the parameter before anything is updated.
"""
from __future__ import annotations

import inspect
import math
from numbers import Real
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from torch.optim import optimizer as _torch_optimizer
from torch.optim.optimizer import _get_scalar_dtype

from .. import _optimizer as _engine_base
from .. import _groups, _state_dict
from ..optimizers._half_params import HalfParams
from . import _views

__all__ = ["FrontEnd"]

# torch.optim flags that select torch's implementation: fastoptim always runs its fused
# multi-tensor kernel on CPU, so foreach/fused are accepted and ignored, and the two that
# ask for a CUDA-graph or autograd-differentiable step are refused.
_IGNORED_FLAGS = ("foreach", "fused")
_REFUSED_FLAGS = {
    "capturable": "capturable=True is for CUDA graphs; fastoptim.torch steps CPU tensors",
    "differentiable": "differentiable=True (autograd through the step) is not supported: "
                      "fastoptim's kernels update memory outside autograd",
}
_DTYPES = (torch.float32, torch.float64)
# half parameters (and their gradients), for an engine class that steps them (Adam, AdamW:
# fastoptim.optimizers._half_params): float32 moments, master weights or stochastic rounding
_HALF_DTYPES = (torch.float16, torch.bfloat16)


class FrontEnd(torch.optim.Optimizer):
    """Base class of :mod:`fastoptim.torch`: a ``torch.optim.Optimizer`` whose step is the
    fastoptim class ``_engine_class``'s fused multi-tensor step on views of the tensors.

    Subclasses set ``_engine_class`` and, where torch's state names differ from
    fastoptim's, ``_torch_names`` (fastoptim name -> torch name); ``_has_step``: whether
    torch keeps a ``"step"`` per parameter (not SGD's and Muon's); ``_eager_state``:
    whether torch creates the state at construction (Adagrad).
    """

    _engine_class: type = _engine_base.Optimizer
    _torch_flags: Tuple[str, ...] = ()
    _torch_names: Dict[str, str] = {}
    _has_step = True
    _eager_state = False

    def __init__(self, params, defaults: dict, *, backend: str = "auto",
                 skip_nonfinite: bool = False, **engine_options) -> None:
        self._engine = None
        self._backend = backend
        self._skip_nonfinite = skip_nonfinite
        # the engine's own keyword options the class offers (state_dtype; master_weights,
        # stochastic_rounding and seed for half parameters), given to it as they are
        self._own = engine_options
        self._half_ok = issubclass(self._engine_class, HalfParams)
        self._tensors: List[torch.Tensor] = []
        self._views = _views.GradViews(torch.strided)    # the gradients' NumPy views
        self._groups_seen: List[Optional[tuple]] = []
        self._scalar_dtype = _numpy_dtype(_get_scalar_dtype())
        self._steps = np.zeros(0, self._scalar_dtype)
        self._stateful = 0          # parameters with an entry in self.state, in order
        super().__init__(params, defaults)

    # ---- names ---------------------------------------------------------------------------
    @property
    def _name(self) -> str:
        return f"fastoptim.torch.{type(self).__name__}"

    @classmethod
    def _hyper_names(cls) -> Tuple[str, ...]:
        """The engine's hyperparameters (not lr): what a torch group pushes to it."""
        sig = inspect.signature(cls._engine_class.__init__)
        return tuple(n for n in sig.parameters
                     if n not in ("self", "params", "lr", "backend", "skip_nonfinite",
                                  "state_dtype", "master_weights", "stochastic_rounding",
                                  "seed", *_IGNORED_FLAGS, *_REFUSED_FLAGS))

    # ---- parameter groups ----------------------------------------------------------------
    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Add a group as torch does (missing hyperparameters take the constructor's
        values); its tensors and hyperparameters are checked before anything changes."""
        f = f"{self._name}.add_param_group"
        if not isinstance(param_group, dict):
            raise TypeError(f"{f}: param_group must be a dict, got "
                            f"{type(param_group).__name__}")
        tensors = param_group.get("params")
        if isinstance(tensors, torch.Tensor):
            tensors = [tensors]
        elif isinstance(tensors, set) or tensors is None:
            tensors = None                      # torch's own message below
        else:
            tensors = list(tensors)
        if tensors is not None:
            hyper, lr = self._engine_hyper(f, {**self.defaults, **param_group})
            views = [self._param_view(f, len(self._tensors) + j, t)
                     for j, t in enumerate(tensors)]
        super().add_param_group(param_group)        # torch's checks (leaf, duplicates)
        try:
            group = {"params": tuple(views), "lr": lr, **hyper}
            if self._engine is None:
                self._engine = self._engine_class(
                    group["params"], lr=lr, backend=self._backend,
                    skip_nonfinite=self._skip_nonfinite, **self._own, **hyper)
            else:
                self._engine.add_param_group(group)
        except BaseException:
            self.param_groups.pop()
            raise
        self._tensors.extend(tensors)
        for t, view in zip(tensors, views):
            self._views.add(t, view)
        self._groups_seen.append(None)
        self._steps = np.concatenate([self._steps, np.zeros(len(tensors),
                                                            self._scalar_dtype)])
        self._rebind_state()

    def _engine_hyper(self, f: str, group: dict) -> Tuple[dict, float]:
        """(the engine's hyperparameters, lr) of a torch group, validated by the engine's
        class; torch's implementation flags checked."""
        for flag, why in _REFUSED_FLAGS.items():
            if group.get(flag):
                raise ValueError(f"{f}: {why}")
        hyper = {k: group[k] for k in self._hyper_names() if k in group}
        self._engine_class._validate(f, dict(hyper))
        lr = _float_lr(f, group.get("lr"))
        return hyper, lr

    def _param_view(self, f: str, i: int, t) -> np.ndarray:
        """A NumPy view of parameter tensor ``t`` (CPU, dense, float32/float64, or
        float16/bfloat16 where the engine steps half parameters; C- or F-contiguous);
        raises naming it."""
        what = f"parameter {i}"
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{f}: {what} must be a torch.Tensor, got {type(t).__name__}")
        _check_tensor(f, what, t, self._half_ok)
        return _numpy_view(t)

    # ---- step ----------------------------------------------------------------------------
    def step(self, closure=None):
        """One fused, in-place step of every parameter with a gradient (``None`` gradients
        are skipped, as in torch); ``closure`` re-evaluates the model and returns the loss,
        which is returned.

        Every gradient is checked (CPU, dense, the parameter's dtype, shape and memory
        order, no memory shared with the parameters or state) before anything is
        updated; on an error nothing changes. Step pre/post hooks (this optimizer's and
        the global ones) run as in torch, and under the profiler the step is recorded as
        torch's are (``Optimizer.step#<name>.step``)."""
        if (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                or _torch_optimizer._global_optimizer_pre_hooks
                or _torch_optimizer._global_optimizer_post_hooks
                or torch._C._autograd._profiler_enabled()):
            return _with_hooks(self, closure)
        return self._step(closure)

    # torch wraps an optimizer's step in hooks and a profiler range on every call (it
    # costs as much as a small fused step); this one does that only when there is a hook
    # or a profiler, and "hooked" tells torch's constructor not to wrap it again
    step.hooked = True

    def _step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        f = f"{self._name}.step"
        self._sync_groups(f)
        grads, held = self._grad_views(f)
        self._engine.step(grads)
        del held
        self._after_step()
        return loss

    def _sync_groups(self, f: str) -> None:
        """Push what changed in torch's groups (a scheduler's lr, any hyperparameter) to
        the engine's groups; everything is validated before any group changes."""
        names = self._hyper_names_cached
        changes = []
        for i, (mine, theirs) in enumerate(zip(self.param_groups, self._engine._groups)):
            lr = mine["lr"]
            if isinstance(lr, torch.Tensor):
                lr = lr.item()
            values = tuple(mine.get(k) for k in names)
            if mine.get("capturable") or mine.get("differentiable"):
                values = None                   # refused below
            if lr != theirs.lr or values != self._groups_seen[i]:
                changes.append((i, theirs, lr, values))
        if not changes:
            return
        checked = []
        for i, theirs, lr, values in changes:
            for flag, why in _REFUSED_FLAGS.items():
                if self.param_groups[i].get(flag):
                    raise ValueError(f"{f}: param_groups[{i}]: {why}")
            group = dict(theirs.hyper, **dict(zip(names, values)))
            hyper = self._engine._validate(f"{f}: param_groups[{i}]", group)
            _groups.check_eps(self._engine, f"{f}: param_groups[{i}]", hyper,
                              self._engine._params[theirs.start:theirs.stop])
            plan = self._engine._plan(hyper)
            if plan[2] != theirs.slots:
                raise ValueError(
                    f"{f}: param_groups[{i}]: the new hyperparameters would change the "
                    f"group's state buffers ({[s for s in theirs.slots if s]} -> "
                    f"{[s for s in plan[2] if s]}); create the optimizer with them instead")
            checked.append((i, theirs, _float_lr(f"{f}: param_groups[{i}]", lr), values,
                            hyper, plan))
        for i, theirs, lr, values, hyper, plan in checked:
            theirs.lr = lr
            if values != self._groups_seen[i]:
                theirs.set_hyper(hyper, plan)
                self._groups_seen[i] = values

    @property
    def _hyper_names_cached(self) -> Tuple[str, ...]:
        names = self.__dict__.get("_hyper_names_value")
        if names is None:
            names = self._hyper_names_value = self._hyper_names()
        return names

    def _grad_views(self, f: str) -> Tuple[list, list]:
        """(NumPy views of the gradients, ``None`` where a parameter has none; the
        gradient tensors, which the caller holds while it uses the views), after checking
        that each parameter still uses the memory the engine holds: in one compiled loop
        (:class:`fastoptim.torch._views.GradViews`) where each gradient has its
        parameter's dtype, shape and strides, else through ``tensor.numpy()`` with the
        checks that name what is wrong (the engine's step checks the rest)."""
        n = len(self._tensors)
        out, held = [None] * n, [None] * n
        start = 0
        while True:
            status, i = self._views.fill(out, held, start)
            if status == 0:
                return out, held
            if status == 1:
                raise RuntimeError(
                    f"{f}: parameter {i} no longer uses the memory the optimizer was built "
                    f"on (its .data was replaced, as module.to(...) does); create the "
                    f"optimizer after moving or converting the model")
            g = held[i]
            _check_tensor(f, f"the gradient of parameter {i}", g, self._half_ok)
            out[i] = _numpy_view(g)     # another shape or layout: the engine names it
            start = i + 1

    def _after_step(self) -> None:
        """The engine's step counts (and carried scalars) into the tensors of
        ``self.state``; state entries for parameters that stepped for the first time."""
        engine = self._engine
        if engine._steps is None:
            self._steps.fill(engine._n.step_all)
        else:
            self._steps[:] = engine._steps
        if self._stateful < len(self._tensors):
            self._rebind_state()
        self._write_scalars()

    # ---- state ---------------------------------------------------------------------------
    def _scalars(self) -> Dict[str, List[float]]:
        """Scalar state torch keeps as a tensor per parameter (NAdam's ``mu_product``):
        name -> value per parameter. Subclasses add derived ones (ASGD's ``eta``)."""
        return dict(self._engine._scalars)

    def _write_scalars(self) -> None:
        arrays = self.__dict__.get("_scalar_arrays")
        if not arrays:
            return
        for name, values in self._scalars().items():
            arrays[name][:] = values

    def _rebind_state(self) -> None:
        """``self.state[p]``, in torch's layout, for every parameter that has stepped
        (every parameter for a class whose torch twin makes its state at construction):
        views of the engine's buffers and of the step-count array."""
        engine = self._engine
        counts = engine._step_counts()
        scalars = self._scalars()
        arrays = self.__dict__.get("_scalar_arrays") or {}
        for name, values in scalars.items():
            if name not in arrays or len(arrays[name]) != len(values):
                arrays[name] = np.array(values, dtype=self._scalar_dtype)
        self._scalar_arrays = arrays
        self._steps[:] = counts
        steps = torch.from_numpy(self._steps)
        state = defaultdict(dict)
        stateful = 0
        for i, t in enumerate(self._tensors):
            if not (counts[i] or self._eager_state):
                continue
            entry = {}
            if self._has_step:
                entry["step"] = steps[i]
            for name, value in arrays.items():
                entry[name] = torch.from_numpy(value)[i]
            for name, bufs in engine._state.items():
                if bufs[i] is not None:
                    entry[self._torch_names.get(name, name)] = _tensor_view(bufs[i])
            if entry:           # (torch's SGD without momentum keeps no state)
                state[t] = entry
            stateful += 1
        # torch keeps entries of tensors that are no longer parameters: none here
        self.state = state
        self._stateful = stateful if stateful == len(self._tensors) else 0

    # ---- state dicts ---------------------------------------------------------------------
    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load a state dict in torch's layout: this class's, or the same-named
        ``torch.optim`` optimizer's. Everything is checked (group sizes, state names,
        shapes, hyperparameters) before anything changes; the values are copied into the
        engine's buffers, so ``self.state`` keeps viewing them."""
        f = f"{self._name}.load_state_dict"
        engine_dict = self._engine_state_dict(f, state_dict)
        _state_dict.checked(self._engine, engine_dict)      # raises; changes nothing
        super().load_state_dict(state_dict)
        self._engine.load_state_dict(engine_dict)
        self._groups_seen = [None] * len(self.param_groups)
        self._rebind_state()

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:         # keys an older or torch's dict lacks
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    def __getstate__(self):
        raise TypeError(f"{self._name} cannot be pickled or deep-copied (its state views "
                        f"the engine's memory); save and load its state_dict() instead")

    def _engine_state_dict(self, f: str, sd: Dict[str, Any]) -> dict:
        """``sd`` (torch's layout) as the engine's state dict (fastoptim's layout), checked
        for its structure and state names."""
        if not isinstance(sd, dict) or "state" not in sd or "param_groups" not in sd:
            raise ValueError(f"{f}: state_dict must be a dict with 'state' and "
                             f"'param_groups' (torch's layout)")
        engine = self._engine
        saved_groups = sd["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{f}: loaded state dict has {len(saved_groups)} parameter "
                             f"groups, the optimizer {len(self.param_groups)}")
        ids = []
        for i, (saved, mine) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(mine["params"]):
                raise ValueError(f"{f}: param_groups[{i}] has {len(saved['params'])} "
                                 f"parameters in the loaded state dict, "
                                 f"{len(mine['params'])} here")
            ids.extend(saved["params"])
        back = {v: k for k, v in self._torch_names.items()}
        scalar_names = set(self._scalars())
        names = set(engine._state)
        steps, buffers, scalars = [], {n: [] for n in names}, {
            n: [] for n in engine._scalars}
        for i, pid in enumerate(ids):
            entry = sd["state"].get(pid, {})
            param = engine._params[i]
            for key, value in entry.items():
                name = back.get(key, key)
                if key == "step" or name in names or key in scalar_names:
                    continue
                raise ValueError(f"{f}: the state of parameter {i} has {key!r}; "
                                 f"{type(self).__name__} keeps "
                                 f"{sorted(self._torch_state_names())}")
            if self._has_step:
                step = entry.get("step", 0)
                step = step.item() if isinstance(step, torch.Tensor) else step
                if isinstance(step, (bool, np.bool_)) or not isinstance(step, Real) \
                        or not math.isfinite(step) or step != int(step) or step < 0:
                    raise ValueError(f"{f}: the step of parameter {i} is {step!r}, not a "
                                     f"count")
                step = int(step)
            else:
                step = 1 if entry else 0
            steps.append(step)
            for name in names:
                if engine._state[name][i] is None:
                    continue
                value = entry.get(self._torch_names.get(name, name))
                if value is None:
                    # a new state; and the master copy of half parameters, which torch's
                    # state dicts lack: the parameter as it is loaded, in float32
                    fresh = engine._new_states(name, [param], engine._groups[
                        self._group_of(i)].hyper)[0] if step == 0 or name == "master" \
                        else None
                    if fresh is None:
                        kind = getattr(engine, "state_dtype", None)
                        hint = (f" (this optimizer keeps state_dtype={kind!r} state: load "
                                f"a state dict saved with it)"
                                if kind in ("bfloat16", "int8") else "")
                        raise ValueError(f"{f}: the state of parameter {i} has no "
                                         f"{self._torch_names.get(name, name)!r}{hint}")
                    value = fresh
                buffers[name].append(_as_array(value, engine._state[name][i].dtype))
            for name in engine._scalars:
                value = entry.get(name)
                value = engine._scalar_initial[name] if value is None else value
                scalars[name].append(float(value))
        groups = []
        for i, (saved, mine) in enumerate(zip(saved_groups, engine._groups)):
            hyper = {k: saved.get(k, mine.hyper[k]) for k in mine.hyper}
            lr = saved.get("lr", mine.lr)
            groups.append(dict(hyper, lr=_float_lr(f"{f}: param_groups[{i}]", lr),
                               params=list(range(mine.start, mine.stop))))
        out = {
            "optimizer": type(engine).__name__,
            "step": max(steps, default=0),
            "skipped_steps": engine._n.skipped,
            "param_keys": list(engine._keys),
            "hyperparameters": {k: v for k, v in groups[0].items() if k != "params"},
            "param_groups": groups,
            "steps": steps,
            "params": list(engine._params),
            "state": buffers,
            "state_params": _state_dict.state_params(engine),
        }
        if engine._scalars:
            out["scalars"] = scalars
        return out

    def _group_of(self, i: int) -> int:
        for k, g in enumerate(self._engine._groups):
            if g.start <= i < g.stop:
                return k
        raise IndexError(i)

    def _torch_state_names(self) -> set:
        names = {self._torch_names.get(n, n) for n in self._engine._state}
        names |= set(self._scalars())
        return names | ({"step"} if self._has_step else set())


@torch.optim.Optimizer.profile_hook_step
def _with_hooks(self, closure=None):
    """The step inside torch's own wrapper: hooks and the profiler's range."""
    return self._step(closure)


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return np.dtype(np.float64 if dtype == torch.float64 else np.float32)


def _float_lr(f: str, lr) -> float:
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1:
            raise ValueError(f"{f}: lr as a Tensor must have one element")
        lr = lr.item()
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise TypeError(f"{f}: lr must be a float (a schedule is torch's lr_scheduler's "
                        f"job), got {type(lr).__name__}")
    if not lr >= 0 or lr == float("inf"):
        raise ValueError(f"{f}: lr must be a finite float >= 0, got {lr!r}")
    return float(lr)


def _check_tensor(f: str, what: str, t: torch.Tensor, half_ok: bool = False) -> None:
    """Raise naming ``what`` unless ``t`` is a dense CPU float32/float64 tensor (or
    float16/bfloat16 when ``half_ok``) a NumPy view can see (contiguity is the engine's
    check, on the view)."""
    if t.device.type != "cpu":
        raise ValueError(f"{f}: {what} is on {t.device}; fastoptim.torch steps CPU tensors "
                         f"(use torch.optim with fused=True on {t.device.type})")
    if t.layout != torch.strided:
        raise ValueError(f"{f}: {what} is {t.layout}; sparse tensors and gradients are not "
                         f"supported (torch.optim.SparseAdam handles sparse gradients)")
    if t.dtype not in _DTYPES and not (half_ok and t.dtype in _HALF_DTYPES):
        raise TypeError(f"{f}: {what} is {t.dtype}; fastoptim.torch supports "
                        f"torch.float32 and torch.float64 (and torch.float16 and "
                        f"torch.bfloat16 parameters in Adam and AdamW)")
    if t.is_conj() or t.is_neg():
        raise ValueError(f"{f}: {what} has a lazy conjugate/negative bit; resolve it first")
    if t.numel() and t.data_ptr() == 0:
        raise ValueError(f"{f}: {what} has no memory (its storage was freed or resized to "
                         f"0 bytes)")


def _numpy_view(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of checked tensor ``t`` (:func:`_check_tensor`): a bfloat16 tensor,
    which NumPy's torch bridge does not know, as an ``ml_dtypes.bfloat16`` array on the same
    bits."""
    if t.dtype == torch.bfloat16:
        import ml_dtypes
        return t.detach().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.detach().numpy()


def _tensor_view(a: np.ndarray) -> torch.Tensor:
    """A tensor on the memory of the engine's buffer ``a`` (a bfloat16 state, an ml_dtypes
    array NumPy's torch bridge does not know, as torch.bfloat16 on the same bits)."""
    if a.dtype.kind == "V" or a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _as_array(value, dtype: np.dtype) -> np.ndarray:
    """A saved state value as a NumPy array for an engine buffer of ``dtype``. A float
    buffer's value is converted as torch's load_state_dict casts it: to the parameter's
    dtype. A compressed buffer (bfloat16, or uint8 codes) takes a value of its own dtype
    only, bit for bit; any other value is returned unconverted, and the engine's check
    refuses it naming the buffer and both dtypes (float state does not load into a
    compressed optimizer)."""
    if dtype.kind == "f" and dtype.name != "bfloat16":
        if isinstance(value, torch.Tensor):
            value = value.detach().to(device="cpu")
            if value.dtype not in _DTYPES:
                value = value.to(torch.float64)
            value = value.numpy()
        return np.asarray(value).astype(dtype, copy=False)
    if isinstance(value, torch.Tensor):
        value = value.detach().to(device="cpu")
        if value.dtype == torch.bfloat16 and dtype.name == "bfloat16":
            return _numpy_view(value)
        if value.dtype == torch.bfloat16:
            value = value.to(torch.float32)
        value = value.numpy()
    return np.asarray(value)
