"""What grading a folder found: a row per submission and check, a summary, and its formats.

Statuses: ``pass``; ``fail`` (a gradient is wrong, and the row says which, where and by how
much); ``shape`` (a result of the wrong shape); ``error`` (the code raised, or returned
something that is not what the convention asks for); ``import`` (the file does not import);
``missing`` (no such file, function or class); ``timeout``; ``memory``; ``exit`` (it called
``sys.exit`` or ended the process); ``output`` (it printed past the limit); ``crash`` (the
process died otherwise); ``not run`` (an earlier check ended the process).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from handgrad.check.grade.spec import CheckSpec, GradeSpec

__all__ = ["STATUSES", "CheckResult", "GradeReport", "SubmissionResult"]

STATUSES = (
    "pass",
    "fail",
    "shape",
    "error",
    "import",
    "missing",
    "timeout",
    "memory",
    "exit",
    "output",
    "crash",
    "not run",
)
_LABELS = {
    "shape": "wrong shape",
    "import": "import failed",
    "missing": "missing",
    "timeout": "timed out",
    "memory": "out of memory",
    "exit": "called sys.exit",
    "output": "printed too much",
    "crash": "crashed",
    "not run": "not run",
}


def _fmt_index(idx: Any) -> str:
    if idx is None:
        return ""
    return "(" + ", ".join(str(i) for i in idx) + ("," if len(idx) == 1 else "") + ")"


def _fmt_points(p: float) -> str:
    return f"{p:g}" if p == int(p) else f"{p:.2f}".rstrip("0")


def _fmt_err(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.1e}"


@dataclass
class CheckResult:
    """One submission on one check.

    ``max_abs_err`` / ``max_rel_err`` are the largest over the checked gradients (None when
    nothing was compared); ``worst`` names the gradient and the element furthest outside the
    tolerance (``"w (2, 1)"``); ``tensors`` holds gradcheck's row for each gradient
    (:meth:`handgrad.check.TensorCheck.to_dict`).

    Examples:
        >>> from handgrad.check.grade import CheckResult
        >>> tensors = [{"name": "x", "passed": True}, {"name": "w", "passed": False}]
        >>> r = CheckResult("bob", "affine", "fail", 0.0, 4.0, "wrong 'w': ...", tensors=tensors)
        >>> r.passed, r.label
        (False, "wrong 'w'")
    """

    submission: str
    check: str
    status: str
    points: float
    max_points: float
    message: str
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    worst: str = ""
    kinks: int = 0
    seconds: float | None = None
    tensors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def label(self) -> str:
        """A short name of what went wrong, to count in the summary (``"wrong 'w'"``)."""
        if self.status == "pass":
            return "pass"
        if self.status == "fail":
            wrong = [t["name"] for t in self.tensors if not t["passed"]]
            return "wrong " + ", ".join(f"'{n}'" for n in wrong)
        if self.status == "error":
            m = re.match(r"raised (\w+)", self.message)
            return f"raised {m[1]}" if m else "error"
        return _LABELS.get(self.status, self.status)

    @classmethod
    def from_record(cls, submission: str, check: CheckSpec, rec: dict[str, Any]) -> CheckResult:
        """From the runner's JSON record of the check."""
        tensors = list(rec.get("tensors") or [])
        status = rec.get("status", "crash")
        if status not in STATUSES:
            status = "crash"
        n_ok = sum(1 for t in tensors if t.get("passed"))
        if status == "pass":
            points = check.points
        elif status == "fail" and check.partial and tensors:
            points = check.points * n_ok / len(tensors)
        else:
            points = 0.0
        abs_errs = [t["max_abs_err"] for t in tensors if t.get("max_abs_err") is not None]
        rel_errs = [t["max_rel_err"] for t in tensors if t.get("max_rel_err") is not None]
        worst = ""
        compared = [t for t in tensors if t.get("worst_index") is not None]
        failing = [t for t in compared if not t.get("passed")]
        if failing:
            t = failing[0]
        elif compared:
            t = max(compared, key=lambda t: t["max_abs_err"] or 0.0)
        else:
            t = None
        if t is not None:
            worst = f"{t['name']} {_fmt_index(t['worst_index'])}"
        return cls(
            submission=submission,
            check=check.name,
            status=status,
            points=float(points),
            max_points=check.points,
            message=str(rec.get("message", "")),
            max_abs_err=max(abs_errs) if abs_errs else None,
            max_rel_err=max(rel_errs) if rel_errs else None,
            worst=worst,
            kinks=sum(int(t.get("kinks", 0)) for t in tensors),
            seconds=rec.get("seconds"),
            tensors=tensors,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d


@dataclass
class SubmissionResult:
    """Every check of one submission (a folder or a ``.py`` file), in the spec's order.

    Examples:
        >>> from handgrad.check.grade import CheckResult, SubmissionResult
        >>> s = SubmissionResult("ann", [CheckResult("ann", "relu", "pass", 2.0, 2.0, "ok"),
        ...                              CheckResult("ann", "loss", "timeout", 0.0, 3.0, "...")])
        >>> s.total, s.max_points, s["loss"].status
        (2.0, 5.0, 'timeout')
    """

    name: str
    results: list[CheckResult]
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return float(sum(r.points for r in self.results))

    @property
    def max_points(self) -> float:
        return float(sum(r.max_points for r in self.results))

    def __getitem__(self, check: str) -> CheckResult:
        for r in self.results:
            if r.check == check:
                return r
        raise KeyError(f"{self.name}: no check named {check!r}")

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "total": self.total,
            "max_points": self.max_points,
            "seconds": self.seconds,
            "results": [r.to_dict() for r in self.results],
        }


