"""The confusion matrix every classifier experiment reports, and fashion-mlp / fashion-cnn end
to end on tiny Fashion-MNIST IDX files (written by a helper of test_experiments.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from handgrad import viz
from handgrad.data import download as download_mod
from handgrad.data import mnist as mnist_mod
from handgrad.experiments import make_config, start
from handgrad.experiments.classifier import confused_pairs, confusion_matrix, confusion_table
from handgrad.train import Callback
from test_experiments import PNG, write_mnist


# -- the confusion matrix, worked by hand --------------------------------------------------
def test_confusion_matrix_by_hand():
    # true:      0  0  0  1  1  2  2  2  2
    # predicted: 0  1  2  1  1  0  0  2  1
    # class 0: one right, one taken for 1, one for 2; class 1: both right;
    # class 2: one right, two taken for 0, one for 1
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    predicted = [0, 1, 2, 1, 1, 0, 0, 2, 1]
    counts = confusion_matrix(labels, predicted, 3)
    assert counts.tolist() == [[1, 1, 1], [0, 2, 0], [2, 1, 1]]
    assert counts.dtype == np.int64
    assert counts.sum() == 9 and np.trace(counts) == 4  # 4 of 9 right
    # largest off-diagonal cell first; ties by true class, then predicted class
    assert confused_pairs(counts) == [(2, 0, 2), (0, 1, 1), (0, 2, 1), (2, 1, 1)]
    assert confused_pairs(counts, k=2) == [(2, 0, 2), (0, 1, 1)]
    table = confusion_table(counts, ("a", "b", "c"), k=2)
    assert table.splitlines() == [
        "Most-confused pairs on the test set (5 of 9 wrong):",
        "",
        "| true | predicted as | count | share of the true class |",
        "|---|---|---|---|",
        "| c | a | 2 | 50.0% |",
        "| a | b | 1 | 33.3% |",
    ]


def test_confusion_matrix_edge_cases():
    assert confusion_matrix([1, 1], [1, 1], 2).tolist() == [[0, 0], [0, 2]]
    assert confused_pairs(np.eye(3, dtype=int)) == []  # nothing wrong
    assert confusion_table(np.eye(2, dtype=int) * 5, ("x", "y")).endswith("(0 of 10 wrong): none.")
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        confusion_matrix([0, 1, 1], [0, 1], 2)
    with pytest.raises(ValueError, match=r"a prediction outside 0\.\.1"):
        confusion_matrix([0, 1], [0, 2], 2)


def test_plot_confusion_labels_the_counts():
    counts = np.array([[5, 1], [0, 4]])
    fig = viz.plot_confusion(counts, ["cat", "dog"])
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "4", "5"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]
    with pytest.raises(ValueError, match="plot_confusion: counts of shape"):
        viz.plot_confusion(counts, ["a", "b", "c"])


# -- fashion-mlp and fashion-cnn on tiny IDX files -----------------------------------------
@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch):
    """Tiny Fashion-MNIST IDX files; the real files' checksums and Debian's folder are off."""
    write_mnist(tmp_path / "data" / "fashion-mnist", n_train=300, n_test=100)
    tiny = dataclasses.replace(mnist_mod.FASHION_MNIST, md5={}, sha256={})
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST", tiny)
    monkeypatch.setattr(download_mod, "DEBIAN_DIRS", {})
    return {"data_dir": str(tmp_path / "data"), "download": False, "quiet": True}


def check_classifier_report(run, results):
    report = run.report_path.read_text()
    for name in ("curves", "predictions", "confusion", "mistakes"):
        assert (run.dir / f"{name}.png").read_bytes()[:8] == PNG, name
        assert f"]({name}.png)" in report, name
    assert all(np.isfinite(v) for v in results.values())
    assert "Most-confused pairs on the test set (" in report
    assert "| true | predicted as | count | share of the true class |" in report
    # the table's counts agree with the test accuracy
    wrong = round((1 - results["test_accuracy"]) * 100)
    assert f"({wrong} of 100 wrong)" in report
    return report


def test_fashion_mlp_on_tiny_idx_files(tiny_fashion, tmp_path):
    overrides = {**tiny_fashion, "epochs": 3, "hidden": (32,), "val_size": 44}
    run, results = start("fashion-mlp", overrides, out=tmp_path / "runs")
    report = check_classifier_report(run, results)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert results["test_accuracy"] >= 0.3  # chance: 10%
    assert "Trained on 256 of the Fashion-MNIST training images and tested on 100" in report
    assert "T-shirt/top" in report or "Trouser" in report  # class names, not numbers


def test_fashion_cnn_on_tiny_idx_files(tiny_fashion, tmp_path):
    overrides = {**tiny_fashion, "epochs": 2, "layers": "4,M", "hidden": (16,), "val_size": 44}
    # with the augmentation switched on: the training batches are shifted and mirrored
    overrides.update(shift=1, flip=True)
    seen = []

    class Layers(Callback):
        def on_train_begin(self, state):
            seen.extend(type(m).__name__ for m in state.model.modules())

    run, results = start("fashion-cnn", overrides, out=tmp_path / "runs", callbacks=[Layers()])
    assert seen.count("BatchNorm2d") == 1  # after the one convolution, by default
    check_classifier_report(run, results)
    assert run.history[-1]["step"] == 8  # 256 training images, batch 64, 2 epochs
    assert "applies to the full data" in run.report_path.read_text()


def test_fashion_defaults():
    mlp, cnn = make_config("fashion-mlp", {}), make_config("fashion-cnn", {})
    assert (mlp.hidden, mlp.dropout, mlp.schedule, mlp.val_size) == (
        (512, 256),
        0.2,
        "cosine",
        5000,
    )
    assert (cnn.layers, cnn.hidden, cnn.schedule) == (("32", "M", "64", "M"), (128,), "cosine")
    assert (cnn.conv_dropout, cnn.dropout, cnn.epochs, cnn.batchnorm) == (0.0, 0.3, 8, True)
    assert (cnn.shift, cnn.flip) == (0, False)  # augmentation off: it lost on validation
    with pytest.raises(ValueError, match=r"FashionCNNConfig: invalid dropout 1.0, must be in"):
        make_config("fashion-cnn", {"dropout": "1"})
