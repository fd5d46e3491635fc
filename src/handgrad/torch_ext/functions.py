"""``torch.autograd.Function`` subclasses whose backward passes are written by hand.

Each ``backward`` computes its gradients from closed forms with plain tensor operations: no call
to autograd inside, no in-place change to ``grad_output``, and ``None`` for every input that does
not need a gradient (``ctx.needs_input_grad``). The backward passes are marked
``once_differentiable``: asking for a second derivative is a clear error instead of a silently
wrong one.

Usage: ``y = LinearFunction.apply(x, weight, bias)`` inside any torch model, or the
``torch.nn.Module`` wrappers in :mod:`handgrad.torch_ext.modules`.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = [
    "AvgPool2dFunction",
    "BatchNormEvalFunction",
    "BatchNormFunction",
    "Conv2dFunction",
    "DropoutFunction",
    "ELUFunction",
    "FlattenFunction",
    "GELUFunction",
    "LeakyReLUFunction",
    "LinearFunction",
    "LogSoftmaxFunction",
    "MaxPool2dFunction",
    "ReLUFunction",
    "SigmoidFunction",
    "SoftmaxCrossEntropyFunction",
    "SoftmaxFunction",
    "SoftplusFunction",
    "TanhFunction",
]

Tensor = torch.Tensor
Ctx = Any  # torch's FunctionCtx, with the attributes that forward sets


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _pair(name: str, owner: str, value: Any) -> tuple[int, int]:
    """Normalise an int or a pair of ints to a 2-tuple (PyTorch's convention)."""
    try:
        # operator.index takes Python and NumPy integers and refuses floats
        pair = (operator.index(value),) * 2 if not hasattr(value, "__len__") else tuple(value)
        pair = tuple(operator.index(v) for v in pair)
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Linear
# --------------------------------------------------------------------------------------------
class LinearFunction(torch.autograd.Function):
    """y = x W^T + b.

    ``apply(input, weight, bias=None)``: input (*, in), weight (out, in), bias (out,) or None;
    returns (*, out).
    """

    @staticmethod
    def forward(ctx: Ctx, input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        if weight.dim() != 2 or input.dim() < 1 or input.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"LinearFunction: expected input (N, {weight.shape[-1]}) for weight "
                f"{_shape(weight)}, got input {_shape(input)}"
            )
        if bias is not None and _shape(bias) != (weight.shape[0],):
            raise ValueError(
                f"LinearFunction: expected bias ({weight.shape[0]},) for weight "
                f"{_shape(weight)}, got {_shape(bias)}"
            )
        ctx.save_for_backward(input, weight)
        ctx.has_bias = bias is not None
        out = input.matmul(weight.t())  # (*, out)
        if bias is not None:
            out = out + bias
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        input, weight = ctx.saved_tensors
        # padded with False: bias may have been left out of apply()
        need_x, need_w, need_b = (*ctx.needs_input_grad, False)[:3]
        g2 = grad_output.reshape(-1, weight.shape[0])  # (N, out)
        grad_input = grad_weight = grad_bias = None
        if need_x:
            grad_input = grad_output.matmul(weight)  # (*, in)
        if need_w:
            # dL/dW = g^T x, summed over every leading dimension
            grad_weight = g2.t().matmul(input.reshape(-1, weight.shape[1]))  # (out, in)
        if need_b and ctx.has_bias:
            grad_bias = g2.sum(0)  # (out,)
        return grad_input, grad_weight, grad_bias


# --------------------------------------------------------------------------------------------
# Elementwise activations
# --------------------------------------------------------------------------------------------
class ReLUFunction(torch.autograd.Function):
    """max(x, 0); the derivative at exactly 0 is taken as 0, as in PyTorch."""

    @staticmethod
    def forward(ctx: Ctx, input: Tensor) -> Tensor:
        ctx.save_for_backward(input)
        return input.clamp_min(0)

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> Tensor | None:
        if not ctx.needs_input_grad[0]:
            return None
        (input,) = ctx.saved_tensors
        # masked_fill (not masked_fill_) returns a new tensor: grad_output stays untouched
        return grad_output.masked_fill(input <= 0, 0)


class LeakyReLUFunction(torch.autograd.Function):
    """x for x > 0, negative_slope * x otherwise; ``apply(input, negative_slope=0.01)``."""

    @staticmethod
    def forward(ctx: Ctx, input: Tensor, negative_slope: float = 0.01) -> Tensor:
        ctx.save_for_backward(input)
        ctx.negative_slope = float(negative_slope)
        return torch.where(input > 0, input, input * negative_slope)

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (input,) = ctx.saved_tensors
        return torch.where(input > 0, grad_output, grad_output * ctx.negative_slope), None


class SigmoidFunction(torch.autograd.Function):
    """1 / (1 + exp(-x))."""

    @staticmethod
    def forward(ctx: Ctx, input: Tensor) -> Tensor:
        out = torch.sigmoid(input)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> Tensor | None:
        if not ctx.needs_input_grad[0]:
            return None
        (out,) = ctx.saved_tensors
        # d sigmoid(x)/dx = s (1 - s), written from the saved output
        return grad_output * out * (1 - out)


class TanhFunction(torch.autograd.Function):
    """tanh(x)."""

    @staticmethod
    def forward(ctx: Ctx, input: Tensor) -> Tensor:
        out = torch.tanh(input)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> Tensor | None:
        if not ctx.needs_input_grad[0]:
            return None
        (out,) = ctx.saved_tensors
        # d tanh(x)/dx = 1 - tanh(x)^2, written from the saved output
        return grad_output * (1 - out * out)


class ELUFunction(torch.autograd.Function):
    """x for x > 0, alpha (exp(x) - 1) otherwise; ``apply(input, alpha=1.0)``."""

    @staticmethod
    def forward(ctx: Ctx, input: Tensor, alpha: float = 1.0) -> Tensor:
        out = torch.where(input > 0, input, alpha * torch.expm1(input))
        ctx.save_for_backward(input, out)
        ctx.alpha = float(alpha)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        input, out = ctx.saved_tensors
        # for x <= 0: d/dx alpha (e^x - 1) = alpha e^x = out + alpha
        return torch.where(input > 0, grad_output, grad_output * (out + ctx.alpha)), None


class SoftplusFunction(torch.autograd.Function):
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold (as PyTorch).

    ``apply(input, beta=1.0, threshold=20.0)``.
    """

    @staticmethod
    def forward(ctx: Ctx, input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
        bx = input * beta
        linear = bx > threshold
        # clamp before exp so the unused branch cannot overflow to inf
        soft = torch.log1p(torch.exp(bx.clamp(max=threshold))) / beta
        ctx.save_for_backward(bx, linear)
        return torch.where(linear, input, soft)

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        bx, linear = ctx.saved_tensors
        # d/dx log(1 + e^{bx}) / b = sigmoid(bx)
        return torch.where(linear, grad_output, grad_output * torch.sigmoid(bx)), None, None


_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_C = 0.044715


class GELUFunction(torch.autograd.Function):
    """x Phi(x); ``apply(input, approximate='none'|'tanh')`` as ``torch.nn.GELU``."""

    @staticmethod
    def forward(ctx: Ctx, input: Tensor, approximate: str = "none") -> Tensor:
        if approximate not in ("none", "tanh"):
            raise ValueError(
                f"GELUFunction: approximate must be 'none' or 'tanh', got {approximate!r}"
            )
        ctx.save_for_backward(input)
        ctx.approximate = approximate
        if approximate == "tanh":
            t = torch.tanh(_SQRT_2_OVER_PI * (input + _GELU_C * input**3))
            return 0.5 * input * (1 + t)
        return 0.5 * input * (1 + torch.erf(input / _SQRT_2))

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (x,) = ctx.saved_tensors
        if ctx.approximate == "tanh":
            t = torch.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x**3))
            # product rule on 0.5 x (1 + t), with dt/dx = (1 - t^2) sqrt(2/pi) (1 + 3c x^2)
            d_inner = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x * x)
            local = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_inner
        else:
            # d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density
            cdf = 0.5 * (1 + torch.erf(x / _SQRT_2))
            pdf = _INV_SQRT_2PI * torch.exp(-0.5 * x * x)
            local = cdf + x * pdf
        return grad_output * local, None


class SoftmaxFunction(torch.autograd.Function):
    """exp(x) / sum(exp(x)) along ``dim``; ``apply(input, dim=-1)``."""

    @staticmethod
    def forward(ctx: Ctx, input: Tensor, dim: int = -1) -> Tensor:
        # subtracting the max changes nothing mathematically and keeps exp from overflowing
        e = torch.exp(input - input.amax(dim, keepdim=True))
        out = e / e.sum(dim, keepdim=True)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (out,) = ctx.saved_tensors
        # Jacobian-vector product of softmax: s * (g - <g, s>)
        dot = (grad_output * out).sum(ctx.dim, keepdim=True)
        return out * (grad_output - dot), None


class LogSoftmaxFunction(torch.autograd.Function):
    """x - logsumexp(x) along ``dim``; ``apply(input, dim=-1)``."""

    @staticmethod
    def forward(ctx: Ctx, input: Tensor, dim: int = -1) -> Tensor:
        shifted = input - input.amax(dim, keepdim=True)
        out = shifted - torch.log(torch.exp(shifted).sum(dim, keepdim=True))
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (out,) = ctx.saved_tensors
        # d log_softmax: g - softmax * sum(g)
        return grad_output - torch.exp(out) * grad_output.sum(ctx.dim, keepdim=True), None


class DropoutFunction(torch.autograd.Function):
    """x * mask, where ``mask`` holds 0 (dropped) or 1 / (1 - p) (kept).

    ``apply(input, mask)``: the mask is drawn by the caller (see ``modules.Dropout``), which keeps
    this Function deterministic and therefore checkable by finite differences.
    """

    @staticmethod
    def forward(ctx: Ctx, input: Tensor, mask: Tensor) -> Tensor:
        if _shape(mask) != _shape(input):
            raise ValueError(
                f"DropoutFunction: mask shape {_shape(mask)} does not match input {_shape(input)}"
            )
        ctx.save_for_backward(mask)
        return input * mask

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (mask,) = ctx.saved_tensors
        return grad_output * mask, None


class FlattenFunction(torch.autograd.Function):
    """Merges dims ``start_dim..end_dim``; ``apply(input, start_dim=1, end_dim=-1)``."""

    @staticmethod
    def forward(ctx: Ctx, input: Tensor, start_dim: int = 1, end_dim: int = -1) -> Tensor:
        ctx.input_shape = input.shape
        # a custom Function must not return a view of its input (PyTorch forbids later in-place
        # changes of such views), so the result is a copy
        return input.flatten(start_dim, end_dim).clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        return grad_output.reshape(ctx.input_shape), None, None


# --------------------------------------------------------------------------------------------
# Batch normalisation
# --------------------------------------------------------------------------------------------
def _bn_check(owner: str, input: Tensor, gamma: Tensor | None, beta: Tensor | None) -> int:
    """Validate (N, C, *) against gamma/beta (C,); returns C."""
    if input.dim() < 2:
        raise ValueError(f"{owner}: expected input (N, C) or (N, C, *), got {_shape(input)}")
    C = input.shape[1]
    for name, t in (("gamma", gamma), ("beta", beta)):
        if t is not None and _shape(t) != (C,):
            raise ValueError(
                f"{owner}: expected {name} ({C},) for input {_shape(input)}, got {_shape(t)}"
            )
    return C


def _bn_view(t: Tensor, ndim: int) -> Tensor:
    """A per-channel vector (C,) viewed as (1, C, 1, ...) to broadcast over (N, C, *)."""
    return t.reshape((1, -1) + (1,) * (ndim - 2))


class BatchNormFunction(torch.autograd.Function):
    """Training-mode batch normalisation with batch statistics.

    ``apply(input, gamma, beta, eps=1e-5)``: input (N, C) or (N, C, *spatial), gamma and beta
    (C,) or None (no affine transform). Statistics are taken per channel over N and the spatial
    dims, with the biased variance. ``backward`` returns ``(grad_input, grad_gamma, grad_beta,
    None)``. Needs more than one value per channel.
    """

    @staticmethod
    def forward(
        ctx: Ctx,
        input: Tensor,
        gamma: Tensor | None,
        beta: Tensor | None,
        eps: float = 1e-5,
    ) -> Tensor:
        _bn_check("BatchNormFunction", input, gamma, beta)
        dims = (0, *range(2, input.dim()))
        count = input.numel() // input.shape[1]
        if count <= 1:
            raise ValueError(
                "BatchNormFunction: expected more than 1 value per channel in training mode, "
                f"got input {_shape(input)}"
            )
        mean = input.mean(dims, keepdim=True)
        centered = input - mean
        var = (centered * centered).mean(dims, keepdim=True)  # biased, as in training
        invstd = torch.rsqrt(var + eps)
        xhat = centered * invstd
        out = xhat
        if gamma is not None:
            out = out * _bn_view(gamma, input.dim())
        if beta is not None:
            out = out + _bn_view(beta, input.dim())
        ctx.save_for_backward(xhat, invstd, gamma)
        ctx.has_beta = beta is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        xhat, invstd, gamma = ctx.saved_tensors
        need_x, need_gamma, need_beta = ctx.needs_input_grad[:3]
        ndim = grad_output.dim()
        dims = (0, *range(2, ndim))
        m = grad_output.numel() // grad_output.shape[1]
        sum_g = grad_output.sum(dims)  # (C,)
        sum_g_xhat = (grad_output * xhat).sum(dims)  # (C,)
        grad_input = grad_gamma = grad_beta = None
        if need_x:
            # closed form: dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)),
            # the means over the m values of each channel
            scale = invstd if gamma is None else invstd * _bn_view(gamma, ndim)
            grad_input = scale * (
                grad_output - _bn_view(sum_g, ndim) / m - xhat * _bn_view(sum_g_xhat, ndim) / m
            )
        if need_gamma and gamma is not None:
            grad_gamma = sum_g_xhat
        if need_beta and ctx.has_beta:
            grad_beta = sum_g
        return grad_input, grad_gamma, grad_beta, None


class BatchNormEvalFunction(torch.autograd.Function):
    """Evaluation-mode batch normalisation with fixed (running) statistics.

    ``apply(input, running_mean, running_var, gamma, beta, eps=1e-5)``: a per-channel affine map
    ``(x - mean) / sqrt(var + eps) * gamma + beta``. The statistics get no gradient.
    """

    @staticmethod
    def forward(
        ctx: Ctx,
        input: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        gamma: Tensor | None,
        beta: Tensor | None,
        eps: float = 1e-5,
    ) -> Tensor:
        C = _bn_check("BatchNormEvalFunction", input, gamma, beta)
        if _shape(running_mean) != (C,) or _shape(running_var) != (C,):
            raise ValueError(
                f"BatchNormEvalFunction: expected running_mean and running_var ({C},) for input "
                f"{_shape(input)}, got {_shape(running_mean)} and {_shape(running_var)}"
            )
        ndim = input.dim()
        invstd = torch.rsqrt(running_var + eps)  # (C,)
        xhat = (input - _bn_view(running_mean, ndim)) * _bn_view(invstd, ndim)
        out = xhat
        if gamma is not None:
            out = out * _bn_view(gamma, ndim)
        if beta is not None:
            out = out + _bn_view(beta, ndim)
        ctx.save_for_backward(xhat, invstd, gamma)
        ctx.has_beta = beta is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        xhat, invstd, gamma = ctx.saved_tensors
        need_x, _, _, need_gamma, need_beta = ctx.needs_input_grad[:5]
        ndim = grad_output.dim()
        dims = (0, *range(2, ndim))
        grad_input = grad_gamma = grad_beta = None
        if need_x:
            # the statistics are constants here, so the map is affine in x
            scale = invstd if gamma is None else invstd * gamma
            grad_input = grad_output * _bn_view(scale, ndim)
        if need_gamma and gamma is not None:
            grad_gamma = (grad_output * xhat).sum(dims)
        if need_beta and ctx.has_beta:
            grad_beta = grad_output.sum(dims)
        return grad_input, None, None, grad_gamma, grad_beta, None


# --------------------------------------------------------------------------------------------
# Convolution and pooling, through im2col (unfold) and its adjoint col2im (fold)
# --------------------------------------------------------------------------------------------
def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _conv_pads(padding: Any) -> tuple[tuple[int, int, int, int] | None, tuple[int, int]]:
    """Split ``padding`` into an explicit uneven pre-padding (top, bottom, left, right) or None,
    and the even padding that unfold/fold apply themselves."""
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        if not all(isinstance(p, int) and p >= 0 for p in padding):
            raise ValueError(
                f"Conv2dFunction: padding must hold non-negative ints, got {padding!r}"
            )
        top, bottom, left, right = padding
        if top == bottom and left == right:
            return None, (top, left)
        return (top, bottom, left, right), (0, 0)
    return None, _pair("padding", "Conv2dFunction", padding)


def _pre_pad(input: Tensor, pads: tuple[int, int, int, int] | None) -> Tensor:
    if pads is None:
        return input
    top, bottom, left, right = pads
    return F.pad(input, (left, right, top, bottom))


class Conv2dFunction(torch.autograd.Function):
    """2-D cross-correlation, as ``torch.nn.functional.conv2d`` with zero padding.

    ``apply(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)``:
    input (N, C_in, H, W), weight (C_out, C_in / groups, kh, kw), bias (C_out,) or None;
    returns (N, C_out, H_out, W_out). Sizes are ints or pairs of ints; ``padding`` may also be
    (top, bottom, left, right), as the uneven padding of PyTorch's ``padding='same'``.
    """

    @staticmethod
    def forward(
        ctx: Ctx,
        input: Tensor,
        weight: Tensor,
        bias: Tensor | None = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
    ) -> Tensor:
        stride = _pair("stride", "Conv2dFunction", stride)
        pads, padding = _conv_pads(padding)
        dilation = _pair("dilation", "Conv2dFunction", dilation)
        if weight.dim() != 4 or weight.shape[0] % groups:
            raise ValueError(
                f"Conv2dFunction: expected weight (C_out, C_in/groups, kh, kw) with C_out "
                f"divisible by groups={groups}, got {_shape(weight)}"
            )
        C_out, C_g, kh, kw = weight.shape
        if input.dim() != 4 or input.shape[1] != C_g * groups:
            raise ValueError(
                f"Conv2dFunction: expected input (N, {C_g * groups}, H, W) for weight "
                f"{_shape(weight)} and groups={groups}, got {_shape(input)}"
            )
        if bias is not None and _shape(bias) != (C_out,):
            raise ValueError(f"Conv2dFunction: expected bias ({C_out},), got {_shape(bias)}")
        N = input.shape[0]
        src = _pre_pad(input, pads)
        H_out = _out_size(src.shape[2], kh, stride[0], padding[0], dilation[0])
        W_out = _out_size(src.shape[3], kw, stride[1], padding[1], dilation[1])
        if H_out <= 0 or W_out <= 0:
            raise ValueError(
                f"Conv2dFunction: kernel ({kh}, {kw}) with padding {pads or padding} and "
                f"dilation {dilation} is larger than the input {_shape(input)}"
            )
        cols = F.unfold(src, (kh, kw), dilation=dilation, padding=padding, stride=stride)
        K, L = C_g * kh * kw, H_out * W_out
        cols = cols.reshape(N, groups, K, L)  # (N, g, C_in/g*kh*kw, L)
        w = weight.reshape(groups, C_out // groups, K)  # (g, C_out/g, K)
        out = w.matmul(cols).reshape(N, C_out, H_out, W_out)
        if bias is not None:
            out = out + bias.reshape(1, C_out, 1, 1)
        ctx.save_for_backward(input, weight)
        ctx.conf = (stride, pads, padding, dilation, groups, bias is not None)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        input, weight = ctx.saved_tensors
        stride, pads, padding, dilation, groups, has_bias = ctx.conf
        need_x, need_w, need_b = (*ctx.needs_input_grad, False)[:3]
        N, _, H, W = input.shape
        src = _pre_pad(input, pads)
        C_out, C_g, kh, kw = weight.shape
        K, L = C_g * kh * kw, grad_output.shape[2] * grad_output.shape[3]
        go = grad_output.reshape(N, groups, C_out // groups, L)  # (N, g, C_out/g, L)
        grad_input = grad_weight = grad_bias = None
        if need_x:
            w = weight.reshape(groups, C_out // groups, K)
            # the columns' gradient is W^T g; fold (col2im, the adjoint of unfold) sums the
            # overlapping windows back onto the input
            grad_cols = w.transpose(1, 2).matmul(go).reshape(N, groups * K, L)
            size = (src.shape[2], src.shape[3])
            grad_input = F.fold(
                grad_cols, size, (kh, kw), dilation=dilation, padding=padding, stride=stride
            )
            if pads is not None:  # the gradient of zero padding: crop it away
                top, _, left, _ = pads
                grad_input = grad_input[:, :, top : top + H, left : left + W]
        if need_w:
            cols = F.unfold(src, (kh, kw), dilation=dilation, padding=padding, stride=stride)
            cols = cols.reshape(N, groups, K, L)
            # dL/dW = sum over the batch and positions of g cols^T
            grad_weight = go.matmul(cols.transpose(2, 3)).sum(0).reshape(weight.shape)
        if need_b and has_bias:
            grad_bias = grad_output.sum((0, 2, 3))
        return grad_input, grad_weight, grad_bias, None, None, None, None


def _pool_args(owner: str, input: Tensor, kernel_size: Any, stride: Any, padding: Any):
    kernel = _pair("kernel_size", owner, kernel_size)
    stride = kernel if stride is None else _pair("stride", owner, stride)
    padding = _pair("padding", owner, padding)
    if input.dim() != 4:
        raise ValueError(f"{owner}: expected input (N, C, H, W), got {_shape(input)}")
    if any(p > k // 2 for p, k in zip(padding, kernel, strict=True)):
        raise ValueError(f"{owner}: padding {padding} must be at most half of kernel_size {kernel}")
    N, C, H, W = input.shape
    H_out = _out_size(H, kernel[0], stride[0], padding[0], 1)
    W_out = _out_size(W, kernel[1], stride[1], padding[1], 1)
    if H_out <= 0 or W_out <= 0:
        raise ValueError(
            f"{owner}: kernel_size {kernel} with padding {padding} is larger than the input "
            f"{_shape(input)}"
        )
    return kernel, stride, padding, (N, C, H, W, H_out, W_out)


class MaxPool2dFunction(torch.autograd.Function):
    """Max over each window; ``apply(input, kernel_size, stride=None, padding=0)``.

    input (N, C, H, W); padding counts as -inf; ``stride`` defaults to ``kernel_size``. The
    gradient goes to the first maximum of each window (PyTorch's tie rule).
    """

    @staticmethod
    def forward(
        ctx: Ctx, input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0
    ) -> Tensor:
        kernel, stride, padding, (N, C, H, W, H_out, W_out) = _pool_args(
            "MaxPool2dFunction", input, kernel_size, stride, padding
        )
        ph, pw = padding
        padded = F.pad(input, (pw, pw, ph, ph), value=-math.inf)
        cols = F.unfold(padded, kernel, stride=stride)  # (N, C*kh*kw, L)
        cols = cols.reshape(N, C, kernel[0] * kernel[1], H_out * W_out)
        out, idx = cols.max(2)  # first maximum on ties, as PyTorch's max pooling
        ctx.save_for_backward(idx)
        ctx.conf = (kernel, stride, padding, (H, W))
        return out.reshape(N, C, H_out, W_out)

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        (idx,) = ctx.saved_tensors
        kernel, stride, padding, size = ctx.conf
        N, C, L = idx.shape
        grad_cols = grad_output.new_zeros(N, C, kernel[0] * kernel[1], L)
        # route each window's gradient to the position of its maximum
        grad_cols.scatter_(2, idx.unsqueeze(2), grad_output.reshape(N, C, 1, L))
        grad_input = F.fold(
            grad_cols.reshape(N, -1, L), size, kernel, padding=padding, stride=stride
        )
        return grad_input, None, None, None


class AvgPool2dFunction(torch.autograd.Function):
    """Mean over each window; ``apply(input, kernel_size, stride=None, padding=0)``.

    input (N, C, H, W); zero padding is counted in the mean (PyTorch's default
    ``count_include_pad=True``); ``stride`` defaults to ``kernel_size``.
    """

    @staticmethod
    def forward(
        ctx: Ctx, input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0
    ) -> Tensor:
        kernel, stride, padding, (N, C, H, W, H_out, W_out) = _pool_args(
            "AvgPool2dFunction", input, kernel_size, stride, padding
        )
        cols = F.unfold(input, kernel, padding=padding, stride=stride)
        cols = cols.reshape(N, C, kernel[0] * kernel[1], H_out * W_out)
        ctx.conf = (kernel, stride, padding, (H, W))
        return cols.mean(2).reshape(N, C, H_out, W_out)

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        kernel, stride, padding, size = ctx.conf
        N, C, H_out, W_out = grad_output.shape
        K, L = kernel[0] * kernel[1], H_out * W_out
        # every element of a window receives 1/K of the window's gradient
        grad_cols = (grad_output.reshape(N, C, 1, L) / K).expand(N, C, K, L)
        grad_input = F.fold(
            grad_cols.reshape(N, C * K, L), size, kernel, padding=padding, stride=stride
        )
        return grad_input, None, None, None


# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------
class SoftmaxCrossEntropyFunction(torch.autograd.Function):
    """Cross-entropy of softmax(logits) against class indices or class probabilities.

    ``apply(logits, target, reduction='mean')``: logits (N, C); target int64 (N,) with values in
    [0, C), or float (N, C) probabilities. Returns a scalar ('mean' over N, 'sum') or (N,)
    ('none'). The gradient with respect to the logits is ``softmax(z) - y`` (scaled by the
    reduction); probability targets also get theirs, ``-log_softmax(z)``.
    """

    @staticmethod
    def forward(ctx: Ctx, logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                "SoftmaxCrossEntropyFunction: reduction must be 'mean', 'sum' or 'none', "
                f"got {reduction!r}"
            )
        if logits.dim() != 2:
            raise ValueError(
                f"SoftmaxCrossEntropyFunction: expected logits (N, C), got {_shape(logits)}"
            )
        N, C = logits.shape
        # log-sum-exp with the max subtracted: exact, and exp cannot overflow
        shifted = logits - logits.amax(1, keepdim=True)
        logp = shifted - torch.log(torch.exp(shifted).sum(1, keepdim=True))  # (N, C)
        if target.is_floating_point():
            if _shape(target) != (N, C):
                raise ValueError(
                    f"SoftmaxCrossEntropyFunction: probability target must have the logits' "
                    f"shape {(N, C)}, got {_shape(target)}"
                )
            losses = -(target * logp).sum(1)
        else:
            if _shape(target) != (N,):
                raise ValueError(
                    f"SoftmaxCrossEntropyFunction: class target must be ({N},) for logits "
                    f"{(N, C)}, got {_shape(target)}"
                )
            if N and (target.min() < 0 or target.max() >= C):
                bad = target[(target < 0) | (target >= C)][0].item()
                raise ValueError(
                    f"SoftmaxCrossEntropyFunction: target class {bad} out of range for {C} classes"
                )
            losses = -logp.gather(1, target.long().unsqueeze(1)).squeeze(1)
        ctx.save_for_backward(logp, target)
        ctx.reduction = reduction
        if reduction == "mean":
            return losses.mean()
        if reduction == "sum":
            return losses.sum()
        return losses

    @staticmethod
    @once_differentiable
    def backward(ctx: Ctx, grad_output: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        logp, target = ctx.saved_tensors
        N = logp.shape[0]
        # per-sample weight of the upstream gradient: (N, 1)
        if ctx.reduction == "none":
            g = grad_output.reshape(N, 1)
        elif ctx.reduction == "mean":
            g = (grad_output / N).expand(N, 1)
        else:
            g = grad_output.expand(N, 1)
        grad_logits = grad_target = None
        if ctx.needs_input_grad[0]:
            p = torch.exp(logp)
            if target.is_floating_point():
                # d/dz of -sum_c y_c log p_c = p * sum_c y_c - y (= p - y when y sums to 1)
                grad_logits = (p * target.sum(1, keepdim=True) - target) * g
            else:
                onehot = torch.zeros_like(p).scatter_(1, target.long().unsqueeze(1), 1.0)
                grad_logits = (p - onehot) * g
        if ctx.needs_input_grad[1] and target.is_floating_point():
            grad_target = -logp * g
        return grad_logits, grad_target, None
