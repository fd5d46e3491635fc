"""handgrad export: a run folder -> a PyTorch training folder that continues the run.

Parity, on the digits MLP (SGD with momentum) and the digits CNN (Adam, cosine schedule), both
in float64 (``dtype=float64``):

(a) one more epoch in handgrad (``--resume`` with epochs + 1) and one epoch of the exported
    train.py give the same weights and optimizer state to 1e-10 relative;
(b) from there, the first step of ``torchrun --nproc_per_node=2`` (gloo) equals the first step
    of one process to 1e-6 relative, in float32 (the global batch split over the processes).

Then the messages: an unsupported layer, a corrupt checkpoint (run folder and state.pt), a
PyTorch without torch.distributed, handgrad export without PyTorch.
"""

from __future__ import annotations

import dataclasses
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from handgrad import cli  # noqa: E402
from handgrad.experiments import registry  # noqa: E402
from handgrad.torch_ext.export import export_run  # noqa: E402
from handgrad.train import load_checkpoint  # noqa: E402

RUNS = {
    # 438 training images (val_size 1000 of 1438): 14 steps per epoch
    "mlp": (
        "digits-mlp",
        {"hidden": "32", "optimizer": "sgd", "lr": "0.05", "momentum": "0.9"},
    ),
    "cnn": ("digits-cnn", {"layers": "4,M", "hidden": "16"}),  # Adam, cosine over the run
}
COMMON = {"epochs": "1", "val_size": "1000", "dtype": "float64", "quiet": "true"}


def max_relative(a: dict[str, Any], b: dict[str, Any]) -> float:
    """The largest of max|a - b| / max|a| over the tensors of two state dicts."""
    worst = 0.0
    for key, x in a.items():
        x, y = np.asarray(x, dtype=np.float64), np.asarray(b[key], dtype=np.float64)
        assert x.shape == y.shape, key
        worst = max(worst, float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-300)))
    return worst


