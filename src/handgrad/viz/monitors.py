"""The training monitors' figure: histograms per layer and statistics over training.

:func:`plot_monitors` draws what a :class:`handgrad.train.TrainingMonitor` recorded
(``monitor.plot()`` calls it). matplotlib is imported inside the function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from handgrad.train.monitor_records import record_names
from handgrad.train.monitor_stats import Histogram
from handgrad.viz.plots import figure

if TYPE_CHECKING:
    from handgrad.train.monitors import TrainingMonitor

__all__ = ["plot_monitors"]


def plot_monitors(
    monitor: TrainingMonitor, *, title: str = "", max_layers: int = 6, max_lines: int = 5
) -> Any:
    """Three rows: the output histograms of up to ``max_layers`` layers, their gradient
    histograms (each panel with up to ``max_lines`` monitored steps, coloured from early to
    late), and four panels over the steps: output std, gradient std, dead ReLU units and
    saturated outputs, update-to-weight ratios.

    ``monitor`` is a :class:`handgrad.train.TrainingMonitor` (its ``records``, ``kinds`` and
    ``series``). Returns the matplotlib Figure."""
    from matplotlib import colormaps

    records = monitor.records
    if not records:
        raise ValueError("plot_monitors: the monitor has no records (no step was monitored)")
    layers = record_names(records, "activations") or record_names(records, "gradients")
    shown = _spread(layers, max_layers)
    chosen = _spread(records, max_lines)
    cmap = colormaps["viridis"]
    colors = [cmap(x) for x in np.linspace(0.0, 0.9, len(chosen))]
    ncols = max(len(shown), 4)
    # no layout engine: constrained layout takes seconds on a grid of 15 panels
    fig, grid = figure(3, ncols, figsize=(2.7 * ncols, 9.0), layout=None)
    width = 2.7 * ncols
    fig.subplots_adjust(
        left=0.7 / width, right=1 - 0.15 / width, top=0.9, bottom=0.06, wspace=0.32, hspace=0.62
    )
    titles = {
        "activations": "output histograms (every element of the batch, the middle 99%)",
        "gradients": "gradient histograms: d loss / d output (log density), same colours",
    }
    kinds = monitor.kinds
    for axes, attr in zip(grid[:2], ("activations", "gradients"), strict=True):
        for ax in axes[len(shown) :]:
            ax.set_visible(False)
        for ax, name in zip(axes, shown, strict=False):
            for rec, color in zip(chosen, colors, strict=True):
                h = getattr(rec, attr).get(name)
                if h is None or h.counts.sum() == 0:
                    continue
                edges, density = _density(h)
                label = f"step {rec.step} (epoch {rec.epoch})"
                ax.stairs(density, edges, color=color, lw=1.3, label=label)
            kind = f" ({kinds[name]})" if name in kinds else ""
            ax.set_title(f"layer {name or 'model'}{kind}", fontsize=10)
            ax.set_xlabel("output value" if attr == "activations" else "gradient value")
            if attr == "gradients":
                # gradients are heavy-tailed (most samples are learnt, a few are not)
                ax.set_yscale("log")
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("density" if attr == "activations" else "density (log)")
        if attr == "activations":  # the same colours in the row below
            axes[0].legend(fontsize=7, title="monitored at", title_fontsize=7)
        _row_title(fig, axes[0], titles[attr])
    _plot_series(monitor, grid[2], layers, kinds)
    _row_title(fig, grid[2][0], "over training (one point per monitored step)")
    head = title or "training monitors"
    if len(shown) < len(layers):
        head += f" (histograms of {len(shown)} of {len(layers)} layers)"
    fig.suptitle(head, fontsize=13, y=0.985)
    return fig


def _spread(items: Sequence[Any], k: int) -> list[Any]:
    """At most ``k`` items, evenly spaced, keeping the first and the last."""
    if len(items) <= k:
        return list(items)
    idx = np.unique(np.round(np.linspace(0, len(items) - 1, k)).astype(int))
    return [items[i] for i in idx]


def _row_title(fig: Any, ax: Any, text: str) -> None:
    top = ax.get_position().y1
    fig.text(0.5, top + 0.035, text, ha="center", va="bottom", fontsize=11)


def _density(h: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges and densities (integrating to 1); bins are merged k at a time (keeping every
    k-th edge) so that a small batch still has a few samples per bin."""
    n = int(h.counts.sum())
    bins = len(h.counts)
    k = max(1, round(bins / max(8.0, math.sqrt(n))))
    edges = np.append(h.edges[:-1:k], h.edges[-1])
    counts = np.add.reduceat(h.counts, np.arange(0, bins, k))
    widths = np.diff(edges)
    return edges, counts / (n * widths)


def _plot_series(
    monitor: TrainingMonitor, axes: Any, layers: list[str], kinds: dict[str, str]
) -> None:
    for ax in axes[4:]:
        ax.set_visible(False)
    ax_act, ax_grad, ax_dead, ax_ratio = axes[:4]
    marker = "o" if len(monitor.records) <= 20 else None
    for name in layers:
        label = f"{name} {kinds.get(name, '')}".strip()
        ax_act.plot(*monitor.series("activation_std", name), marker=marker, ms=3, label=label)
        steps, g = monitor.series("gradient_std", name)
        ax_grad.plot(steps, np.where(g > 0, g, np.nan), marker=marker, ms=3, label=label)
    ax_act.set_title("output std per layer", fontsize=10)
    ax_grad.set_title("gradient std per layer", fontsize=10)
    ax_grad.set_yscale("log")
    names = {k: record_names(monitor.records, k) for k in ("dead", "saturated", "update_ratio")}
    for name in names["dead"]:
        steps, v = monitor.series("dead", name)
        ax_dead.plot(steps, 100 * v, marker=marker, ms=3, label=f"{name} ReLU: dead units")
    for name in names["saturated"]:
        steps, v = monitor.series("saturated", name)
        kind = kinds.get(name, "")
        ax_dead.plot(steps, 100 * v, "--", marker=marker, ms=3, label=f"{name} {kind}: saturated")
    if not names["dead"] and not names["saturated"]:
        ax_dead.text(0.5, 0.5, "no ReLU, Tanh or Sigmoid layers", ha="center", va="center",
                     transform=ax_dead.transAxes)  # fmt: skip
    ax_dead.set_title("dead ReLU units / saturated outputs", fontsize=10)
    ax_dead.set_ylabel("%")
    for name in names["update_ratio"]:
        steps, v = monitor.series("update_ratio", name)
        style = "-" if name.endswith("weight") else ":"
        ax_ratio.plot(steps, np.where(v > 0, v, np.nan), style, marker=marker, ms=3, label=name)
    ax_ratio.axhline(1e-3, color="gray", lw=1, ls="--", label="1e-3 rule of thumb")
    ax_ratio.set_yscale("log")
    ax_ratio.set_title("||update|| / ||weight||", fontsize=10)
    for ax in axes[:4]:
        ax.set_xlabel("global step")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=1 + len(ax.get_legend_handles_labels()[0]) // 7)
