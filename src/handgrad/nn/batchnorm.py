"""Batch normalisation over the batch (and spatial) axes, with a closed-form backward.

In training mode the layer normalises with the batch's mean and biased variance and updates the
running statistics with the *unbiased* variance (PyTorch's convention); in eval mode it uses the
running statistics, so the layer is a fixed affine map.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handgrad._validate import (
    check_bool,
    check_choice,
    check_float_dtype,
    check_positive_int,
    check_range,
)
from handgrad.nn._common import channel_sum
from handgrad.nn.module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()  # accepted input ranks
    _shape_text = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        bias: bool = True,
        backward_form: str = "compact",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = check_positive_int(name, "num_features", num_features)
        self.eps = check_range(name, "eps", eps, 0.0, low_open=True)
        self.momentum = (
            None
            if momentum is None
            else check_range(name, "momentum", momentum, 0.0, 1.0, what="in [0, 1] or None")
        )
        self.affine = check_bool(name, "affine", affine)
        self.track_running_stats = check_bool(name, "track_running_stats", track_running_stats)
        bias = check_bool(name, "bias", bias)
        self.backward_form = check_choice(
            name, "backward_form", backward_form, ("compact", "staged")
        )
        dtype = check_float_dtype(name, dtype)
        C = self.num_features
        if self.affine:
            self.weight = Parameter(np.ones(C, dtype=dtype))
            # bias=False keeps gamma but drops beta, as torch's keyword of the same name
            self.bias = Parameter(np.zeros(C, dtype=dtype)) if bias else None
        else:
            self.weight = None
            self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, dtype=dtype))
            self.register_buffer("running_var", np.ones(C, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self._cache: tuple | None = None

    def _axes_and_shape(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Reduction axes (all but the channel axis 1) and the broadcast shape (1, C, 1, ...)."""
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self}: expected input {self._shape_text.format(C=self.num_features)}, "
                f"got {x.shape}"
            )
        axes = (0, *range(2, x.ndim))
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        return axes, shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        axes, bshape = self._axes_and_shape(x)
        m = x.size // self.num_features  # values per channel
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            if m <= 1:
                raise ValueError(
                    f"{self}: expected more than 1 value per channel when training, "
                    f"got input of shape {x.shape}"
                )
            mean = channel_sum(x) / m
            xc = x - mean.reshape(bshape)  # centred: x's memory layout (K order)
            var = channel_sum(xc, xc) / m  # biased, used to normalise
            if self.training and self.track_running_stats:
                self._update_running(mean, var * (m / (m - 1)))
        else:
            mean, var = self.running_mean, self.running_var
            xc = x - mean.reshape(bshape).astype(x.dtype, copy=False)
        invstd = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype, copy=False)  # (C,)
        # out = xhat * gamma + beta with xhat = xc * invstd, in two passes over xc: xhat itself
        # is never stored (backward needs only xc and invstd)
        scale = invstd * self.weight.data if self.affine else invstd
        self._cache = (xc, invstd, axes, bshape, use_batch)
        out = xc * scale.reshape(bshape)
        if self.affine and self.bias is not None:
            out += self.bias.data.reshape(bshape)
        return out

    def _update_running(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        self.num_batches_tracked += 1
        # momentum=None: cumulative average over all batches seen, as torch
        mom = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean *= 1.0 - mom
        self.running_mean += mom * mean
        self.running_var *= 1.0 - mom
        self.running_var += mom * unbiased_var

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        xc, invstd, axes, bshape, use_batch = self._saved(self._cache)
        if grad_out.shape != xc.shape:
            raise ValueError(f"{self}: expected grad_out {xc.shape}, got {grad_out.shape}")
        # the two sums every term below needs, per channel: sum(grad_out) and
        # sum(grad_out * xc), so sum(grad_out * xhat) = invstd * sum(grad_out * xc)
        sum_g = channel_sum(grad_out)
        sum_gxhat = invstd * channel_sum(grad_out, xc)
        gamma = self.weight.data if self.affine else np.ones_like(invstd)
        if self.affine:
            self.weight.grad += sum_gxhat
            if self.bias is not None:
                self.bias.grad += sum_g
        if not use_batch:  # fixed statistics: a per-channel affine map
            return grad_out * (gamma * invstd).reshape(bshape)
        if self.backward_form == "staged":
            g = grad_out * gamma.reshape(bshape)  # dL/dxhat
            return self._backward_staged(g, xc, invstd, axes, bshape)
        # Compact closed form: with m values per channel and g = gamma * grad_out = dL/dxhat,
        #   dx = invstd / m * (m g - sum(g) - xhat * sum(g xhat)),
        # which, with xhat = xc * invstd, is a per-channel a * grad_out + b * xc + c:
        m = xc.size // self.num_features
        a = gamma * invstd
        b = -a * invstd * sum_gxhat / m
        c = -a * sum_g / m
        dx = grad_out * a.reshape(bshape)
        dx += xc * b.reshape(bshape)
        dx += c.reshape(bshape)
        return dx

    def _backward_staged(self, g, xc, invstd, axes, bshape) -> np.ndarray:
        """The chain rule one node at a time (xc = x - mu, var, invstd, xhat = xc * invstd):
        the form a student derives first. Gives the same result as the compact form."""
        m = xc.size // self.num_features
        istd = invstd.reshape(bshape)
        d_invstd = (g * xc).sum(axis=axes).reshape(bshape)  # xhat = xc * invstd
        d_xc = g * istd
        d_var = d_invstd * (-0.5) * istd**3  # invstd = (var + eps)^(-1/2)
        d_xc = d_xc + d_var * 2.0 * xc / m  # var = mean(xc^2)
        d_mean = -d_xc.sum(axis=axes).reshape(bshape)  # xc = x - mean
        return d_xc + d_mean / m  # mean = sum(x) / m

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs, one mean/variance per feature C.

    Examples:
        >>> m = nn.BatchNorm1d(3, dtype=np.float64)
        >>> x = np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]])
        >>> m(x).round(3).tolist()  # each feature to mean 0, variance 1 over the batch
        [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]
        >>> m.running_mean.round(4).tolist()  # momentum 0.1 times the batch mean
        [0.2, 0.4, 0.6]
        >>> m.eval()(x).shape  # eval: the running statistics, a fixed affine map
        (2, 3)
    """

    _ndims = (2, 3)
    _shape_text = "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs, one mean/variance per channel.

    Examples:
        >>> m = nn.BatchNorm2d(16)
        >>> x = np.random.default_rng(0).normal(5.0, 2.0, (8, 16, 4, 4)).astype(np.float32)
        >>> y = m(x)
        >>> y.shape
        (8, 16, 4, 4)
        >>> bool(np.allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-5))
        True
        >>> sorted(m.state_dict())
        ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _ndims = (4,)
    _shape_text = "(N, {C}, H, W)"
