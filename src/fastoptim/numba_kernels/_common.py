"""What every Numba kernel shares: the one decorator factory and the per-element helpers."""
from __future__ import annotations

import functools

import numba
from numba.core import types
from numba.extending import intrinsic

__all__ = ["jit", "direction", "nan_max", "float32_bits", "float32_from_bits"]

# The one decorator of every kernel.
jit = functools.partial(numba.njit, parallel=True, cache=True, error_model="numpy",
                        fastmath=False, nogil=True)


@numba.njit(inline="always", cache=True)
def direction(grad, param, grad_sign, weight_decay, use_wd):
    """grad_sign*g (+ weight_decay*p when use_wd: never 0*p, which is NaN for an inf p).
    ``use_wd`` is the same for every element, so LLVM unswitches the loop on it."""
    return grad_sign * grad + weight_decay * param if use_wd else grad_sign * grad


@numba.njit(inline="always", cache=True)
def nan_max(a, b):
    """max(a, b) propagating NaN, like np.maximum."""
    return a if (a > b or a != a) else b


@intrinsic
def float32_bits(typingctx, x):
    """The bits of the float32 ``x`` as a uint32 (a register move: no array per element,
    which ``np.array([x]).view(...)`` would allocate)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint32))
    return types.uint32(types.float32), codegen


@intrinsic
def float32_from_bits(typingctx, u):
    """The float32 whose bits are the uint32 ``u`` (float32_bits' inverse)."""
    if u != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.uint32), codegen
