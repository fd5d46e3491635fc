"""Grading one submission in a subprocess of its own, and reading back what happened.

The submission (a folder, or a single ``.py`` file) is copied into a temporary folder, which is
the working directory of ``python -m handgrad.check.grade.runner``; the runner applies the
limits (see its docstring). Here the parent enforces the wall-clock limit of the whole
submission (killing its process group), and turns a process that died into rows: the check
that was running gets the cause (time, CPU, output, memory, a signal, an early exit), the
checks after it ``not run``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import handgrad
from handgrad.check.grade.report import CheckResult, SubmissionResult
from handgrad.check.grade.spec import GradeSpec

__all__ = ["grade_submission"]

# one BLAS thread per submission: they run side by side, one per core
_ONE_THREAD = {
    k: "1"
    for k in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    )
}


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(_ONE_THREAD)
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0", MPLBACKEND="Agg")
    # the runner imports this handgrad, installed or not
    src = str(Path(handgrad.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _copy(source: Path, work: Path) -> str | None:
    """Copy a submission into ``work``; for a single file, return its name."""
    if source.is_dir():
        shutil.copytree(
            source, work, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", ".*")
        )
        return None
    work.mkdir()
    shutil.copy2(source, work / source.name)
    return source.name


def _read_records(path: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The results by check, and the check that had started without finishing (if any)."""
    done: dict[str, dict[str, Any]] = {}
    running = None
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return done, None
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short when the process died
        if not isinstance(rec, dict):
            continue
        if rec.get("event") == "start":
            running = rec.get("check")
        elif rec.get("event") == "result":
            done[str(rec.get("check"))] = rec
            running = None
    return done, running


def _tail(path: Path, limit: int = 4000) -> str:
    """The last line of what the process wrote (for a runner that could not start)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _death(returncode: int | None, killed_after: float | None, spec: GradeSpec) -> tuple[str, str]:
    """Why the process ended before finishing its checks: (status, message)."""
    if killed_after is not None:
        return (
            "timeout",
            f"still running after {killed_after:g} s (submission_timeout); the process was "
            "killed (a loop that catches the time-out?)",
        )
    if returncode is None:
        return "crash", "the process did not finish"
    if returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.valid_signals() else f"signal {sig}"
        if sig == getattr(signal, "SIGXCPU", None):
            return "timeout", f"used more than {spec.submission_timeout:g} s of CPU time (killed)"
        if sig == getattr(signal, "SIGXFSZ", None):
            return "output", "wrote past the output limit (killed)"
        if sig == getattr(signal, "SIGKILL", None):
            return "crash", f"killed by {name} (out of memory, over {spec.memory_mb:g} MB?)"
        return "crash", f"the process crashed ({name})"
    return (
        "exit",
        f"the process exited with status {returncode} during this check (os._exit?)",
    )


def grade_submission(
    spec: GradeSpec, path: str | Path, name: str | None = None
) -> SubmissionResult:
    """Grade one submission (a folder, or a ``.py`` file) in a subprocess; never raises for
    anything the submission does.

    Examples:
        >>> from handgrad.check.grade import GradeSpec
        >>> from handgrad.check.grade.sandbox import grade_submission
        >>> import pathlib, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> path = pathlib.Path(folder.name, "alice.py")
        >>> _ = path.write_text(
        ...     "def relu_forward(x):\\n"
        ...     "    return x * (x > 0), x\\n"
        ...     "def relu_backward(dout, x):\\n"
        ...     "    return dout * (x > 0)\\n"
        ... )
        >>> spec = GradeSpec.from_dict({"check": [
        ...     {"name": "relu", "convention": "functional", "file": "layers.py",
        ...      "forward": "relu_forward", "backward": "relu_backward",
        ...      "inputs": {"x": [3, 4]}}]})
        >>> result = grade_submission(spec, path)
        >>> result.name, result["relu"].status, result.total
        ('alice', 'pass', 1.0)
        >>> folder.cleanup()
    """
    source = Path(path)
    name = name or (source.stem if source.is_file() else source.name)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="handgrad-grade-") as tmp_str:
        tmp = Path(tmp_str).resolve()
        work = tmp / "work"
        try:
            file = _copy(source, work)
        except OSError as e:  # unreadable files, a name the file system refuses, ...
            rows = [
                CheckResult.from_record(
                    name, c, {"status": "crash", "message": f"could not copy the submission: {e}"}
                )
                for c in spec.checks
            ]
            return SubmissionResult(name, rows, seconds=time.perf_counter() - start)
        results, output = tmp / "results.jsonl", tmp / "output.txt"
        job = {
            "spec": spec.raw,
            "source": spec.source,
            "work": str(work),
            "file": file,
            "results": str(results),
        }
        (tmp / "job.json").write_text(json.dumps(job, default=str), encoding="utf-8")
        killed_after = None
        with open(output, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "handgrad.check.grade.runner", str(tmp / "job.json")],
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=_environment(),
                start_new_session=True,  # its own process group, killed as one
            )
            try:
                proc.wait(timeout=spec.submission_timeout)
            except subprocess.TimeoutExpired:
                killed_after = spec.submission_timeout
            finally:
                _kill_group(proc)
        done, running = _read_records(results)
        rows = []
        ended_in = None  # the check during which the process ended
        for check in spec.checks:
            rec = done.get(check.name)
            if rec is None and ended_in is None:
                ended_in = check.name
                status, message = _death(proc.returncode, killed_after, spec)
                if not done and running is None and killed_after is None and proc.returncode:
                    status, message = "crash", f"the grader could not start: {_tail(output)}"
                rec = {"status": status, "message": message}
            elif rec is None:
                rec = {"status": "not run", "message": f"the process ended in check '{ended_in}'"}
            rows.append(CheckResult.from_record(name, check, rec))
    return SubmissionResult(name, rows, seconds=time.perf_counter() - start)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the submission's process group (what it may have started too) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
        proc.wait()
