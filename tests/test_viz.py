"""Figures: probability grids (closed forms), plots with titles/labels/legends, valid PNGs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from handgrad import viz

PNG = b"\x89PNG\r\n\x1a\n"


def logistic(P: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(3.0 * P[:, 0] - P[:, 1])))


def test_probability_grid_evaluates_the_function_on_the_grid():
    grid = viz.probability_grid(logistic, (-1.0, 2.0, -3.0, 1.0), resolution=7, dtype=np.float64)
    assert grid.probs.shape == (7, 7) and grid.num_classes == 2
    xs, ys = np.linspace(-1, 2, 7), np.linspace(-3, 1, 7)
    # row i is y = ys[i], column j is x = xs[j]; row 0 is the bottom (y_min)
    expected = 1 / (1 + np.exp(-(3 * xs[None, :] - ys[:, None])))
    np.testing.assert_allclose(grid.probs, expected, rtol=1e-6)
    assert grid.extent == (-1.0, 2.0, -3.0, 1.0)


def test_probability_grid_squeezes_one_column_and_keeps_k_classes():
    one = viz.probability_grid(lambda P: logistic(P)[:, None], (0, 1, 0, 1), resolution=4)
    assert one.probs.shape == (4, 4)
    three = viz.probability_grid(lambda P: np.full((len(P), 3), 1 / 3), (0, 1, 0, 1), 5)
    assert three.probs.shape == (5, 5, 3) and three.num_classes == 3


def test_data_extent_pads_the_bounding_box():
    X = np.array([[0.0, 0.0], [2.0, 1.0]])
    assert viz.data_extent(X, margin=0.5) == (-1.0, 3.0, -1.0, 2.0)
    with pytest.raises(ValueError, match=r"data_extent: expected points \(N, 2\), got \(2, 3\)"):
        viz.data_extent(np.zeros((2, 3)))


def history(with_accuracy: bool, epochs: int = 30) -> list[dict]:
    out = []
    for e in range(1, epochs + 1):
        h = {"epoch": e, "step": 10 * e, "train_loss": 2.0 / e**1.5, "val_loss": 2.5 / e**1.5}
        if with_accuracy:
            h.update(train_accuracy=1 - 0.5 / e, val_accuracy=1 - 0.6 / e)
        out.append(h)
    return out


def test_plot_history_panels_labels_and_log_scale(tmp_path):
    fig = viz.plot_history(history(True), title="run", val_label="test")
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_yscale() == "log"  # the loss spans a factor > 20
    assert loss_ax.get_xlabel() == "epoch" and loss_ax.get_ylabel() == "loss (log scale)"
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["train", "test"]
    assert acc_ax.get_ylabel() == "accuracy (%)"
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata()[0], 50.0)  # shown in percent
    assert fig._suptitle.get_text() == "run"
    path = viz.save_figure(fig, tmp_path / "h.png")
    assert path.read_bytes()[:8] == PNG

    (only,) = viz.plot_history(history(False, epochs=3), log_loss=False).axes
    assert only.get_yscale() == "linear" and only.get_ylabel() == "loss"
    with pytest.raises(ValueError, match="plot_history: the history is empty"):
        viz.plot_history([])


def test_probability_map_binary_and_k_classes(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (50, 2))
    y = (logistic(X) > 0.5).astype(int)
    grid = viz.probability_grid(logistic, viz.data_extent(X), resolution=30)
    fig = viz.plot_probability_map(grid, X, y, classes=("no", "yes"))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "$x_1$" and ax.get_ylabel() == "$x_2$"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["no", "yes"]
    assert fig.axes[1].get_ylabel() == "P(yes)"  # the colour bar
    assert "P = 0.5" in ax.get_title()
    assert viz.save_figure(fig, tmp_path / "b.png").read_bytes()[:8] == PNG

    def softmax3(P):
        z = np.stack([P[:, 0], P[:, 1], -P[:, 0]], axis=1) * 4
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    y3 = softmax3(X).argmax(axis=1)
    grid3 = viz.probability_grid(softmax3, viz.data_extent(X), resolution=30)
    fig = viz.plot_probability_map(grid3, X, y3)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "class 0",
        "class 1",
        "class 2",
    ]
    assert "decision regions" in fig.axes[0].get_title()
    assert viz.save_figure(fig, tmp_path / "k.png").read_bytes()[:8] == PNG


def test_snapshots_and_image_predictions(tmp_path):
    X = np.random.default_rng(0).uniform(-1, 1, (20, 2))
    grid = viz.probability_grid(logistic, (-1, 1, -1, 1), resolution=10)
    fig = viz.plot_snapshots(
        [(1, grid), (5, grid), (9, grid)], X, logistic(X) > 0.5, losses=[1, 2, 3]
    )
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["epoch 1, loss 1", "epoch 5, loss 2", "epoch 9, loss 3"]
    assert viz.save_figure(fig, tmp_path / "s.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="plot_snapshots: no snapshots"):
        viz.plot_snapshots([])

    images = np.random.default_rng(1).random((5, 1, 8, 8))
    fig = viz.plot_image_predictions(images, [0, 1, 2, 1, 0], [0, 1, 1, 1, 2], ["a", "b", "c"])
    shown = [(ax.get_title(), ax.title.get_color()) for ax in fig.axes if ax.get_title()]
    assert shown == [
        ("a (a)", "black"),
        ("b (b)", "black"),
        ("b (c)", "tab:red"),
        ("b (b)", "black"),
        ("c (a)", "tab:red"),
    ]
    with pytest.raises(ValueError, match="plot_image_predictions: no images"):
        viz.plot_image_predictions(images[:0], [], [], ["a"])


def test_plot_curves(tmp_path):
    fig = viz.plot_curves(
        [1, 2, 3], {"a": [3, 2, 1]}, xlabel="step", ylabel="loss", title="t", log_y=True
    )
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title(), ax.get_yscale()) == (
        "step",
        "loss",
        "t",
        "log",
    )


def test_core_and_lab_imports_stay_light():
    """Importing the training core, the figures module and the experiments pulls in neither
    matplotlib, torch nor tqdm: they load only when a figure or a progress bar is made."""
    code = (
        "import sys, handgrad.train, handgrad.viz, handgrad.experiments, handgrad.cli\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'torch', 'tqdm')]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
