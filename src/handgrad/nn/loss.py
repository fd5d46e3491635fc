"""Losses: ``value = loss(pred, target)`` returns a float; ``loss.backward()`` returns
d value / d pred, with the same shape and dtype as ``pred``.

``reduction='mean'`` averages over the batch (over every element for the element-wise losses,
over the N samples for the classification losses), ``'sum'`` adds up.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from handgrad._validate import check_choice
from handgrad.nn.module import _FLOATS, Module, _ndarray, check_input

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "Loss",
    "MSELoss",
    "NLLLoss",
    "ProbCrossEntropyLoss",
]


class Loss(Module):
    """Base class: validates ``reduction`` and gives ``backward()`` its no-argument contract.

    A subclass's ``forward`` returns the value and stores d value / d pred in ``self._grad``.

    Examples:
        >>> class L1Loss(nn.Loss):
        ...     def forward(self, pred, target):
        ...         diff = pred - target
        ...         self._grad = np.sign(diff) * self._scale(diff.size)
        ...         return self._reduce(np.abs(diff), diff.size)
        >>> loss = L1Loss()
        >>> loss(np.array([1.0, 3.0]), np.array([2.0, 2.0]))
        1.0
        >>> loss.backward().tolist()
        [-0.5, 0.5]
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_choice(type(self).__name__, "reduction", reduction, ("mean", "sum"))
        self._grad: np.ndarray | None = None

    def forward(self, pred: np.ndarray, target: Any) -> float:
        raise NotImplementedError

    def __call__(self, pred: np.ndarray, target: Any) -> float:
        # the input rule of every layer (handgrad.nn.module.check_input), and a non-empty batch
        if pred.__class__ is not _ndarray or pred.dtype not in _FLOATS or not pred.size:
            pred = self._check_prediction(pred)
        return self.forward(pred, target)

    def _check_prediction(self, pred: Any) -> np.ndarray:
        pred = check_input(self, pred, "prediction")
        if not isinstance(pred, np.ndarray):
            raise TypeError(f"{self}: expected a prediction array, got {type(pred).__name__}")
        if pred.size == 0:
            hint = (
                "a loss needs at least one sample: check the batch (a slice past the end of "
                "the data?)"
                if pred.ndim == 0 or pred.shape[0] == 0
                else "a loss needs at least one output per sample: check the model's last layer"
            )
            raise ValueError(f"{self}: the prediction is empty (shape {pred.shape}); {hint}")
        return pred

    def backward(self, grad_out: float = 1.0) -> np.ndarray:
        """d loss / d pred, scaled by ``grad_out`` (1 by default)."""
        grad = self._saved(self._grad)
        if grad_out == 1.0:
            return grad
        if isinstance(grad_out, (bool, np.bool_)) or not isinstance(grad_out, numbers.Real):
            raise TypeError(
                f"{self}: backward(grad_out) takes a number, the gradient flowing into the "
                f"loss (1 by default), got {grad_out!r}"
            )
        return grad * grad.dtype.type(grad_out)

    def _reduce(self, per_item: np.ndarray, count: int) -> float:
        total = float(per_item.sum())
        return total / count if self.reduction == "mean" else total

    def _scale(self, count: int) -> float:
        return 1.0 / count if self.reduction == "mean" else 1.0

    def _same_shape(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(
                f"{self}: prediction and target must have the same shape, "
                f"got {pred.shape} and {target.shape}"
            )
        return target.astype(pred.dtype, copy=False)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(Loss):
    """mean (or sum) of (pred - target)^2 over every element.

    Examples:
        >>> loss = nn.MSELoss()
        >>> loss(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
        2.0
        >>> loss.backward().tolist()  # 2 (pred - target) / n
        [0.0, -2.0]
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        target = self._same_shape(pred, target)
        diff = pred - target
        self._grad = diff * pred.dtype.type(2.0 * self._scale(diff.size))
        return self._reduce(diff * diff, diff.size)


class BCELoss(Loss):
    """Binary cross-entropy on probabilities p in [0, 1]:
    -(y log p + (1 - y) log(1 - p)), each log clamped at -100 as PyTorch does, so p = 0 or 1
    gives a large finite loss instead of inf.

    Examples:
        >>> loss = nn.BCELoss()
        >>> round(loss(np.array([0.5, 0.0]), np.array([1.0, 1.0])), 4)  # (log 2 + 100) / 2
        50.3466
        >>> loss.backward().tolist()[0]  # (p - y) / (p (1 - p)) / n
        -1.0
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        target = self._same_shape(pred, target)
        if pred.size and (pred.min() < 0 or pred.max() > 1):
            raise ValueError(
                f"{self}: predictions must be probabilities in [0, 1], "
                f"got values in [{pred.min():.4g}, {pred.max():.4g}]"
            )
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(pred), -100.0)
            log_1mp = np.maximum(np.log1p(-pred), -100.0)
        loss = -(target * log_p + (1.0 - target) * log_1mp)
        # d/dp = (p - y) / (p (1 - p)); the denominator is floored at 1e-12 as in torch
        # (torch's constant is a float32, 9.99999996e-13, and so is ours, to match it exactly)
        denom = np.maximum(pred * (1.0 - pred), float(np.float32(1e-12)))
        self._grad = ((pred - target) / denom * self._scale(pred.size)).astype(pred.dtype)
        return self._reduce(loss, pred.size)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits z: softplus(z) - y z, computed as
    max(z, 0) - y z + log(1 + exp(-|z|)) so that no exp overflows; backward sigmoid(z) - y.

    Examples:
        >>> loss = nn.BCEWithLogitsLoss()
        >>> round(loss(np.array([0.0, 1000.0]), np.array([1.0, 1.0])), 4)  # (log 2 + 0) / 2
        0.3466
        >>> loss.backward().tolist()  # (sigmoid(z) - y) / n
        [-0.25, 0.0]
    """

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        target = self._same_shape(pred, target)
        e = np.exp(-np.abs(pred))  # in (0, 1]
        loss = np.maximum(pred, 0) - target * pred + np.log1p(e)
        sig = np.where(pred >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        self._grad = ((sig - target) * self._scale(pred.size)).astype(pred.dtype, copy=False)
        return self._reduce(loss, pred.size)


def _class_targets(loss: Loss, logits: np.ndarray, target: Any) -> np.ndarray:
    """Validate integer class targets (N,) against logits (N, C)."""
    if logits.ndim != 2:
        raise ValueError(f"{loss}: expected input (N, C), got {logits.shape}")
    target = np.asarray(target)
    N, C = logits.shape
    if target.shape != (N,):
        raise ValueError(
            f"{loss}: expected class targets of shape ({N},) for input {logits.shape}, "
            f"got {target.shape}"
        )
    if not np.issubdtype(target.dtype, np.integer):
        raise ValueError(f"{loss}: class targets must be integers, got dtype {target.dtype}")
    if N and (target.min() < 0 or target.max() >= C):
        raise ValueError(
            f"{loss}: class targets must be in [0, {C}), got values in "
            f"[{target.min()}, {target.max()}]"
        )
    return target


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits (N, C).

    ``target`` is either integer classes (N,) or class probabilities (N, C) (rows sum to 1).
    Forward uses log-sum-exp after subtracting the row max; backward is (softmax(z) - y) / N
    for ``reduction='mean'`` (the mean is over the N samples).

    Examples:
        >>> loss = nn.CrossEntropyLoss()
        >>> logits = np.zeros((2, 4))
        >>> round(loss(logits, np.array([0, 3])), 4)  # log 4
        1.3863
        >>> loss.backward().tolist()  # (softmax - one_hot) / N
        [[-0.375, 0.125, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]]
    """

    def forward(self, pred: np.ndarray, target: Any) -> float:
        if pred.ndim != 2:
            raise ValueError(f"{self}: expected input (N, C), got {pred.shape}")
        N = pred.shape[0]
        shifted = pred - pred.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sumexp = exp.sum(axis=1, keepdims=True)
        log_probs = shifted - np.log(sumexp)  # (N, C)
        probs = exp / sumexp  # softmax, reused as the gradient buffer below
        target_arr = np.asarray(target)
        if target_arr.ndim == 2:  # class probabilities
            y = self._same_shape(pred, target_arr)
            loss = -(y * log_probs).sum(axis=1)
            probs -= y
        else:
            cls = _class_targets(self, pred, target_arr)
            rows = np.arange(N)
            loss = -log_probs[rows, cls]
            probs[rows, cls] -= 1.0
        scale = self._scale(N)
        if scale != 1.0:
            probs *= pred.dtype.type(scale)
        self._grad = probs
        return self._reduce(loss, N)


