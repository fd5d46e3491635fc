"""``hexagon``: which small network draws a hexagon around the circle data, and why.

Networks 2 -> h -> 1 and 2 -> h -> h -> 1, with ReLU or tanh, are trained on the circle data
(full-batch Adam on the BCE-with-logits loss) for each hidden width h and several seeds. Each
learned decision boundary, the 0.5 contour of the probability map (the 0 contour of the logit),
is traced on a fine grid and measured:

- *edges*: the Ramer-Douglas-Peucker simplification with a tolerance of 1% of the boundary's
  size counts its straight edges, and the boundary is *straight* (a polygon) when it does not
  turn at all along at least 75% of its length (:func:`handgrad.viz.contours.count_edges`);
- *pieces* (ReLU only): an exact count. A ReLU network is linear within each region of its
  activation pattern, so the boundary is straight there and bends only where the gradient of
  the logit changes direction; the gradient at every contour point comes from the network's own
  ``backward`` (:func:`handgrad.viz.contours.count_pieces`).

For 2 -> h -> 1 ReLU the logit is ``sum_i v_i relu(w_i . x + b_i) + c``: linear between the h
lines ``w_i . x + b_i = 0``, so a closed boundary crosses each line it meets twice and has at most
2h edges; three units give six. tanh is smooth, so its boundary is a curve.

Figures: the probability maps (one seed per configuration) with the counted corners, and the
edge counts against h. ``table.csv`` lists every network; the report has the summary table.
Every network is trained and measured in float64, so that the straightness test sees no
rounding.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import handgrad.nn as nn
import handgrad.optim as optim
from handgrad.data import load
from handgrad.experiments.common import mlp
from handgrad.experiments.registry import Config, check, register
from handgrad.train import Run
from handgrad.viz.contours import count_edges, count_pieces, level_lines

__all__ = [
    "Boundary",
    "HexagonConfig",
    "measure_boundary",
    "run_hexagon",
    "summarize",
    "train_network",
]

_ACTIVATIONS = ("relu", "tanh")


@dataclass(frozen=True)
class HexagonConfig(Config):
    """Settings of ``hexagon`` (``handgrad run hexagon --set key=value``).

    Attributes:
        hidden_sizes: the widths h swept (``hidden_sizes=1,2,3``).
        depths: hidden layers: 1 (2 -> h -> 1) and/or 2 (2 -> h -> h -> 1).
        activations: ``relu`` and/or ``tanh``.
        seeds: networks per configuration (initialisations ``0 .. seeds-1``; the same
            initial weights for ReLU and tanh).
        steps, lr: full-batch Adam steps and learning rate.
        n_train, n_test: points of the circle data.
        extent: the boundary is traced in the square [-extent, extent]^2 (the data fill
            [-1, 1]^2).
        resolution: grid points per axis for the maps and contours.
        rel_tol: the simplification tolerance, a fraction of the boundary's size.
    """

    hidden_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    depths: tuple[int, ...] = (1, 2)
    activations: tuple[str, ...] = _ACTIVATIONS
    seeds: int = 6
    steps: int = 2000
    lr: float = 0.02
    n_train: int = 512
    n_test: int = 512
    extent: float = 1.5
    resolution: int = 201
    rel_tol: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("seeds", "steps", "n_train", "n_test"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "hidden_sizes", len(self.hidden_sizes) > 0, "a non-empty list")
        check(self, "hidden_sizes", all(h >= 1 for h in self.hidden_sizes), "widths >= 1")
        check(self, "depths", len(self.depths) > 0, "a non-empty list")
        check(self, "depths", all(d in (1, 2) for d in self.depths), "1 and/or 2")
        check(self, "activations", len(self.activations) > 0, "a non-empty list")
        check(
            self,
            "activations",
            all(a in _ACTIVATIONS for a in self.activations),
            "relu and/or tanh",
        )
        check(self, "extent", self.extent >= 1, ">= 1 (the data fill [-1, 1]^2)")
        check(self, "resolution", self.resolution >= 16, ">= 16")
        check(self, "rel_tol", 0 < self.rel_tol < 0.5, "in (0, 0.5)")


def train_network(
    X: np.ndarray,
    y: np.ndarray,
    hidden: Sequence[int],
    activation: str,
    *,
    steps: int,
    lr: float,
    rng: np.random.Generator,
) -> tuple[nn.Sequential, float]:
    """Train 2 -> hidden -> 1 (float64) on ``X`` (N, 2), ``y`` (N,) in {0, 1} with full-batch
    Adam on the BCE-with-logits loss; returns the model and its final training loss."""
    model = mlp(2, hidden, 1, activation, rng=rng, dtype=np.float64)
    opt = optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    target = y.astype(np.float64)[:, None]  # (N, 1), like the logits
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(X), target)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
    return model, float(loss_fn(model(X), target))


@dataclass
class Boundary:
    """The measured decision boundary of one network.

    Attributes:
        lines: contour lines of P = 0.5 in the square (0: one class everywhere).
        closed: a single closed loop.
        edges: straight edges counted by the simplification, summed over the lines.
        straight: every line is straight (a polygon or polygonal line).
        curved_fraction: the largest fraction of a line's length where it turns.
        pieces: the exact number of linear pieces (ReLU networks; -1 otherwise).
        long_pieces: the pieces at least as long as the shortest edge the counter sees.
        vertices: the counted corners of each line.
        logits: the logit on the grid (resolution, resolution), row 0 at y = -extent.
    """

    lines: int
    closed: bool
    edges: int
    straight: bool
    curved_fraction: float
    pieces: int
    long_pieces: int
    vertices: list[np.ndarray]
    logits: np.ndarray


def measure_boundary(
    model: nn.Module,
    extent: float,
    resolution: int,
    *,
    rel_tol: float = 0.01,
    piecewise_linear: bool = False,
) -> Boundary:
    """Trace the 0 contour of ``model``'s logit on [-extent, extent]^2 and count its edges.

    ``piecewise_linear``: also count its linear pieces exactly from the gradient of the logit at
    the contour's points (valid for ReLU networks).
    """
    box = (-extent, extent, -extent, extent)
    xs = np.linspace(-extent, extent, resolution)
    xx, yy = np.meshgrid(xs, xs)  # row i is y = xs[i]
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)  # (R*R, 2)
    model.eval()
    logits = model(grid)[:, 0].reshape(resolution, resolution)
    lines = level_lines(logits, box, 0.0)
    for line in lines:
        line.points = _onto_level_set(model, line.points, extent, resolution)
    counts = [count_edges(line, rel_tol=rel_tol) for line in lines]
    pieces = long_pieces = -1
    if piecewise_linear and lines:
        pieces = long_pieces = 0
        for line, c in zip(lines, counts, strict=True):
            # d logit / d x at each contour point, from the hand-written backward
            grads = _logit_and_grad(model, line.points)[1]  # (M, 2)
            k, lengths = count_pieces(grads, line.points, line.closed)
            pieces += k
            long_pieces += int(np.count_nonzero(lengths >= 2.0 * c.tol))
    return Boundary(
        lines=len(lines),
        closed=len(lines) == 1 and lines[0].closed,
        edges=sum(c.edges for c in counts),
        straight=all(c.straight for c in counts),
        curved_fraction=max((c.curved_fraction for c in counts), default=0.0),
        pieces=pieces,
        long_pieces=long_pieces,
        vertices=[c.vertices for c in counts],
        logits=logits,
    )


def _logit_and_grad(model: nn.Module, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The logit (M,) at ``points`` (M, 2) and its gradient (M, 2), from the hand-written
    backward (parameter gradients are cleared again)."""
    z = model(points)  # (M, 1)
    grad = model.backward(np.ones_like(z))  # (M, 2)
    model.zero_grad()
    return z[:, 0], grad