def load_train_py(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """train.py's main(), loaded in this process (its `import model` from ``folder``)."""
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("model", None)
    try:
        return runpy.run_path(str(folder / "train.py"), run_name="train")["main"]
    finally:
        sys.modules.pop("model", None)  # the next folder's model.py is another module


def train_py(folder: Path, *args: str, procs: int = 1) -> subprocess.CompletedProcess:
    if procs == 1:
        launcher = [sys.executable]
    else:  # --standalone: a free port of its own, so parallel test runs do not collide
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launcher.append(f"--nproc_per_node={procs}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*launcher, str(folder / "train.py"), "--quiet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module", params=sorted(RUNS))
def parity(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A float64 run of one epoch, exported, then one more epoch in handgrad and in train.py."""
    name, overrides = RUNS[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    run, _ = registry.start(name, {**overrides, **COMMON}, out=tmp / "runs")
    folder = tmp / "torch"
    exported = export_run(run.dir, folder)
    registry.resume(run.dir, {"epochs": 2})  # the same epoch in handgrad
    done = train_py(folder, "--epochs", "2")
    assert done.returncode == 0, done.stderr
    return {"run": run.dir, "torch": folder, "exported": exported, "tmp": tmp}


def test_one_more_epoch_gives_handgrads_weights(parity: dict) -> None:
    hand = load_checkpoint(parity["run"] / "checkpoint.npz")
    ours = torch.load(parity["torch"] / "checkpoint.pt", weights_only=True)
    assert (ours["epoch"], ours["step"]) == (hand["epoch"], hand["step"]) == (2, 28)
    assert ours["model"]["0.weight"].dtype == torch.float64
    assert max_relative(hand["model"], ours["model"]) < 1e-10
    # the optimizer state goes on alike: momentum buffers, Adam moments and steps
    for index, state in hand["optimizer"]["state"].items():
        theirs = ours["optimizer"]["state"][index]
        assert set(state) == set(theirs)
        assert max_relative(state, theirs) < 1e-10
    assert ours["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
        hand["optimizer"]["param_groups"][0]["lr"], rel=1e-12
    )
    # the epoch's numbers, in handgrad's metrics format
    assert ours["history"][-1].keys() == hand["history"][-1].keys()
    assert ours["history"][-1]["train_loss"] == pytest.approx(
        hand["history"][-1]["train_loss"], rel=1e-10
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_one_more_epoch_on_cuda_gives_handgrads_weights_and_resumes_on_cpu(parity: dict) -> None:
    folder, tmp = parity["torch"], parity["tmp"]
    gpu_dir, cpu_dir = tmp / "on-cuda", tmp / "back-on-cpu"
    common = ["--resume-from", str(folder / "state.pt"), "--out", str(gpu_dir)]
    done = train_py(folder, "--epochs", "2", "--device", "cuda", *common)
    assert done.returncode == 0, done.stderr
    hand = load_checkpoint(parity["run"] / "checkpoint.npz")
    # saved from the GPU, the checkpoint holds CPU tensors: it loads without map_location
    gpu = torch.load(gpu_dir / "checkpoint.pt", weights_only=True)
    assert (gpu["epoch"], gpu["step"]) == (2, 28)
    assert {t.device.type for t in gpu["model"].values()} == {"cpu"}
    assert max_relative(hand["model"], gpu["model"]) < 1e-9
    for index, state in hand["optimizer"]["state"].items():
        assert max_relative(state, gpu["optimizer"]["state"][index]) < 1e-9
    # a machine without a GPU goes on from it
    resume = ["--resume-from", str(gpu_dir / "checkpoint.pt"), "--out", str(cpu_dir)]
    done = train_py(folder, "--epochs", "3", "--device", "cpu", *resume)
    assert done.returncode == 0, done.stderr
    assert torch.load(cpu_dir / "checkpoint.pt", weights_only=True)["epoch"] == 3


def test_two_processes_take_the_first_step_of_one(parity: dict, monkeypatch) -> None:
    folder, tmp = parity["torch"], parity["tmp"]
    start = torch.load(folder / "checkpoint.pt", weights_only=True)  # epoch 2, lr > 0
    assert start["optimizer"]["param_groups"][0]["lr"] > 0
    common = ["--epochs", "3", "--max-steps", "29", "--dtype", "float32", "--quiet"]
    common += ["--resume-from", str(folder / "checkpoint.pt")]
    # one process: train.py's main() in this process (torch is loaded already: seconds saved)
    assert load_train_py(folder, monkeypatch)([*common, "--out", str(tmp / "one")]) == 0
    done = train_py(folder, *common, "--out", str(tmp / "two"), procs=2)
    assert done.returncode == 0, done.stderr
    one = torch.load(tmp / "one" / "checkpoint.pt", weights_only=True)["model"]
    two = torch.load(tmp / "two" / "checkpoint.pt", weights_only=True)["model"]
    assert max_relative(one, two) < 1e-6
    moved = {k: one[k] - start["model"][k].float() for k in one}
    assert max(float(v.abs().max()) for v in moved.values()) > 0  # the step did move


def test_an_error_after_the_processes_meet_ends_each_with_one_line(parity: dict) -> None:
    """Both processes join the gloo group, then fail to read the state: status 2, no abort."""
    missing = parity["tmp"] / "nowhere" / "checkpoint.pt"
    out = parity["tmp"] / "failed"
    done = train_py(parity["torch"], "--resume-from", str(missing), "--out", str(out), procs=2)
    assert done.returncode != 0
    assert done.stderr.count(f"train.py: error: no state at {missing}") >= 1
    assert "exitcode  : 2" in done.stderr  # torchrun's report of the first process to stop
    assert "terminate called" not in done.stderr and "SIGABRT" not in done.stderr
    assert not out.exists()


def test_export_folder_is_plain_pytorch_and_report_redraws(parity: dict, capsys) -> None:
    folder = parity["torch"]
    assert {"model.py", "state.pt", "data.npz", "train.py", "README.md"} <= {
        p.name for p in folder.iterdir()
    }
    for script in ("model.py", "train.py"):
        assert "handgrad" not in "".join(
            line for line in (folder / script).read_text().splitlines() if "import" in line
        )
    ruff = shutil.which("ruff")
    if ruff is not None:  # generated code passes the project's lint and format rules
        config = Path(__file__).resolve().parents[1] / "pyproject.toml"
        files = [str(folder / "model.py"), str(folder / "train.py")]
        for command in (["check"], ["format", "--check"]):
            done = subprocess.run(
                [ruff, *command, "--config", str(config), *files], capture_output=True, text=True
            )
            assert done.returncode == 0, done.stdout + done.stderr
    assert cli.main(["report", str(folder)]) == 0
    report = (folder / "report.md").read_text()
    assert (folder / "curves.png").is_file() and "| epochs | 2 |" in report
    assert "python train.py --epochs 3" in report and "--resume" not in report


# -- messages ------------------------------------------------------------------------------
def one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("handgrad: error: ")
    return err


@dataclasses.dataclass(frozen=True)
class _TinyConfig(registry.Config):
    epochs: int = 1


def _train_with_sum_normalize(cfg: _TinyConfig, run: Any) -> dict[str, float]:
    from handgrad import nn, optim
    from handgrad.data import DataLoader
    from handgrad.nn.normalize import SumNormalize

    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 2)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 16)]
    model = nn.Sequential(nn.Linear(2, 2, rng=rng), nn.Softplus(), SumNormalize())
    loader = DataLoader(X, y, batch_size=8, rng=rng)
    run.fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), loader, epochs=1)
    return {}


def test_unsupported_layer_is_named(tmp_path: Path, monkeypatch, capsys) -> None:
    exp = registry.Experiment("sum-normalize", _TinyConfig, _train_with_sum_normalize, "test")
    monkeypatch.setitem(registry._REGISTRY, exp.name, exp)
    run, _ = registry.start(exp.name, {"quiet": "true"}, out=tmp_path)
    err = one_line_error(capsys, ["export", str(run.dir), "--out", str(tmp_path / "out")])
    assert "unsupported layer SumNormalize at '2'" in err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("small")
    run, _ = registry.start("digits-mlp", {**COMMON, "hidden": "8"}, out=tmp)
    return run.dir


def test_corrupt_checkpoint_and_other_refusals(small_run: Path, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(small_run, broken)
    data = (broken / "checkpoint.npz").read_bytes()
    (broken / "checkpoint.npz").write_bytes(data[: len(data) // 2])
    err = one_line_error(capsys, ["export", str(broken), "--out", str(tmp_path / "a")])
    assert "not a valid handgrad checkpoint" in err
    (broken / "checkpoint.npz").unlink()
    err = one_line_error(capsys, ["export", str(broken), "--out", str(tmp_path / "b")])
    assert "has no checkpoint.npz" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    err = one_line_error(capsys, ["export", str(small_run), "--out", str(tmp_path / "full")])
    assert "exists and is not empty" in err


def test_export_prints_where_and_how_to_go_on(small_run: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["export", str(small_run), "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "exported digits-mlp after epoch 1 (step 14)" in out
    assert "python train.py --epochs 2" in out


def test_export_without_torch_is_one_line(small_run: Path, tmp_path: Path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m.startswith("handgrad.torch_ext")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    err = one_line_error(capsys, ["export", str(small_run), "--out", str(tmp_path / "t")])
    assert "needs PyTorch" in err and "handgrad[torch]" in err


def test_train_py_fails_in_one_line(small_run: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    folder = export_run(small_run, tmp_path / "t").out
    main = load_train_py(folder, monkeypatch)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((folder / "state.pt").read_bytes()[:500])
    for argv, expected in (
        (["--epochs", "2", "--resume-from", str(corrupt)], "is not a readable checkpoint"),
        (["--epochs", "2", "--resume-from", str(folder / "model.py")], "not a readable"),
        (["--epochs", "2", "--device", "cuda:0"], "no CUDA device"),
    ):
        if expected == "no CUDA device" and torch.cuda.is_available():
            continue
        with pytest.raises(SystemExit) as info:
            main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.count("\n") == 1 and expected in err, err
    # torchrun's environment with a PyTorch built without torch.distributed
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.distributed, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        main(["--epochs", "2"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch.distributed" in err
