"""Faults across processes: kill -9 while a checkpoint is written, two resumes of one folder,
a dead holder's lock, and the report's Reproduce command pasted into a shell.

Each scenario runs the command line in child processes (``advkit.start_cli``) on the tiny
``adv-tiny`` experiment, and states the exit statuses, the error line and the files after.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from advkit import CLI_CHILD, TINY, child_env, cli, register_tiny, start_cli, tiny_args

from handgrad.experiments import registry
from handgrad.train import load_checkpoint


@pytest.fixture(autouse=True)
def _tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANDGRAD_DEBUG", raising=False)
    register_tiny(_View(monkeypatch))


class _View(dict):
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self.mp = monkeypatch

    def __setitem__(self, key: str, value: Any) -> None:
        self.mp.setitem(registry._REGISTRY, key, value)


def only(parent: Path) -> Path:
    (folder,) = [p for p in parent.iterdir() if p.is_dir()]
    return folder


def epochs_of(run: Path) -> list[int]:
    return [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def wait_for(predicate: Any, proc: subprocess.Popen[str], what: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(
                f"the child ended ({proc.returncode}) before {what}: {proc.stderr.read()}"
            )
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# -- kill -9 in the middle of writing a checkpoint -------------------------------------------------
KILL_WHILE_SAVING = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import advkit
    advkit.register_tiny()
    real_savez, calls = np.savez, []

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) == 3:  # the checkpoint of epoch 3: half of it, then SIGKILL
            f.write(b"PK\\x03\\x04 half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_savez(f, **arrays)

    np.savez = savez
    from handgrad.cli import main
    main(sys.argv[1:])
    """
)


def test_kill_9_while_saving_then_resume_is_exact_and_cleans_up(
    tmp_path: Path, capsys: Any
) -> None:
    args = tiny_args(epochs=5)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_WHILE_SAVING, "run", TINY, *args, "--out", tmp_path / "k"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = only(tmp_path / "k")
    names = sorted(os.listdir(run))
    # the killed writer's temporary file and its lock file are left; the checkpoint is epoch 2's
    assert names == [
        f".checkpoint.npz.tmp{killed_pid(run)}",
        ".handgrad.lock",
        "checkpoint.npz",
        "config.json",
        "metrics.jsonl",
    ], names
    assert load_checkpoint(run / "checkpoint.npz")["epoch"] == 2
    assert epochs_of(run) == [1, 2, 3]  # epoch 3 was logged before its checkpoint

    assert cli(capsys, ["run", "--resume", run, "--quiet"]).code == 0
    assert cli(capsys, ["run", TINY, *args, "--out", tmp_path / "full"]).code == 0
    full = only(tmp_path / "full")
    assert sorted(os.listdir(run)) == sorted(os.listdir(full))  # temp and lock files are gone
    resumed, straight = (load_checkpoint(d / "checkpoint.npz") for d in (run, full))
    assert resumed["epoch"] == straight["epoch"] == 5
    for name, value in straight["model"].items():
        np.testing.assert_array_equal(resumed["model"][name], value, err_msg=name)
    assert epochs_of(run) == [1, 2, 3, 4, 5]
    assert json.loads((run / "results.json").read_text()) == json.loads(
        (full / "results.json").read_text()
    )


def killed_pid(run: Path) -> int:
    return int(json.loads((run / ".handgrad.lock").read_text())["pid"])


# -- two resumes of one folder at once, then the holder killed -------------------------------------
def test_second_resume_fails_at_once_naming_the_holder_and_a_dead_holder_is_taken_over(
    tmp_path: Path, capsys: Any
) -> None:
    assert cli(capsys, ["run", TINY, *tiny_args(), "--out", tmp_path]).code == 0
    run = only(tmp_path)
    long = ["run", "--resume", run, "--epochs", "100000000", "--quiet"]
    first = start_cli(long)
    try:
        wait_for(
            lambda: (run / ".handgrad.lock").exists() and len(epochs_of(run)) > 3, first, "epochs"
        )
        t0 = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-c", CLI_CHILD, *map(str, long)],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1, second.stderr
        assert time.monotonic() - t0 < 20  # at once: it does not wait for the lock
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in second.stderr
        assert err[0].startswith(
            f"handgrad: error: the run folder {run} is in use by process {first.pid} ("
        )
        assert first.poll() is None  # the first one runs on
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # the epochs in metrics.jsonl are the first process's alone: 1, 2, 3, ... without a gap
    logged = epochs_of(run)
    assert logged == list(range(1, len(logged) + 1))
    # its lock file stays behind, naming a dead process; the next resume takes it over
    assert killed_pid(run) == first.pid
    done = load_checkpoint(run / "checkpoint.npz")["epoch"]
    outcome = cli(capsys, ["run", "--resume", run, "--epochs", done + 1, "--quiet"])
    assert outcome.code == 0, outcome.err
    assert epochs_of(run) == list(range(1, done + 2))
    assert not (run / ".handgrad.lock").exists()
    history = json.loads((run / "config.json").read_text())["history"]
    assert [h["config"]["epochs"] for h in history] == [2, 100000000]


# -- the report's Reproduce command, pasted into a shell -------------------------------------------
NASTY = 'it\'s a "label"; touch pwned; $(touch pwned2) `touch pwned3` & x'


def test_reproduce_command_run_through_a_shell_gives_the_same_run(
    tmp_path: Path, capsys: Any
) -> None:
    settings = {"lr": "0.05", "label": NASTY, "data_dir": "/tmp/a dir; with spaces"}
    argv = ["run", TINY, "--set", *(f"{k}={v}" for k, v in settings.items()), "--quiet"]
    assert cli(capsys, [*argv, "--out", tmp_path / "orig"]).code == 0
    orig = only(tmp_path / "orig")
    report = (orig / "report.md").read_text()
    block = report.split("## Reproduce", 1)[1]
    command = next(line for line in block.splitlines() if line.startswith(f"handgrad run {TINY}"))
    words = shlex.split(command)
    assert words[:4] == ["handgrad", "run", TINY, "--set"]
    assert f"label={NASTY}" in words and "data_dir=/tmp/a dir; with spaces" in words
    resume = next(line for line in block.splitlines() if "--resume" in line)
    assert shlex.split(resume) == ["handgrad", "run", "--resume", str(orig)]

    replay = tmp_path / "replay"
    replay.mkdir()
    env = {**child_env(), "PY": sys.executable, "HG_CHILD": CLI_CHILD}
    shell = subprocess.run(
        ["sh", "-c", 'handgrad() { "$PY" -c "$HG_CHILD" "$@"; }\n' + command],
        cwd=replay,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    assert not list(tmp_path.rglob("pwned*"))  # no value ran as shell code
    again = only(replay / "runs")
    config = json.loads((again / "config.json").read_text())["config"]
    assert config == {**json.loads((orig / "config.json").read_text())["config"], "quiet": False}
    assert config["label"] == NASTY
    assert json.loads((again / "results.json").read_text()) == json.loads(
        (orig / "results.json").read_text()
    )
    assert re.search(r"handgrad run adv-tiny --set .*'label=it'\"'\"'s a ", command)