def _cell(text: Any) -> str:
    return str(text).replace("\n", " ").replace("|", "\\|")


def _table(header: list[str], align: str, rows: list[list[Any]]) -> list[str]:
    """A Markdown table; ``align`` has one letter per column, 'l' or 'r'."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


@dataclass
class GradeReport:
    """All submissions graded against one spec.

    ``report['alice']`` is one :class:`SubmissionResult` and ``report['alice']['affine']`` one
    :class:`CheckResult`; :meth:`summary` gives the pass rate and the most common failure of
    each check; :meth:`to_markdown`, :meth:`to_csv` (a row per submission and check),
    :meth:`totals_csv` (a row per submission) and :meth:`to_json` write it out.

    Examples:
        >>> from handgrad.check.grade import CheckResult, GradeReport, GradeSpec, SubmissionResult
        >>> spec = GradeSpec.from_dict({"check": [
        ...     {"name": "relu", "convention": "functional", "file": "layers.py", "points": 2,
        ...      "forward": "relu_forward", "backward": "relu_backward", "inputs": {"x": [3]}}]})
        >>> def row(who, status, points, message):
        ...     return CheckResult(who, "relu", status, points, 2.0, message)
        >>> report = GradeReport(spec, [
        ...     SubmissionResult("alice", [row("alice", "pass", 2.0, "ok")]),
        ...     SubmissionResult("bob", [row("bob", "timeout", 0.0, "did not finish in 10 s")]),
        ... ])
        >>> report["bob"]["relu"].status, report["alice"].total
        ('timeout', 2.0)
        >>> report.summary()[0]["pass_rate"], report.summary()[0]["most_common_failure"]
        (0.5, 'timed out')
        >>> print(report.to_csv().splitlines()[1])
        alice,relu,pass,True,2,2,,,,0,,ok
    """

    spec: GradeSpec
    submissions: list[SubmissionResult]
    folder: str = ""
    seconds: float = 0.0

    def __getitem__(self, name: str) -> SubmissionResult:
        for s in self.submissions:
            if s.name == name:
                return s
        raise KeyError(f"no submission named {name!r}; have {[s.name for s in self.submissions]}")

    def __iter__(self) -> Iterator[SubmissionResult]:
        return iter(self.submissions)

    def __len__(self) -> int:
        return len(self.submissions)

    def summary(self) -> list[dict[str, Any]]:
        """Per check: how many passed, the pass rate, the mean points, the most common failure
        (and how many had it)."""
        out = []
        for check in self.spec.checks:
            rows = [s[check.name] for s in self.submissions]
            failures = Counter(r.label for r in rows if not r.passed)
            common, count = failures.most_common(1)[0] if failures else ("", 0)
            n = len(rows)
            passed = sum(r.passed for r in rows)
            out.append(
                {
                    "check": check.name,
                    "points": check.points,
                    "passed": passed,
                    "graded": n,
                    "pass_rate": passed / n if n else 0.0,
                    "mean_points": sum(r.points for r in rows) / n if n else 0.0,
                    "most_common_failure": common,
                    "most_common_failure_count": count,
                    "statuses": dict(Counter(r.status for r in rows)),
                }
            )
        return out

    def to_markdown(self) -> str:
        spec, subs = self.spec, self.submissions
        total = spec.total_points
        lines = [f"# {spec.title}", ""]
        lines.append(
            f"{len(subs)} submission{'s' if len(subs) != 1 else ''} in `{self.folder or '.'}`, "
            f"{len(spec.checks)} check{'s' if len(spec.checks) != 1 else ''} from "
            f"`{spec.source}`, {_fmt_points(total)} points in all."
        )
        lines += ["", "## Summary", ""]
        rows = []
        for s in self.summary():
            failure = (
                f"{s['most_common_failure']} ({s['most_common_failure_count']})"
                if s["most_common_failure"]
                else "-"
            )
            rows.append(
                [
                    s["check"],
                    _fmt_points(s["points"]),
                    f"{s['passed']}/{s['graded']}",
                    f"{s['pass_rate']:.0%}",
                    failure,
                ]
            )
        lines += _table(
            ["check", "points", "passed", "pass rate", "most common failure"], "lrrrl", rows
        )
        if subs:
            mean = sum(s.total for s in subs) / len(subs)
            share = f" ({mean / total:.0%})" if total else ""
            lines += [
                "",
                f"Mean score: {_fmt_points(round(mean, 2))} / {_fmt_points(total)}{share}.",
            ]
        lines += ["", "## Totals", ""]
        names = [c.name for c in spec.checks]
        rows = [
            [
                s.name,
                *(_fmt_points(s[n].points) for n in names),
                f"{_fmt_points(s.total)} / {_fmt_points(total)}",
            ]
            for s in subs
        ]
        lines += _table(["submission", *names, "total"], "l" + "r" * (len(names) + 1), rows)
        for s in subs:
            lines += ["", f"## {s.name}: {_fmt_points(s.total)} / {_fmt_points(total)}", ""]
            rows = [
                [
                    r.check,
                    r.status,
                    _fmt_err(r.max_abs_err),
                    _fmt_err(r.max_rel_err),
                    r.worst or "-",
                    f"{_fmt_points(r.points)} / {_fmt_points(r.max_points)}",
                    r.message,
                ]
                for r in s
            ]
            header = ["check", "status", "max abs err", "max rel err", "worst", "points", "message"]
            lines += _table(header, "llrrlrl", rows)
        return "\n".join(lines) + "\n"

    CSV_COLUMNS = (
        "submission",
        "check",
        "status",
        "passed",
        "points",
        "max_points",
        "max_abs_err",
        "max_rel_err",
        "worst",
        "kinks",
        "seconds",
        "message",
    )

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.CSV_COLUMNS)
        for s in self.submissions:
            for r in s:
                w.writerow(
                    [
                        s.name,
                        r.check,
                        r.status,
                        r.passed,
                        _fmt_points(r.points),
                        _fmt_points(r.max_points),
                        "" if r.max_abs_err is None else f"{r.max_abs_err:.3g}",
                        "" if r.max_rel_err is None else f"{r.max_rel_err:.3g}",
                        r.worst,
                        r.kinks,
                        "" if r.seconds is None else f"{r.seconds:.2f}",
                        r.message,
                    ]
                )
        return buf.getvalue()

    def totals_csv(self) -> str:
        """One row per submission: the points of each check and the total (a gradebook)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        names = [c.name for c in self.spec.checks]
        w.writerow(["submission", *names, "total", "max_points"])
        for s in self.submissions:
            points = [_fmt_points(s[n].points) for n in names]
            w.writerow([s.name, *points, _fmt_points(s.total), _fmt_points(s.max_points)])
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.spec.title,
            "spec": self.spec.source,
            "folder": self.folder,
            "seconds": self.seconds,
            "checks": [
                {"name": c.name, "convention": c.convention, "points": c.points}
                for c in self.spec.checks
            ],
            "summary": self.summary(),
            "submissions": [s.to_dict() for s in self.submissions],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
