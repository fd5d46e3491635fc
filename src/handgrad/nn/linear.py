"""Fully connected layers: Linear and Identity."""

from __future__ import annotations

from typing import Any

import numpy as np

from handgrad._util import RNGLike
from handgrad._validate import check_bool, check_float_dtype, check_positive_int, check_rng
from handgrad.nn import init
from handgrad.nn.module import Module, Parameter

__all__ = ["Identity", "Linear"]


class Linear(Module):
    """y = x W^T + b.

    Shape:
        input (*, in_features), output (*, out_features).
        ``weight`` (out_features, in_features), ``bias`` (out_features,), as in PyTorch.
    Init: PyTorch's default, W and b ~ U(-1/sqrt(in_features), 1/sqrt(in_features)).

    Examples:
        >>> m = nn.Linear(20, 30, rng=0)
        >>> x = np.ones((128, 20), dtype=np.float32)
        >>> m(x).shape
        (128, 30)
        >>> m.backward(np.ones((128, 30), dtype=np.float32)).shape  # dL/dx
        (128, 20)
        >>> m.weight.grad.shape, m.bias.grad.shape
        ((30, 20), (30,))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: RNGLike = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("Linear", "in_features", in_features)
        self.out_features = check_positive_int("Linear", "out_features", out_features)
        bias = check_bool("Linear", "bias", bias)
        dtype = check_float_dtype("Linear", dtype)
        gen = check_rng("Linear", rng)
        self.weight = Parameter(
            init.kaiming_uniform((out_features, in_features), in_features, gen, dtype)
        )
        bound = 1.0 / np.sqrt(in_features)
        self.bias = Parameter(init.uniform((out_features,), bound, gen, dtype)) if bias else None
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self}: expected input (N, {self.in_features}), got {x.shape}")
        self._x = x
        out = x @ self.weight.data.T  # (*, out)
        if self.bias is not None:
            out += self.bias.data
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        self.backward_params(grad_out)
        return grad_out @ self.weight.data  # dL/dx = g W, shape (*, in)

    def backward_params(self, grad_out: np.ndarray) -> None:
        """Accumulate dL/dW and dL/db only, skipping dL/dx (for a first layer fed with data,
        whose input gradient nobody needs: a third of its backward FLOPs)."""
        x = self._saved(self._x)
        expected = (*x.shape[:-1], self.out_features)
        if grad_out.shape != expected:
            raise ValueError(f"{self}: expected grad_out {expected}, got {grad_out.shape}")
        g2 = grad_out.reshape(-1, self.out_features)  # (N, out)
        x2 = x.reshape(-1, self.in_features)  # (N, in)
        # dL/dW = g^T x, summed over the batch; dL/db = sum of g over the batch
        self.weight.grad += g2.T @ x2
        if self.bias is not None:
            self.bias.grad += g2.sum(axis=0)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Identity(Module):
    """Returns its input unchanged; the gradient passes through unchanged.

    Examples:
        >>> nn.Identity()(np.array([1.0, 2.0])).tolist()
        [1.0, 2.0]
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out
