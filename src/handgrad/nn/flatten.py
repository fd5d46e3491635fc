"""Flatten: a reshape forward, the reshape back in backward; nothing to learn."""

from __future__ import annotations

import numpy as np

from handgrad._validate import check_int
from handgrad.nn.module import Module

__all__ = ["Flatten"]


class Flatten(Module):
    """Flattens dims ``start_dim`` .. ``end_dim`` into one: (N, C, H, W) -> (N, C*H*W).

    Examples:
        >>> m = nn.Flatten()
        >>> m(np.zeros((32, 1, 5, 5))).shape
        (32, 25)
        >>> m.backward(np.zeros((32, 25))).shape
        (32, 1, 5, 5)
        >>> nn.Flatten(0, 2)(np.zeros((2, 3, 4, 5))).shape
        (24, 5)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = check_int("Flatten", "start_dim", start_dim)
        self.end_dim = check_int("Flatten", "end_dim", end_dim)
        self._shape: tuple[int, ...] | None = None
        self._out_shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        nd = x.ndim
        start = self.start_dim % nd if -nd <= self.start_dim < nd else None
        end = self.end_dim % nd if -nd <= self.end_dim < nd else None
        if start is None or end is None or start > end:
            raise ValueError(f"{self}: cannot flatten input of shape {x.shape}")
        self._shape = x.shape
        new_shape = (*x.shape[:start], int(np.prod(x.shape[start : end + 1])), *x.shape[end + 1 :])
        self._out_shape = new_shape
        return x.reshape(new_shape)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        shape = self._saved(self._shape)
        self._saved(shape, grad_out, self._out_shape)
        return grad_out.reshape(shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
