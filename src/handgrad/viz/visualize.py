"""Figures of input-space optimisation: class visualisations and saliency maps.

The arrays come from :mod:`handgrad.inputspace`; images are (N, C, H, W) with C = 1 (grey) or
3 (colour). Each image is stretched to its own min..max for display. matplotlib is imported
only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from handgrad.viz.plots import figure

__all__ = ["plot_class_images", "plot_regularizer_grid", "plot_saliency", "to_display"]


def to_display(img: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) for one channel or (H, W, 3), stretched to [0, 1]."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    lo, hi = img.min(), img.max()
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def _show(ax: Any, img: np.ndarray) -> None:
    d = to_display(img)
    ax.imshow(d, cmap="gray" if d.ndim == 2 else None, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_class_images(
    images: np.ndarray,
    targets: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    title: str = "",
    ncols: int = 5,
) -> Any:
    """One optimised image per class in a grid, each titled with its class and the model's
    probability for it."""
    n = len(images)
    if n == 0:
        raise ValueError("plot_class_images: no images")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = figure(nrows, ncols, figsize=(1.9 * ncols, 2.1 * nrows + 0.6), layout=None)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.7 / (2.1 * nrows + 0.6))
    flat = np.atleast_1d(axes).ravel()
    for i, ax in enumerate(flat):
        if i >= n:
            ax.set_axis_off()
            continue
        _show(ax, images[i])
        ax.set_title(f"{classes[int(targets[i])]}: p = {probs[i]:.4f}", fontsize="small")
    fig.suptitle(title or "inputs that maximise each class score")
    return fig


def plot_regularizer_grid(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray]],
    targets: np.ndarray,
    classes: Sequence[str],
    *,
    title: str = "",
) -> Any:
    """Rows of class visualisations, one row per regulariser setting: ``(label, images (K, C,
    H, W), probs (K,))``; columns are the classes ``targets``. The smallest probability of
    each row follows its label."""
    nrows, ncols = len(rows), len(targets)
    if nrows == 0 or ncols == 0:
        raise ValueError("plot_regularizer_grid: nothing to draw")
    width, height = 1.15 * ncols + 1.9, 1.2 * nrows + 0.8
    fig, axes = figure(nrows, ncols, figsize=(width, height), layout=None)
    fig.subplots_adjust(
        left=1.8 / width, right=0.99, bottom=0.02, top=1 - 0.75 / height, wspace=0.08, hspace=0.1
    )
    axes = np.array(axes, dtype=object).reshape(nrows, ncols)
    for r, (label, images, probs) in enumerate(rows):
        for c in range(ncols):
            _show(axes[r, c], images[c])
            if r == 0:
                axes[r, c].set_title(classes[int(targets[c])], fontsize="small")
        axes[r, 0].set_ylabel(
            f"{label}\nmin p = {np.min(probs):.3f}",
            rotation=0,
            ha="right",
            va="center",
            fontsize="small",
        )
    fig.suptitle(title or "the same class visualisation under each regulariser")
    return fig


def plot_saliency(
    images: np.ndarray,
    maps: np.ndarray,
    predicted: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    *,
    title: str = "",
) -> Any:
    """Real images (top row) and their saliency maps (bottom row, |d score / d x|, brighter is
    more sensitive), titled 'predicted (true)'."""
    n = len(images)
    if n == 0 or len(maps) != n:
        raise ValueError(f"plot_saliency: {n} images and {len(maps)} maps")
    fig, axes = figure(2, n, figsize=(1.5 * n + 0.4, 3.7), layout=None)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.02, top=0.82, wspace=0.08, hspace=0.15)
    axes = np.array(axes, dtype=object).reshape(2, n)
    for i in range(n):
        _show(axes[0, i], images[i])
        wrong = int(predicted[i]) != int(labels[i])
        axes[0, i].set_title(
            f"{classes[int(predicted[i])]} ({classes[int(labels[i])]})",
            fontsize="small",
            color="tab:red" if wrong else "black",
        )
        axes[1, i].imshow(maps[i], cmap="hot", interpolation="nearest")
        axes[1, i].set_xticks([])
        axes[1, i].set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize="small")
    axes[1, 0].set_ylabel("saliency", fontsize="small")
    fig.suptitle(
        title or "saliency: |d logit of the predicted class / d pixel|; titles: predicted (true)"
    )
    return fig
