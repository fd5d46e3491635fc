"""``activations``: every activation and its derivative, from the layer's own ``backward``.

For ReLU, LeakyReLU, ELU, Softplus (several beta), GELU (exact and tanh), Sigmoid and Tanh on
[-5, 5] (float64): the function (``forward``), its derivative (``backward`` of a gradient of
ones) and a central finite-difference estimate of the derivative, overlaid. The largest
difference between ``backward`` and finite differences is measured away from the points where
the derivative is undefined; at those points a table gives the one-sided derivatives (from
one-sided finite differences), what handgrad's ``backward`` returns there, and what PyTorch
returns (if it is installed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import handgrad.nn as nn
from handgrad.experiments.registry import Config, check, register
from handgrad.train import Run

__all__ = ["ActivationsConfig", "Special", "Variant", "derivative", "run_activations", "variants"]


@dataclass(frozen=True)
class ActivationsConfig(Config):
    """Settings of ``activations``.

    Attributes:
        x_min, x_max, points: the grid the functions are drawn on (it holds x = 0 when
            symmetric with an odd number of points).
        eps: the finite-difference step (central differences, float64).
        negative_slope: LeakyReLU's slope for x < 0 (torch's default 0.01 is invisible in a
            plot).
        elu_alphas: ELU's alpha values (alpha = 1 is the only one with a derivative at 0).
        softplus_betas: Softplus's beta values; softplus_threshold: torch's threshold, above
            which beta x gives x itself.
    """

    x_min: float = -5.0
    x_max: float = 5.0
    points: int = 1001
    eps: float = 1e-5
    negative_slope: float = 0.1
    elu_alphas: tuple[float, ...] = (1.0, 0.5)
    softplus_betas: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
    softplus_threshold: float = 20.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "x_max", self.x_max > self.x_min, f"> x_min ({self.x_min})")
        check(self, "points", self.points >= 3, ">= 3")
        check(self, "eps", 0 < self.eps < 0.1, "in (0, 0.1)")
        check(self, "negative_slope", self.negative_slope >= 0, ">= 0")
        check(self, "elu_alphas", all(a > 0 for a in self.elu_alphas), "all > 0")
        check(self, "softplus_betas", all(b > 0 for b in self.softplus_betas), "all > 0")


@dataclass(frozen=True)
class Special:
    """A point where a derivative may be undefined, and why."""

    x: float
    what: str


@dataclass(frozen=True)
class Variant:
    """One activation to draw: a label, its panel, how to build the handgrad layer and the
    torch one (called lazily), and its special points."""

    label: str
    panel: str
    make: Callable[[], nn.Module]
    make_torch: Callable[[Any], Any]
    special: tuple[Special, ...] = ()


def variants(cfg: ActivationsConfig) -> list[Variant]:
    """The activations of the experiment, in the order of the figure's panels."""
    out = [
        Variant(
            "ReLU", "ReLU", nn.ReLU, lambda t: t.nn.ReLU(), (Special(0.0, "kink: slopes 0 and 1"),)
        ),
        Variant(
            f"LeakyReLU({cfg.negative_slope:g})",
            "LeakyReLU",
            lambda: nn.LeakyReLU(cfg.negative_slope),
            lambda t: t.nn.LeakyReLU(cfg.negative_slope),
            (Special(0.0, f"kink: slopes {cfg.negative_slope:g} and 1"),),
        ),
    ]
    for a in cfg.elu_alphas:
        what = (
            "smooth once: slopes agree (1), the second derivative jumps"
            if a == 1.0
            else f"kink: slopes {a:g} and 1"
        )
        out.append(
            Variant(
                f"ELU(alpha={a:g})",
                "ELU",
                lambda a=a: nn.ELU(alpha=a),
                lambda t, a=a: t.nn.ELU(alpha=a),
                (Special(0.0, what),),
            )
        )
    thr = cfg.softplus_threshold
    for b in cfg.softplus_betas:
        switch = thr / b
        special = ()
        if cfg.x_min < switch < cfg.x_max:
            # above the threshold torch (and handgrad) return x itself: log(1 + e^20)/beta
            # and x differ by ~2e-9/beta, and the slopes by 1 - sigmoid(20) ~ 2e-9
            special = (
                Special(
                    switch,
                    f"x > threshold/beta returns x: f jumps by "
                    f"{np.log1p(np.exp(-thr)) / b:.1g}, f' by {1 - 1 / (1 + np.exp(-thr)):.1g}",
                ),
            )
        out.append(
            Variant(
                f"Softplus(beta={b:g})",
                "Softplus",
                lambda b=b: nn.Softplus(beta=b, threshold=thr),
                lambda t, b=b: t.nn.Softplus(beta=b, threshold=thr),
                special,
            )
        )
    out += [
        Variant("GELU", "GELU", nn.GELU, lambda t: t.nn.GELU()),
        Variant(
            "GELU(tanh)",
            "GELU",
            lambda: nn.GELU("tanh"),
            lambda t: t.nn.GELU(approximate="tanh"),
        ),
        Variant("Sigmoid", "Sigmoid", nn.Sigmoid, lambda t: t.nn.Sigmoid()),
        Variant("Tanh", "Tanh", nn.Tanh, lambda t: t.nn.Tanh()),
    ]
    return out


