"""Your own 2-D points: a CSV of ``x1,x2,label`` rows, their features, and their splits.

The playground's drawn or uploaded points and ``handgrad run boundary --set data=points.csv``
read and write the same file through :func:`parse_points_csv` / :func:`points_csv`, build the
same network inputs through :data:`FEATURES`, and split train from test the same way
(:func:`head_split` for a generated draw, :func:`interleaved_split` for a list of points), so a
run can be redone exactly in either place.

The CSV format: one point per line, ``x1,x2,label``, comma separated (the ``csv`` module's
quoting rules); an optional header (line 1 is a header when its first two fields are not both
numbers); blank lines skipped; at most :data:`MAX_POINTS` points and :data:`MAX_CLASSES`
classes. Labels: when every label is an integer in 0..MAX_CLASSES-1 the integer is the class
(a file written here reads back unchanged); otherwise (names, or other integers) the classes
are numbered in order of first appearance. A bad file raises :class:`PointsError`, one line
that names the line and what is wrong.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from handgrad.data.dataset import Dataset

__all__ = [
    "FEATURES",
    "MAX_BYTES",
    "MAX_CLASSES",
    "MAX_POINTS",
    "PointsError",
    "head_split",
    "interleaved_split",
    "make_features",
    "parse_points_csv",
    "points_csv",
    "read_points_csv",
    "write_points_csv",
]

MAX_POINTS = 20_000
MAX_CLASSES = 6
MAX_BYTES = 2 * 1024 * 1024  # a file of 20,000 points with long names is well under this
HEADER = ("x1", "x2", "label")

# feature name -> its value from the raw (x1, x2) columns (float32 arrays of shape (N,)).
# The plane is about [-1, 1]^2, where sin(x) is nearly x; sin(pi x) makes one full wave across
# it, so the sine features add something the linear ones cannot (as TF Playground's on -6..6).
FEATURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1^2": lambda x1, x2: x1 * x1,
    "x2^2": lambda x1, x2: x2 * x2,
    "x1x2": lambda x1, x2: x1 * x2,
    "sin_x1": lambda x1, x2: np.sin(np.pi * x1),
    "sin_x2": lambda x1, x2: np.sin(np.pi * x2),
}


class PointsError(ValueError):
    """A CSV of points that cannot be read; the message is one line naming the line."""


def make_features(points: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The network's input: (N, 2) raw points -> (N, len(names)) float32 features.

    Examples:
        >>> make_features(np.array([[1.0, 2.0]]), ["x1", "x1x2"]).tolist()
        [[1.0, 2.0]]
    """
    unknown = [name for name in names if name not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature {unknown[0]!r}; valid: {', '.join(FEATURES)}")
    x1 = points[:, 0].astype(np.float32, copy=False)
    x2 = points[:, 1].astype(np.float32, copy=False)
    cols = [FEATURES[name](x1, x2) for name in names]
    if not cols:
        return np.zeros((len(points), 0), np.float32)
    return np.stack(cols, axis=1).astype(np.float32)


def head_split(n: int, train_ratio: float) -> int:
    """How many of ``n`` drawn points train when the first ones train and the rest test:
    ``round(n * train_ratio)``, at least 1 and at most ``n - 1`` (for ``n >= 2``)."""
    return min(max(round(n * train_ratio), 1), n - 1)


def interleaved_split(n: int, train_ratio: float) -> np.ndarray:
    """Which of a list of ``n`` points are test points: point i (0-based) is one when
    ``floor((i + 1)(1 - r)) > floor(i (1 - r))``. Test points are spread evenly through the
    list (a list drawn class by class still tests every class), point 0 always trains, and
    adding a point at the end never moves the others.

    Examples:
        >>> interleaved_split(5, 0.5).tolist()
        [False, True, False, True, False]
        >>> interleaved_split(4, 1.0).tolist()
        [False, False, False, False]
    """
    steps = np.floor(np.arange(n + 1, dtype=np.float64) * (1.0 - float(train_ratio)))
    return steps[1:] > steps[:-1]


# -- reading ---------------------------------------------------------------------------------
def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value


def _int_label(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def parse_points_csv(data: bytes | str, *, name: str = "CSV") -> Dataset:
    """The points of a CSV file's content (bytes are decoded as UTF-8; a BOM is skipped).

    Returns a :class:`~handgrad.data.Dataset`: ``X`` float32 (N, 2), ``y`` int64 (N,),
    ``classes`` the label names (``('0', '1')`` for integer labels), ``name`` 'points'.

    Raises:
        PointsError: ``"<name> line 7: expected 3 columns (x1,x2,label), got 2"``, a value
            that is not a finite number, a 7th class, more than MAX_POINTS points, no
            points, bytes that are not UTF-8 or more than MAX_BYTES of them.

    Examples:
        >>> d = parse_points_csv("x1,x2,label\\n0.5,1,cat\\n-1,0,dog\\n2,2,cat\\n")
        >>> d.X.tolist(), d.y.tolist(), d.classes
        ([[0.5, 1.0], [-1.0, 0.0], [2.0, 2.0]], [0, 1, 0], ('cat', 'dog'))
        >>> parse_points_csv("1,2\\n")
        Traceback (most recent call last):
        ...
        handgrad.data.points.PointsError: CSV line 1: expected 3 columns (x1,x2,label), got 2
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if len(raw) > MAX_BYTES:
            raise PointsError(f"{name}: {len(raw)} bytes; at most {MAX_BYTES // 2**20} MiB")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise PointsError(f"{name}: not UTF-8 (line {line}: {e.reason})") from None
    else:
        text = data.removeprefix("\ufeff")
        if len(text) > MAX_BYTES:
            raise PointsError(f"{name}: {len(text)} characters; at most {MAX_BYTES // 2**20} MiB")
    xs: list[tuple[float, float]] = []
    labels: list[str] = []
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True, strict=True)
    first = True
    try:
        for row in reader:
            line = reader.line_num
            fields = [f.strip() for f in row]
            if not fields or fields == [""]:
                continue  # a blank line
            if len(fields) != 3:
                raise PointsError(
                    f"{name} line {line}: expected 3 columns (x1,x2,label), got {len(fields)}"
                )
            x1, x2 = _number(fields[0]), _number(fields[1])
            if first and (x1 is None or x2 is None):
                first = False
                continue  # a header
            first = False
            for key, text_value, value in (("x1", fields[0], x1), ("x2", fields[1], x2)):
                if value is None:
                    raise PointsError(f"{name} line {line}: {key} is not a number: {text_value!r}")
                if not math.isfinite(value):
                    raise PointsError(
                        f"{name} line {line}: {key} is not a finite number: {text_value!r}"
                    )
            if fields[2] == "":
                raise PointsError(f"{name} line {line}: the label is empty")
            if len(xs) == MAX_POINTS:
                raise PointsError(f"{name} line {line}: more than {MAX_POINTS:,} points")
            xs.append((x1, x2))  # type: ignore[arg-type]
            labels.append(fields[2])
            lines.append(line)
    except csv.Error as e:
        raise PointsError(f"{name} line {reader.line_num}: {e}") from None
    if not xs:
        raise PointsError(f"{name}: no points")
    ints = [_int_label(label) for label in labels]
    if all(i is not None and 0 <= i < MAX_CLASSES for i in ints):
        y = np.array(ints, dtype=np.int64)
        classes = tuple(str(c) for c in range(int(y.max()) + 1))
    else:
        index: dict[str, int] = {}
        codes = []
        for label, line in zip(labels, lines, strict=True):
            key = str(int(label)) if _int_label(label) is not None else label
            if key not in index:
                if len(index) == MAX_CLASSES:
                    raise PointsError(
                        f"{name} line {line}: a {MAX_CLASSES + 1}th class {label!r}; "
                        f"at most {MAX_CLASSES} classes"
                    )
                index[key] = len(index)
            codes.append(index[key])
        y = np.array(codes, dtype=np.int64)
        classes = tuple(index)
    X = np.array(xs, dtype=np.float64).astype(np.float32)
    return Dataset(X, y, classes, (2,), "points", "train", {"source": name})


def read_points_csv(path: str | os.PathLike) -> Dataset:
    """The points of the CSV file at ``path`` (see :func:`parse_points_csv`)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise PointsError(f"{path}: cannot read it ({e.strerror or e})") from None
    if size > MAX_BYTES:
        raise PointsError(f"{path.name}: {size} bytes; at most {MAX_BYTES // 2**20} MiB")
    return parse_points_csv(path.read_bytes(), name=path.name)


# -- writing ---------------------------------------------------------------------------------
def _shortest(v: np.float32) -> str:
    """The shortest text that reads back (through float64, as ``float()`` does) as ``v``."""
    text = np.format_float_positional(v, unique=True, trim="-")
    if np.float32(float(text)) != v:  # double rounding: rare, the exact value always works
        text = repr(float(v))
    return text


def points_csv(X: np.ndarray, y: np.ndarray, classes: Sequence[str] | None = None) -> str:
    """The CSV text of points ``X`` (N, 2) with labels ``y`` (N,): a header, then one
    ``x1,x2,label`` row per point; labels written as ``classes[y]`` (default: the integers).
    Coordinates are written in the shortest form that reads back to the same float32.

    Examples:
        >>> print(points_csv(np.array([[0.1, -2.0]]), np.array([1])), end="")
        x1,x2,label
        0.1,-2,1
    """
    X32 = np.asarray(X, dtype=np.float32)
    buf = io.StringIO(newline="")
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(HEADER)
    for (a, b), label in zip(X32, np.asarray(y).tolist(), strict=True):
        name = classes[label] if classes is not None else str(label)
        out.writerow((_shortest(a), _shortest(b), name))
    return buf.getvalue()


def write_points_csv(
    path: str | os.PathLike, X: np.ndarray, y: np.ndarray, classes: Sequence[str] | None = None
) -> Path:
    """Write :func:`points_csv` to ``path`` (UTF-8); returns the path."""
    path = Path(path)
    path.write_text(points_csv(X, y, classes), encoding="utf-8", newline="")
    return path
