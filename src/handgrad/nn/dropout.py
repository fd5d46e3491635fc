"""Dropout: a random mask in training, the identity in eval; nothing to learn."""

from __future__ import annotations

import numpy as np

from handgrad._util import RNGLike
from handgrad._validate import check_range, check_rng
from handgrad.nn.module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    survivors by 1 / (1 - p), so eval mode is the identity. ``p`` is the *drop* probability.

    The mask comes from ``rng`` (a Generator or a seed), so a run is reproducible.

    Examples:
        >>> m = nn.Dropout(p=0.5, rng=0)
        >>> m(np.ones((2, 4))).tolist()  # dropped, or kept and scaled by 1 / (1 - p)
        [[2.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]]
        >>> m.eval()(np.ones(3)).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, *, rng: RNGLike = None) -> None:
        super().__init__()
        self.p = check_range("Dropout", "p", p, 0.0, 1.0, what="a probability in [0, 1]")
        self.rng = check_rng("Dropout", rng)
        self._mask: np.ndarray | None = None
        self._shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        if not self.training or self.p == 0.0:
            self._mask = np.ones((), dtype=x.dtype)  # identity: gradient passes unchanged
            return x
        if self.p == 1.0:
            self._mask = np.zeros((), dtype=x.dtype)
            return np.zeros_like(x)
        keep = self.rng.random(x.shape) >= self.p
        self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self._mask

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self._saved(self._mask, grad_out, self._shape)

    def extra_repr(self) -> str:
        return f"p={self.p}"
