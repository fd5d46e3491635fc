"""handgrad.optim: SGD, Adam, AdamW, RMSprop and learning-rate schedules, matching torch.optim.

Each optimizer updates ``Parameter.data`` in place from ``Parameter.grad``, update for update
as its ``torch.optim`` namesake (same defaults, bias correction and weight-decay semantics),
and has torch's ``state_dict()`` layout. ``flatten_state`` / ``unflatten_state`` turn a state
dict into a flat ``{key: ndarray}`` for ``np.savez`` and back.

The Examples in the docstrings assume ``import numpy as np`` and ``from handgrad import nn,
optim``; ``tests/test_doctests.py`` runs them.
"""

from handgrad.optim.adam import Adam, AdamW
from handgrad.optim.flat_state import flatten_state, unflatten_state
from handgrad.optim.lr_scheduler import CosineAnnealingLR, ExponentialLR, LRScheduler, StepLR
from handgrad.optim.optimizer import Optimizer
from handgrad.optim.rmsprop import RMSprop
from handgrad.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "Optimizer",
    "RMSprop",
    "StepLR",
    "flatten_state",
    "unflatten_state",
]
