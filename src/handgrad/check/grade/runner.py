"""The grading subprocess: ``python -m handgrad.check.grade.runner JOB.json``.

One process grades one submission, check after check, under the spec's limits:

- memory: ``RLIMIT_AS`` at what the process already uses plus ``memory_mb`` (so NumPy raises
  MemoryError, which is that check's verdict);
- time: each check gets ``timeout`` seconds of wall-clock time (SIGALRM raises
  :class:`~handgrad.check.grade.conventions.CheckTimeout` into the running code, which stops a
  Python loop); ``RLIMIT_CPU`` at ``submission_timeout`` and the parent's wall clock stop
  anything that survives that (a loop that catches everything, a long C call);
- output: ``sys.stdout``/``sys.stderr`` raise OutputLimit past ``max_output_kb`` per check;
  ``RLIMIT_FSIZE`` stops writes that bypass them; stdin is empty;
- ``sys.exit`` is caught; the process ends with ``os._exit`` (no atexit handlers, no waiting
  for threads the submission left running).

Results go to the job's results file, one JSON line when a check starts and one when it ends,
so that the parent knows which check was running if the process dies. This is isolation
against accidents, not a security sandbox: the code runs as the user who grades.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

# imported before the memory limit is set, and before the submission's folder is on sys.path
# (where a numpy.py of theirs could shadow it)
import numpy as np  # noqa: F401

from handgrad.check.grade.conventions import (
    CheckTimeout,
    Loader,
    OutputLimit,
    classify,
    run_check,
)
from handgrad.check.grade.spec import GradeSpec

__all__ = ["main"]


class _Budget:
    """Bytes printed in the current check, shared by stdout and stderr."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0


class _CappedStream(io.TextIOBase):
    """A text stream that passes writes on until the budget is spent, then raises."""

    def __init__(self, raw: Any, budget: _Budget) -> None:
        self._raw, self._budget = raw, budget

    def write(self, s: str) -> int:
        b = self._budget
        b.used += len(s)
        if b.used > b.limit:
            raise OutputLimit(
                f"printed more than {b.limit // 1024} kB (max_output_kb); "
                "is there a print in a loop?"
            )
        return self._raw.write(s)

    def flush(self) -> None:
        self._raw.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._raw.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._raw, "encoding", "utf-8")


def _vm_bytes() -> int:
    """This process's virtual memory size (Linux), else 0."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _set_limits(spec: GradeSpec) -> None:
    try:
        import resource
    except ImportError:  # not a Unix: only the parent's wall clock applies
        return

    def limit(which: int, soft: int, hard: int | None = None) -> None:
        _, old_hard = resource.getrlimit(which)
        hard = soft if hard is None else hard
        if old_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, old_hard), min(hard, old_hard)
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):  # e.g. RLIMIT_AS on macOS
            pass

    limit(resource.RLIMIT_AS, _vm_bytes() + int(spec.memory_mb * 2**20))
    # SIGXCPU at the soft limit, SIGKILL a little later
    cpu = math.ceil(spec.submission_timeout) + 1
    limit(resource.RLIMIT_CPU, cpu, cpu + 5)
    n = len(spec.checks)
    limit(resource.RLIMIT_FSIZE, int((n + 1) * spec.max_output_kb * 1024) + 2**20)
    limit(resource.RLIMIT_CORE, 0)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    spec = GradeSpec.from_dict(job["spec"], job.get("source", "spec"))
    results = open(job["results"], "a", encoding="utf-8")

    def emit(record: dict[str, Any]) -> None:
        results.write(json.dumps(record) + "\n")
        results.flush()

    budget = _Budget(int(spec.max_output_kb * 1024))
    sys.stdout = _CappedStream(sys.stdout, budget)
    sys.stderr = _CappedStream(sys.stderr, budget)
    sys.stdin = open(os.devnull, encoding="utf-8")
    root = Path(job["work"])
    os.chdir(root)
    sys.path.insert(0, str(root))
    loader = Loader(root, job.get("file"), spec.memory_mb)
    timeout_now = [0.0]

    def on_alarm(signum: int, frame: Any) -> None:
        raise CheckTimeout(
            f"did not finish within {timeout_now[0]:g} s (timeout); an infinite loop?"
        )

    has_alarm = hasattr(signal, "setitimer")
    if has_alarm:
        signal.signal(signal.SIGALRM, on_alarm)
    _set_limits(spec)
    for check in spec.checks:
        emit({"event": "start", "check": check.name})
        budget.used = 0
        timeout_now[0] = check.timeout
        start = time.perf_counter()
        try:
            try:
                if has_alarm:
                    signal.setitimer(signal.ITIMER_REAL, check.timeout)
                result = run_check(check, loader)
            finally:
                if has_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException as e:
            status, message = classify(e, root, spec.memory_mb)
            result = {"status": status, "message": message, "tensors": []}
        result.update(event="result", check=check.name, seconds=time.perf_counter() - start)
        try:
            emit(result)
        except (TypeError, ValueError):  # a value JSON cannot hold
            emit({**result, "tensors": [], "message": repr(result.get("message"))})
    results.close()
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover - run as a subprocess
    main()
