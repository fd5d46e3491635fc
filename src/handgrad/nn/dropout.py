"""Dropout and Flatten: layers that reshape or mask but compute nothing to learn."""

from __future__ import annotations

import numpy as np

from handgrad._util import RNGLike, as_rng
from handgrad.nn.module import Module

__all__ = ["Dropout", "Flatten"]


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    survivors by 1 / (1 - p), so eval mode is the identity. ``p`` is the *drop* probability.

    The mask comes from ``rng`` (a Generator or a seed), so a run is reproducible.
    """

    def __init__(self, p: float = 0.5, *, rng: RNGLike = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.rng = as_rng(rng)
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
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
        return grad_out * self._saved(self._mask)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """Flattens dims ``start_dim`` .. ``end_dim`` into one: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        nd = x.ndim
        start = self.start_dim % nd if -nd <= self.start_dim < nd else None
        end = self.end_dim % nd if -nd <= self.end_dim < nd else None
        if start is None or end is None or start > end:
            raise ValueError(f"{self}: cannot flatten input of shape {x.shape}")
        self._shape = x.shape
        new_shape = (*x.shape[:start], int(np.prod(x.shape[start : end + 1])), *x.shape[end + 1 :])
        return x.reshape(new_shape)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out.reshape(self._saved(self._shape))

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
