"""What the training monitors measure, each computable on its own arrays.

- :class:`Histogram`: the distribution of a layer's output or gradient, outliers and
  non-finite values counted apart;
- :func:`dead_fraction`: the fraction of a ReLU layer's units that are 0 for every sample;
- :func:`saturated_fraction`: the fraction of a Tanh or Sigmoid layer's outputs in saturation;
- :func:`update_ratio`: ``||w_after - w_before|| / ||w_before||`` across an optimizer step;
- :func:`first_nonfinite`: where the first NaN or infinity of an array is.

:class:`handgrad.train.TrainingMonitor` computes them on the steps it monitors (through module
hooks); a live view can call them on whatever arrays its own hooks see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SATURATION",
    "Histogram",
    "dead_fraction",
    "first_nonfinite",
    "saturated_fraction",
    "update_ratio",
]

# |tanh| above this counts as saturated (its derivative 1 - t^2 is below 6% of its maximum);
# a sigmoid s = (1 + tanh(x / 2)) / 2 uses the same threshold on |2s - 1|
SATURATION = 0.97


@dataclass
class Histogram:
    """Counts of the finite elements of an array in ``len(counts)`` equal bins.

    ``edges`` has one more entry than ``counts``. The bins span the array's finite values
    but for a fraction ``tail`` at each end (so that a few outliers do not squeeze the rest
    into one bin): ``under`` and ``over`` count the elements below and above them and
    ``nonfinite`` the NaN and infinite ones, so ``counts.sum() + under + over + nonfinite`` is
    the array's size. ``mean`` and ``std`` are over every finite element (NaN if none).

    Examples:
        >>> h = Histogram.of(np.array([0.0, 1.0, 1.0, 3.0, np.nan]), bins=3)
        >>> h.counts.tolist(), h.edges.tolist(), h.nonfinite, h.size
        ([1, 2, 1], [0.0, 1.0, 2.0, 3.0], 1, 5)
    """

    counts: np.ndarray
    edges: np.ndarray
    nonfinite: int
    mean: float
    std: float
    under: int = 0
    over: int = 0

    @property
    def size(self) -> int:
        return int(self.counts.sum()) + self.under + self.over + self.nonfinite

    @classmethod
    def of(cls, x: np.ndarray, bins: int, tail: float = 0.0) -> Histogram:
        """The histogram of ``x`` in ``bins`` bins from its ``tail`` to its ``1 - tail``
        quantile (order statistics of the finite elements; ``tail=0``: min to max)."""
        x = np.asarray(x).ravel()
        finite = np.isfinite(x)
        nonfinite = x.size - int(np.count_nonzero(finite))
        if nonfinite:
            x = x[finite]
        n = x.size
        if n == 0:
            edges = np.linspace(-1.0, 1.0, bins + 1)
            return cls(np.zeros(bins, np.int64), edges, nonfinite, math.nan, math.nan)
        x = x.astype(np.float64, copy=False)
        k = int(tail * (n - 1))
        if k > 0:
            part = np.partition(x, (k, n - 1 - k))
            lo, hi = float(part[k]), float(part[n - 1 - k])
        else:
            lo, hi = float(x.min()), float(x.max())
        if lo == hi:  # a constant array (a ReLU that is all zeros): a unit range around it
            half = 0.5 * max(1.0, abs(lo))  # (at 1e30, +- 0.5 would round back to 1e30)
            lo, hi = lo - half, hi + half
        under = over = 0
        if k > 0:
            below, above = x < lo, x > hi
            under, over = int(np.count_nonzero(below)), int(np.count_nonzero(above))
            inside = x if under + over == 0 else x[~(below | above)]
        else:
            inside = x
        counts, edges = _uniform_counts(inside, lo, hi, bins)
        mean = float(x.mean())
        std = float(np.sqrt(np.mean((x - mean) ** 2)))
        return cls(counts, edges, nonfinite, mean, std, under, over)


def _uniform_counts(
    x: np.ndarray, lo: float, hi: float, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram(x, bins, range=(lo, hi))`` for float64 ``x`` within the range, the same
    bins to the last element, at half the cost (no sorting, no checks)."""
    scale = 1.0 if math.isfinite(hi - lo) else 0.5  # a range wider than the largest float
    if scale != 1.0:
        x, lo, hi = x * scale, lo * scale, hi * scale
    edges = np.linspace(lo, hi, bins + 1)
    idx = ((x - lo) * (bins / (hi - lo))).astype(np.intp)
    np.minimum(idx, bins - 1, out=idx)  # x == hi goes into the last bin, closed on the right
    # rounding can put x one bin off: bin i holds edges[i] <= x < edges[i + 1]
    idx -= x < edges[idx]
    idx += (x >= edges[idx + 1]) & (idx < bins - 1)
    return np.bincount(idx, minlength=bins).astype(np.int64, copy=False), edges / scale


def dead_fraction(out: np.ndarray) -> float:
    """Fraction of units (all positions but the batch axis 0) that are 0 for every sample.

    Examples:
        >>> dead_fraction(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]))  # unit 0 is dead
        0.33333333333333337
    """
    out = np.asarray(out)
    if out.ndim == 0 or out.shape[0] == 0:
        return math.nan
    alive = np.any(out.reshape(out.shape[0], -1) != 0, axis=0)
    return 1.0 - float(np.count_nonzero(alive)) / alive.size


def saturated_fraction(out: np.ndarray, kind: str) -> float:
    """Fraction of the outputs of a ``kind='Tanh'`` or ``'Sigmoid'`` layer in saturation:
    ``|t| > SATURATION`` for a tanh ``t``, ``|2 s - 1| > SATURATION`` for a sigmoid ``s``.

    Examples:
        >>> saturated_fraction(np.array([0.0, 0.5, 0.99, -1.0]), "Tanh")
        0.5
    """
    if kind not in ("Tanh", "Sigmoid"):
        raise ValueError(f"saturated_fraction: kind must be 'Tanh' or 'Sigmoid', got {kind!r}")
    t = np.abs(out) if kind == "Tanh" else np.abs(2.0 * out - 1.0)
    return float(np.count_nonzero(t > SATURATION)) / max(t.size, 1)


def update_ratio(before: np.ndarray, after: np.ndarray) -> float:
    """``||after - before|| / ||before||`` in float64: how far an optimizer step moved a
    parameter, relative to its size (about 1e-3 is the classic rule of thumb for a healthy
    rate); NaN for a parameter that was all zeros.

    Examples:
        >>> update_ratio(np.array([3.0, 4.0]), np.array([3.0, 4.5]))  # 0.5 / 5
        0.1
    """
    w = _norm(before)
    return _norm(after - before) / w if w > 0 else math.nan


def _norm(x: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(x, dtype=np.float64).ravel()))


def first_nonfinite(x: Any) -> str | None:
    """None if every element of ``x`` is finite, else ``'k of n values, first at index (i, j):
    nan'`` (the first in C order).

    Examples:
        >>> first_nonfinite(np.array([[0.0, 1.0], [np.nan, np.inf]]))
        '2 of 4 values, first at index (1, 0): nan'
    """
    if x is None:
        return None
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.inexact):
        return None
    bad = ~np.isfinite(a)
    k = int(np.count_nonzero(bad))
    if k == 0:
        return None
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad.ravel())), a.shape))
    value = a[idx] if a.ndim else a.item()
    where = f"first at index {idx}" if a.ndim else "a scalar"
    return f"{k} of {a.size} values, {where}: {value}"
