"""2-D max and average pooling with hand-written backward passes.

Both layers loop over the ``kh * kw`` offsets inside the pooling window (never over pixels or
images): for offset ``(a, b)`` the values every window sees there form one strided view of the
(padded) input, ``x[:, :, a::sh, b::sw]`` cut to the output size.

Max-pool tie rule (PyTorch's): PyTorch scans the window in row-major order and replaces the
running maximum only by a *strictly* greater value, so when several entries share the maximum
the gradient goes to the FIRST of them (smallest row, then smallest column). Here the maximum
is taken first and then the index of its first occurrence, which gives the same answer without
a sequential scan. A NaN always replaces torch's running maximum, so a window holding NaN
outputs NaN and routes its gradient to its last NaN; that case (rare) runs the scan itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handgrad._validate import IntPair, check_int_pair
from handgrad.nn._common import check_grad, check_nchw, parallel_for
from handgrad.nn.module import Module

__all__ = ["AvgPool2d", "MaxPool2d"]


def _axis_order(a: np.ndarray) -> tuple[int, ...]:
    """Axes of ``a`` from outermost to innermost in memory (by decreasing stride)."""
    return tuple(sorted(range(a.ndim), key=lambda ax: -abs(a.strides[ax])))


def _empty_ordered(shape: tuple[int, ...], dtype: Any, order: tuple[int, ...]) -> np.ndarray:
    """An uninitialised array of ``shape`` laid out in memory with axes in ``order``."""
    buf = np.empty(tuple(shape[ax] for ax in order), dtype=dtype)
    return buf.transpose(sorted(range(len(order)), key=order.__getitem__))  # inverse order


def _in_order(a: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """``a`` itself if its memory order is ``order``, else a copy laid out that way.

    Elementwise NumPy passes over operands with different memory orders cannot merge axes and
    run inner loops only W long, several times slower; a conv layer's output is channel-major
    while a Flatten backward hands over NCHW gradients, so pooling aligns them once here.
    """
    if _axis_order(a) == order:
        return a
    out = _empty_ordered(a.shape, a.dtype, order)
    out[...] = a
    return out


class _Pool2d(Module):
    """Shared argument handling and geometry of MaxPool2d and AvgPool2d."""

    def __init__(
        self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = check_int_pair(name, "kernel_size", kernel_size, 1)
        self.stride = (
            self.kernel_size if stride is None else check_int_pair(name, "stride", stride, 1)
        )
        self.padding = check_int_pair(name, "padding", padding, 0)
        # as torch: a window must always hold at least one real (non-padding) value
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(
                f"{name}: padding {self.padding} must be at most half of kernel_size "
                f"{self.kernel_size}"
            )
        self._geom: dict[str, Any] | None = None

    def _geometry(self, x: np.ndarray) -> dict[str, Any]:
        N, C, H, W = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        Hp, Wp = H + 2 * ph, W + 2 * pw
        OH = (Hp - kh) // sh + 1 if Hp >= kh else 0
        OW = (Wp - kw) // sw + 1 if Wp >= kw else 0
        if OH <= 0 or OW <= 0:
            raise ValueError(
                f"{self}: input {x.shape} is too small: padded size ({Hp}, {Wp}) is smaller "
                f"than kernel_size {self.kernel_size}"
            )
        # windows share no input entry: backward can assign instead of accumulate
        disjoint = sh >= kh and sw >= kw
        return dict(N=N, C=C, H=H, W=W, Hp=Hp, Wp=Wp, OH=OH, OW=OW, disjoint=disjoint)

    def _offset_view(self, xp: np.ndarray, g: dict[str, Any], a: int, b: int) -> np.ndarray:
        """The (N, C, OH, OW) view of entries at offset (a, b) of every window."""
        sh, sw = self.stride
        return xp[:, :, a : a + sh * (g["OH"] - 1) + 1 : sh, b : b + sw * (g["OW"] - 1) + 1 : sw]

    def _offsets(self) -> list[tuple[int, int]]:
        kh, kw = self.kernel_size
        return [(a, b) for a in range(kh) for b in range(kw)]  # row-major: the tie order

    def _grad_buffer(self, g: dict[str, Any], dtype: np.dtype) -> np.ndarray:
        return np.zeros((g["N"], g["C"], g["Hp"], g["Wp"]), dtype=dtype)

    def _crop(self, dxp: np.ndarray, g: dict[str, Any]) -> np.ndarray:
        ph, pw = self.padding
        return dxp[:, :, ph : ph + g["H"], pw : pw + g["W"]]

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _first_max_index(views: list[np.ndarray], out: np.ndarray, index: np.ndarray) -> None:
    """Write into ``index`` the index of the first view equal to ``out`` (NaN-free), counted
    without branches: after step p, ``missed`` says whether views 0..p all differ from the
    maximum, and summing it over p counts the entries before the first maximum."""
    index.fill(0)
    missed = np.ones_like(out, dtype=bool)
    for v in views[:-1]:
        missed &= v != out
        index += missed


def _scan_max(views: list[np.ndarray], dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Maximum and its index by torch's sequential rule: a strictly greater value or a NaN
    replaces the running maximum (so NaN wins, the last NaN of a window gives the index)."""
    best = np.copy(views[0])
    index = np.zeros_like(best, dtype=dtype)
    for p, v in enumerate(views[1:], start=1):
        take = v > best
        take |= np.isnan(v)
        best = np.where(take, v, best)
        index = np.where(take, dtype(p), index)
    return best, index


