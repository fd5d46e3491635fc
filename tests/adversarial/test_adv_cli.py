"""Bad input against every command of the CLI, and run folders that are not what they should be.

Each row states the command, its exit status (2: what was asked is wrong; 1: the command failed
doing it), words of the one error line, and what must hold on disk after: the run folder
unchanged (every file, byte for byte, links included), some files unchanged, some files gone.
No case may print a traceback.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from advkit import TINY, Outcome, cli, register_tiny, snapshot, tiny_args

from handgrad.experiments import registry
from handgrad.train import load_checkpoint, save_checkpoint
from handgrad.train.runs import RunLock

ALL = "all"  # `unchanged`: every file of the run folder


@pytest.fixture(autouse=True)
def _tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANDGRAD_DEBUG", raising=False)
    register_tiny(_patched(monkeypatch))


def _patched(monkeypatch: pytest.MonkeyPatch) -> Any:
    class View(dict):  # register_tiny writes one key; monkeypatch undoes it after the test
        def __setitem__(self, key: str, value: Any) -> None:
            monkeypatch.setitem(registry._REGISTRY, key, value)

    return View()


@pytest.fixture
def run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A finished adv-tiny run of 2 epochs, with a figure."""
    outcome = cli(capsys, ["run", TINY, *tiny_args(figure="true"), "--out", tmp_path / "runs"])
    assert outcome.code == 0, outcome.err
    (folder,) = (tmp_path / "runs").iterdir()
    return folder


@dataclass
class Case:
    id: str
    argv: list[str]  # "{run}": the finished run's folder, "{tmp}": the test's folder
    code: int
    words: tuple[str, ...]
    setup: Callable[[Path, Path, pytest.MonkeyPatch], Any] | None = None  # (tmp, run, mp)
    unchanged: str | tuple[str, ...] = ALL  # what in the run folder must not change
    gone: tuple[str, ...] = ()  # files of the run folder that must not exist after


# -- setups ---------------------------------------------------------------------------------------
def link(name: str) -> Callable[[Path, Path, Any], None]:
    def setup(tmp: Path, run: Path, mp: Any) -> None:
        victim = tmp / "victim.txt"
        victim.write_text("precious\n")
        if (run / name).exists():
            (run / name).unlink()
        os.symlink(victim, run / name)

    return setup


def spoil_checkpoint(part: str, value: float) -> Callable[[Path, Path, Any], None]:
    def setup(tmp: Path, run: Path, mp: Any) -> None:
        ckpt = load_checkpoint(run / "checkpoint.npz")
        if part == "model":
            ckpt["model"]["0.weight"][0, 0] = value
        else:
            ckpt["optimizer"]["state"][0]["momentum_buffer"].flat[0] = value
        save_checkpoint(run / "checkpoint.npz", ckpt)

    return setup


def hold_lock(tmp: Path, run: Path, mp: Any) -> Callable[[], None]:
    lock = RunLock(run).acquire(["handgrad", "run", "demo"])
    return lock.release


def stale_lock(tmp: Path, run: Path, mp: Any) -> None:
    (run / ".handgrad.lock").write_text(json.dumps({"pid": 2**22 + 12345, "argv": ["gone"]}))


def leftovers(tmp: Path, run: Path, mp: Any) -> None:
    (run / ".checkpoint.npz.tmp4242").write_bytes(b"PK\x03\x04 half a checkpoint")
    (run / ".report.md.tmp17").write_text("half a report")


def disk_full(tmp: Path, run: Path, mp: Any) -> None:
    def savez(f: Any, **arrays: Any) -> None:
        f.write(b"PK\x03\x04")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    mp.setattr(np, "savez", savez)


def read_only_disk(tmp: Path, run: Path, mp: Any) -> None:
    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    mp.setattr(Path, "mkdir", mkdir)


def experiment_raising(exc: BaseException | None) -> Callable[[Path, Path, Any], None]:
    def setup(tmp: Path, run: Path, mp: Any) -> None:
        def endless(depth: int = 0) -> int:
            return endless(depth + 1) + 1

        def fn(cfg: Any, run: Any) -> dict[str, float]:
            if exc is None:
                endless()
            raise exc

        old = registry._REGISTRY[TINY]
        mp.setitem(registry._REGISTRY, TINY, registry.Experiment(TINY, old.config_cls, fn, "x"))

    return setup


def write(name: str, text: str) -> Callable[[Path, Path, Any], None]:
    def setup(tmp: Path, run: Path, mp: Any) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)

    return setup


def write_in_run(name: str, text: str) -> Callable[[Path, Path, Any], None]:
    def setup(tmp: Path, run: Path, mp: Any) -> None:
        (run / name).write_text(text)

    return setup


