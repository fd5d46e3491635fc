"""The `handgrad` command: list, run, check, --version, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import handgrad
from handgrad.check import check_file
from handgrad.cli import main
from handgrad.experiments import names
from handgrad.train import save_checkpoint

TINY_TOY = ["--set", "epochs=2", "n_train=32", "n_test=16", "snapshots=1", "resolution=8"]


def error_of(capsys, argv: list[str]) -> str:
    """Run main(argv), expect exit status 2, return the single stderr line."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("handgrad: error: ")
    return lines[0].removeprefix("handgrad: error: ")


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"handgrad {handgrad.__version__}\n"


def test_list_shows_every_experiment_with_a_description(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == names()
    assert set(names()) >= {"toy", "boundary", "synth", "digits-mlp", "mnist-mlp", "cifar10-mlp"}
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: handgrad" in capsys.readouterr().out


VALID = ", ".join(names())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "nope"], f"unknown experiment 'nope'; valid experiments: {VALID}"),
        (["run"], f"run needs an experiment NAME (or --resume DIR); valid experiments: {VALID}"),
        (["run", "toy", "--set", "lrr=1"], "toy: unknown config key 'lrr'; valid keys: seed, "),
        (["run", "toy", "--set", "lr=abc"], "toy: lr=abc is not a float"),
        (["run", "toy", "--set", "epochs=1.5"], "toy: epochs=1.5 is not an int"),
        (["run", "toy", "--set", "lr"], "--set expects key=value, got 'lr'"),
        (["run", "toy", "--set", "schedule=linear"], "toy: schedule=linear is not one of"),
        (["run", "toy", "--set", "snapshots=1,a"], "is not a comma-separated list of ints"),
        (["run", "toy", "--set", "quiet=maybe"], "toy: quiet=maybe is not a bool (true/false)"),
        (["run", "toy", "--epochs", "0"], "ToyConfig: invalid epochs 0, must be >= 1"),
        (["run", "toy", "--set", "lr=-1"], "ToyConfig: invalid lr -1.0, must be > 0"),
        (["run", "toy", "--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
        (["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
        (["run", "toy", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "--resume", "/no/such/run"], "no run folder at /no/such/run"),
        (["check", "x.py:Y"], "the following arguments are required: --input-shape"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, argv, expected):
    message = error_of(capsys, argv)
    assert message.startswith(expected) if expected.endswith(" ") else expected in message


def test_flag_for_a_field_the_experiment_lacks(capsys, monkeypatch):
    from dataclasses import dataclass

    from handgrad.experiments import registry

    @dataclass(frozen=True)
    class NoEpochs:
        seed: int = 0
        quiet: bool = False

    monkeypatch.setitem(
        registry._REGISTRY,
        "no-epochs",
        registry.Experiment("no-epochs", NoEpochs, lambda cfg, run: {}, "test"),
    )
    assert error_of(capsys, ["run", "no-epochs", "--epochs", "3"]) == (
        "no-epochs: has no 'epochs' setting, so --epochs does not apply"
    )


def test_run_prints_numbers_and_report(tmp_path, capsys):
    assert main(["run", "toy", *TINY_TOY, "--seed", "3", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("train_loss ") and "test_accuracy " in out[0]
    (run_dir,) = tmp_path.iterdir()
    assert out[1] == f"report: {run_dir / 'report.md'}"
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["seed"] == 3 and config["epochs"] == 2 and config["quiet"] is True


def test_resume_errors(tmp_path, capsys):
    assert main(["run", "toy", *TINY_TOY, "--out", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    (run_dir,) = tmp_path.iterdir()
    assert error_of(capsys, ["run", "--resume", str(run_dir), "--set", "lr=0.5"]) == (
        "--resume: 'lr' cannot change when a run is resumed; only epochs, quiet, data_dir can"
    )
    assert error_of(capsys, ["run", "synth", "--resume", str(run_dir)]) == (
        f"--resume {run_dir} is a run of 'toy', not 'synth'"
    )
    assert error_of(capsys, ["run", "--resume", str(run_dir), "--out", "x"]) == (
        "--out cannot be used with --resume (the run stays in its folder)"
    )
    (run_dir / "checkpoint.npz").write_bytes(b"garbage")
    message = error_of(capsys, ["run", "--resume", str(run_dir)])
    assert message.startswith(f"{run_dir / 'checkpoint.npz'} is not a valid handgrad checkpoint")
    save_checkpoint(run_dir / "checkpoint.npz", {"model": {"w": np.ones(2)}})
    assert "does not fit this run" in error_of(capsys, ["run", "--resume", str(run_dir)])


def test_resume_can_extend_the_epochs(tmp_path, capsys):
    assert main(["run", "toy", *TINY_TOY, "--out", str(tmp_path), "--quiet"]) == 0
    (run_dir,) = tmp_path.iterdir()
    assert main(["run", "--resume", str(run_dir), "--epochs", "3", "--quiet"]) == 0
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    assert json.loads((run_dir / "config.json").read_text())["config"]["epochs"] == 3


def test_divergence_exits_1_with_one_line(tmp_path, capsys):
    code = main(["run", "toy", *TINY_TOY, "--set", "lr=1e30", "--out", str(tmp_path), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    # one step per epoch: the weights overflow to NaN in the last step of epoch 2 (the only
    # step of that epoch), which the validation loss after the epoch catches
    assert err[0] == (
        "handgrad: training diverged: the validation loss is nan after epoch 2 (global step 2); "
        "no checkpoint was written. Try a smaller learning rate."
    )


def test_debug_shows_the_exception(capsys):
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        main(["--debug", "run", "nope"])


# -- check ---------------------------------------------------------------------------------
LAYERS = textwrap.dedent(
    """
    class Square:
        def forward(self, x):
            self.x = x
            return x ** 2

        def backward(self, grad_out):
            return 2 * grad_out * self.x

    class WrongSquare(Square):
        def backward(self, grad_out):
            return 3 * grad_out * self.x
    """
)


@pytest.mark.parametrize(("cls", "code"), [("Square", 0), ("WrongSquare", 1)])
def test_check_prints_the_report_and_exits_by_its_verdict(tmp_path, capsys, cls, code):
    path = tmp_path / "layers.py"
    path.write_text(LAYERS)
    spec = f"{path}:{cls}"
    assert main(["check", spec, "--input-shape", "3,4", "--seed", "1"]) == code
    expected = str(check_file(spec, (3, 4), seed=1))
    assert capsys.readouterr().out == expected + "\n"


def test_check_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "layers.py"
    path.write_text(LAYERS)
    assert "has no 'Nope'" in error_of(capsys, ["check", f"{path}:Nope", "--input-shape", "3"])
    assert "no such file" in error_of(capsys, ["check", "missing.py:X", "--input-shape", "3"])
    assert "input_shape" in error_of(capsys, ["check", f"{path}:Square", "--input-shape", "3,a"])


# -- the installed entry points ------------------------------------------------------------
def test_python_dash_m_and_console_script_have_no_traceback():
    commands = [[sys.executable, "-m", "handgrad"]]
    if shutil.which("handgrad"):
        commands.append([shutil.which("handgrad")])
    for cmd in commands:
        ok = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and ok.stdout == f"handgrad {handgrad.__version__}\n"
        bad = subprocess.run(
            [*cmd, "run", "toy", "--set", "nope=1"], capture_output=True, text=True, timeout=60
        )
        assert bad.returncode == 2
        assert "Traceback" not in bad.stderr
        assert bad.stderr.startswith("handgrad: error: toy: unknown config key 'nope'")


STUDENT_LINEAR = """
import numpy as np

class MyLinear:
    def __init__(self):
        rng = np.random.default_rng(0)
        self.W = rng.standard_normal((3, 4))
        self.b = np.zeros(3)
        self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)

    def forward(self, x):
        self.x = x
        return x @ self.W.T + self.b

    def backward(self, g):
        self.dW += g.T @ self.x
        self.db += g.{reduce}(axis=0)
        return g @ self.W
"""


@pytest.mark.parametrize(("reduce", "status"), [("sum", 0), ("mean", 1)])
def test_check_plain_array_params_finds_a_wrong_bias(tmp_path, capsys, reduce, status):
    path = tmp_path / "student.py"
    path.write_text(STUDENT_LINEAR.replace("{reduce}", reduce))
    argv = ["check", f"{path}:MyLinear", "--input-shape", "5,4", "--params", "W:dW,b:db"]
    assert main(argv) == status
    out = capsys.readouterr().out
    assert "\nW " in out and "\nb " in out
    assert ("FAILED: wrong 'b'" in out) == (status == 1)


def test_check_params_syntax_error(tmp_path, capsys):
    path = tmp_path / "student.py"
    path.write_text(STUDENT_LINEAR.replace("{reduce}", "sum"))
    argv = ["check", f"{path}:MyLinear", "--input-shape", "5,4", "--params", "Wd"]
    line = error_of(capsys, argv)
    assert "--params expects NAME:GRAD pairs like W:dW,b:db, got 'Wd'" in line
