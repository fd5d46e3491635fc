"""``torch.nn.Module`` wrappers that run on the hand-written Functions.

Each wrapper subclasses the PyTorch module of the same name, so construction, default
initialisation, parameter and buffer names, ``state_dict``, ``repr`` and ``.to(device)`` are
PyTorch's own; only ``forward`` is replaced by a call to a Function from
:mod:`handgrad.torch_ext.functions`. A ``torch.nn.Sequential`` of these modules therefore
trains on hand-written gradients alone::

    model = torch.nn.Sequential(Linear(2, 16), ReLU(), BatchNorm1d(16), Linear(16, 2))

Options of the PyTorch modules that have no hand-written counterpart (``inplace=True``,
``ceil_mode=True``, ``padding_mode='reflect'``, ...) are refused with a clear error.
"""

from __future__ import annotations

from typing import Any

import torch

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

__all__ = [
    "ELU",
    "GELU",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
]

Tensor = torch.Tensor


class Linear(torch.nn.Linear):
    """``torch.nn.Linear`` on :class:`LinearFunction`. Input (*, in), output (*, out)."""

    def forward(self, input: Tensor) -> Tensor:
        return LinearFunction.apply(input, self.weight, self.bias)


class ReLU(torch.nn.ReLU):
    """``torch.nn.ReLU`` on :class:`ReLUFunction` (no ``inplace`` option)."""

    def __init__(self) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return ReLUFunction.apply(input)


class LeakyReLU(torch.nn.LeakyReLU):
    """``torch.nn.LeakyReLU(negative_slope)`` on :class:`LeakyReLUFunction`."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__(negative_slope)

    def forward(self, input: Tensor) -> Tensor:
        return LeakyReLUFunction.apply(input, self.negative_slope)


class Sigmoid(torch.nn.Sigmoid):
    """``torch.nn.Sigmoid`` on :class:`SigmoidFunction`."""

    def forward(self, input: Tensor) -> Tensor:
        return SigmoidFunction.apply(input)


class Tanh(torch.nn.Tanh):
    """``torch.nn.Tanh`` on :class:`TanhFunction`."""

    def forward(self, input: Tensor) -> Tensor:
        return TanhFunction.apply(input)


class ELU(torch.nn.ELU):
    """``torch.nn.ELU(alpha)`` on :class:`ELUFunction`."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha)

    def forward(self, input: Tensor) -> Tensor:
        return ELUFunction.apply(input, self.alpha)


class Softplus(torch.nn.Softplus):
    """``torch.nn.Softplus(beta, threshold)`` on :class:`SoftplusFunction`."""

    def forward(self, input: Tensor) -> Tensor:
        return SoftplusFunction.apply(input, self.beta, self.threshold)


class GELU(torch.nn.GELU):
    """``torch.nn.GELU(approximate='none'|'tanh')`` on :class:`GELUFunction`."""

    def forward(self, input: Tensor) -> Tensor:
        return GELUFunction.apply(input, self.approximate)


