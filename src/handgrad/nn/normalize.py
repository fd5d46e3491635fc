"""The alternative output normalisation p_j = a_j / sum_k a_k, next to softmax.

Softmax is ``exp`` followed by dividing by the sum. Any other positive function can take the
place of ``exp``: ``SumNormalize`` divides a non-negative input by its sum along ``dim`` (put a
positive activation such as ``Softplus`` or ``Sigmoid`` in front of it so it is defined), and
``LogSumNormalize`` returns the logarithm of that, ready for ``NLLLoss`` as ``LogSoftmax`` is.
With ``exp`` in front, both reproduce softmax and log-softmax exactly (up to rounding).

Import from here (``from handgrad.nn.normalize import SumNormalize``); NumPy only.
"""

from __future__ import annotations

import numpy as np

from handgrad._validate import check_int
from handgrad.nn.module import Module

__all__ = ["LOG_FLOOR", "LogSumNormalize", "SumNormalize"]

# log(0) is clamped here, as BCELoss (and torch's) clamps its logs: a zero input gives a large
# finite log-probability (and a zero gradient) instead of -inf and NaNs downstream
LOG_FLOOR = -100.0


def _check_input(layer: Module, dim: int, x: np.ndarray) -> np.ndarray:
    """Validate ``dim`` and the sign of ``x``; returns the sums along ``dim`` (keepdims)."""
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"{layer}: dim {dim} is out of range for input of shape {x.shape}")
    s = x.sum(axis=dim, keepdims=True)
    if x.size and (x.min() < 0 or s.min() <= 0):
        raise ValueError(
            f"{layer}: expected input >= 0 with a positive sum along dim {dim} (put a positive "
            f"activation such as Softplus in front), got min {x.min():.4g} and smallest sum "
            f"{s.min():.4g}"
        )
    return s


class SumNormalize(Module):
    """p_j = x_j / sum_k x_k along ``dim``, for x >= 0 with a positive sum.

    Shape: any; the output has the input's shape and sums to 1 along ``dim``.
    Raises ValueError for a negative entry or a zero sum (naming both), or an invalid ``dim``.

    Examples:
        >>> from handgrad.nn.normalize import SumNormalize
        >>> m = SumNormalize()
        >>> m(np.array([[1.0, 3.0]])).tolist()
        [[0.25, 0.75]]
        >>> m.backward(np.array([[1.0, 0.0]])).tolist()  # (g - <g, p>) / S
        [[0.1875, -0.0625]]
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = check_int(type(self).__name__, "dim", dim)
        self._out: np.ndarray | None = None
        self._sum: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._sum = _check_input(self, self.dim, x)
        self._out = x / self._sum
        return self._out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        p, s = self._saved(self._out, grad_out), self._saved(self._sum)
        # d p_j / d x_i = (delta_ij - p_j) / S, so grad_in_i = (g_i - <g, p>) / S
        return (grad_out - (grad_out * p).sum(axis=self.dim, keepdims=True)) / s

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSumNormalize(Module):
    """log p_j = log x_j - log sum_k x_k along ``dim``, for x >= 0 with a positive sum.

    Feed it to ``NLLLoss``: ``Linear -> Softplus -> LogSumNormalize -> NLLLoss`` is the
    alternative-normalisation classifier, as ``Linear -> LogSoftmax -> NLLLoss`` is the softmax
    one. ``log x_j`` is clamped at ``LOG_FLOOR`` (-100): an entry that underflowed to 0 gives
    -100 and no gradient through its own log (it still gets -g/S through the sum).

    Shape: any; the output has the input's shape.

    Examples:
        >>> from handgrad.nn.normalize import LogSumNormalize
        >>> m = LogSumNormalize()
        >>> np.exp(m(np.array([[1.0, 3.0]]))).round(4).tolist()
        [[0.25, 0.75]]
        >>> round(nn.NLLLoss()(m(np.array([[1.0, 3.0]])), np.array([1])), 4)  # -log 0.75
        0.2877
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = check_int(type(self).__name__, "dim", dim)
        self._x: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._live: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        s = _check_input(self, self.dim, x)
        with np.errstate(divide="ignore"):
            log_x = np.log(x)
        self._live = log_x > LOG_FLOOR
        self._x, self._sum = x, s
        return np.maximum(log_x, x.dtype.type(LOG_FLOOR)) - np.log(s)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x, s = self._saved(self._x, grad_out), self._saved(self._sum)
        live = self._saved(self._live)
        # d/dx_i (log x_j - log S) = delta_ij / x_i - 1 / S
        safe = np.where(live, x, x.dtype.type(1))  # no division by 0 where the log was clamped
        own = np.where(live, grad_out / safe, grad_out.dtype.type(0))
        return own - grad_out.sum(axis=self.dim, keepdims=True) / s

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
