"""What a parameter group needs of an update rule that is not a registry kernel.

An :class:`~fastoptim._optimizer.Optimizer` subclass whose rule is not element-wise (LAMB's
trust ratio, Muon's Newton-Schulz iteration) sets ``_elementwise = False``, returns a
:class:`Rule` as the second entry of its ``_plan`` (where a registry class has its
:class:`~fastoptim._dispatch.KernelCall`) and overrides ``_apply_bucket``. A
:class:`~fastoptim._groups.ParamGroup` then computes the rule's per-call coefficients once
per bucket with :meth:`Rule.coefficients_of`, as it does for a registry kernel.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable, Sequence

__all__ = ["Rule"]


class Rule:
    """The hyperparameter names of a rule's coefficients (``"lr"`` among them, ``"step"``
    when it takes the step count) and the function of their values that makes the
    coefficients of one call."""

    def __init__(self, name: str, hyper_names: Sequence[str],
                 coefficients_of: Callable[[tuple], object]) -> None:
        self.name = name
        self.hyper_names = tuple(hyper_names)
        self.coefficients_of = coefficients_of
        self.kernel = SimpleNamespace(name=name, carried={})    # no carried scalar state

    def values(self, functional: dict) -> tuple:
        """The rule's hyperparameter values (``step`` unset) from the functional ones."""
        return tuple(functional.get(name) for name in self.hyper_names)
