"""Run folders: layout, metrics, report, and exact resume after a kill or an interrupt."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import handgrad.nn as nn
import handgrad.optim as optim
from handgrad.cli import main
from handgrad.data import DataLoader
from handgrad.train import Run, load_checkpoint, read_run_config
from handgrad.train import runs as runs_mod

# the tiny toy run used for resume tests: 4 steps per epoch, checkpoints after epochs 2, 4, 6
TOY = [
    "epochs=6",
    "n_train=64",
    "n_test=32",
    "batch_size=16",
    "checkpoint_every=2",
    "snapshots=1,3,5",
    "resolution=12",
]


@dataclass(frozen=True)
class Cfg:
    seed: int = 0
    lr: float = 0.1
    hidden: tuple[int, ...] = (4,)
    quiet: bool = False


def test_create_makes_unique_timestamped_folders(tmp_path, monkeypatch):
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2024, 5, 6, 7, 8, 9)

    monkeypatch.setattr(runs_mod, "datetime", Frozen)
    a = Run.create("toy", Cfg(), out=tmp_path / "runs", argv=["handgrad", "run", "toy"])
    b = Run.create("toy", Cfg(), out=tmp_path / "runs")
    assert a.dir == tmp_path / "runs" / "toy-20240506-070809"
    assert b.dir == tmp_path / "runs" / "toy-20240506-070809-2"
    saved = json.loads((a.dir / "config.json").read_text())
    assert saved["experiment"] == "toy"
    assert saved["config"] == {"seed": 0, "lr": 0.1, "hidden": [4], "quiet": False}
    assert saved["argv"] == ["handgrad", "run", "toy"]
    assert read_run_config(a.dir) == ("toy", saved["config"])


def test_run_fit_writes_metrics_and_checkpoint(tmp_path):
    run = Run.create("unit", Cfg(), out=tmp_path)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(2, 2, rng=rng))
    history = run.fit(
        model,
        nn.CrossEntropyLoss(),
        optim.SGD(model.parameters(), lr=0.5),
        DataLoader(X, y, 8, rng=1),
        epochs=3,
    )
    lines = run.metrics_path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == history
    ckpt = load_checkpoint(run.checkpoint_path)
    assert ckpt["epoch"] == 3 and ckpt["extra"] == {"experiment": "unit"}
    np.testing.assert_array_equal(ckpt["model"]["0.weight"], model[0].weight.data)


def test_report_embeds_figures_and_states_numbers(tmp_path):
    from handgrad import viz

    run = Run.create("unit", Cfg(lr=0.5), out=tmp_path)
    fig, ax = viz.figure()
    ax.plot([0, 1], [1, 0])
    path = run.save_figure("curve", fig, "a falling line")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run.history = [{"epoch": 1, "step": 4, "time": 0.5}]
    run.notes.append("Target reached.")
    report = run.write_report({"test_accuracy": 0.98765, "epochs": 3}, description="A test.")
    text = report.read_text()
    assert "![a falling line](curve.png)" in text
    assert "| test_accuracy | 0.98765 |" in text and "| epochs | 3 |" in text
    assert "A test." in text and "Target reached." in text
    assert "Trained 1 epochs (4 steps)" in text
    assert "handgrad run unit --set lr=0.5\n" in text  # only the non-default values
    assert f"handgrad run --resume {run.dir}" in text
    assert json.loads((run.dir / "results.json").read_text()) == {
        "test_accuracy": 0.98765,
        "epochs": 3,
    }


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, r"is not a run folder: it has no config.json"),
        ("{not json", r"config.json is not valid JSON"),
        ('{"experiment": 3}', r"config.json is not a run config"),
    ],
)
def test_read_run_config_errors(tmp_path, content, match):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises((FileNotFoundError, ValueError), match=match):
        read_run_config(tmp_path)


# -- exact resume across processes ---------------------------------------------------------
KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from handgrad.experiments import registry
    from handgrad.train import Callback

    class Kill(Callback):
        # SIGKILL in the middle of epoch 4: the last checkpoint holds epoch 2, and
        # metrics.jsonl already has a line for epoch 3 that the resume must drop
        def on_step_end(self, state, batch, loss):
            if state.epoch == 3 and batch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    overrides = dict(item.split("=", 1) for item in sys.argv[2:])
    overrides["quiet"] = "true"
    registry.start("toy", overrides, out=sys.argv[1], callbacks=[Kill()])
    """
)


