"""Argument validators, run when a layer, optimizer or scheduler is built (never per call).

Each one quotes the owner, the argument and the bad value. Two phrasings, each kept by the tests:
layers say ``Linear: in_features must be a positive integer, got 0``; optimizers and
schedulers follow torch.optim, ``SGD: invalid lr -0.1, must be >= 0``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = [
    "IntPair",
    "check_int_pair",
    "check_interval",
    "check_nonnegative",
    "check_positive",
    "check_positive_int",
    "check_positive_period",
    "check_real",
]

IntPair = int | tuple[int, int]


def _is_int(value: Any) -> bool:
    """An integer (Python or NumPy), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# -- layer arguments: "Owner: name must be ..., got value" -----------------------------------
def check_positive_int(owner: str, name: str, value: Any) -> int:
    """A size argument (``in_features``, ``groups``, ...) as an int > 0."""
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def check_int_pair(owner: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (``kernel_size``, ``stride``, ...) as a 2-tuple, each
    ``>= minimum`` (1: positive, 0: non-negative)."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    kind = "positive" if minimum == 1 else "non-negative"
    if not (len(items) == 2 and all(_is_int(v) and v >= minimum for v in items)):
        raise ValueError(f"{owner}: {name} must be a {kind} int or a pair of them, got {value!r}")
    return int(items[0]), int(items[1])


# -- hyperparameters, torch.optim's phrasing: "Owner: invalid name value, must be ..." --------
def check_real(owner: str, name: str, value: Any) -> float:
    """A real number (not a bool, not a string), as a float; TypeError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    return float(value)


def check_nonnegative(owner: str, name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number >= 0."""
    v = check_real(owner, name, value)
    if not (math.isfinite(v) and v >= 0.0):  # written so that NaN fails too
        raise ValueError(f"{owner}: invalid {name} {value}, must be >= 0")


def check_positive(owner: str, name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number > 0."""
    check_nonnegative(owner, name, value)
    if value == 0:
        raise ValueError(f"{owner}: invalid {name} {value}, must be > 0")


def check_interval(
    owner: str, name: str, value: Any, low: float, high: float, closed_high: bool
) -> None:
    """Raise ``ValueError`` unless ``low <= value < high`` (or ``<= high`` if closed_high)."""
    v = check_real(owner, name, value)
    ok = low <= v <= high if closed_high else low <= v < high
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{owner}: invalid {name} {value}, must be in [{low:g}, {high:g}{bracket}")


def check_positive_period(owner: str, name: str, value: Any) -> int:
    """A count of epochs (``step_size``, ``T_max``) as an int > 0."""
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{owner}: invalid {name} {value!r}, must be a positive integer")
    return int(value)
