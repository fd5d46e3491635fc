"""Grading every submission in a folder, several at once."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from handgrad.check.grade.report import GradeReport, SubmissionResult
from handgrad.check.grade.sandbox import grade_submission
from handgrad.check.grade.spec import GradeSpec, load_spec

__all__ = ["grade_folder", "list_submissions"]


def list_submissions(folder: str | Path) -> list[Path]:
    """The submissions in ``folder``, by name: each sub-folder, and each ``.py`` file (a
    one-file submission). Hidden entries and ``__pycache__`` are skipped.

    Examples:
        >>> from handgrad.check.grade import list_submissions
        >>> import pathlib, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> root = pathlib.Path(folder.name)
        >>> (root / "bob").mkdir(); _ = (root / "alice.py").write_text("")
        >>> _ = (root / "notes.txt").write_text(""); (root / ".git").mkdir()
        >>> [p.name for p in list_submissions(root)]
        ['alice.py', 'bob']
        >>> folder.cleanup()
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"grade: no folder '{folder}'")
    if not root.is_dir():
        raise ValueError(f"grade: '{folder}' is not a folder of submissions")
    return sorted(
        (
            p
            for p in root.iterdir()
            if not p.name.startswith((".", "_"))
            and (p.is_dir() or (p.is_file() and p.suffix == ".py"))
        ),
        key=lambda p: p.name,
    )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def grade_folder(
    spec: GradeSpec | str | Path,
    folder: str | Path,
    *,
    jobs: int | None = None,
    progress: bool | None = None,
    on_result: Callable[[SubmissionResult], None] | None = None,
) -> GradeReport:
    r"""Grade every submission in ``folder`` against ``spec`` (a :class:`GradeSpec` or the path
    of its TOML file).

    Each submission runs in a subprocess of its own (see :mod:`handgrad.check.grade.runner`),
    ``jobs`` at a time (default: one per available core). ``progress`` shows a bar on stderr
    (default: when stderr is a terminal); ``on_result`` is called with each submission's result
    as it finishes. Whatever a submission does, it gets rows and the grading carries on.

    Raises FileNotFoundError / ValueError for a missing or empty folder or a bad spec.

    Examples:
        >>> from handgrad.check.grade import grade_folder
        >>> import pathlib, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> root = pathlib.Path(folder.name)
        >>> _ = (root / "spec.toml").write_text(
        ...     '[[check]]\nname = "relu"\nconvention = "functional"\nfile = "layers.py"\n'
        ...     'forward = "relu_forward"\nbackward = "relu_backward"\n'
        ...     'inputs = { x = [3, 4] }\n'
        ... )
        >>> (root / "subs").mkdir()
        >>> _ = (root / "subs" / "alice.py").write_text(
        ...     "def relu_forward(x):\n    return x * (x > 0), x\n"
        ...     "def relu_backward(dout, x):\n    return dout * (x > 0)\n"
        ... )
        >>> _ = (root / "subs" / "bob.py").write_text(
        ...     "def relu_forward(x):\n    return x * (x > 0), x\n"
        ...     "def relu_backward(dout, x):\n    return dout\n"  # forgot the mask
        ... )
        >>> report = grade_folder(root / "spec.toml", root / "subs", jobs=2, progress=False)
        >>> [(s.name, s["relu"].status, s.total) for s in report]
        [('alice', 'pass', 1.0), ('bob', 'fail', 0.0)]
        >>> report["bob"]["relu"].message.split(":")[0]
        "wrong 'x'"
        >>> folder.cleanup()
    """
    if not isinstance(spec, GradeSpec):
        spec = load_spec(spec)
    paths = list_submissions(folder)
    if not paths:
        raise ValueError(
            f"grade: no submissions in '{folder}' (expected a folder or a .py file per student)"
        )
    names = [p.stem if p.is_file() else p.name for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"grade: two submissions are named {dupes[0]!r} (a folder and a .py file)")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"grade: invalid jobs {jobs!r}, must be a positive integer")
    workers = min(jobs or _cores(), len(paths))
    if progress is None:
        progress = sys.stderr.isatty()
    start = time.perf_counter()
    results: dict[str, SubmissionResult] = {}
    from tqdm.auto import tqdm

    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(paths), desc="grading", unit="submission", disable=not progress) as bar,
    ):
        futures = {
            pool.submit(grade_submission, spec, p, n): n for p, n in zip(paths, names, strict=True)
        }
        for future in as_completed(futures):
            result = future.result()
            results[result.name] = result
            bar.update(1)
            bar.set_postfix_str(result.name, refresh=False)
            if on_result is not None:
                on_result(result)
    return GradeReport(
        spec,
        [results[n] for n in names],
        folder=str(folder),
        seconds=time.perf_counter() - start,
    )
