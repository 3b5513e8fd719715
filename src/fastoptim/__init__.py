"""fastoptim: one optimizer step on NumPy arrays, fused into one in-place pass over memory.

The functional kernels (:mod:`fastoptim.functional`) update their arrays in place::

    import numpy as np, fastoptim
    W = np.random.randn(256, 128).astype(np.float32)
    dW = np.random.randn(256, 128).astype(np.float32)
    m, v = np.zeros_like(W), np.zeros_like(W)
    fastoptim.adam_step(W, dW, m, v, step=1, lr=1e-3)

The naive NumPy formulas they replace live in :mod:`fastoptim.reference`.
"""
from . import _openmp  # noqa: F401  (first: loads the kernels with OpenMP's wait policy)
from ._backends import warmup
from ._config import show_config
from ._threads import get_num_threads, set_num_threads
from . import optimizers as _optimizers
from .optimizers import *  # noqa: F401,F403  (every optimizer's functions and classes)
from ._optimizer import Optimizer
from ._include import get_include
from . import schedules
from .data import minibatches
from .clip import clip_grad_norm, clip_grad_value
from .ema import ExponentialMovingAverage
from .checkpoint import load_state, save_state

__version__ = "0.2.0.dev0"

__all__ = list(_optimizers.FUNCTIONS) + [
    "get_include", "set_num_threads", "get_num_threads", "warmup", "show_config",
    "Optimizer"] + list(_optimizers.CLASSES) + ["schedules", "minibatches",
    "clip_grad_norm", "clip_grad_value", "ExponentialMovingAverage", "save_state",
    "load_state", "__version__",
]