LAYERS = """
import sys, os, time
class Square:
    def forward(self, x):
        self.x = x
        return x ** 2
    def backward(self, grad_out):
        return 2 * grad_out * self.x
class ExitsInBackward(Square):
    def backward(self, grad_out):
        sys.exit(5)
class HardExitInForward(Square):
    def forward(self, x):
        os._exit(3)
class Recursing(Square):
    def forward(self, x):
        return self.forward(x)
class Sleeps(Square):
    def forward(self, x):
        time.sleep(60)
"""

CHECK = ["check", "{tmp}/layers.py:Square", "--input-shape", "3,4"]
TINY_RUN = ["run", TINY, *tiny_args(), "--out", "{tmp}/new"]
RESUME = ["run", "--resume", "{run}", "--quiet"]

CASES = [
    # where runs go
    Case(
        "out-dev-null",
        ["run", TINY, *tiny_args(), "--out", "/dev/null"],
        2,
        ("/dev/null is not a folder",),
    ),
    Case(
        "out-a-file",
        [*TINY_RUN[:-1], "{tmp}/f.txt"],
        2,
        ("f.txt is not a folder",),
        write("f.txt", "x"),
    ),
    Case(
        "out-under-a-file",
        [*TINY_RUN[:-1], "{tmp}/f.txt/sub"],
        2,
        ("Not a directory", "give a folder"),
        write("f.txt", "x"),
    ),
    Case(
        "out-read-only-disk",
        TINY_RUN,
        1,
        ("Read-only file system", "writable disk (--out DIR)"),
        read_only_disk,
    ),
    # links in a run folder are never written through
    *[
        Case(
            f"link-{name}",
            RESUME,
            1,
            ("holds symbolic links", name, "victim.txt", "Remove the links"),
            link(name),
        )
        for name in (
            "report.md",
            "metrics.jsonl",
            "loss.png",
            "results.json",
            "config.json",
            ".handgrad.lock",
        )
    ],
    # what a resume may not do, or may not start from
    Case(
        "resume-fewer-epochs",
        [*RESUME, "--epochs", "1"],
        2,
        ("epochs 1 is fewer than the 2 epochs", "cannot be shortened", "--epochs 2 or more"),
    ),
    Case(
        "resume-nan-weights",
        RESUME,
        2,
        ("model tensor '0.weight' holds non-finite values (1 NaN, 0 inf)", "earlier copy"),
        spoil_checkpoint("model", float("nan")),
    ),
    Case(
        "resume-inf-optimizer",
        RESUME,
        2,
        ("optimizer tensor 'state/0/momentum_buffer'", "(0 NaN, 1 inf)"),
        spoil_checkpoint("optimizer", float("inf")),
    ),
    Case(
        "resume-garbage-checkpoint",
        RESUME,
        2,
        ("checkpoint.npz is not a valid handgrad checkpoint",),
        write_in_run("checkpoint.npz", "garbage"),
    ),
    Case(
        "resume-config-not-json",
        RESUME,
        2,
        ("config.json is not valid JSON",),
        write_in_run("config.json", "{oops"),
    ),
    Case(
        "resume-config-too-deep",
        RESUME,
        2,
        ("config.json is not a run config: its JSON is nested too deeply",),
        write_in_run("config.json", "[" * 100_000 + "]" * 100_000),
    ),
    Case(
        "resume-locked",
        RESUME,
        1,
        (f"is in use by process {os.getpid()} (handgrad run demo)", "Wait for it to finish"),
        hold_lock,
    ),
    Case("resume-no-folder", ["run", "--resume", "{tmp}/nope"], 2, ("no run folder at",)),
    Case(
        "resume-a-file",
        ["run", "--resume", "{tmp}/f.txt"],
        2,
        ("no run folder at",),
        write("f.txt", "x"),
    ),
    Case(
        "resume-other-setting",
        [*RESUME, "--set", "lr=0.5"],
        2,
        ("'lr' cannot change when a run is resumed",),
    ),
    # what a resume cleans up or takes over, then runs
    Case(
        "resume-stale-lock",
        [*RESUME, "--epochs", "3"],
        0,
        (),
        stale_lock,
        unchanged=(),
        gone=(".handgrad.lock",),
    ),
    Case(
        "resume-leftover-temp-files",
        RESUME,
        0,
        (),
        leftovers,
        unchanged=("checkpoint.npz", "metrics.jsonl", "config.json"),
        gone=(".checkpoint.npz.tmp4242", ".report.md.tmp17"),
    ),
    # failures while running
    Case(
        "disk-full-on-checkpoint",
        [*RESUME, "--epochs", "3"],
        1,
        ("No space left on device: ", "checkpoint.npz; free some space", "--resume"),
        disk_full,
        unchanged=("checkpoint.npz",),
        gone=(".checkpoint.npz.tmp",),
    ),
    Case(
        "out-of-memory",
        ["run", TINY, *tiny_args(n=10**12), "--out", "{tmp}/new"],
        1,
        ("out of memory", "Unable to allocate", "smaller"),
    ),
    Case(
        "recursion-error",
        TINY_RUN,
        1,
        ("maximum recursion depth exceeded", "calls itself without end", "--debug"),
        experiment_raising(None),
    ),
    Case(
        "unexpected-error",
        TINY_RUN,
        1,
        ("unexpected RuntimeError: boom", "HANDGRAD_DEBUG=1"),
        experiment_raising(RuntimeError("boom")),
    ),
    # bad settings: refused before a folder is made
    Case(
        "set-nan",
        ["run", TINY, *tiny_args(lr="nan"), "--out", "{tmp}/new"],
        2,
        ("TinyConfig: invalid lr nan, must be a finite number",),
    ),
    Case(
        "set-overflow",
        ["run", TINY, *tiny_args(lr="1e400"), "--out", "{tmp}/new"],
        2,
        ("invalid lr inf",),
    ),
    Case("seed-negative", ["run", TINY, "--seed", "-1"], 2, ("invalid seed -1, must be >= 0",)),
    Case(
        "set-unknown",
        ["run", TINY, "--set", "nope=1"],
        2,
        ("unknown config key 'nope'", "valid keys"),
    ),
    Case(
        "set-not-key-value", ["run", TINY, "--set", "lr"], 2, ("--set expects key=value, got 'lr'",)
    ),
    Case(
        "epochs-not-int",
        ["run", TINY, "--epochs", "x"],
        2,
        ("argument --epochs: invalid int value: 'x'",),
    ),
    # check: the command's mistakes (2) and the user's file failing (1)
    Case(
        "check-params-wrong-name",
        [*CHECK, "--params", "Q:dQ"],
        2,
        ("params names 'Q'", "the float arrays of Square"),
    ),
    Case(
        "check-params-syntax", [*CHECK, "--params", "Q"], 2, ("--params expects NAME:GRAD pairs",)
    ),
    Case(
        "check-no-class",
        ["check", "{tmp}/layers.py:Nope", "--input-shape", "3"],
        2,
        ("has no 'Nope'", "classes defined there: ExitsInBackward"),
    ),
    Case(
        "check-no-file", ["check", "{tmp}/missing.py:X", "--input-shape", "3"], 2, ("no such file",)
    ),
    Case(
        "check-bad-shape",
        ["check", "{tmp}/layers.py:Square", "--input-shape", "3,0"],
        2,
        ("invalid input_shape '3,0'",),
    ),
    Case("check-eps-nan", [*CHECK, "--eps", "nan"], 2, ("invalid eps nan",)),
    Case("check-timeout-zero", [*CHECK, "--timeout", "0"], 2, ("invalid timeout 0.0",)),
    Case(
        "check-exit-on-import",
        ["check", "{tmp}/exits.py:A", "--input-shape", "3"],
        1,
        ("importing", "exits.py' called sys.exit(0)", '__name__ == "__main__"'),
    ),
    Case(
        "check-raise-on-import",
        ["check", "{tmp}/raises.py:A", "--input-shape", "3"],
        1,
        ("importing", "failed: RuntimeError: boom"),
    ),
    Case(
        "check-hang-on-import",
        ["check", "{tmp}/hangs.py:A", "--input-shape", "3", "--timeout", "1"],
        1,
        ("did not finish within 1 s", "--timeout"),
    ),
    Case(
        "check-exit-in-backward",
        ["check", "{tmp}/layers.py:ExitsInBackward", "--input-shape", "3"],
        1,
        ("ExitsInBackward failed while it was checked: it called sys.exit(5)",),
    ),
    Case(
        "check-hard-exit",
        ["check", "{tmp}/layers.py:HardExitInForward", "--input-shape", "3"],
        1,
        ("ended the process (exit status 3)", "os._exit"),
    ),
    Case(
        "check-recursion",
        ["check", "{tmp}/layers.py:Recursing", "--input-shape", "3"],
        1,
        ("Recursing failed while it was checked: RecursionError",),
    ),
    Case(
        "check-hang-in-forward",
        ["check", "{tmp}/layers.py:Sleeps", "--input-shape", "3", "--timeout", "1"],
        1,
        ("did not finish within 1 s",),
    ),
    # the other commands
    Case(
        "playground-port",
        ["playground", "--port", "70000", "--no-browser"],
        2,
        ("--port must be in 0..65535, got 70000",),
    ),
    Case(
        "data-fetch-unknown",
        ["data", "fetch", "nope", "--offline"],
        2,
        ("unknown data set 'nope'",),
    ),
    Case("data-without-action", ["data"], 2, ("data needs an action",)),
    Case("report-no-folder", ["report", "{tmp}/nope"], 2, ("no run folder at",)),
    Case("grade-no-spec", ["grade", "{tmp}/nope.toml", "{tmp}"], 2, ("no spec file",)),
    Case("unknown-command", ["bogus"], 2, ("invalid choice: 'bogus'",)),
]


