"""2-D convolution with a hand-written backward pass: im2col through strided views, one GEMM.

How the columns are built (see docs/conv.md for a worked picture):

* Work arrays are laid out "CWHN": channel outermost, then W, then H, with the batch innermost,
  ``xbuf[c, w, h, n]``. The input is copied once into a zero-padded buffer in that order (or,
  unpadded and already CWHN, as the output of a previous Conv2d or pooling layer is, read in
  place).
* For each of the ``kh * kw`` kernel offsets ``(i, j)`` the values that offset sees in every
  patch form one strided view of that buffer, ``xbuf[:, cols_j, rows_i, :]`` (basic slices,
  no Python loop over pixels or images), copied into the rows ``cols[c, i, j]`` of the column
  matrix ``(C * kh * kw, OW * OH * N)``. With stride 1 along H, each output column of each
  channel is then one contiguous run of ``OH * N`` values: long memcpy-like copies.
* The output is one GEMM, ``weight (O, C*kh*kw) @ cols``, batched over ``groups``. Without
  groups the bias rides along: ``cols`` gets one extra row of ones and the weight matrix one
  extra column holding the bias, so the GEMM adds it and backward's ``cols @ grad_out^T``
  returns the bias gradient (the sum of ``grad_out``) as its last row. The GEMM's result
  ``(O, OW, OH, N)`` is returned as a transposed view ``(N, O, OH, OW)``: CWHN again.

The backward pass reuses the saved columns: ``grad_weight = grad_out @ cols^T`` (one GEMM) and
``grad_cols = weight^T @ grad_out`` (one GEMM), then col2im runs the copies of im2col backwards,
adding instead of copying: one strided add per kernel offset (a loop over ``kh * kw`` only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handgrad._util import RNGLike
from handgrad._validate import (
    IntPair,
    check_bool,
    check_float_dtype,
    check_int_pair,
    check_positive_int,
    check_rng,
)
from handgrad.nn import init
from handgrad.nn._common import check_grad, check_nchw, parallel_for
from handgrad.nn.module import Module, Parameter

__all__ = ["Conv2d"]


class Conv2d(Module):
    """2-D cross-correlation over (N, C, H, W) inputs, as ``torch.nn.Conv2d``.

    ``out[n, o] = bias[o] + sum_{c in group(o), i, j} weight[o, c, i, j]
    * x_pad[n, c, s_h * oh + d_h * i, s_w * ow + d_w * j]``.

    Args:
        in_channels, out_channels: C and O; both must be divisible by ``groups``.
        kernel_size, stride, dilation: int or (h, w) pair of positive ints.
        padding: int or (h, w) pair of non-negative ints (zeros), or ``'valid'`` (no padding) or
            ``'same'`` (output size = input size; stride 1 only; an odd total padding puts the
            extra row/column at the bottom/right, as PyTorch does).
        groups: split channels into ``groups`` independent convolutions.
        bias: learn an additive bias per output channel.
        rng: Generator or seed for the initialisation; dtype: float32 (default) or float64.

    Shape:
        input (N, C, H, W), output (N, O, OH, OW) with
        ``OH = (H + pad_top + pad_bottom - dilation_h * (kh - 1) - 1) // stride_h + 1``
        (and likewise OW). ``weight`` (O, C / groups, kh, kw), ``bias`` (O,).
        The output is a fresh array laid out "CWHN" in memory (a transposed view of an
        (O, OW, OH, N) array): the layout this layer's im2col, its backward and the pooling
        layers read fastest. Any layout is accepted as input.
    Init: PyTorch's default, weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    ``fan_in = C / groups * kh * kw``.

    Examples:
        >>> m = nn.Conv2d(3, 8, kernel_size=3, padding=1, rng=0)
        >>> x = np.zeros((2, 3, 32, 32), dtype=np.float32)
        >>> m(x).shape
        (2, 8, 32, 32)
        >>> m.weight.shape
        (8, 3, 3, 3)
        >>> m.backward(np.ones((2, 8, 32, 32), dtype=np.float32)).shape
        (2, 3, 32, 32)
        >>> nn.Conv2d(3, 8, 3, stride=2, rng=0)(x).shape  # (32 - 3) // 2 + 1 = 15
        (2, 8, 15, 15)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair | str = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        rng: RNGLike = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("Conv2d", "in_channels", in_channels)
        self.out_channels = check_positive_int("Conv2d", "out_channels", out_channels)
        self.kernel_size = check_int_pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = check_int_pair("Conv2d", "stride", stride, 1)
        self.dilation = check_int_pair("Conv2d", "dilation", dilation, 1)
        self.groups = check_positive_int("Conv2d", "groups", groups)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value % self.groups:
                raise ValueError(f"Conv2d: {name} {value} must be divisible by groups {groups}")
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(
                    f"Conv2d: padding must be 'valid', 'same', a non-negative int or a pair "
                    f"of them, got {padding!r}"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1, got stride={self.stride}")
            self.padding: tuple[int, int] | str = padding
        else:
            self.padding = check_int_pair("Conv2d", "padding", padding, 0)
        # (top, bottom, left, right); 'same' pads dilation*(k-1) in total, extra at the end
        kh, kw = self.kernel_size
        if self.padding == "same":
            th, tw = self.dilation[0] * (kh - 1), self.dilation[1] * (kw - 1)
            self._pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        elif self.padding == "valid":
            self._pads = (0, 0, 0, 0)
        else:
            ph, pw = self.padding
            self._pads = (ph, ph, pw, pw)

        bias = check_bool("Conv2d", "bias", bias)
        dtype = check_float_dtype("Conv2d", dtype)
        gen = check_rng("Conv2d", rng)
        fan_in = self.in_channels // self.groups * kh * kw
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        self.weight = Parameter(init.kaiming_uniform(shape, fan_in, gen, dtype))
        bound = 1.0 / np.sqrt(fan_in)
        self.bias = (
            Parameter(init.uniform((self.out_channels,), bound, gen, dtype)) if bias else None
        )
        self._clear_cache()

    def _clear_cache(self) -> None:
        # what forward keeps for backward, and work buffers reused between calls (allocating
        # and page-faulting tens of MB per call costs as much as a small GEMM). Work arrays are
        # stored in the "CWHN" order: channel, then W, then H, with the batch innermost.
        self._geom: dict[str, Any] | None = None
        self._xbuf: np.ndarray | None = None  # zero-padded input, (C, Wp, Hp, N)
        self._cols: np.ndarray | None = None  # (C*kh*kw (+1), OW, OH, N)
        self._gcols: np.ndarray | None = None  # dL/dcols, (C*kh*kw, OW, OH, N)

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self._clear_cache()

    # -- geometry ---------------------------------------------------------------------------
    def _geometry(self, x: np.ndarray) -> dict[str, Any]:
        N, C, H, W = x.shape
        kh, kw = self.kernel_size
        sh, sw = self.stride
        dh, dw = self.dilation
        pt, pb, pl, pr = self._pads
        Hp, Wp = H + pt + pb, W + pl + pr
        OH = (Hp - dh * (kh - 1) - 1) // sh + 1 if Hp >= dh * (kh - 1) + 1 else 0
        OW = (Wp - dw * (kw - 1) - 1) // sw + 1 if Wp >= dw * (kw - 1) + 1 else 0
        if OH <= 0 or OW <= 0:
            raise ValueError(
                f"{self}: input {x.shape} is too small: padded size ({Hp}, {Wp}) is smaller "
                f"than the dilated kernel ({dh * (kh - 1) + 1}, {dw * (kw - 1) + 1})"
            )
        # rows[i] / cols[j]: the input rows / columns kernel row i / column j sees, one per
        # output row / column (basic slices, so every use below is a view)
        rows = [slice(dh * i, dh * i + sh * (OH - 1) + 1, sh) for i in range(kh)]
        cols = [slice(dw * j, dw * j + sw * (OW - 1) + 1, sw) for j in range(kw)]
        dtype = np.result_type(x.dtype, self.weight.data.dtype)
        return dict(
            N=N, C=C, H=H, W=W, Hp=Hp, Wp=Wp, OH=OH, OW=OW, rows=rows, cols=cols, dtype=dtype,
        )  # fmt: skip

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A cached zero-initialised work buffer, reallocated when shape or dtype change."""
        buf = getattr(self, name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.zeros(shape, dtype=dtype)
            object.__setattr__(self, name, buf)
        return buf

    # -- forward / backward -----------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        x = check_nchw(self, x, self.in_channels)
        g = self._geometry(x)
        N, C, H, W, Hp, Wp, OH, OW = (g[k] for k in ("N", "C", "H", "W", "Hp", "Wp", "OH", "OW"))
        (kh, kw), (pt, _, pl, _) = self.kernel_size, self._pads
        rows, cols_at, dt, G, O = g["rows"], g["cols"], g["dtype"], self.groups, self.out_channels
        K, M = C * kh * kw, N * OH * OW
        # without groups the bias rides in the GEMM: one more row of ones in cols and a column
        # holding the bias in the weight matrix (and backward's GEMM then sums its gradient)
        ones = 1 if self.bias is not None and G == 1 else 0

        # In the CWHN order a kernel offset's patch entries are, for each output column, one
        # contiguous run of OH*N values (stride 1): every im2col copy is a long memcpy-like run
        x_cwhn = x.transpose(1, 3, 2, 0)  # (C, W, H, N), a view
        padded = any(self._pads)
        if padded or not (x_cwhn.flags.c_contiguous and x.dtype == dt):
            src = self._buffer("_xbuf", (C, Wp, Hp, N), dt)  # the border stays zero
        else:  # the previous conv/pool layer already hands over CWHN: read it in place
            src = x_cwhn
        cols = self._buffer("_cols", (K + ones, OW, OH, N), dt)
        patches = cols[:K].reshape(C, kh, kw, OW, OH, N)  # a view: cols is C-contiguous

        def im2col(c0: int, c1: int) -> None:
            if src is not x_cwhn:
                src[c0:c1, pl : pl + W, pt : pt + H] = x_cwhn[c0:c1]
            for i in range(kh):
                for j in range(kw):
                    patches[c0:c1, i, j] = src[c0:c1, cols_at[j], rows[i]]

        parallel_for(im2col, C, cols.size)
        weight = self.weight.data.reshape(G, O // G, K // G).astype(dt, copy=False)
        if ones:
            cols[K] = 1.0
            bias = self.bias.data.reshape(1, O, 1).astype(dt)  # type: ignore[union-attr]
            weight = np.concatenate([weight, bias], axis=2)
        out = np.matmul(weight, cols.reshape(G, -1, M)).reshape(O, OW, OH, N)  # fresh array
        if self.bias is not None and not ones:
            out += self.bias.data.reshape(O, 1, 1, 1)
        self._geom = g
        return out.transpose(3, 0, 2, 1)  # (N, O, OH, OW), laid out CWHN

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        g2 = self._grad_params(grad_out)
        g = self._geom
        N, C, H, W, Hp, Wp, OH, OW = (g[k] for k in ("N", "C", "H", "W", "Hp", "Wp", "OH", "OW"))
        O, (kh, kw), (pt, _, pl, _) = self.out_channels, self.kernel_size, self._pads
        rows, cols_at, dt, G = g["rows"], g["cols"], g["dtype"], self.groups
        K, M = C * kh * kw, N * OH * OW

        # dL/dcols = W^T @ grad_out, then col2im: the copies of im2col run backwards, adding
        # where patches overlap (within one kernel offset every target is distinct, so a
        # strided += is exact; the loop sums the offsets)
        gcols = self._buffer("_gcols", (K, OW, OH, N), dt)
        w = self.weight.data.reshape(G, O // G, K // G).astype(dt, copy=False)
        np.matmul(w.transpose(0, 2, 1), g2, out=gcols.reshape(G, K // G, M))
        gpatches = gcols.reshape(C, kh, kw, OW, OH, N)
        dxbuf = np.empty((C, Wp, Hp, N), dtype=dt)  # fresh: the result is a view of it
        # with stride 1 and no dilation, offset (0, 0) covers the block [:OW, :OH] of each
        # channel: it is assigned, and only the rest needs zeros
        first = self.stride == (1, 1) and self.dilation == (1, 1)

        def col2im(c0: int, c1: int) -> None:
            d = dxbuf[c0:c1]
            if first:
                d[:, OW:] = 0
                d[:, :OW, OH:] = 0
                d[:, :OW, :OH] = gpatches[c0:c1, 0, 0]
            else:
                d.fill(0)
            for i in range(kh):
                for j in range(kw):
                    if not (first and i == j == 0):
                        d[:, cols_at[j], rows[i]] += gpatches[c0:c1, i, j]

        parallel_for(col2im, C, gcols.size)
        return dxbuf[:, pl : pl + W, pt : pt + H].transpose(3, 0, 2, 1)  # (N, C, H, W)

    def backward_params(self, grad_out: np.ndarray) -> None:
        """Accumulate dL/dweight and dL/dbias only, skipping dL/dx (for a first layer fed with
        data, whose input gradient nobody needs: ``Sequential.backward(g, input_grad=False)``)."""
        self._grad_params(grad_out)

    def _grad_params(self, grad_out: np.ndarray) -> np.ndarray:
        """Add the parameter gradients; return grad_out as (groups, O/groups, N*OH*OW)."""
        g = self._saved(self._geom)
        N, C, OH, OW, dt = g["N"], g["C"], g["OH"], g["OW"], g["dtype"]
        O, G, (kh, kw) = self.out_channels, self.groups, self.kernel_size
        grad_out = check_grad(self, grad_out, (N, O, OH, OW))
        K, M = C * kh * kw, N * OH * OW
        # grad_out as (O, OW*OH*N): free when it comes CWHN (as this layer's output)
        g2 = np.ascontiguousarray(grad_out.transpose(1, 3, 2, 0), dtype=dt).reshape(G, -1, M)
        cols = self._cols.reshape(G, -1, M)  # type: ignore[union-attr]
        # dL/dW = grad_out @ cols^T per group, computed as (cols @ grad_out^T)^T: the same
        # GEMM, but OpenBLAS splits it across threads far better in this orientation. With
        # the bias folded in, the last row is dL/db = grad_out summed over N, OH, OW
        grad_w = np.matmul(cols, g2.transpose(0, 2, 1))  # (G, K/G (+1), O/G)
        self.weight.grad += grad_w[:, : K // G].transpose(0, 2, 1).reshape(self.weight.shape)
        if self.bias is not None:
            folded = cols.shape[1] > K // G
            self.bias.grad += grad_w[0, K] if folded else g2.reshape(O, M).sum(axis=1)
        return g2

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            s += f", padding={self.padding}"  # torch prints padding=same unquoted
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