def _check_dim(owner: str, dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        # PyTorch's dim=None guesses the dimension from the input's rank; be explicit instead
        raise ValueError(f"{owner}: dim must be an int, got {dim!r}")
    return dim


class Softmax(torch.nn.Softmax):
    """``torch.nn.Softmax(dim)`` on :class:`SoftmaxFunction` (dim is required to be an int)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__(_check_dim("Softmax", dim))

    def forward(self, input: Tensor) -> Tensor:
        return SoftmaxFunction.apply(input, self.dim)


class LogSoftmax(torch.nn.LogSoftmax):
    """``torch.nn.LogSoftmax(dim)`` on :class:`LogSoftmaxFunction`."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__(_check_dim("LogSoftmax", dim))

    def forward(self, input: Tensor) -> Tensor:
        return LogSoftmaxFunction.apply(input, self.dim)


class Dropout(torch.nn.Dropout):
    """``torch.nn.Dropout(p)`` on :class:`DropoutFunction`; identity in eval mode.

    The mask is drawn with ``torch.rand`` on the input's device, from ``generator`` when given
    (a ``torch.Generator`` on that device), else from torch's default generator.
    """

    def __init__(self, p: float = 0.5, *, generator: torch.Generator | None = None) -> None:
        super().__init__(p)
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return input
        if self.p == 1:
            mask = torch.zeros_like(input)
        else:
            keep = (
                torch.rand(
                    input.shape, dtype=input.dtype, device=input.device, generator=self.generator
                )
                >= self.p
            )
            # inverted dropout: scale the kept units so the expected output equals the input
            mask = keep.to(input.dtype) / (1 - self.p)
        return DropoutFunction.apply(input, mask)


class Flatten(torch.nn.Flatten):
    """``torch.nn.Flatten(start_dim, end_dim)`` on :class:`FlattenFunction`."""

    def forward(self, input: Tensor) -> Tensor:
        return FlattenFunction.apply(input, self.start_dim, self.end_dim)


class _BatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Shared forward of BatchNorm1d/2d: batch statistics in training, running ones in eval.

    Running statistics follow PyTorch exactly: ``running = (1 - momentum) * running +
    momentum * batch`` with the *unbiased* batch variance, ``num_batches_tracked`` counts
    training batches, and ``momentum=None`` means a cumulative average.
    """

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        use_batch_stats = self.training or self.running_mean is None
        if not use_batch_stats:
            return BatchNormEvalFunction.apply(
                input, self.running_mean, self.running_var, self.weight, self.bias, self.eps
            )
        out = BatchNormFunction.apply(input, self.weight, self.bias, self.eps)
        if self.training and self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(input)
        return out

    @torch.no_grad()
    def _update_running_stats(self, input: Tensor) -> None:
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            factor = 1.0 / float(self.num_batches_tracked)
        else:
            factor = self.momentum
        dims = (0, *range(2, input.dim()))
        n = input.numel() // input.shape[1]
        var, mean = torch.var_mean(input.detach(), dim=dims, correction=0)
        # the running variance uses Bessel's correction n / (n - 1), as PyTorch does
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(var * (n / (n - 1)), alpha=factor)


class BatchNorm1d(_BatchNorm, torch.nn.BatchNorm1d):
    """``torch.nn.BatchNorm1d`` on :class:`BatchNormFunction`. Input (N, C) or (N, C, L)."""


class BatchNorm2d(_BatchNorm, torch.nn.BatchNorm2d):
    """``torch.nn.BatchNorm2d`` on :class:`BatchNormFunction`. Input (N, C, H, W)."""


class Conv2d(torch.nn.Conv2d):
    """``torch.nn.Conv2d`` on :class:`Conv2dFunction` (zero padding: ints, pairs, 'valid' or
    'same', uneven as PyTorch's when the total padding is odd)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError(f"Conv2d: padding_mode must be 'zeros', got {self.padding_mode!r}")

    def _pads(self) -> Any:
        """``self.padding`` as Conv2dFunction takes it: a pair, or (top, bottom, left, right)."""
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "same":
            # total dilation * (k - 1) per dimension; the odd one goes at the end, as PyTorch
            (th, tw) = (d * (k - 1) for k, d in zip(self.kernel_size, self.dilation, strict=True))
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        return self.padding

    def forward(self, input: Tensor) -> Tensor:
        return Conv2dFunction.apply(
            input, self.weight, self.bias, self.stride, self._pads(), self.dilation, self.groups
        )


class MaxPool2d(torch.nn.MaxPool2d):
    """``torch.nn.MaxPool2d(kernel_size, stride=None, padding=0)`` on
    :class:`MaxPool2dFunction`."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__(kernel_size, stride, padding)

    def forward(self, input: Tensor) -> Tensor:
        return MaxPool2dFunction.apply(input, self.kernel_size, self.stride, self.padding)


class AvgPool2d(torch.nn.AvgPool2d):
    """``torch.nn.AvgPool2d(kernel_size, stride=None, padding=0)`` on
    :class:`AvgPool2dFunction` (padding is counted in the mean, PyTorch's default)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__(kernel_size, stride, padding)

    def forward(self, input: Tensor) -> Tensor:
        return AvgPool2dFunction.apply(input, self.kernel_size, self.stride, self.padding)


class CrossEntropyLoss(torch.nn.Module):
    """Softmax cross-entropy on :class:`SoftmaxCrossEntropyFunction`.

    ``loss(logits, target)``: logits (N, C), target int64 (N,) or probabilities (N, C);
    ``reduction='mean'|'sum'|'none'``.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                f"CrossEntropyLoss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
            )
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return SoftmaxCrossEntropyFunction.apply(input, target, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
