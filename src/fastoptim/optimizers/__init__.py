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
from .adamax import Adamax, adamax_step
from .radam import RAdam, radam_step
from .lamb import LAMB, lamb_step
from .lion import Lion, lion_step
from .nadam import NAdam, nadam_step
from .adadelta import Adadelta, adadelta_step
from .rprop import Rprop, rprop_step
from .asgd import ASGD, asgd_step
from .muon import Muon, muon_step
from .adafactor import Adafactor, adafactor_step

FUNCTIONS = ["sgd_step", "momentum_step", "rmsprop_step", "adam_step", "adagrad_step",
             "ewa_update", "adamax_step", "radam_step", "lamb_step",
             "lion_step", "nadam_step", "adadelta_step", "rprop_step",
             "asgd_step", "muon_step", "adafactor_step"]
CLASSES = ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adamax", "RAdam", "LAMB", "Lion",
           "NAdam", "Adadelta", "Rprop", "ASGD", "Muon", "Adafactor"]

__all__ = FUNCTIONS + CLASSES
