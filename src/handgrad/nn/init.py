"""Initialisations that match PyTorch's defaults (distribution and bounds, not bits)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["kaiming_uniform", "uniform"]


def uniform(shape: tuple[int, ...], bound: float, rng: np.random.Generator, dtype) -> np.ndarray:
    """U(-bound, bound) of the given shape and dtype.

    Examples:
        >>> from handgrad.nn.init import uniform
        >>> w = uniform((3, 4), 0.5, np.random.default_rng(0), np.float32)
        >>> w.shape, w.dtype, bool(np.abs(w).max() <= 0.5)
        ((3, 4), dtype('float32'), True)
    """
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_uniform(
    shape: tuple[int, ...], fan_in: int, rng: np.random.Generator, dtype
) -> np.ndarray:
    """PyTorch's default weight init for Linear/Conv: kaiming_uniform_(a=sqrt(5)).

    With a = sqrt(5) the gain is sqrt(2 / (1 + a^2)) = sqrt(1/3), and the bound
    gain * sqrt(3 / fan_in) simplifies to 1 / sqrt(fan_in).

    Examples:
        >>> from handgrad.nn.init import kaiming_uniform
        >>> w = kaiming_uniform((10, 100), 100, np.random.default_rng(0), np.float64)
        >>> bool(np.abs(w).max() <= 0.1)  # 1 / sqrt(100)
        True
    """
    return uniform(shape, 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0, rng, dtype)
