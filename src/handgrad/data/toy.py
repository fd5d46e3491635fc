"""Generated 2-D data sets: circle, moons, xor, spiral, gaussians, rings, synth.

Each is drawn from the generator ``split_rng(name, split, seed)``, so a (seed, split) pair
always gives the same points and 'train' and 'test' are independent draws. ``noise`` is the
standard deviation of Gaussian jitter added to the coordinates after the labels are set
(except ``gaussians``, where it is the spread of each blob). The jitter is drawn even when
``noise=0``, so changing the noise moves the same points rather than drawing new ones. Samples
come in random order (not grouped by class).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from handgrad.data.dataset import Dataset, check_float, check_int, register, split_rng

__all__ = ["CIRCLE_SIDE", "synth_rule"]

# The classic circle set: a square of side L = 5*sqrt(2*pi) holds a circle of radius 5 whose
# area 25*pi is exactly half of L^2 = 50*pi, so the two classes are balanced by construction.
CIRCLE_RADIUS = 5.0
CIRCLE_SIDE = CIRCLE_RADIUS * math.sqrt(2.0 * math.pi)


def _finish(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    classes: tuple[str, ...],
    rng: np.random.Generator,
    split: str,
    seed: int,
    options: dict[str, Any],
    shuffle: bool = True,
) -> Dataset:
    if shuffle:  # loaders that build class by class would otherwise return sorted labels
        order = rng.permutation(len(X))
        X, y = X[order], y[order]
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.int64)
    return Dataset(X, y, classes, (2,), name, split, {"seed": seed, **options})


def _counts(n: int, k: int) -> list[int]:
    """n samples split over k classes as evenly as possible (the first get the remainder)."""
    return [n // k + (1 if j < n % k else 0) for j in range(k)]


def _jitter(rng: np.random.Generator, shape: tuple[int, ...], noise: float) -> np.ndarray:
    return noise * rng.standard_normal(shape)


@register(
    "circle",
    options={"n": 512, "noise": 0.0},
    description="points uniform in a square of side 5*sqrt(2*pi), label 0 inside the "
    "radius-5 circle, 1 outside; scaled to [-1, 1] (half the area is inside)",
    kind="toy",
)
def circle(
    *, split: str, seed: int, data_dir: Any, download: bool, n: int, noise: float
) -> Dataset:
    n = check_int("circle", "n", n, 1)
    noise = check_float("circle", "noise", noise)
    rng = split_rng("circle", split, seed)
    half = CIRCLE_SIDE / 2.0
    pts = rng.uniform(-half, half, size=(n, 2))  # (n, 2), raw units
    inside = np.hypot(pts[:, 0], pts[:, 1]) < CIRCLE_RADIUS
    y = np.where(inside, 0, 1)
    X = pts / half + _jitter(rng, (n, 2), noise)  # scaled to [-1, 1] before jitter
    opts = {"n": n, "noise": noise}
    return _finish("circle", X, y, ("inside", "outside"), rng, split, seed, opts, shuffle=False)


@register(
    "moons",
    options={"n": 512, "noise": 0.1},
    description="two interleaving half circles (upper: class 0, lower: class 1), centred",
    kind="toy",
)
def moons(*, split: str, seed: int, data_dir: Any, download: bool, n: int, noise: float) -> Dataset:
    n = check_int("moons", "n", n, 2)
    noise = check_float("moons", "noise", noise)
    rng = split_rng("moons", split, seed)
    n0, n1 = _counts(n, 2)
    t0 = rng.uniform(0.0, math.pi, n0)
    t1 = rng.uniform(0.0, math.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)  # (n0, 2)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)  # (n1, 2)
    # shift so the bounding box [-1, 2] x [-0.5, 1] is centred on the origin
    X = np.concatenate([upper, lower]) - np.array([0.5, 0.25])
    X = X + _jitter(rng, X.shape, noise)
    y = np.repeat([0, 1], [n0, n1])
    return _finish("moons", X, y, ("upper", "lower"), rng, split, seed, {"n": n, "noise": noise})


@register(
    "xor",
    options={"n": 512, "noise": 0.0},
    description="points uniform in [-1, 1]^2, label 1 where x1 and x2 have opposite signs",
    kind="toy",
)
def xor(*, split: str, seed: int, data_dir: Any, download: bool, n: int, noise: float) -> Dataset:
    n = check_int("xor", "n", n, 1)
    noise = check_float("xor", "noise", noise)
    rng = split_rng("xor", split, seed)
    pts = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = np.where(pts[:, 0] * pts[:, 1] < 0, 1, 0)
    X = pts + _jitter(rng, (n, 2), noise)
    classes = ("same sign", "opposite signs")
    opts = {"n": n, "noise": noise}
    return _finish("xor", X, y, classes, rng, split, seed, opts, shuffle=False)


@register(
    "spiral",
    options={"n": 512, "k": 3, "noise": 0.05, "turns": 0.75},
    description="k spiral arms from the origin to radius 1, one class per arm",
    kind="toy",
)
def spiral(
    *,
    split: str,
    seed: int,
    data_dir: Any,
    download: bool,
    n: int,
    k: int,
    noise: float,
    turns: float,
) -> Dataset:
    k = check_int("spiral", "k", k, 2)
    n = check_int("spiral", "n", n, k)
    noise = check_float("spiral", "noise", noise)
    turns = check_float("spiral", "turns", turns)
    rng = split_rng("spiral", split, seed)
    counts = _counts(n, k)
    y = np.repeat(np.arange(k), counts)
    r = rng.uniform(0.0, 1.0, n)
    # arm j starts at angle 2*pi*j/k and winds `turns` times on the way out to radius 1
    theta = 2.0 * math.pi * (y / k + turns * r)
    X = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)  # (n, 2)
    X = X + _jitter(rng, X.shape, noise)
    classes = tuple(f"arm {j}" for j in range(k))
    opts = {"n": n, "k": k, "noise": noise, "turns": turns}
    return _finish("spiral", X, y, classes, rng, split, seed, opts)


@register(
    "gaussians",
    options={"n": 512, "k": 3, "noise": 0.25},
    description="k Gaussian blobs (std = noise) centred evenly on the unit circle",
    kind="toy",
)
def gaussians(
    *, split: str, seed: int, data_dir: Any, download: bool, n: int, k: int, noise: float
) -> Dataset:
    k = check_int("gaussians", "k", k, 2)
    n = check_int("gaussians", "n", n, k)
    noise = check_float("gaussians", "noise", noise)
    rng = split_rng("gaussians", split, seed)
    y = np.repeat(np.arange(k), _counts(n, k))
    angle = 2.0 * math.pi * np.arange(k) / k
    centers = np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (k, 2)
    X = centers[y] + _jitter(rng, (n, 2), noise)
    classes = tuple(f"blob {j}" for j in range(k))
    return _finish("gaussians", X, y, classes, rng, split, seed, {"n": n, "k": k, "noise": noise})


@register(
    "rings",
    options={"n": 512, "k": 2, "noise": 0.05},
    description="k concentric rings of radii 1/k, 2/k, ..., 1, one class per ring",
    kind="toy",
)
def rings(
    *, split: str, seed: int, data_dir: Any, download: bool, n: int, k: int, noise: float
) -> Dataset:
    k = check_int("rings", "k", k, 2)
    n = check_int("rings", "n", n, k)
    noise = check_float("rings", "noise", noise)
    rng = split_rng("rings", split, seed)
    y = np.repeat(np.arange(k), _counts(n, k))
    radius = (y + 1) / k
    theta = rng.uniform(0.0, 2.0 * math.pi, n)
    X = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)  # (n, 2)
    X = X + _jitter(rng, X.shape, noise)
    classes = tuple(f"ring {j}" for j in range(k))
    return _finish("rings", X, y, classes, rng, split, seed, {"n": n, "k": k, "noise": noise})


def synth_rule(X: np.ndarray) -> np.ndarray:
    """The labels of ``synth``: 1 where x1^2 + 0.95 x1 x2 + 0.4 x2^2 > 0.6, else 0.

    Shape: X (N, 2) -> (N,) int64.
    """
    x1, x2 = X[:, 0], X[:, 1]
    return (x1**2 + 0.95 * x1 * x2 + 0.4 * x2**2 > 0.6).astype(np.int64)


@register(
    "synth",
    options={"n": 512},
    description="x ~ N(0, I2), label 1 where x1^2 + 0.95 x1 x2 + 0.4 x2^2 > 0.6 "
    "(a quadratic boundary)",
    kind="toy",
)
def synth(*, split: str, seed: int, data_dir: Any, download: bool, n: int) -> Dataset:
    n = check_int("synth", "n", n, 1)
    rng = split_rng("synth", split, seed)
    # round to float32 first and label the rounded points, so the labels follow the rule
    # exactly for the X the user gets (no point within ~1e-7 of the boundary flips)
    X = rng.standard_normal((n, 2)).astype(np.float32)
    y = synth_rule(X.astype(np.float64))
    classes = ("q <= 0.6", "q > 0.6")
    return _finish("synth", X, y, classes, rng, split, seed, {"n": n}, shuffle=False)
