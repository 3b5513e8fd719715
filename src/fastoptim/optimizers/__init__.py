"""One module per optimizer: its functional step(s) and its class, torch.optim's way.

Each module holds the readable side of one update rule: the functional ``<kernel>_step``
(signature, formula, a call into :mod:`fastoptim._dispatch`) and the class (signature,
formula, and how its hyperparameters map to the kernel's). The kernels themselves are
described in :mod:`fastoptim._registry`; the formulas live in ``csrc/<kernel>.h`` (C),
:mod:`fastoptim.numba_kernels` and :mod:`fastoptim.reference`.

:data:`FUNCTIONS` and :data:`CLASSES` list what :mod:`fastoptim.functional`,
:mod:`fastoptim.optim` and :mod:`fastoptim` export: adding an optimizer adds its module's
import here and nothing in those three.
"""
from .sgd import SGD, momentum_step, sgd_step
from .rmsprop import RMSprop, rmsprop_step
from .adam import Adam, AdamW, adam_step
from .adagrad import Adagrad, adagrad_step
from .ewa import ewa_update
from .rprop import Rprop, rprop_step
from .asgd import ASGD, asgd_step

FUNCTIONS = ["sgd_step", "momentum_step", "rmsprop_step", "adam_step", "adagrad_step",
             "ewa_update"]
CLASSES = ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad"]
FUNCTIONS += ["rprop_step", "asgd_step"]
CLASSES += ["Rprop", "ASGD"]

__all__ = FUNCTIONS + CLASSES
