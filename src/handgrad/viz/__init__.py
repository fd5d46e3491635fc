"""Figures for runs and reports (matplotlib, imported only when a figure is drawn)."""

from handgrad.viz.maps import ProbabilityGrid, data_extent, probability_grid
from handgrad.viz.monitors import plot_monitors
from handgrad.viz.plots import (
    figure,
    plot_confusion,
    plot_curves,
    plot_history,
    plot_image_predictions,
    plot_probability_map,
    plot_snapshots,
    save_figure,
)

__all__ = [
    "ProbabilityGrid",
    "data_extent",
    "figure",
    "plot_confusion",
    "plot_curves",
    "plot_history",
    "plot_image_predictions",
    "plot_monitors",
    "plot_probability_map",
    "plot_snapshots",
    "probability_grid",
    "save_figure",
]