def _files(tmp: Path) -> None:
    (tmp / "layers.py").write_text(LAYERS)
    (tmp / "exits.py").write_text("import sys\nsys.exit(0)\nclass A: pass\n")
    (tmp / "raises.py").write_text("raise RuntimeError('boom')\n")
    (tmp / "hangs.py").write_text("import time\nwhile True:\n    time.sleep(0.1)\n")


def _needs_run(case: Case) -> bool:
    return any("{run}" in a for a in case.argv)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cli_case(case: Case, tmp_path: Path, capsys: Any, monkeypatch: Any, request: Any) -> None:
    _files(tmp_path)
    run = request.getfixturevalue("run_dir") if _needs_run(case) else tmp_path / "no-run"
    cleanup = case.setup(tmp_path, run, monkeypatch) if case.setup else None
    victim = tmp_path / "victim.txt"
    victim_before = victim.read_bytes() if victim.exists() else None
    before = snapshot(run) if run.is_dir() else {}
    argv = [a.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for a in case.argv]
    try:
        outcome: Outcome = cli(capsys, argv)
        check_outcome(case, outcome, run, before, victim, victim_before, tmp_path)
    finally:
        if callable(cleanup):
            cleanup()


def check_outcome(
    case: Case,
    outcome: Outcome,
    run: Path,
    before: dict[str, str],
    victim: Path,
    victim_before: bytes | None,
    tmp_path: Path,
) -> None:
    assert outcome.code == case.code, outcome.err
    assert not any("Traceback" in line for line in outcome.err)
    if case.code:
        assert len(outcome.err) == 1, outcome.err
        line = outcome.err[0]
        assert line.startswith("handgrad: error: "), line
        for word in case.words:
            assert word in line, f"{word!r} not in {line!r}"
    if victim_before is not None:
        assert victim.read_bytes() == victim_before  # nothing was written through a link
    if run.is_dir():
        after = snapshot(run)
        keep = before if case.unchanged == ALL else {k: before[k] for k in case.unchanged}
        assert {k: after.get(k) for k in keep} == keep
        if case.unchanged == ALL:
            assert after == before
        for name in case.gone:
            assert not [n for n in after if n.startswith(name)], after
    if "{tmp}/new" in case.argv and case.code == 2:
        assert not (tmp_path / "new").exists()  # refused before a run folder was made


