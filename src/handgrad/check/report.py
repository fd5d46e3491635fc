"""The report every checker returns: one row per tensor, a table, a verdict.

A row compares an *analytic* gradient (what the module's ``backward`` produced) with a
*reference*: central finite differences for :func:`~handgrad.check.gradcheck`, PyTorch for
:func:`~handgrad.check.compare_with_torch`. The element-wise test is the one
``numpy.allclose`` uses::

    |analytic - reference| <= atol + rtol * |reference|
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["GradcheckReport", "TensorCheck", "compare_arrays"]

# |a - n| / max(|a| + |n|, atol, _TINY): the floor keeps a gradient that is zero up to rounding
# (a bias in front of BatchNorm: analytic 0, numeric 1e-10) from showing a relative error of 1;
# such elements are judged by atol anyway.
_TINY = 1e-300


@dataclass
class TensorCheck:
    """The comparison for one tensor (the input, one parameter, the output, ...).

    Attributes:
        name: ``'input'``, a parameter's dotted name (``'weight'``, ``'0.bias'``), or
            ``'output'`` / ``'loss'`` / a buffer name for :func:`compare_with_torch`.
        kind: ``'input'``, ``'param'``, ``'output'``, ``'loss'`` or ``'buffer'``.
        shape: the tensor's shape.
        checked: elements compared against the reference.
        kinks: elements whose finite-difference step crossed a kink (not compared).
        skipped: elements not compared for another reason (sampling with ``max_elements``,
            or ``f(x +- eps)`` not finite). ``checked + kinks + skipped`` is the size.
        max_abs_err: max ``|analytic - reference|`` over the checked elements (0 if none).
        max_rel_err: max ``|a - r| / max(|a| + |r|, atol)`` over the checked elements (the
            floor keeps gradients that are zero up to rounding from showing 1).
        worst_index: the element that is furthest outside the tolerance (relative to it), as an
            index tuple; ``None`` when nothing was checked.
        analytic: the analytic value at ``worst_index`` (``nan`` if none).
        numeric: the reference value there (finite difference or PyTorch; ``nan`` if none).
        passed: every checked element is within tolerance and no note marks a failure.
        note: why the row failed beyond the numbers (e.g. ``.grad`` overwritten), or ``''``.

    Examples:
        >>> from handgrad.check import gradcheck
        >>> row = gradcheck(nn.ReLU(), np.array([[-1.0, 0.0, 2.0]]))["input"]
        >>> row.kind, row.shape, row.checked, row.kinks, row.passed  # ReLU at 0: a kink
        ('input', (1, 3), 2, 1, True)
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    checked: int
    kinks: int
    skipped: int
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple[int, ...] | None
    analytic: float
    numeric: float
    passed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (``nan`` becomes ``None``, tuples become lists)."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["worst_index"] = None if self.worst_index is None else list(self.worst_index)
        for key in ("max_abs_err", "max_rel_err", "analytic", "numeric"):
            d[key] = None if math.isnan(d[key]) else float(d[key])
        return d