class ProbCrossEntropyLoss(Loss):
    """Cross-entropy on probabilities (N, C), as courses write it: ``-sum(y * log(p)) / N``.

    ``pred`` holds probabilities, the output of a Softmax (each in [0, 1]); ``target`` is
    one-hot (N, C) (or class probabilities of that shape), or integer classes (N,). The value is
    ``-sum_c y_c log p_c`` for each sample, averaged over the N samples (``'mean'``) or summed;
    each log is clamped at -100, as in :class:`BCELoss`, so p = 0 gives a large finite loss.
    Backward is d value / d p = ``-y / p`` (divided by N for ``'mean'``), with p floored at
    1e-12; it is 0 wherever y is 0. Feed it to the Softmax's backward to reach the logits.

    Prefer :class:`CrossEntropyLoss` on logits: it fuses the softmax, stays finite for any
    logits, and its gradient is ``softmax(z) - y`` in one step. This one is for a network that
    ends in :class:`Softmax` (as course MLPs do) and for checking a hand-derived softmax and
    cross-entropy one stage at a time.

    Examples:
        >>> loss = nn.ProbCrossEntropyLoss()
        >>> p = np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
        >>> y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # one-hot
        >>> round(loss(p, y), 4)  # -(log 0.5 + log 0.8) / 2
        0.4581
        >>> loss.backward().tolist()  # -y / p / N
        [[-1.0, 0.0, 0.0], [0.0, 0.0, -0.625]]

        Through a Softmax it gives what CrossEntropyLoss gives on the logits:

        >>> z = np.array([[1.0, -2.0, 0.5]])
        >>> softmax, ce = nn.Softmax(), nn.CrossEntropyLoss()
        >>> value = loss(softmax(z), np.array([2]))
        >>> np.allclose(value, ce(z, np.array([2])))
        True
        >>> np.allclose(softmax.backward(loss.backward()), ce.backward())
        True
    """

    def forward(self, pred: np.ndarray, target: Any) -> float:
        if pred.ndim != 2:
            raise ValueError(f"{self}: expected probabilities (N, C), got {pred.shape}")
        if pred.size and (pred.min() < 0 or pred.max() > 1):
            raise ValueError(
                f"{self}: predictions must be probabilities in [0, 1] (a Softmax output), "
                f"got values in [{pred.min():.4g}, {pred.max():.4g}]; for logits use "
                "CrossEntropyLoss"
            )
        N = pred.shape[0]
        target_arr = np.asarray(target)
        if target_arr.ndim == 2:  # one-hot rows or class probabilities
            y = self._same_shape(pred, target_arr)
        else:
            cls = _class_targets(self, pred, target_arr)
            y = np.zeros_like(pred)
            y[np.arange(N), cls] = 1.0
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(pred), -100.0)
        loss = -(y * log_p).sum(axis=1)
        # d/dp of -y log p is -y / p; the floor keeps p = 0 finite (y = 0 there gives 0, and
        # 0 - y rather than -y, so that it is +0.0, not -0.0)
        grad = (0.0 - y) / np.maximum(pred, pred.dtype.type(1e-12))
        scale = self._scale(N)
        if scale != 1.0:
            grad *= pred.dtype.type(scale)
        self._grad = grad
        return self._reduce(loss, N)


class NLLLoss(Loss):
    """Negative log-likelihood on log-probabilities (N, C) (e.g. from LogSoftmax) and integer
    targets (N,): -mean(input[i, target_i]).

    Examples:
        >>> loss = nn.NLLLoss()
        >>> log_probs = np.log(np.array([[0.5, 0.5], [0.25, 0.75]]))
        >>> round(loss(log_probs, np.array([0, 1])), 4)  # -(log 0.5 + log 0.75) / 2
        0.4904
        >>> loss.backward().tolist()
        [[-0.5, 0.0], [0.0, -0.5]]
    """

    def forward(self, pred: np.ndarray, target: Any) -> float:
        cls = _class_targets(self, pred, target)
        N = pred.shape[0]
        rows = np.arange(N)
        grad = np.zeros_like(pred)
        grad[rows, cls] = -self._scale(N)
        self._grad = grad
        return self._reduce(-pred[rows, cls], N)