def _onto_level_set(
    model: nn.Module, points: np.ndarray, extent: float, resolution: int, iterations: int = 50
) -> np.ndarray:
    """Move each traced contour point to the exact zero of the logit on its grid edge.

    Marching squares puts each point on a cell edge (on a grid column or a grid row), by
    linear interpolation between the edge's two nodes. That is exact only where the logit is
    linear along the whole edge; next to a ReLU kink, or for the curved logit of tanh, it is off
    by a fraction of a cell, enough to bend a straight boundary. Bisection on the network itself
    between the edge's two nodes (whose logits have opposite signs) finds the true crossing.
    """
    p = np.array(points, dtype=np.float64)
    cell = 2 * extent / (resolution - 1)
    k = (p + extent) / cell  # grid coordinates
    on_column = np.abs(k[:, 0] - np.round(k[:, 0])) < 1e-7  # x on the grid: a vertical edge
    axis = np.where(on_column, 1, 0)  # the coordinate that moves along the edge
    rows = np.arange(len(p))
    lo = p.copy()
    hi = p.copy()
    start = np.clip(np.floor(k[rows, axis]), 0, resolution - 2)
    lo[rows, axis] = -extent + start * cell
    hi[rows, axis] = -extent + (start + 1) * cell
    z_lo, z_hi = model(lo)[:, 0], model(hi)[:, 0]
    ok = z_lo * z_hi < 0  # a node exactly on the level set (or no sign change) stays as traced
    for _ in range(iterations):  # the bracket halves each time: 2^-50 of a cell at the end
        mid = 0.5 * (lo + hi)
        z_mid = model(mid)[:, 0]
        left = (z_lo * z_mid <= 0)[:, None]
        hi = np.where(left, mid, hi)
        lo = np.where(left, lo, mid)
        z_lo = np.where(left[:, 0], z_lo, z_mid)
    p[ok] = 0.5 * (lo[ok] + hi[ok])
    return p


