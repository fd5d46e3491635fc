"""Argument validators, run when a layer, optimizer or scheduler is built (never per call).

Each one quotes the owner, the argument and the bad value. Two phrasings, each kept by the tests:
layers say ``Linear: in_features must be a positive integer, got 0``; optimizers and
schedulers follow torch.optim, ``SGD: invalid lr -0.1, must be >= 0``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "IntPair",
    "check_bool",
    "check_choice",
    "check_float_dtype",
    "check_int",
    "check_int_pair",
    "check_interval",
    "check_nonnegative",
    "check_positive",
    "check_positive_int",
    "check_positive_period",
    "check_range",
    "check_real",
    "check_rng",
]

IntPair = int | tuple[int, int]


def _is_int(value: Any) -> bool:
    """An integer (Python or NumPy), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _shown(value: Any) -> str:
    """``repr`` of the value, NumPy scalars as plain numbers (``0.5``, not ``np.float64(0.5)``)."""
    return repr(value.item()) if isinstance(value, np.generic) else repr(value)


# -- layer arguments: "Owner: name must be ..., got value" -----------------------------------
def check_positive_int(owner: str, name: str, value: Any) -> int:
    """A size argument (``in_features``, ``groups``, ...) as an int > 0."""
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def check_int(owner: str, name: str, value: Any) -> int:
    """An index-like argument (``dim``, ``start_dim``) as an int of any sign; not a bool, not a
    float (``dim=1.5`` is an error rather than a silent ``1``)."""
    if not _is_int(value):
        raise TypeError(f"{owner}: {name} must be an integer, got {_shown(value)}")
    return int(value)


def check_bool(owner: str, name: str, value: Any) -> bool:
    """A flag (``bias``, ``affine``) as a bool: ``True`` or ``False`` only, so that the string
    ``'False'`` (which is truthy) or ``0`` cannot switch a feature on or off by accident."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {_shown(value)}")
    return bool(value)


def check_choice(owner: str, name: str, value: Any, choices: Sequence[str]) -> str:
    """One of a few strings: ``Owner: name must be 'a' or 'b', got 'c'``."""
    if not isinstance(value, str) or value not in choices:
        quoted = [repr(c) for c in choices]
        allowed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        raise ValueError(f"{owner}: {name} must be {allowed}, got {_shown(value)}")
    return value


def check_range(
    owner: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    what: str | None = None,
) -> float:
    """A real hyperparameter (``eps``, ``p``, ``negative_slope``) as a float: finite, and within
    ``[low, high]`` (an end is left out with ``low_open``/``high_open``; None: unbounded).

    NaN and +-inf always fail, whatever the bounds: a layer built with them only produces NaN.
    ``what`` replaces the generated description of the allowed values. A value that is not a
    real number (a string, a bool, None) is a TypeError; a real one out of range a ValueError,
    both as ``Owner: name must be <what>, got <value>``.
    """
    if what is None:
        if low is not None and high is not None:
            what = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            what = f"{'>' if low_open else '>='} {low:g}"
        elif high is not None:
            what = f"{'<' if high_open else '<='} {high:g}"
        else:
            what = "a finite number"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number {what}, got {_shown(value)}")
    v = float(value)
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        raise ValueError(f"{owner}: {name} must be {what}, got {_shown(value)}")
    return v


def check_float_dtype(owner: str, value: Any) -> np.dtype:
    """The ``dtype`` argument of a layer: float32 or float64 (anything ``np.dtype`` takes)."""
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        shown = dt if dt is not None else _shown(value)
        raise ValueError(f"{owner}: dtype must be float32 or float64, got {shown}")
    return dt


def check_rng(owner: str, value: Any) -> np.random.Generator:
    """The ``rng`` argument: a Generator, a seed (an int >= 0) or None, as a Generator."""
    if isinstance(value, np.random.Generator):
        return value
    if value is None or (_is_int(value) and value >= 0):
        return np.random.default_rng(int(value) if value is not None else None)
    error = ValueError if _is_int(value) else TypeError  # a negative seed, or not a seed at all
    raise error(
        f"{owner}: rng must be a numpy.random.Generator, an int seed >= 0 or None, "
        f"got {_shown(value)}"
    )


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
