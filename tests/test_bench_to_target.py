"""bench/bench_to_target.py: the PyTorch twin takes the same step as handgrad (what makes the
time-to-target comparison fair), the time-to-target rule, and one tiny run end to end on tiny
Fashion-MNIST IDX files (written by a helper of test_experiments.py).

No timing is asserted: the benchmark itself is run by hand (``python bench/bench_to_target.py``).
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from handgrad.data import download as download_mod
from handgrad.data import mnist as mnist_mod
from handgrad.experiments import make_config
from handgrad.experiments.classifier import Target
from test_experiments import write_mnist

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench(torch: Any) -> Iterator[ModuleType]:
    """bench_to_target, imported from bench/ (not a package; it imports bench_peers)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("bench_to_target")
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture
def no_data_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the folders a test names are searched: no cache, no $HANDGRAD_DATA, no Debian."""
    monkeypatch.delenv("HANDGRAD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(download_mod, "DEBIAN_DIRS", {})


@pytest.fixture
def tiny_fashion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_data_on_disk: None) -> str:
    """Tiny Fashion-MNIST IDX files (300 train, 100 test); the real files' checksums are off.
    Returns the data folder."""
    write_mnist(tmp_path / "data" / "fashion-mnist", n_train=300, n_test=100)
    tiny = dataclasses.replace(mnist_mod.FASHION_MNIST, md5={}, sha256={})
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST", tiny)
    return str(tmp_path / "data")


# -- the twins take the same step ------------------------------------------------------------
CNN_TINY = {"layers": "4,M", "hidden": (8,)}
MLP_TINY = {"hidden": (16, 8)}
TWIN_CASES = [
    # (experiment, overrides): dropout off, so that the two steps are the same maths
    ("fashion-cnn", {**CNN_TINY, "dropout": 0.0}),  # BatchNorm2d, Adam, cosine schedule
    ("fashion-mlp", {**MLP_TINY, "dropout": 0.0}),
    ("mnist-cnn", {**CNN_TINY, "schedule": "constant"}),
    ("mnist-mlp", MLP_TINY),
    ("fashion-mlp", {**MLP_TINY, "dropout": 0.0, "optimizer": "sgd", "weight_decay": 1e-3}),
    ("fashion-mlp", {**MLP_TINY, "dropout": 0.0, "optimizer": "adamw", "weight_decay": 0.1}),
    ("mnist-cnn", {**CNN_TINY, "optimizer": "rmsprop", "lr": 1e-2}),
]


def twin_batch(flat: bool, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((16, 1, 8, 8), dtype=np.float32)
    return (x.reshape(16, -1) if flat else x), rng.integers(0, 10, 16)


def biases_before_batchnorm(model: Any) -> set[str]:
    """The biases of layers followed by a BatchNorm, which subtracts them again: their exact
    gradient is 0, so each library's is rounding noise of ~1e-9, and Adam's update
    lr * g / (|g| + eps) turns that noise into steps of up to lr that differ between the
    libraries (harmlessly: the output does not depend on these biases)."""
    import handgrad.nn as nn

    layers = [(name, m) for name, m in model.named_modules() if name and "." not in name]
    return {
        f"{name}.bias"
        for (name, layer), (_, after) in itertools.pairwise(layers)
        if isinstance(after, (nn.BatchNorm1d, nn.BatchNorm2d))
        and getattr(layer, "bias", None) is not None
    }


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("experiment", "overrides"), TWIN_CASES)
def test_one_step_leaves_the_twins_with_the_same_parameters(
    bench: ModuleType, torch: Any, experiment: str, overrides: dict[str, Any]
) -> None:
    spec = bench.EXPERIMENTS[experiment]
    cfg = make_config(experiment, {**overrides, "seed": 3})
    x, y = twin_batch(spec.network.flat)
    twins = bench.make_twins(spec, cfg, x.shape[1:], 10, total_steps=4)
    before = {k: v.copy() for k, v in twins.model.state_dict().items()}
    assert type(twins.toptimizer).__name__ == type(twins.optimizer).__name__
    assert len(twins.tschedulers) == (cfg.schedule == "cosine" if hasattr(cfg, "schedule") else 0)

    loss = twins.handgrad_step(x, y)
    tloss = twins.torch_step(torch.from_numpy(x), torch.from_numpy(y))

    assert tloss == pytest.approx(loss, rel=1e-5)
    ours, theirs = twins.model.state_dict(), twins.tmodel.state_dict()
    assert set(ours) <= set(theirs)  # torch's BatchNorm also counts its batches
    cancelled = biases_before_batchnorm(twins.model)
    assert bool(cancelled) == getattr(cfg, "batchnorm", False)
    for name, value in ours.items():
        if name in cancelled:
            continue
        np.testing.assert_allclose(
            theirs[name].numpy(), value, rtol=1e-5, atol=1e-6, err_msg=f"{experiment}: {name}"
        )
    # and so the same function: the next forward pass agrees
    with torch.no_grad():
        tout = twins.tmodel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(tout, twins.model(x), rtol=1e-4, atol=1e-5)
    # the step did move the weights, and the schedules agree on the next lr
    assert any(not np.array_equal(before[k], v) for k, v in ours.items())
    assert twins.toptimizer.param_groups[0]["lr"] == pytest.approx(
        twins.optimizer.param_groups[0]["lr"], rel=1e-12
    )


def test_torch_optimizer_refuses_what_torch_cannot_do(bench: ModuleType, torch: Any) -> None:
    import handgrad.nn as nn
    import handgrad.optim as optim

    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 2))
    opt = optim.SGD(model.parameters(), lr=0.1)
    opt.param_groups[0]["nonsense"] = 1
    with pytest.raises(ValueError, match=r"SGD has nonsense=1, which torch.optim.SGD"):
        bench.torch_optimizer(opt, tmodel)


# -- time to target --------------------------------------------------------------------------
def test_time_to_target_is_the_first_epoch_that_reaches_it(bench: ModuleType) -> None:
    target = Target(0.9, "")
    # (seconds of the epoch, test accuracy after it): reached at epoch 3, lost, reached again
    epochs = [(2.0, 0.5), (3.0, 0.89), (4.0, 0.91), (1.0, 0.88), (2.0, 0.95)]
    assert bench.time_to_target(epochs, target) == (3, 9.0)
    assert bench.time_to_target(epochs[:2], target) is None
    assert bench.time_to_target([], target) is None
    # at the value exactly counts, as Target.note judges; an `above` target needs more
    assert bench.time_to_target([(1.5, 0.9)], target) == (1, 1.5)
    assert bench.time_to_target([(1.5, 0.9), (1.0, 0.901)], Target(0.9, "", above=True)) == (
        2,
        2.5,
    )


def test_summary_and_table(bench: ModuleType) -> None:
    row = bench.EpochRow
    rows = [
        row(1, 2.0, 1.0, 0.80, 3.0, 1.0, 0.85),
        row(2, 3.0, 0.5, 0.93, 3.0, 0.5, 0.91),
        row(3, 2.0, 0.4, 0.94, 3.0, 0.4, 0.92),
    ]
    target = Target(0.92, "")
    lines = bench.summary(rows, target)
    assert lines[0] == (
        "time to 92% test accuracy: handgrad 5.000 s (epoch 2), PyTorch 9.000 s (epoch 3); "
        "handgrad / PyTorch 0.56x"
    )
    assert lines[1] == (
        "total training time (3 epochs): handgrad 7.000 s, PyTorch 9.000 s; "
        "handgrad / PyTorch 0.78x"
    )
    table = bench.epoch_table(rows, target).splitlines()
    assert table[0].startswith("| epoch | handgrad s | handgrad total s |")
    assert table[3] == (
        "| 2 | 3.000 | 5.000 | 0.5000 | **93.00%** | 3.000 | 6.000 | 0.5000 | 91.00% | 1.00x |"
    )
    never = bench.summary(rows[:1], target)[0]
    assert never.endswith("PyTorch not reached in 1 epochs; handgrad / PyTorch -")


# -- the command -----------------------------------------------------------------------------
@pytest.mark.usefixtures("one_thread")
def test_tiny_run_end_to_end(bench: ModuleType, tiny_fashion: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results" / "tiny.md"
    args = [
        "--experiment", "fashion-cnn", "--epochs", "2", "--threads", "1", "--pause", "0",
        "--set", "layers=4,M", "--set", "hidden=8", "--set", "val_size=44",
        "--set", f"data_dir={tiny_fashion}", "--out", str(out),
    ]  # fmt: skip
    assert bench.main(args) == 0
    printed = capsys.readouterr().out
    assert "threads: 1 (BLAS pinned with threadpoolctl, torch.set_num_threads(1))" in printed
    assert "Dropout masks differ between the libraries" in printed
    assert "time to 92% test accuracy: handgrad " in printed
    report = out.read_text()
    assert "Produced by `python bench/bench_to_target.py --experiment fashion-cnn" in report
    assert "Trained on 256 of the Fashion-MNIST training images and tested on 100" in report
    assert "| epoch | handgrad s |" in report and "\n| 2 | " in report
    raw = json.loads(out.with_suffix(".json").read_text())
    assert raw["experiment"] == "fashion-cnn" and raw["target"] == 0.92
    assert [e["epoch"] for e in raw["epochs"]] == [1, 2]
    for e in raw["epochs"]:
        assert e["handgrad_s"] > 0 and e["torch_s"] > 0
        assert 0 <= e["handgrad_acc"] <= 1 and 0 <= e["torch_acc"] <= 1


@pytest.mark.usefixtures("no_data_on_disk")
def test_missing_mnist_fails_with_one_line(bench: ModuleType, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert bench.main(["--experiment", "mnist-mlp", "--set", f"data_dir={empty}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("mnist-mlp: mnist: ") and "not found" in err and "download" in err


def test_unknown_config_key_fails_with_one_line(bench: ModuleType, capsys) -> None:
    assert bench.main(["--experiment", "fashion-mlp", "--set", "nonsense=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fashion-mlp: fashion-mlp: unknown config key 'nonsense'")