def test_cli_cases_cover_every_command() -> None:
    from handgrad.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    tested = {c.argv[0] for c in CASES}
    # export needs PyTorch (its own tests cover it); list takes no input
    assert commands - tested <= {"export", "list"}, commands - tested


@pytest.mark.parametrize("how", ["--debug", "HANDGRAD_DEBUG=1"])
def test_debug_shows_the_exception_instead(how: str, monkeypatch: Any, tmp_path: Path) -> None:
    from handgrad.cli import main

    argv = ["run", TINY, "--out", "/dev/null"]
    if how == "--debug":
        argv = ["--debug", *argv]
    else:
        monkeypatch.setenv("HANDGRAD_DEBUG", "1")
    with pytest.raises(NotADirectoryError, match="/dev/null is not a folder"):
        main(argv)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a read-only folder")
def test_read_only_output_folder(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        outcome = cli(capsys, ["run", TINY, *tiny_args(), "--out", out])
    finally:
        out.chmod(0o755)
    assert outcome.code == 1
    assert outcome.err[0].startswith("handgrad: error: Permission denied")
    assert "choose a folder you may write to" in outcome.err[0]
    assert list(out.iterdir()) == []


def test_resume_keeps_the_config_history(run_dir: Path, capsys: Any) -> None:
    first = json.loads((run_dir / "config.json").read_text())
    assert "history" not in first
    assert cli(capsys, ["run", "--resume", run_dir, "--epochs", "3", "--quiet"]).code == 0
    assert cli(capsys, ["run", "--resume", run_dir, "--epochs", "3", "--quiet"]).code == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["epochs"] == 3
    assert [h["config"]["epochs"] for h in saved["history"]] == [2]  # no change: no new entry
    assert saved["history"][0]["argv"] == first["argv"]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
