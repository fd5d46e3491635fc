"""Gradients with respect to the input image: saliency maps and class visualisation.

Everything here works on images ``(N, C, H, W)`` (grayscale C = 1 or colour C = 3) fed to a
handgrad model that returns class scores ``(N, K)`` (put ``Flatten`` first in an MLP). The input
gradient comes from ``model.backward`` of a one-hot ``grad_out``: by default the gradient of the
class *logit* z_c (the score before the softmax, as Simonyan et al. 2014 use), optionally of the
log-softmax log p_c, whose gradient ``e_c - p`` also pushes the other classes down.

The regularisers of class visualisation have hand-written gradients, like every layer:

- L2 decay towards a centre value: ``||x - c||^2``, gradient ``2 (x - c)``;
- total variation ``TV_beta(x) = sum (dv^2 + eps)^(beta/2) + sum (dh^2 + eps)^(beta/2)`` over
  vertical and horizontal neighbour differences (``total_variation``);
- blur: the energy left after a Gaussian blur B, ``||(x - c) - B(x - c)||^2``; B is a zero-padded
  correlation with a symmetric kernel, so its adjoint is B itself and the gradient is
  ``2 (r - B r)`` with ``r = (x - c) - B(x - c)`` (``blur_penalty``);
- jitter: each step looks at the image shifted (cyclically) by a random offset; the gradient is
  shifted back, which is exactly the gradient of the shifted objective.

NumPy only (figures are in ``handgrad.viz.visualize``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handgrad._util import RNGLike, as_rng

__all__ = [
    "SCORES",
    "ClassScores",
    "ClassVisualization",
    "blur_penalty",
    "class_score_gradient",
    "gaussian_blur",
    "gaussian_kernel",
    "saliency",
    "total_variation",
    "visualize_classes",
]

SCORES = ("logit", "log_softmax")


def _images(x: Any, who: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{who}: expected images (N, C, H, W), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return x


# -- the class score and its input gradient ------------------------------------------------
@dataclass
class ClassScores:
    """``score`` (N,) of each image's target class, ``grad`` d score / d x (the input's shape),
    ``probs`` the softmax of the logits (N, K)."""

    score: np.ndarray
    grad: np.ndarray
    probs: np.ndarray


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))  # shift-invariant; keeps exp finite
    return e / e.sum(axis=1, keepdims=True)


def class_score_gradient(model: Any, x: Any, target: Any, score: str = "logit") -> ClassScores:
    """The score of class ``target[n]`` for image ``x[n]`` and its gradient w.r.t. ``x``.

    Args:
        model: a handgrad Module mapping ``x`` to logits (N, K); run in eval mode here (its
            mode, and its parameters' ``.grad``, are put back afterwards).
        x: the input, any shape the model takes with N first (images (N, C, H, W)).
        target: (N,) integer classes, or one int for every image.
        score: ``'logit'`` (z_c, the default) or ``'log_softmax'`` (log p_c).

    Returns:
        a :class:`ClassScores`; ``grad`` has ``x``'s shape (and the model's dtype).
    """
    if score not in SCORES:
        raise ValueError(
            f"class_score_gradient: unknown score {score!r}; valid: logit, log_softmax"
        )
    x = np.asarray(x)
    was_training = model.training
    saved = [p.grad.copy() for p in model.parameters()]
    model.eval()
    try:
        z = model(x)
        if z.ndim != 2 or z.shape[0] != x.shape[0]:
            raise ValueError(
                f"class_score_gradient: the model must return logits (N, K) for input {x.shape}, "
                f"got {z.shape}"
            )
        N, K = z.shape
        t = np.broadcast_to(np.asarray(target), (N,))
        if not np.issubdtype(t.dtype, np.integer) or (N and (t.min() < 0 or t.max() >= K)):
            raise ValueError(
                f"class_score_gradient: target must be integer classes in [0, {K}), got {target!r}"
            )
        rows = np.arange(N)
        probs = _softmax(z.astype(np.float64))
        grad_out = np.zeros_like(z)
        grad_out[rows, t] = 1.0
        if score == "logit":
            s = z[rows, t].astype(np.float64)
        else:
            s = np.log(probs[rows, t])
            grad_out -= probs.astype(z.dtype)  # d log p_c / d z = e_c - p
        grad = model.backward(grad_out)
    finally:
        for p, g in zip(model.parameters(), saved, strict=True):
            p.grad[...] = g
        model.train(was_training)
    return ClassScores(s, np.asarray(grad).reshape(x.shape), probs)


def saliency(
    model: Any, x: Any, target: Any | None = None, score: str = "logit"
) -> tuple[np.ndarray, np.ndarray]:
    """Saliency maps: ``max_c |d score / d x[n, c, i, j]|`` over the colour channels.

    ``target=None`` takes each image's predicted class. Returns ``(maps (N, H, W), classes
    (N,))``, the maps in float64.
    """
    x = _images(x, "saliency")
    if target is None:
        was_training = model.training
        model.eval()
        try:
            target = np.asarray(model(x)).argmax(axis=1)
        finally:
            model.train(was_training)
    res = class_score_gradient(model, x, target, score)
    t = np.broadcast_to(np.asarray(target), (len(x),))
    return np.abs(res.grad.astype(np.float64)).max(axis=1), t.copy()


# -- regularisers, each with its gradient right below its value ----------------------------
def total_variation(x: Any, beta: float = 2.0, eps: float = 1e-8) -> tuple[float, np.ndarray]:
    """``sum (dv^2 + eps)^(beta/2) + sum (dh^2 + eps)^(beta/2)`` over all images and channels,
    with dv, dh the differences between vertical and horizontal neighbours.

    ``beta = 2`` is the smooth squared form; ``beta = 1`` the classic TV (``eps`` smooths its
    kink at 0). Returns ``(value, gradient of x's shape)``.
    """
    if not (math.isfinite(beta) and beta >= 1):
        raise ValueError(f"total_variation: invalid beta {beta!r}, must be >= 1")
    if not (math.isfinite(eps) and eps >= 0) or (beta < 2 and eps <= 0):
        raise ValueError(f"total_variation: invalid eps {eps!r}, must be >= 0 (> 0 if beta < 2)")
    x = _images(x, "total_variation")
    dv = x[:, :, 1:, :] - x[:, :, :-1, :]  # (N, C, H-1, W)
    dh = x[:, :, :, 1:] - x[:, :, :, :-1]  # (N, C, H, W-1)
    qv, qh = dv * dv + eps, dh * dh + eps
    value = float((qv ** (beta / 2)).sum() + (qh ** (beta / 2)).sum())
    # d/d d of (d^2 + eps)^(beta/2) = beta d (d^2 + eps)^(beta/2 - 1); each difference d =
    # x[later] - x[earlier] adds it to the later pixel and subtracts it from the earlier one
    fv = beta * dv * qv ** (beta / 2 - 1)
    fh = beta * dh * qh ** (beta / 2 - 1)
    grad = np.zeros_like(x)
    grad[:, :, 1:, :] += fv
    grad[:, :, :-1, :] -= fv
    grad[:, :, :, 1:] += fh
    grad[:, :, :, :-1] -= fh
    return value, grad


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """The normalised 1-D Gaussian ``exp(-t^2 / 2 sigma^2)`` for t in [-radius, radius]
    (default radius ``ceil(2 sigma)``, at least 1); symmetric by construction."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"gaussian_kernel: invalid sigma {sigma!r}, must be > 0")
    r = max(1, math.ceil(2 * sigma)) if radius is None else int(radius)
    if r < 0:
        raise ValueError(f"gaussian_kernel: invalid radius {radius!r}, must be >= 0")
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _correlate_same(x: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    """1-D correlation with ``k`` along ``axis``, zero padding, output the input's size."""
    r = len(k) // 2
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = np.pad(x, pad)
    out = np.zeros_like(x)
    for i, w in enumerate(k):  # one shifted copy per tap: kernels here are short
        out += w * np.take(xp, np.arange(i, i + n), axis=axis)
    return out


def gaussian_blur(x: Any, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of images (N, C, H, W), zero-padded to the same size.

    A linear map B with a symmetric kernel and zero padding: its adjoint B^T is B itself, so
    the gradient of any f(B x) is ``gaussian_blur(grad_f, sigma)``.
    """
    x = _images(x, "gaussian_blur")
    k = gaussian_kernel(sigma).astype(x.dtype)
    return _correlate_same(_correlate_same(x, k, 2), k, 3)


def blur_penalty(
    x: Any, sigma: float, center: float | np.ndarray = 0.0
) -> tuple[float, np.ndarray]:
    """``||r||^2`` with ``r = (x - c) - B(x - c)``: the high-frequency energy of the image.

    Gradient: ``(I - B)^T 2 r = 2 (r - B r)`` since B^T = B. Returns ``(value, gradient)``.
    """
    x = _images(x, "blur_penalty")
    d = x - center
    r = d - gaussian_blur(d, sigma)
    return float((r * r).sum()), 2.0 * (r - gaussian_blur(r, sigma))


# -- class visualisation -------------------------------------------------------------------
@dataclass
class ClassVisualization:
    """Result of :func:`visualize_classes`.

    ``images`` (N, C, H, W) the optimised inputs, ``targets`` (N,), ``probs`` (N,) the model's
    softmax probability of each target class for its final image (no jitter), ``history`` one
    dict per step: ``score`` (mean target score), ``objective`` (mean regularised objective)
    and ``prob`` (mean target probability, at the step's jittered input).
    """

    images: np.ndarray
    targets: np.ndarray
    probs: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)


def _check(who: str, name: str, value: float, ok: bool, must: str) -> None:
    if not ok:
        raise ValueError(f"{who}: invalid {name} {value!r}, must be {must}")


def visualize_classes(
    model: Any,
    targets: Sequence[int] | np.ndarray,
    image_shape: tuple[int, int, int],
    *,
    steps: int = 200,
    lr: float = 0.05,
    init: str = "grey",
    score: str = "logit",
    l2: float = 0.0,
    tv: float = 0.0,
    tv_beta: float = 2.0,
    blur: float = 0.0,
    blur_sigma: float = 0.5,
    jitter: int = 0,
    center: float | np.ndarray = 0.5,
    value_range: tuple[float, float] | None = (0.0, 1.0),
    noise_std: float = 0.1,
    rng: RNGLike = None,
) -> ClassVisualization:
    """Gradient ascent on images to maximise each target's class score, with Adam.

    Maximises ``score_c(x) - l2 ||x - center||^2 - tv TV_beta(x) - blur ||(I - B)(x - center)||^2``
    for every target class at once (one image each: Adam is element-wise, so a batch is the same
    as separate runs), looking at a randomly shifted copy of x when ``jitter`` > 0.

    Args:
        model: a handgrad Module mapping (N, C, H, W) images to logits (N, K).
        targets: the class of each image to make.
        image_shape: (C, H, W).
        steps, lr: Adam steps and step size.
        init: ``'grey'`` (every pixel ``center``) or ``'noise'`` (``center`` + N(0, noise_std)).
        score: ``'logit'`` or ``'log_softmax'`` (see :func:`class_score_gradient`).
        l2, tv, blur: regulariser weights (0 switches one off); ``tv_beta``, ``blur_sigma``
            their shapes.
        jitter: the largest random shift in pixels (0: none).
        center: the grey value (scalar, or per channel (C, 1, 1)) that init, L2 and blur use.
        value_range: (lo, hi) pixels are clipped to after every step (None: no clipping).
        rng: draws the noise and the shifts.

    Returns:
        a :class:`ClassVisualization`.
    """
    from handgrad.nn.module import Parameter
    from handgrad.optim import Adam

    who = "visualize_classes"
    _check(who, "steps", steps, isinstance(steps, int) and steps >= 1, "an int >= 1")
    _check(who, "lr", lr, lr > 0, "> 0")
    for name, v in (("l2", l2), ("tv", tv), ("blur", blur), ("noise_std", noise_std)):
        _check(who, name, v, v >= 0, ">= 0")
    _check(who, "jitter", jitter, isinstance(jitter, int) and jitter >= 0, "an int >= 0")
    _check(who, "init", init, init in ("grey", "noise"), "'grey' or 'noise'")
    _check(who, "score", score, score in SCORES, "'logit' or 'log_softmax'")
    if len(image_shape) != 3:
        raise ValueError(f"{who}: image_shape must be (C, H, W), got {tuple(image_shape)}")
    if value_range is not None and not value_range[0] < value_range[1]:
        raise ValueError(f"{who}: invalid value_range {value_range!r}, must be (lo, hi), lo < hi")
    rng = as_rng(rng)
    t = np.asarray(targets)
    if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"{who}: targets must be a 1-D sequence of ints, got {targets!r}")
    dtype = next(iter(model.parameters())).dtype if list(model.parameters()) else np.float64
    shape = (len(t), *image_shape)
    x0 = np.broadcast_to(np.asarray(center, dtype=dtype), shape).astype(dtype)
    if init == "noise":
        x0 = x0 + (noise_std * rng.standard_normal(shape)).astype(dtype)
    if value_range is not None:
        x0 = np.clip(x0, *value_range)
    image = Parameter(x0)
    opt = Adam([image], lr=lr, maximize=True)
    history: list[dict[str, float]] = []
    for _ in range(steps):
        x = image.data
        if jitter:
            dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2))
            res = class_score_gradient(model, np.roll(x, (dy, dx), axis=(2, 3)), t, score)
            grad = np.roll(res.grad, (-dy, -dx), axis=(2, 3))  # the adjoint of the shift
        else:
            res = class_score_gradient(model, x, t, score)
            grad = res.grad
        grad = grad.astype(np.float64)
        objective = float(res.score.sum())
        if l2:
            d = x - center
            objective -= l2 * float((d * d).sum())
            grad -= 2 * l2 * d
        if tv:
            v, g = total_variation(x, tv_beta)
            objective -= tv * v
            grad -= tv * g
        if blur:
            v, g = blur_penalty(x, blur_sigma, center)
            objective -= blur * v
            grad -= blur * g
        image.grad[...] = grad
        opt.step()
        if value_range is not None:
            np.clip(image.data, *value_range, out=image.data)
        history.append(
            {
                "score": float(res.score.mean()),
                "objective": objective / len(t),
                "prob": float(res.probs[np.arange(len(t)), t].mean()),
            }
        )
    final = class_score_gradient(model, image.data, t, score)
    return ClassVisualization(
        image.data.copy(), t.copy(), final.probs[np.arange(len(t)), t].copy(), history
    )
