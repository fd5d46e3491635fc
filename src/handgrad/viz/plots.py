"""Figures: training curves, probability maps and their snapshots over training.

Every function returns a ``matplotlib.figure.Figure`` drawn on the Agg canvas (no pyplot, no
global backend switch: it works headless and leaves a notebook's backend alone). matplotlib is
imported inside the functions, so importing ``handgrad.viz`` costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handgrad.viz.maps import ProbabilityGrid

__all__ = [
    "figure",
    "plot_confusion",
    "plot_curves",
    "plot_history",
    "plot_image_predictions",
    "plot_probability_map",
    "plot_snapshots",
    "save_figure",
]

# class colours: matplotlib's tab10, class 0 blue and class 1 red as in the binary maps
_CLASS_COLORS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float] = (6, 4.5),
    layout: str | None = "constrained",
) -> Any:
    """A new Figure on the Agg canvas and its axes (a single Axes, or an array of them).

    ``layout=None`` skips matplotlib's layout engine (much faster for grids of many images).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=True)
    return fig, axes


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` (the folder must exist); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi, format="png")
    return path


# -- curves --------------------------------------------------------------------------------
def plot_history(
    history: Sequence[dict[str, Any]],
    *,
    title: str = "",
    val_label: str = "validation",
    log_loss: bool | None = None,
) -> Any:
    """Loss per epoch (train and ``val_label``) and, when recorded, accuracy per epoch.

    ``log_loss=None`` uses a log scale when the loss spans more than a factor of 20.
    """
    if not history:
        raise ValueError("plot_history: the history is empty")
    has_acc = any("train_accuracy" in h or "val_accuracy" in h for h in history)
    fig, axes = figure(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4.2))
    ax_loss = axes[0] if has_acc else axes
    epochs = np.array([h["epoch"] for h in history])
    losses = []
    for key, label, style in (("train_loss", "train", "-"), ("val_loss", val_label, "--")):
        ys = np.array([h.get(key, np.nan) for h in history], dtype=float)
        if np.isfinite(ys).any():
            ax_loss.plot(epochs, ys, style, label=label, marker="o" if len(ys) <= 20 else None)
            losses.append(ys[np.isfinite(ys)])
    values = np.concatenate(losses) if losses else np.array([1.0])
    if log_loss is None:
        log_loss = values.min() > 0 and values.max() / values.min() > 20
    if log_loss:
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (log scale)" if log_loss else "loss")
    ax_loss.set_title("loss")
    ax_loss.grid(True, alpha=0.3)
    ax_loss.legend()
    if has_acc:
        ax_acc = axes[1]
        for key, label, style in (
            ("train_accuracy", "train", "-"),
            ("val_accuracy", val_label, "--"),
        ):
            ys = np.array([h.get(key, np.nan) for h in history], dtype=float) * 100
            if np.isfinite(ys).any():
                ax_acc.plot(epochs, ys, style, label=label, marker="o" if len(ys) <= 20 else None)
        ax_acc.set_xlabel("epoch")
        ax_acc.set_ylabel("accuracy (%)")
        ax_acc.set_title("accuracy")
        ax_acc.grid(True, alpha=0.3)
        ax_acc.legend()
    if title:
        fig.suptitle(title)
    return fig


def plot_curves(
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    log_y: bool = False,
) -> Any:
    """Several curves over one x axis, with a legend (e.g. loss per step)."""
    fig, ax = figure()
    for label, ys in series.items():
        ax.plot(x, ys, label=label)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


# -- probability maps ----------------------------------------------------------------------
def _draw_map(
    ax: Any,
    grid: ProbabilityGrid,
    X: np.ndarray | None,
    y: np.ndarray | None,
    classes: Sequence[str] | None,
    point_size: float,
) -> Any:
    """Draw one map on ``ax``; returns the image (for a colorbar)."""
    from matplotlib.colors import to_rgb

    x0, x1, y0, y1 = grid.extent
    p = grid.probs
    k = grid.num_classes
    if p.ndim == 2:
        # binary: P(class 1) from blue (0) through white to red (1), boundary at 0.5
        image = ax.imshow(
            p,
            origin="lower",
            extent=grid.extent,
            cmap="RdBu_r",
            vmin=0.0,
            vmax=1.0,
            aspect="auto",
            alpha=0.75,  # lighter than the points drawn on top, so they stand out
        )
        xs, ys = np.linspace(x0, x1, p.shape[1]), np.linspace(y0, y1, p.shape[0])
        if p.min() < 0.5 < p.max():
            ax.contour(xs, ys, p, levels=[0.5], colors="k", linewidths=1.5)
    else:
        # k classes: each cell mixes the class colours by probability, lightened toward white
        colors = np.array([to_rgb(_CLASS_COLORS[i % len(_CLASS_COLORS)]) for i in range(k)])
        rgb = 0.35 + 0.65 * (p @ colors)  # (H, W, 3)
        image = ax.imshow(np.clip(rgb, 0, 1), origin="lower", extent=grid.extent, aspect="auto")
        xs, ys = np.linspace(x0, x1, p.shape[1]), np.linspace(y0, y1, p.shape[0])
        for c in range(k):
            # class c's region boundary: where p_c equals the largest other probability
            margin = p[..., c] - np.delete(p, c, axis=-1).max(axis=-1)
            if margin.min() < 0 < margin.max():
                ax.contour(xs, ys, margin, levels=[0.0], colors="k", linewidths=1.2)
    if X is not None and y is not None:
        labels = np.asarray(y).reshape(-1)
        if labels.dtype.kind == "f":
            labels = (labels > 0.5).astype(int) if k == 2 else labels.astype(int)
        for c in range(k):
            sel = labels == c
            if not sel.any():
                continue
            name = classes[c] if classes is not None and c < len(classes) else f"class {c}"
            ax.scatter(
                X[sel, 0],
                X[sel, 1],
                s=point_size,
                c=_CLASS_COLORS[c % len(_CLASS_COLORS)],
                edgecolors="black",
                linewidths=0.5,
                label=name,
            )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return image


def plot_probability_map(
    grid: ProbabilityGrid,
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
    *,
    classes: Sequence[str] | None = None,
    title: str = "",
    point_size: float = 18,
) -> Any:
    """The predicted probability over the input square with the data points on top.

    Binary models: a heat map of P(class 1) with a colour bar and the 0.5 contour (the decision
    boundary). K classes: decision regions coloured by class, mixed by probability, with their
    boundaries drawn.
    """
    fig, ax = figure(figsize=(6.4, 5.2))
    image = _draw_map(ax, grid, X, y, classes, point_size)
    if grid.probs.ndim == 2:
        name = classes[1] if classes is not None and len(classes) > 1 else "class 1"
        fig.colorbar(image, ax=ax, label=f"P({name})")
        title = title or "predicted probability; black line: P = 0.5"
    else:
        title = title or "decision regions (colour mixed by probability)"
    ax.set_title(title)
    if X is not None and y is not None:
        ax.legend(loc="upper right", framealpha=0.85, fontsize="small")
    return fig


def plot_snapshots(
    snapshots: Sequence[tuple[int, ProbabilityGrid]],
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
    *,
    classes: Sequence[str] | None = None,
    losses: Sequence[float] | None = None,
    title: str = "",
    ncols: int = 5,
) -> Any:
    """Probability maps at several epochs side by side, each titled with its epoch (and loss)."""
    if not snapshots:
        raise ValueError("plot_snapshots: no snapshots")
    n = len(snapshots)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = figure(nrows, ncols, figsize=(3.4 * ncols, 3.2 * nrows + 0.4))
    flat = np.atleast_1d(axes).ravel()
    image = None
    for i, (epoch, grid) in enumerate(snapshots):
        image = _draw_map(flat[i], grid, X, y, classes, point_size=6)
        label = f"epoch {epoch}"
        if losses is not None:
            label += f", loss {losses[i]:.3g}"
        flat[i].set_title(label)
    for ax in flat[n:]:
        ax.set_visible(False)
    if image is not None and snapshots[0][1].probs.ndim == 2:
        name = classes[1] if classes is not None and len(classes) > 1 else "class 1"
        fig.colorbar(image, ax=list(flat[:n]), label=f"P({name})", shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig


def plot_image_predictions(
    images: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    classes: Sequence[str],
    *,
    title: str = "",
    ncols: int = 8,
) -> Any:
    """A grid of images (N, C, H, W) or (N, H, W) in [0, 1], each titled 'predicted (true)';
    wrong predictions in red."""
    n = len(images)
    if n == 0:
        raise ValueError("plot_image_predictions: no images")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    height = 1.7 * nrows + 0.5
    fig, axes = figure(nrows, ncols, figsize=(1.7 * ncols, height), layout=None)
    # fixed margins: the constrained layout engine costs seconds on a grid of 32 images
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=1 - 0.5 / height, wspace=0.1, hspace=0.35
    )
    flat = np.atleast_1d(axes).ravel()
    for i, ax in enumerate(flat):
        ax.set_axis_off()
        if i >= n:
            continue
        img = np.asarray(images[i], dtype=np.float32)
        if img.ndim == 3:  # (C, H, W) -> (H, W, C), or (H, W) for one channel
            img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)  # standardised input
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        wrong = int(predicted[i]) != int(labels[i])
        ax.set_title(
            f"{classes[int(predicted[i])]} ({classes[int(labels[i])]})",
            fontsize="small",
            color="tab:red" if wrong else "black",
        )
    fig.suptitle(title or "predicted (true); wrong in red")
    return fig


def plot_confusion(counts: np.ndarray, classes: Sequence[str], *, title: str = "") -> Any:
    """A confusion matrix (K, K) of counts, rows the true class and columns the predicted one:
    each cell shaded by its share of the true class's examples and labelled with its count."""
    counts = np.asarray(counts)
    K = len(classes)
    if counts.shape != (K, K):
        raise ValueError(f"plot_confusion: counts of shape {counts.shape} for {K} classes")
    totals = counts.sum(axis=1, keepdims=True)
    share = counts / np.maximum(totals, 1)
    side = max(4.0, 0.55 * K + 2.0)
    fig, ax = figure(figsize=(side + 0.8, side))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    for i in range(K):
        for j in range(K):
            ax.text(
                j,
                i,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                fontsize="x-small" if K > 6 else "small",
                color="white" if share[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(K), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(K), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    return fig