class MaxPool2d(_Pool2d):
    """Max over each ``kernel_size`` window, as ``torch.nn.MaxPool2d`` (dilation 1, floor mode).

    Args:
        kernel_size: int or (kh, kw); stride: int, pair, or None (= kernel_size);
        padding: int or pair, at most half the kernel; padded entries count as -inf.

    Shape:
        input (N, C, H, W), output (N, C, OH, OW), ``OH = (H + 2 * ph - kh) // sh + 1``.
    Gradient: each window passes its grad_out to the position of its maximum; ties go to the
    first maximum in row-major order (as PyTorch). Overlapping windows (stride < kernel)
    accumulate into shared entries.

    Examples:
        >>> m = nn.MaxPool2d(2)
        >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
        >>> m(x).tolist()
        [[[[5.0, 7.0], [13.0, 15.0]]]]
        >>> m.backward(np.ones((1, 1, 2, 2)))[0, 0].tolist()  # to each window's maximum
        [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]
    """

    def __init__(
        self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self._argmax: np.ndarray | None = None  # (N, C, OH, OW), index a*kw + b in the window

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = check_nchw(self, x, None)
        g = self._geometry(x)
        (ph, pw), (kh, kw) = self.padding, self.kernel_size
        if ph or pw:
            xp = _empty_ordered((g["N"], g["C"], g["Hp"], g["Wp"]), x.dtype, _axis_order(x))
            xp.fill(-np.inf)
            xp[:, :, ph : ph + g["H"], pw : pw + g["W"]] = x
        else:
            xp = x
        views = [self._offset_view(xp, g, a, b) for a, b in self._offsets()]
        index_dtype = np.uint8 if kh * kw < 256 else np.int32
        shape, order = (g["N"], g["C"], g["OH"], g["OW"]), _axis_order(x)
        out = _empty_ordered(shape, x.dtype, order)  # x's memory order: aligned passes
        argmax = _empty_ordered(shape, index_dtype, order)

        def pool(c0: int, c1: int) -> None:
            # the maximum, then the index of its first occurrence (see _first_max_index)
            vs, o = [v[:, c0:c1] for v in views], out[:, c0:c1]
            np.copyto(o, vs[0])
            for v in vs[1:]:
                np.maximum(o, v, out=o)
            _first_max_index(vs, o, argmax[:, c0:c1])

        parallel_for(pool, g["C"], x.size)
        if np.isnan(out).any():  # rare: torch's NaN rule needs the slower sequential scan
            out, argmax = _scan_max(views, index_dtype)
        if ph or pw:
            # a window whose real entries are all -inf still has -inf as maximum, found at a
            # padding entry; torch routes it to the window's first real entry instead
            sh, sw = self.stride
            oh, ow = np.arange(g["OH"]), np.arange(g["OW"])
            first_a = np.maximum(ph - sh * oh, 0)[:, None]
            first_b = np.maximum(pw - sw * ow, 0)[None, :]
            at_pad = out == -np.inf
            if at_pad.any():
                argmax = np.where(at_pad, (first_a * kw + first_b).astype(index_dtype), argmax)
        self._geom, self._argmax, self._dtype = g, argmax, x.dtype
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        g = self._saved(self._geom)
        N, C, OH, OW, Hp, Wp = (g[k] for k in ("N", "C", "OH", "OW", "Hp", "Wp"))
        grad_out = check_grad(self, grad_out, (N, C, OH, OW))
        argmax = self._argmax
        dtype = np.result_type(grad_out.dtype, self._dtype)
        kh, kw = self.kernel_size
        # one strided pass per window offset (a loop over kh*kw, never over pixels): within
        # one offset the windows' entries are distinct, so a plain strided write (or +=) is
        # exact. Disjoint windows (stride >= kernel) write, and when they tile the input
        # exactly every entry is written, so no zero fill; overlapping windows (e.g. kernel 3,
        # stride 2) add, an entry that is the maximum of several windows getting their sum
        disjoint = g["disjoint"]
        tiled = disjoint and (Hp, Wp) == (OH * kh, OW * kw) and self.padding == (0, 0)
        order = _axis_order(argmax)  # the forward input's memory order
        grad_out = _in_order(grad_out, order)
        dxp = _empty_ordered((N, C, Hp, Wp), dtype, order)
        offsets = self._offsets()

        def scatter(c0: int, c1: int) -> None:
            d, go, am = dxp[:, c0:c1], grad_out[:, c0:c1], argmax[:, c0:c1]
            if not tiled:
                d.fill(0)
            for p, (a, b) in enumerate(offsets):
                view = self._offset_view(d, g, a, b)
                if disjoint:
                    np.multiply(go, am == p, out=view)
                else:
                    view += go * (am == p)

        parallel_for(scatter, C, dxp.size)
        return self._crop(dxp, g)


class AvgPool2d(_Pool2d):
    """Mean over each ``kernel_size`` window, as ``torch.nn.AvgPool2d`` with its defaults
    (floor mode, ``count_include_pad=True``: padding zeros count in the divisor kh * kw).

    Args:
        kernel_size: int or (kh, kw); stride: int, pair, or None (= kernel_size);
        padding: int or pair of zero padding, at most half the kernel.

    Shape:
        input (N, C, H, W), output (N, C, OH, OW), ``OH = (H + 2 * ph - kh) // sh + 1``.
    Gradient: every entry of a window receives grad_out / (kh * kw); overlapping windows add.

    Examples:
        >>> m = nn.AvgPool2d(2)
        >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
        >>> m(x).tolist()
        [[[[2.5, 4.5], [10.5, 12.5]]]]
        >>> m.backward(np.ones((1, 1, 2, 2)))[0, 0, 0].tolist()  # 1 / (kh * kw) each
        [0.25, 0.25, 0.25, 0.25]
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = check_nchw(self, x, None)
        g = self._geometry(x)
        ph, pw = self.padding
        if ph or pw:
            xp = np.zeros((g["N"], g["C"], g["Hp"], g["Wp"]), dtype=x.dtype)
            xp[:, :, ph : ph + g["H"], pw : pw + g["W"]] = x
        else:
            xp = x
        offsets = self._offsets()
        out = np.copy(self._offset_view(xp, g, *offsets[0]))
        for a, b in offsets[1:]:
            out += self._offset_view(xp, g, a, b)
        out *= 1.0 / len(offsets)
        self._geom, self._dtype = g, x.dtype
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        g = self._saved(self._geom)
        grad_out = check_grad(self, grad_out, (g["N"], g["C"], g["OH"], g["OW"]))
        kh, kw = self.kernel_size
        share = grad_out * (1.0 / (kh * kw))  # dL/dx for each entry of a window
        dxp = self._grad_buffer(g, np.result_type(grad_out.dtype, self._dtype))
        for a, b in self._offsets():
            view = self._offset_view(dxp, g, a, b)
            if g["disjoint"]:
                view[...] = share
            else:
                view += share
        return self._crop(dxp, g)
