"""Probability maps over a 2-D input square (NumPy only; drawing lives in plots.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["ProbabilityGrid", "data_extent", "probability_grid"]


@dataclass
class ProbabilityGrid:
    """Predicted class probabilities on a regular grid.

    ``probs`` is (H, W) for a binary model (the probability of class 1) or (H, W, K) for K
    classes; ``extent`` is ``(x_min, x_max, y_min, y_max)``; row 0 is ``y_min``.
    """

    probs: np.ndarray
    extent: tuple[float, float, float, float]

    @property
    def num_classes(self) -> int:
        return 2 if self.probs.ndim == 2 else self.probs.shape[-1]


def data_extent(X: np.ndarray, margin: float = 0.1) -> tuple[float, float, float, float]:
    """The bounding square of 2-D points ``X`` (N, 2), grown by ``margin`` of its size."""
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"data_extent: expected points (N, 2), got {X.shape}")
    lo, hi = X.min(axis=0).astype(float), X.max(axis=0).astype(float)
    pad = margin * float(max(hi - lo))
    return (lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad)


def probability_grid(
    predict: Callable[[np.ndarray], np.ndarray],
    extent: tuple[float, float, float, float],
    resolution: int = 150,
    dtype: type = np.float32,
) -> ProbabilityGrid:
    """Evaluate ``predict`` on a ``resolution`` x ``resolution`` grid over ``extent``.

    ``predict`` maps points (M, 2) to probabilities (M,) or (M, 1) (binary: class 1) or
    (M, K) (rows summing to 1).
    """
    x0, x1, y0, y1 = extent
    xs = np.linspace(x0, x1, resolution)
    ys = np.linspace(y0, y1, resolution)
    xx, yy = np.meshgrid(xs, ys)  # (H, W); row i is ys[i]
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(dtype)  # (H*W, 2)
    p = np.asarray(predict(points))
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    shape = (resolution, resolution, *p.shape[1:])
    return ProbabilityGrid(p.reshape(shape).astype(np.float32), tuple(map(float, extent)))
