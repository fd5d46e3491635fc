"""Layers and losses, each with a hand-written backward pass.

The Examples in the docstrings assume ``import numpy as np`` and ``from handgrad import nn``
(and ``optim``); ``tests/test_doctests.py`` runs them.
"""

from handgrad.nn.activation import (
    ELU,
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from handgrad.nn.batchnorm import BatchNorm1d, BatchNorm2d
from handgrad.nn.conv import Conv2d
from handgrad.nn.dropout import Dropout
from handgrad.nn.flatten import Flatten
from handgrad.nn.linear import Identity, Linear
from handgrad.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    Loss,
    MSELoss,
    NLLLoss,
    ProbCrossEntropyLoss,
)
from handgrad.nn.module import Module, Parameter, Sequential
from handgrad.nn.pooling import AvgPool2d, MaxPool2d

__all__ = [
    "ELU",
    "GELU",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Identity",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "Loss",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "NLLLoss",
    "Parameter",
    "ProbCrossEntropyLoss",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
]