def _accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((model(X)[:, 0] > 0) == (y == 1)))


def _shape(b: Boundary) -> str:
    """The boundary in words for the table: '6', '6 open', 'curved', 'none'."""
    if b.lines == 0:
        return "none"
    text = str(b.edges) if b.straight else "curved"
    return text if b.closed else f"{text} open"


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per configuration (activation, depth, h) from the per-network rows."""
    out = []
    keys = sorted({(r["activation"], r["depth"], r["hidden"]) for r in rows})
    for act, depth, h in keys:
        rs = [r for r in rows if (r["activation"], r["depth"], r["hidden"]) == (act, depth, h)]
        polygons = [r["edges"] for r in rs if r["straight"] and r["closed"]]
        out.append(
            {
                "activation": act,
                "depth": depth,
                "hidden": h,
                "shapes": [r["shape"] for r in rs],
                "six": sum(1 for r in rs if r["straight"] and r["closed"] and r["edges"] == 6),
                "networks": len(rs),
                "median_edges": float(np.median(polygons)) if polygons else float("nan"),
                "train_accuracy": float(np.mean([r["train_accuracy"] for r in rs])),
                "test_accuracy": float(np.mean([r["test_accuracy"] for r in rs])),
                "best_test_accuracy": float(max(r["test_accuracy"] for r in rs)),
            }
        )
    return out


def _name(act: str, depth: int) -> str:
    return f"2-h-1 {act}" if depth == 1 else f"2-h-h-1 {act}"


def _plot_maps(
    cfg: HexagonConfig,
    shown: dict[tuple[str, int, int], tuple[Boundary, dict[str, Any]]],
    X: np.ndarray,
    y: np.ndarray,
) -> Any:
    """Rows: (activation, depth); columns: h. Heat map of P(outside), its 0.5 contour in black,
    the counted corners as yellow dots."""
    from handgrad.viz import figure

    rows = [(a, d) for a in cfg.activations for d in cfg.depths]
    hs = list(cfg.hidden_sizes)
    fig, axes = figure(
        len(rows), len(hs), figsize=(1.9 * len(hs) + 1.2, 2.0 * len(rows) + 0.6), layout=None
    )
    axes = np.array(axes, dtype=object).reshape(len(rows), len(hs))
    e = cfg.extent
    xs = np.linspace(-e, e, cfg.resolution)
    image = None
    for i, (act, depth) in enumerate(rows):
        for j, h in enumerate(hs):
            ax = axes[i, j]
            b, row = shown[(act, depth, h)]
            step = max(1, cfg.resolution // 100)  # ~100 pixels a side are plenty for a map
            probs = 0.5 * (1.0 + np.tanh(0.5 * b.logits[::step, ::step]))  # sigmoid, no overflow
            image = ax.imshow(
                probs, origin="lower", extent=(-e, e, -e, e), cmap="RdBu_r", vmin=0, vmax=1
            )
            if b.lines:
                ax.contour(xs, xs, b.logits, levels=[0.0], colors="k", linewidths=1.0)
            if b.straight:
                for v in b.vertices:
                    ax.plot(v[:, 0], v[:, 1], "o", ms=3, mfc="yellow", mec="k", mew=0.5)
            sel = np.arange(0, len(X), 4)  # a quarter of the points keeps the maps readable
            ax.scatter(X[sel, 0], X[sel, 1], s=1.5, c=np.where(y[sel] == 1, "#d62728", "#1f77b4"))
            ax.add_patch(_circle_patch())
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(
                f"h={h}: {_shape(b)}, {100 * row['test_accuracy']:.0f}%", fontsize=8, pad=2
            )
            if j == 0:
                ax.set_ylabel(_name(act, depth), fontsize=9)
    fig.subplots_adjust(left=0.04, right=0.9, bottom=0.02, top=0.9, wspace=0.06, hspace=0.25)
    cax = fig.add_axes((0.92, 0.15, 0.015, 0.7))
    fig.colorbar(image, cax=cax, label="P(outside)")
    fig.suptitle(
        "decision boundaries on the circle data (black: P = 0.5, dots: counted corners, "
        "dashed: the true circle)\ntitle: edges of the boundary ('curved' if not straight), "
        "test accuracy; the best of the seeds shown",
        fontsize=9,
    )
    return fig


def _circle_patch() -> Any:
    from matplotlib.patches import Circle

    from handgrad.data.toy import CIRCLE_RADIUS, CIRCLE_SIDE

    return Circle(
        (0, 0), CIRCLE_RADIUS / (CIRCLE_SIDE / 2), fill=False, ls="--", lw=0.6, color="0.3"
    )


def _kind(row: dict[str, Any]) -> str:
    if not row["straight"]:
        return "curved"
    return "closed" if row["closed"] else "open"


def _plot_edges(cfg: HexagonConfig, rows: list[dict[str, Any]]) -> Any:
    """Edges of each network's boundary against h: one panel per depth; a curved boundary is
    drawn on the 'curved' row at the top."""
    from handgrad.viz import figure

    fig, axes = figure(1, len(cfg.depths), figsize=(5.2 * len(cfg.depths), 4.2))
    axes = np.atleast_1d(axes)
    hs = np.array(cfg.hidden_sizes)
    top = max(max((r["edges"] for r in rows if r["straight"]), default=1), 2 * hs.max()) + 2
    styles = {"relu": ("o", "#d62728", -0.12), "tanh": ("s", "#1f77b4", 0.12)}
    for ax, depth in zip(axes, cfg.depths, strict=True):
        if depth == 1:
            ax.plot(hs, 2 * hs, ":", color="0.4", label="2h: ReLU's bound for 2-h-1")
        for act in cfg.activations:
            marker, color, dx = styles[act]
            rs = [r for r in rows if r["activation"] == act and r["depth"] == depth]
            for kind in ("closed", "open", "curved"):
                sel = [
                    r
                    for r in rs
                    if r["lines"]
                    and (
                        (kind == "curved" and not r["straight"])
                        or (
                            kind != "curved" and r["straight"] and r["closed"] == (kind == "closed")
                        )
                    )
                ]
                if not sel:
                    continue
                jitter = np.linspace(-0.06, 0.06, cfg.seeds)
                xv = [r["hidden"] + dx + jitter[r["seed_index"] % cfg.seeds] for r in sel]
                yv = [top if kind == "curved" else r["edges"] for r in sel]
                ax.plot(
                    xv,
                    yv,
                    marker,
                    color=color,
                    mfc=color if kind == "closed" else "none",
                    ms=5,
                    alpha=0.8,
                    ls="none",
                    label=f"{act}, {kind}" + (" (counted at top)" if kind == "curved" else ""),
                )
        ax.axhline(6, color="0.7", lw=0.8)
        ax.set_xticks(hs)
        ax.set_yticks([*range(0, int(top), 2), top])
        ax.set_yticklabels([*map(str, range(0, int(top), 2)), "curved"])
        ax.set_xlabel("hidden width h")
        ax.set_ylabel("straight edges of the boundary")
        ax.set_title(f"{'2 -> h -> 1' if depth == 1 else '2 -> h -> h -> 1'}, one mark per seed")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    return fig


@register(
    "hexagon",
    HexagonConfig,
    "which small ReLU/tanh network draws a hexagon around the circle data: edges counted",
    order=43,
)
def run_hexagon(cfg: HexagonConfig, run: Run) -> dict[str, float]:
    train = load("circle", "train", seed=cfg.seed, n=cfg.n_train)
    test = load("circle", "test", seed=cfg.seed, n=cfg.n_test)
    X, y = train.X.astype(np.float64), train.y
    Xt, yt = test.X.astype(np.float64), test.y
    rows: list[dict[str, Any]] = []
    shown: dict[tuple[str, int, int], tuple[Boundary, dict[str, Any]]] = {}
    for depth in cfg.depths:
        for h in cfg.hidden_sizes:
            for s in range(cfg.seeds):
                for act in cfg.activations:
                    # ReLU and tanh start from the same weights: only the activation differs
                    rng = np.random.default_rng([cfg.seed, s, depth, h])
                    model, loss = train_network(
                        X, y, (h,) * depth, act, steps=cfg.steps, lr=cfg.lr, rng=rng
                    )
                    b = measure_boundary(
                        model,
                        cfg.extent,
                        cfg.resolution,
                        rel_tol=cfg.rel_tol,
                        piecewise_linear=act == "relu",
                    )
                    row = {
                        "activation": act,
                        "depth": depth,
                        "hidden": h,
                        "seed_index": s,
                        "shape": _shape(b),
                        "edges": b.edges,
                        "straight": b.straight,
                        "closed": b.closed,
                        "lines": b.lines,
                        "curved_fraction": round(b.curved_fraction, 4),
                        "pieces": b.pieces,
                        "long_pieces": b.long_pieces,
                        "train_loss": loss,
                        "train_accuracy": _accuracy(model, X, y),
                        "test_accuracy": _accuracy(model, Xt, yt),
                    }
                    rows.append(row)
                    run.log(row)
                    key = (act, depth, h)
                    if key not in shown or row["test_accuracy"] > shown[key][1]["test_accuracy"]:
                        shown[key] = (b, row)

    with open(run.dir / "table.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = summarize(rows)
    run.notes.append(_report_table(summary, cfg))
    run.save_figure(
        "maps", _plot_maps(cfg, shown, X, y), "probability maps, best seed per configuration"
    )
    run.save_figure("edges", _plot_edges(cfg, rows), "straight edges of every boundary against h")

    results: dict[str, float] = {}
    for s in summary:
        key = f"{s['activation']}_d{s['depth']}_h{s['hidden']}"
        results[f"{key}_six_edges"] = s["six"]
        results[f"{key}_test_accuracy"] = s["test_accuracy"]
    relu = [r for r in rows if r["activation"] == "relu" and r["lines"]]
    results["relu_boundaries_straight"] = sum(r["straight"] for r in relu)
    results["relu_boundaries"] = len(relu)
    results["relu_edges_equal_long_pieces"] = sum(r["edges"] == r["long_pieces"] for r in relu)
    tanh = [r for r in rows if r["activation"] == "tanh" and r["lines"]]
    results["tanh_boundaries_curved"] = sum(not r["straight"] for r in tanh)
    results["tanh_boundaries"] = len(tanh)
    return results


def _report_table(summary: list[dict[str, Any]], cfg: HexagonConfig) -> str:
    lines = [
        "## Boundaries",
        "",
        f"{cfg.seeds} seeds per configuration. *shapes*: the boundary of each seed: its number "
        "of straight edges, `curved` if it is not made of straight edges, `open` if it leaves "
        f"the square [-{cfg.extent}, {cfg.extent}]^2, `none` if one class covers the square. "
        "*six*: seeds whose boundary is a closed polygon with six edges.",
        "",
        "| configuration | h | shapes | six | mean train acc | mean test acc | best test acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {_name(s['activation'], s['depth'])} | {s['hidden']} | {', '.join(s['shapes'])} "
            f"| {s['six']}/{s['networks']} | {100 * s['train_accuracy']:.1f}% "
            f"| {100 * s['test_accuracy']:.1f}% | {100 * s['best_test_accuracy']:.1f}% |"
        )
    six = [s for s in summary if s["six"]]
    lines += [""]
    if six:
        lines.append(
            "Six-edged polygons: "
            + "; ".join(
                f"{_name(s['activation'], s['depth'])} h={s['hidden']} ({s['six']}/{s['networks']})"
                for s in six
            )
            + "."
        )
    else:
        lines.append("No network drew a six-edged polygon in this sweep.")
    return "\n".join(lines)