def compare_arrays(
    name: str,
    kind: str,
    analytic: np.ndarray,
    reference: np.ndarray,
    *,
    atol: float,
    rtol: float,
    mask: np.ndarray | None = None,
    kinks: int = 0,
    skipped: int | None = None,
    note: str = "",
) -> TensorCheck:
    """Compare two arrays of the same shape element by element and build a row.

    ``mask`` (bool, same shape) selects the elements that count; the others are reported as
    ``kinks`` (given) and ``skipped`` (the rest, unless given).
    """
    a = np.asarray(analytic, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    shape = tuple(int(s) for s in a.shape)
    sel = np.ones(a.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    checked = int(sel.sum())
    if skipped is None:
        skipped = a.size - checked - kinks
    nan = float("nan")
    if checked == 0:
        return TensorCheck(
            name, kind, shape, 0, kinks, skipped, 0.0, 0.0, None, nan, nan, not note, note
        )
    flat = np.flatnonzero(sel)
    av, rv = a.reshape(-1)[flat], r.reshape(-1)[flat]
    err = np.abs(av - rv)
    # a non-finite analytic value is always wrong, whatever the tolerance
    err = np.where(np.isfinite(av) & np.isfinite(rv), err, np.inf)
    rel = err / np.maximum(np.abs(av) + np.abs(rv), max(atol, _TINY))
    tol = atol + rtol * np.abs(rv)
    ok = err <= tol
    # how far outside its own tolerance each element is; the worst one is reported
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(ok, 0.0, np.where(tol > 0, err / tol, np.inf))
    k = int(np.argmax(excess)) if not ok.all() else int(np.argmax(err))
    worst = tuple(int(i) for i in np.unravel_index(int(flat[k]), a.shape))
    return TensorCheck(
        name=name,
        kind=kind,
        shape=shape,
        checked=checked,
        kinks=kinks,
        skipped=skipped,
        max_abs_err=float(err.max()),
        max_rel_err=float(rel.max()),
        worst_index=worst,
        analytic=float(av[k]),
        numeric=float(rv[k]),
        passed=bool(ok.all()) and not note,
        note=note,
    )


def _fmt_err(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.1e}"


def _fmt_val(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.6g}"


def _fmt_index(idx: tuple[int, ...] | None) -> str:
    if idx is None:
        return "-"
    return "(" + ", ".join(str(i) for i in idx) + ("," if len(idx) == 1 else "") + ")"


@dataclass
class GradcheckReport:
    """What a check found: one :class:`TensorCheck` per tensor, in order.

    ``report.passed`` is the verdict and ``bool(report)`` is the same; ``report.failed``
    lists the names of the wrong tensors; ``report['weight']`` is one row; iterating gives
    the rows; ``str(report)`` is an aligned table followed by a one-line verdict;
    ``report.to_dict()`` is JSON-friendly.

    Examples:
        >>> from handgrad.check import gradcheck
        >>> class Affine:  # y = x W + b, with the bias gradient averaged, not summed
        ...     def __init__(self):
        ...         self.W, self.b = np.ones((3, 2)), np.zeros(2)
        ...
        ...     def forward(self, x):
        ...         self.x = x
        ...         return x @ self.W + self.b
        ...
        ...     def backward(self, grad_out):
        ...         self.dW, self.db = self.x.T @ grad_out, grad_out.mean(axis=0)
        ...         return grad_out @ self.W.T
        >>> report = gradcheck(Affine(), np.ones((4, 3)), params={"W": "dW", "b": "db"})
        >>> bool(report), report.failed
        (False, ['b'])
        >>> report["W"].passed, report["b"].checked
        (True, 2)
        >>> print(report.verdict())
        FAILED: wrong 'b' (max abs err 1.2 at (0,): analytic 0.383621 vs numeric 1.53448)
    """

    module: str
    rows: list[TensorCheck]
    method: str = "finite differences"
    reference: str = "numeric"
    eps: float | None = None
    atol: float = 0.0
    rtol: float = 0.0
    # the rounding error of the reference, added to atol (finite differences only)
    noise: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failed(self) -> list[str]:
        """Names of the tensors whose gradient (or value) is wrong, in report order."""
        return [r.name for r in self.rows if not r.passed]

    @property
    def kinks(self) -> int:
        """Total number of elements whose finite-difference step crossed a kink."""
        return sum(r.kinks for r in self.rows)

    def __bool__(self) -> bool:
        return self.passed

    def __iter__(self) -> Iterator[TensorCheck]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> TensorCheck:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"{self.module}: no tensor named {name!r}; have {[r.name for r in self]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "method": self.method,
            "reference": self.reference,
            "eps": self.eps,
            "atol": self.atol,
            "rtol": self.rtol,
            "noise": self.noise,
            "passed": self.passed,
            "failed": self.failed,
            "kinks": self.kinks,
            "notes": list(self.notes),
            "rows": [r.to_dict() for r in self.rows],
        }

    def verdict(self) -> str:
        """One line: PASSED with counts, or FAILED naming each wrong tensor and its worst error."""
        if self.passed:
            n = sum(r.checked for r in self.rows)
            extra = [f"{self.kinks} at kinks not compared"] if self.kinks else []
            skipped = sum(r.skipped for r in self.rows)
            if skipped:
                extra.append(f"{skipped} skipped")
            tail = f" ({', '.join(extra)})" if extra else ""
            tensors = f"{len(self.rows)} tensor{'s' if len(self.rows) != 1 else ''}"
            return f"PASSED: {tensors}, {n} elements agree{tail}"
        parts = []
        for r in self.rows:
            if r.passed:
                continue
            if r.note and (r.worst_index is None or r.max_abs_err <= self.atol + self.noise):
                parts.append(f"'{r.name}' ({r.note})")
            else:
                parts.append(
                    f"'{r.name}' (max abs err {r.max_abs_err:.2g} at {_fmt_index(r.worst_index)}:"
                    f" analytic {r.analytic:.6g} vs {self.reference} {r.numeric:.6g})"
                )
        return "FAILED: wrong " + "; ".join(parts)

    def __str__(self) -> str:
        eps = f"eps={self.eps:g}, " if self.eps is not None else ""
        noise = f" (+ rounding {self.noise:.1e})" if self.noise else ""
        title = f"{self.module}: {self.method}, {eps}atol={self.atol:g}{noise}, rtol={self.rtol:g}"
        header = (
            "tensor",
            "shape",
            "checked",
            "kinks",
            "skipped",
            "max abs err",
            "max rel err",
            "worst index",
            "analytic",
            self.reference,
            "status",
        )
        body = [
            (
                r.name,
                _fmt_index(r.shape) if r.shape else "()",
                str(r.checked),
                str(r.kinks),
                str(r.skipped),
                _fmt_err(r.max_abs_err),
                _fmt_err(r.max_rel_err),
                _fmt_index(r.worst_index),
                _fmt_val(r.analytic),
                _fmt_val(r.numeric),
                "ok" if r.passed else "FAIL",
            )
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        # text columns left-aligned, numbers right-aligned
        left = {0, 1, 7, 10}

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.ljust(w) if i in left else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        lines = [title, line(header), line(tuple("-" * w for w in widths))]
        lines += [line(row) for row in body]
        notes = [f"note: {r.name}: {r.note}" for r in self.rows if r.note] + [
            f"note: {n}" for n in self.notes
        ]
        return "\n".join([*lines, *notes, self.verdict()])

    def __repr__(self) -> str:
        state = "PASSED" if self.passed else f"FAILED {self.failed}"
        return f"<GradcheckReport {self.module}: {state}, {len(self.rows)} tensors>"
