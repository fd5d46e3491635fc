"""Small helpers shared across the package: dtypes, random generators, torch tensors."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RNGLike", "as_float_dtype", "as_rng", "from_torch"]

RNGLike = np.random.Generator | int | None


def as_rng(rng: RNGLike = None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a Generator, a seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {rng!r}")


def as_float_dtype(dtype: Any) -> np.dtype:
    """Validate and normalise a floating dtype (float32 or float64)."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def from_torch(value: Any) -> Any:
    """A torch tensor as a NumPy array (recognised without importing torch); else ``value``."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value