def _f(layer: nn.Module, x: np.ndarray) -> np.ndarray:
    return layer.forward(np.asarray(x, dtype=np.float64))


def derivative(layer: nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(f(x), f'(x))`` from the layer's ``forward`` and ``backward`` (a gradient of ones)."""
    y = _f(layer, x)
    return y, layer.backward(np.ones_like(y))


def central_difference(layer: nn.Module, x: np.ndarray, eps: float) -> np.ndarray:
    """(f(x + eps) - f(x - eps)) / (2 eps), error O(eps^2) where f is smooth."""
    return (_f(layer, x + eps) - _f(layer, x - eps)) / (2 * eps)


def one_sided(layer: nn.Module, x: float, eps: float) -> tuple[float, float]:
    """The left and right derivatives at ``x``: second-order one-sided differences
    (3 f(x) - 4 f(x -+ h) + f(x -+ 2h)) / (+- 2h), which never straddle x."""
    h = eps
    f = _f(layer, np.array([x - 2 * h, x - h, x, x + h, x + 2 * h]))
    left = (3 * f[2] - 4 * f[1] + f[0]) / (2 * h)
    right = (-3 * f[2] + 4 * f[3] - f[4]) / (2 * h)
    return float(left), float(right)


def _torch_derivative(v: Variant, x: float) -> float | None:
    """PyTorch's autograd derivative at ``x`` (float64), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    t = torch.tensor([x], dtype=torch.float64, requires_grad=True)
    v.make_torch(torch)(t).sum().backward()
    return float(t.grad[0])


def _away(x: np.ndarray, special: tuple[Special, ...], margin: float) -> np.ndarray:
    keep = np.ones(x.shape, dtype=bool)
    for s in special:
        keep &= np.abs(x - s.x) > margin
    return keep


@register(
    "activations",
    ActivationsConfig,
    "each activation and its derivative from backward, against finite differences",
    order=42,
)
def run_activations(cfg: ActivationsConfig, run: Run) -> dict[str, float]:
    x = np.linspace(cfg.x_min, cfg.x_max, cfg.points)  # float64
    curves: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    results: dict[str, float] = {}
    for v in variants(cfg):
        layer = v.make()
        y, d = derivative(layer, x)
        fd = central_difference(layer, x, cfg.eps)
        # central differences straddle a kink within eps of it: leave those points out
        keep = _away(x, v.special, 2 * cfg.eps)
        err = np.abs(d - fd)
        max_err = float(err[keep].max())
        results[f"{v.label}.max_abs_error"] = max_err
        curves.append({"v": v, "y": y, "d": d, "fd": fd, "err": np.where(keep, err, np.nan)})
        for s in v.special:
            left, right = one_sided(layer, s.x, 10 * cfg.eps)
            at = float(derivative(layer, np.array([s.x]))[1][0])
            central = float(central_difference(layer, np.array([s.x]), cfg.eps)[0])
            rows.append(
                {
                    "label": v.label,
                    "x": s.x,
                    "what": s.what,
                    "left": left,
                    "right": right,
                    "central": central,
                    "handgrad": at,
                    "torch": _torch_derivative(v, s.x),
                }
            )
            results[f"{v.label}.at_{s.x:g}"] = at
    run.notes.append(_report(cfg, curves, rows))
    run.save_figure(
        "activations",
        _plot(cfg, curves, rows),
        "each function (solid), its derivative from backward (dashed) and finite differences "
        "(dots); last panel: |backward - finite difference|",
    )
    run.log({"max_abs_error": max(results[k] for k in results if k.endswith("max_abs_error"))})
    return results


def _report(
    cfg: ActivationsConfig, curves: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> str:
    lines = [
        "## backward against finite differences",
        "",
        f"Largest |backward - central difference| over {cfg.points} points of "
        f"[{cfg.x_min:g}, {cfg.x_max:g}] (float64, step {cfg.eps:g}), leaving out points within "
        f"{2 * cfg.eps:g} of a kink:",
        "",
        "| activation | max abs error |",
        "|---|---|",
    ]
    lines += [f"| {c['v'].label} | {np.nanmax(c['err']):.2e} |" for c in curves]
    lines += [
        "",
        "## Where the derivative is undefined (or nearly), and what handgrad returns there",
        "",
        "left/right: one-sided finite differences (second order, step "
        f"{10 * cfg.eps:g}); central: the central difference at the point (it averages the two "
        "sides); handgrad: `backward` at the point; torch: PyTorch's autograd.",
        "",
        "| activation | x | what happens | left | right | central | handgrad | torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        torch_value = "n/a" if r["torch"] is None else f"{r['torch']:.10g}"
        lines.append(
            f"| {r['label']} | {r['x']:g} | {r['what']} | {r['left']:.6g} | {r['right']:.6g} "
            f"| {r['central']:.6g} | {r['handgrad']:.10g} | {torch_value} |"
        )
    smooth = [c["v"].label for c in curves if not c["v"].special]
    lines += ["", f"Differentiable everywhere (no row): {', '.join(smooth)}."]
    return "\n".join(lines)


_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def _plot(cfg: ActivationsConfig, curves: list[dict[str, Any]], rows: list[dict[str, Any]]) -> Any:
    from handgrad.viz import figure

    panels: dict[str, list[dict[str, Any]]] = {}
    for c in curves:
        panels.setdefault(c["v"].panel, []).append(c)
    n = len(panels) + 1
    ncols = 4
    nrows = -(-n // ncols)
    fig, axes = figure(nrows, ncols, figsize=(3.7 * ncols, 3.0 * nrows + 0.5))
    flat = np.atleast_1d(axes).ravel()
    x = np.linspace(cfg.x_min, cfg.x_max, cfg.points)
    every = max(1, cfg.points // 40)  # finite-difference dots: ~40 per curve
    for ax, (name, group) in zip(flat, panels.items(), strict=False):
        for k, c in enumerate(group):
            color = _COLORS[k % len(_COLORS)]
            label = c["v"].label if len(group) > 1 else None
            ax.plot(x, c["y"], "-", color=color, lw=1.6, label=label)
            ax.plot(x, c["d"], "--", color=color, lw=1.3)
            ax.plot(x[::every], c["fd"][::every], "x", color=color, ms=4, mew=0.9)
            for r in rows:
                if r["label"] == c["v"].label:
                    ax.plot([r["x"]], [r["handgrad"]], "o", mfc="none", mec="k", ms=7, mew=1.2)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_title(name)
        ax.set_xlabel("x")
        ax.grid(True, alpha=0.3)
        if len(group) > 1:
            ax.legend(fontsize=7, loc="upper left")
    ax = flat[len(panels)]
    labels = [c["v"].label for c in curves]
    errs = [float(np.nanmax(c["err"])) for c in curves]
    ax.barh(np.arange(len(labels)), errs, color="0.5")
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(1e-13, 1e-8)
    ax.set_title("max |backward - finite difference|")
    ax.set_xlabel(f"over [{cfg.x_min:g}, {cfg.x_max:g}], off the kinks")
    ax.grid(True, alpha=0.3, axis="x")
    for ax in flat[n:]:
        ax.set_visible(False)
    fig.suptitle(
        "solid: f(x) (forward); dashed: f'(x) from backward; x: central finite difference; "
        "open circle: what backward returns at a kink",
        fontsize=10,
    )
    return fig
