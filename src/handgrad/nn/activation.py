"""Element-wise activations and the softmax family, each with its derivative right below.

Every layer here has no parameters: ``backward(grad_out)`` returns ``grad_out`` times the local
derivative, computed from what ``forward`` saved (the input or the output, whichever is cheaper
and more accurate).
"""

from __future__ import annotations

import math

import numpy as np

from handgrad._validate import check_choice, check_int, check_range
from handgrad.nn.module import Module

__all__ = [
    "ELU",
    "GELU",
    "LeakyReLU",
    "LogSoftmax",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "sigmoid",
]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow: exp is only ever taken of a non-positive number.

    Examples:
        >>> from handgrad.nn.activation import sigmoid
        >>> sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist()
        [0.0, 0.5, 1.0]
    """
    e = np.exp(-np.abs(x))  # in (0, 1]
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _erf(x: np.ndarray) -> np.ndarray:
    """The error function, element-wise (NumPy has none): SciPy's if present, else math.erf."""
    try:
        from scipy.special import erf  # optional, vectorised
    except ImportError:  # pragma: no cover - exercised only without SciPy
        return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)
    return erf(x).astype(x.dtype, copy=False)


class ReLU(Module):
    """max(0, x). The derivative at exactly 0 is taken as 0, as in PyTorch.

    Examples:
        >>> m = nn.ReLU()
        >>> m(np.array([-1.0, 0.0, 2.0])).tolist()
        [0.0, 0.0, 2.0]
        >>> m.backward(np.ones(3)).tolist()
        [0.0, 0.0, 1.0]
    """

    def __init__(self) -> None:
        super().__init__()
        self._mask: np.ndarray | None = None
        self._zeros: np.ndarray = np.zeros(0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        if self._zeros.shape != x.shape or self._zeros.dtype != x.dtype:
            self._zeros = np.zeros_like(x)
        # against an array of zeros, np.maximum is ~3x faster than against the scalar 0
        return np.maximum(x, self._zeros)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self._saved(self._mask, grad_out)


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise (derivative at 0 is negative_slope, as torch).

    Examples:
        >>> m = nn.LeakyReLU(0.5)
        >>> m(np.array([-2.0, 3.0])).tolist()
        [-1.0, 3.0]
        >>> m.backward(np.ones(2)).tolist()
        [0.5, 1.0]
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        # any finite slope, as torch (a negative one is unusual but a valid function)
        self.negative_slope = check_range("LeakyReLU", "negative_slope", negative_slope)
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.where(self._mask, x, x * self.negative_slope)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        mask = self._saved(self._mask, grad_out)
        return np.where(mask, grad_out, grad_out * self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """1 / (1 + exp(-x)).

    Examples:
        >>> m = nn.Sigmoid()
        >>> m(np.array([0.0])).tolist()
        [0.5]
        >>> m.backward(np.ones(1)).tolist()  # sigma (1 - sigma)
        [0.25]
    """

    def __init__(self) -> None:
        super().__init__()
        self._out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = sigmoid(x)
        return self._out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        s = self._saved(self._out, grad_out)
        # d sigma/dx = sigma (1 - sigma), written from the saved output
        return grad_out * s * (1.0 - s)


class Tanh(Module):
    """tanh(x).

    Examples:
        >>> m = nn.Tanh()
        >>> m(np.array([0.0, 1.0])).round(4).tolist()
        [0.0, 0.7616]
        >>> m.backward(np.ones(2)).round(4).tolist()  # 1 - tanh(x)^2
        [1.0, 0.42]
    """

    def __init__(self) -> None:
        super().__init__()
        self._out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = np.tanh(x)
        return self._out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        t = self._saved(self._out, grad_out)
        # d tanh(x)/dx = 1 - tanh(x)^2
        return grad_out * (1.0 - t * t)


class Softplus(Module):
    """(1/beta) log(1 + exp(beta x)); reverts to x where beta x > threshold (as torch).

    Examples:
        >>> m = nn.Softplus()
        >>> m(np.array([0.0, 30.0])).round(4).tolist()  # log 2, then linear past threshold
        [0.6931, 30.0]
        >>> m.backward(np.ones(2)).tolist()  # sigmoid(beta x)
        [0.5, 1.0]
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = check_range("Softplus", "beta", beta, 0.0, low_open=True)
        self.threshold = check_range("Softplus", "threshold", threshold)
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        bx = self.beta * x
        # logaddexp(0, bx) = log(1 + e^bx) without overflow
        soft = np.logaddexp(0.0, bx) / self.beta
        return np.where(bx > self.threshold, x, soft).astype(x.dtype, copy=False)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x = self._saved(self._x, grad_out)
        bx = self.beta * x
        # d/dx (1/beta) log(1 + e^{beta x}) = sigmoid(beta x); 1 in the linear region
        return grad_out * np.where(bx > self.threshold, 1.0, sigmoid(bx)).astype(x.dtype)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class GELU(Module):
    """x * Phi(x), Phi the standard normal CDF; ``approximate='tanh'`` uses
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as torch.

    Examples:
        >>> x = np.array([-1.0, 0.0, 1.0])
        >>> nn.GELU()(x).round(4).tolist()
        [-0.1587, 0.0, 0.8413]
        >>> nn.GELU(approximate="tanh")(x).round(4).tolist()
        [-0.1588, 0.0, 0.8412]
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = check_choice("GELU", "approximate", approximate, ("none", "tanh"))
        self._x: np.ndarray | None = None
        self._aux: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        if self.approximate == "tanh":
            self._aux = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
            return 0.5 * x * (1.0 + self._aux)
        self._aux = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))  # Phi(x)
        return x * self._aux

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x = self._saved(self._x, grad_out)
        aux = self._aux
        if self.approximate == "tanh":
            inner_dx = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)
            d = 0.5 * (1.0 + aux) + 0.5 * x * (1.0 - aux * aux) * inner_dx
        else:
            # d/dx x Phi(x) = Phi(x) + x phi(x)
            d = aux + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        return grad_out * d

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class ELU(Module):
    """x for x > 0, alpha (exp(x) - 1) otherwise (derivative at 0 is alpha, as torch).

    Examples:
        >>> m = nn.ELU()
        >>> m(np.array([-1.0, 2.0])).round(4).tolist()
        [-0.6321, 2.0]
        >>> m.backward(np.ones(2)).round(4).tolist()  # alpha exp(x) for x <= 0
        [0.3679, 1.0]
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = check_range("ELU", "alpha", alpha)  # any finite alpha, as torch
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        # expm1 keeps precision near 0; minimum() avoids overflow in the unused branch
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0)))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x = self._saved(self._x, grad_out)
        return grad_out * np.where(x > 0, 1.0, self.alpha * np.exp(np.minimum(x, 0)))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


def _check_dim(layer: Module, dim: int, x: np.ndarray) -> None:
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"{layer}: dim {dim} is out of range for input of shape {x.shape}")


class Softmax(Module):
    """exp(x_i) / sum_j exp(x_j) along ``dim``, computed after subtracting the max.

    Examples:
        >>> m = nn.Softmax(dim=1)
        >>> m(np.array([[0.0, 0.0], [0.0, np.log(3.0)], [1000.0, 0.0]])).round(4).tolist()
        [[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]]
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = check_int("Softmax", "dim", dim)
        self._out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_dim(self, self.dim, x)
        e = np.exp(x - x.max(axis=self.dim, keepdims=True))  # largest exponent is 0
        self._out = e / e.sum(axis=self.dim, keepdims=True)
        return self._out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        s = self._saved(self._out, grad_out)
        # Jacobian diag(s) - s s^T applied to g: s * (g - <g, s>)
        return s * (grad_out - (grad_out * s).sum(axis=self.dim, keepdims=True))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """x_i - log sum_j exp(x_j) along ``dim`` (stable log-sum-exp).

    Examples:
        >>> m = nn.LogSoftmax(dim=1)
        >>> m(np.zeros((1, 4))).round(4).tolist()  # log(1/4)
        [[-1.3863, -1.3863, -1.3863, -1.3863]]
        >>> m.backward(np.array([[1.0, 0.0, 0.0, 0.0]])).tolist()  # g - softmax * sum(g)
        [[0.75, -0.25, -0.25, -0.25]]
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = check_int("LogSoftmax", "dim", dim)
        self._out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_dim(self, self.dim, x)
        shifted = x - x.max(axis=self.dim, keepdims=True)
        self._out = shifted - np.log(np.exp(shifted).sum(axis=self.dim, keepdims=True))
        return self._out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        out = self._saved(self._out, grad_out)
        # d out_i / d x_j = delta_ij - softmax_j
        return grad_out - np.exp(out) * grad_out.sum(axis=self.dim, keepdims=True)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
