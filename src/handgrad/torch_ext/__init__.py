"""The PyTorch bridge: hand-written autograd Functions, an Adam optimizer, model export/import.

- :mod:`~handgrad.torch_ext.functions`: ``torch.autograd.Function`` subclasses whose backward
  passes are written by hand (``LinearFunction``, ``ReLUFunction``, ``BatchNormFunction``, ...).
- :mod:`~handgrad.torch_ext.modules`: ``torch.nn.Module`` wrappers on those Functions
  (``Linear``, ``ReLU``, ``BatchNorm1d``, ``Conv2d``, ...), usable in ``torch.nn.Sequential``.
- :class:`Adam`: a ``torch.optim.Optimizer`` with the update written out.
- :func:`to_torch` / :func:`from_torch`: handgrad models to ``torch.nn`` and back.
- :func:`torch_parity`: the experiment that trains one network in both and compares.

This is the only part of handgrad that imports torch; it is an optional dependency
(``pip install "handgrad[torch]"``).
"""

try:
    import torch  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only where torch is absent
    raise ImportError(
        'handgrad.torch_ext needs PyTorch, which is not installed: pip install "handgrad[torch]"'
    ) from err

from handgrad.torch_ext.bridge import from_torch, supported_layers, to_torch
from handgrad.torch_ext.functions import (
    AvgPool2dFunction,
    BatchNormEvalFunction,
    BatchNormFunction,
    Conv2dFunction,
    DropoutFunction,
    ELUFunction,
    FlattenFunction,
    GELUFunction,
    LeakyReLUFunction,
    LinearFunction,
    LogSoftmaxFunction,
    MaxPool2dFunction,
    ReLUFunction,
    SigmoidFunction,
    SoftmaxCrossEntropyFunction,
    SoftmaxFunction,
    SoftplusFunction,
    TanhFunction,
)
from handgrad.torch_ext.modules import (
    ELU,
    GELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from handgrad.torch_ext.optim import Adam
from handgrad.torch_ext.parity import torch_parity

__all__ = [
    "ELU",
    "GELU",
    "Adam",
    "AvgPool2d",
    "AvgPool2dFunction",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNormEvalFunction",
    "BatchNormFunction",
    "Conv2d",
    "Conv2dFunction",
    "CrossEntropyLoss",
    "Dropout",
    "DropoutFunction",
    "ELUFunction",
    "Flatten",
    "FlattenFunction",
    "GELUFunction",
    "LeakyReLU",
    "LeakyReLUFunction",
    "Linear",
    "LinearFunction",
    "LogSoftmax",
    "LogSoftmaxFunction",
    "MaxPool2d",
    "MaxPool2dFunction",
    "ReLU",
    "ReLUFunction",
    "Sigmoid",
    "SigmoidFunction",
    "Softmax",
    "SoftmaxCrossEntropyFunction",
    "SoftmaxFunction",
    "Softplus",
    "SoftplusFunction",
    "Tanh",
    "TanhFunction",
    "from_torch",
    "supported_layers",
    "to_torch",
    "torch_parity",
]