def only_run(parent: Path) -> Path:
    (folder,) = [p for p in parent.iterdir() if p.is_dir()]
    return folder


def without_time(lines: list[str]) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k != "time"} for x in lines]


def test_killed_run_resumes_to_exactly_the_uninterrupted_result(tmp_path, capsys):
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "killed"), *TOY],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = only_run(tmp_path / "killed")
    assert load_checkpoint(run_dir / "checkpoint.npz")["epoch"] == 2
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3
    assert not (run_dir / "report.md").exists()

    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    assert main(["run", "toy", "--set", *TOY, "--out", str(tmp_path / "full"), "--quiet"]) == 0
    full_dir = only_run(tmp_path / "full")
    capsys.readouterr()

    resumed, full = (load_checkpoint(d / "checkpoint.npz") for d in (run_dir, full_dir))
    assert resumed["epoch"] == full["epoch"] == 6
    for name, value in full["model"].items():
        np.testing.assert_array_equal(resumed["model"][name], value, err_msg=name)
    for index, slots in full["optimizer"]["state"].items():
        for key, value in slots.items():
            np.testing.assert_array_equal(resumed["optimizer"]["state"][index][key], value)
    assert resumed["rng"] == full["rng"]
    snaps_r = resumed["callbacks"]["ProbabilitySnapshots[0]"]
    snaps_f = full["callbacks"]["ProbabilitySnapshots[0]"]
    assert snaps_r["epochs"] == snaps_f["epochs"] == [1, 3, 5, 6]
    for a, b in zip(snaps_r["grids"], snaps_f["grids"], strict=True):
        np.testing.assert_array_equal(a, b)
    metrics_r = (run_dir / "metrics.jsonl").read_text().splitlines()
    metrics_f = (full_dir / "metrics.jsonl").read_text().splitlines()
    assert len(metrics_r) == 6
    assert without_time(metrics_r) == without_time(metrics_f)
    results_r = json.loads((run_dir / "results.json").read_text())
    assert results_r == json.loads((full_dir / "results.json").read_text())
    assert (run_dir / "report.md").exists()


def test_resuming_a_finished_run_changes_nothing(tmp_path, capsys):
    assert main(["run", "toy", "--set", *TOY, "--out", str(tmp_path), "--quiet"]) == 0
    run_dir = only_run(tmp_path)
    before = load_checkpoint(run_dir / "checkpoint.npz")
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    after = load_checkpoint(run_dir / "checkpoint.npz")
    for name, value in before["model"].items():
        np.testing.assert_array_equal(after["model"][name], value)
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 6


def test_ctrl_c_keeps_checkpoint_and_exits_with_one_line(tmp_path):
    out = tmp_path / "runs"
    args = ["run", "toy", "--set", "epochs=100000", "n_train=64", "checkpoint_every=1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "handgrad", *args, "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob("*/checkpoint.npz")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        time.sleep(0.2)  # a few more epochs, so the interrupt lands anywhere in the loop
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = only_run(out)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "handgrad: interrupted; the last checkpoint and metrics are kept "
        f"(continue with: handgrad run --resume {run_dir})"
    ]
    epoch = load_checkpoint(run_dir / "checkpoint.npz")["epoch"]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert epoch >= 1 and len(lines) >= epoch
    assert [json.loads(x)["epoch"] for x in lines] == list(range(1, len(lines) + 1))


def test_run_folder_name_and_files(tmp_path, capsys):
    assert main(["run", "toy", "--set", *TOY, "--out", str(tmp_path), "--quiet"]) == 0
    run_dir = only_run(tmp_path)
    assert re.fullmatch(r"toy-\d{8}-\d{6}", run_dir.name)
    names = sorted(os.listdir(run_dir))
    assert names == [
        "checkpoint.npz",
        "config.json",
        "loss.png",
        "metrics.jsonl",
        "probability_map.png",
        "report.md",
        "results.json",
        "snapshots.png",
    ]
    out = capsys.readouterr().out
    assert f"report: {run_dir / 'report.md'}" in out
