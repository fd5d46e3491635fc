"""The worked examples of scalar backpropagation: ``scalar-graph``, ``scalar-net`` and
``scalar-train``.

Each experiment is a plain function (usable without a run folder) that takes an output folder
and options, writes its figures (PNG) and a markdown fragment (``<name>.md``) into that folder,
and returns a dict of final numbers; the run function puts the fragment into the report.

- :func:`scalar_graph`: the graph of w = a*b with a = x*y + z, b = (x + x)*a, all gradients,
  the picture, and the backward trace (x is used three times and accumulates).
- :func:`scalar_net`: the 2-3-2 sigmoid/softmax network on one sample, every forward value and
  every gradient computed three ways that must agree: the scalar engine, plain loops over lists
  (:mod:`handgrad.scalar.loops`) and the vectorised ``handgrad.nn`` layers.
- :func:`scalar_train`: the same network trained by full-batch gradient descent on ``synth``,
  the three ways; the loss curves on one plot and the time per epoch of each.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import handgrad.nn as nn
from handgrad.data import load
from handgrad.experiments.common import add_fragment, numbers
from handgrad.experiments.registry import Config, check, register
from handgrad.optim import SGD
from handgrad.scalar import loops
from handgrad.scalar.engine import Value, paused_gc, vsum
from handgrad.scalar.graph import draw_graph, to_dot, trace_backward
from handgrad.scalar.nn import MLP, cross_entropy
from handgrad.train import Run

__all__ = [
    "NET_DEFAULTS",
    "ScalarGraphConfig",
    "ScalarNetConfig",
    "ScalarTrainConfig",
    "scalar_graph",
    "scalar_net",
    "scalar_train",
]


def _out(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _g(x: float) -> str:
    return f"{x:.6g}"


# ------------------------------------------------------------------------------------------
# scalar-graph
# ------------------------------------------------------------------------------------------


def scalar_graph(
    out_dir: str | Path, x: float = 3.0, y: float = -2.0, z: float = 10.0, *, gif: bool = True
) -> dict[str, float]:
    """a = x*y + z, b = (x + x)*a, w = a*b: the graph with all gradients, and its backward trace.

    Closed form: w = 2 x a^2, so dw/dx = 2 a^2 + 4 x a y, dw/dy = 4 x^2 a, dw/dz = 4 x a.

    Writes ``scalar-graph.png``, ``scalar-graph.dot``, ``scalar-trace.png`` (every step as a
    frame), ``scalar-trace.gif`` (if ``gif``) and ``scalar-graph.md``.

    Returns:
        {'x', 'y', 'z', 'a', 'b', 'w', 'dw/dx', 'dw/dy', 'dw/dz', 'dw/da', 'dw/db', 'steps'}.
    """
    out = _out(out_dir)
    xv, yv, zv = Value(x, "x"), Value(y, "y"), Value(z, "z")
    xy = xv * yv
    xy.label = "x*y"
    a = xy + zv
    a.label = "a"
    xx = xv + xv
    xx.label = "x+x"
    b = xx * a
    b.label = "b"
    w = a * b
    w.label = "w"
    trace = trace_backward(w)

    draw_graph(w, out / "scalar-graph.png", title="w = a*b,  a = x*y + z,  b = (x+x)*a")
    (out / "scalar-graph.dot").write_text(to_dot(w))
    trace.draw(out / "scalar-trace.png", ncols=2)
    if gif:
        trace.draw(out / "scalar-trace.gif", fps=1.0)

    closed = {
        "dw/dx": 2 * a.data**2 + 4 * x * a.data * y,
        "dw/dy": 4 * x**2 * a.data,
        "dw/dz": 4 * x * a.data,
    }
    got = {"dw/dx": xv.grad, "dw/dy": yv.grad, "dw/dz": zv.grad}
    x_steps = [s for s in trace.steps if s.child is xv]
    lines = [
        "## scalar-graph",
        "",
        f"x = {_g(x)}, y = {_g(y)}, z = {_g(z)};  a = x*y + z = {_g(a.data)},  "
        f"b = (x + x)*a = {_g(b.data)},  w = a*b = {_g(w.data)}.",
        "",
        "![graph](scalar-graph.png)",
        "",
        "| gradient | engine | closed form |",
        "|---|---:|---:|",
        f"| dw/dx | {_g(got['dw/dx'])} | 2a² + 4xay = {_g(closed['dw/dx'])} |",
        f"| dw/dy | {_g(got['dw/dy'])} | 4x²a = {_g(closed['dw/dy'])} |",
        f"| dw/dz | {_g(got['dw/dz'])} | 4xa = {_g(closed['dw/dz'])} |",
        "",
        f"Backward trace ({len(trace)} steps; x receives {len(x_steps)} contributions, "
        + " + ".join(f"({_g(s.local)})·({_g(s.upstream)})" for s in x_steps)
        + f" = {_g(xv.grad)}):",
        "",
        trace.to_markdown(),
        "",
        "![backward trace](scalar-trace.png)",
        "",
    ]
    (out / "scalar-graph.md").write_text("\n".join(lines))
    return {
        "x": x,
        "y": y,
        "z": z,
        "a": a.data,
        "b": b.data,
        "w": w.data,
        "dw/dx": xv.grad,
        "dw/dy": yv.grad,
        "dw/dz": zv.grad,
        "dw/da": a.grad,
        "dw/db": b.grad,
        "steps": len(trace),
    }


@dataclass(frozen=True)
class ScalarGraphConfig(Config):
    """Inputs of w = a*b with a = x*y + z, b = (x + x)*a."""

    x: float = 3.0
    y: float = -2.0
    z: float = 10.0
    gif: bool = True


@register(
    "scalar-graph",
    ScalarGraphConfig,
    "a = x*y + z, b = (x+x)*a, w = a*b: graph and trace",
    order=30,
)
def run_scalar_graph(cfg: ScalarGraphConfig, run: Run) -> dict[str, float]:
    result = scalar_graph(run.dir, x=cfg.x, y=cfg.y, z=cfg.z, gif=cfg.gif)
    add_fragment(run, "scalar-graph")
    return numbers(result)


# ------------------------------------------------------------------------------------------
# scalar-net
# ------------------------------------------------------------------------------------------


# The worked example: W[i][j] joins input i to hidden unit j, V[j][k] hidden j to output k.
NET_DEFAULTS: dict[str, Any] = {
    "x": [1.0, -1.0],
    "target": 0,
    "W": [[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]],
    "b": [0.0, 0.0, 0.0],
    "V": [[1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]],
    "c": [0.0, 0.0],
}


def _net_engine(x, W, b, V, c, target) -> dict[str, Any]:
    """The network built from Values, keeping every intermediate node to read its gradient."""
    nin, nh, nout = len(x), len(b), len(c)
    xs = [Value(x[i], f"x[{i}]") for i in range(nin)]
    Ws = [[Value(W[i][j], f"W[{i}][{j}]") for j in range(nh)] for i in range(nin)]
    bs = [Value(b[j], f"b[{j}]") for j in range(nh)]
    Vs = [[Value(V[j][k], f"V[{j}][{k}]") for k in range(nout)] for j in range(nh)]
    cs = [Value(c[k], f"c[{k}]") for k in range(nout)]

    def times(u: Value, v: Value) -> Value:
        out = u * v
        out.label = f"{u.label}{v.label}"  # e.g. x[0]W[0][1]
        return out

    z1 = [vsum([*(times(xs[i], Ws[i][j]) for i in range(nin)), bs[j]]) for j in range(nh)]
    for j in range(nh):
        z1[j].label = f"z1[{j}]"
    h = [z.sigmoid() for z in z1]
    for j in range(nh):
        h[j].label = f"h[{j}]"
    z2 = [vsum([*(times(h[j], Vs[j][k]) for j in range(nh)), cs[k]]) for k in range(nout)]
    for k in range(nout):
        z2[k].label = f"z2[{k}]"
    loss = cross_entropy(z2, target)
    loss.label = "loss"
    loss.backward()
    m = max(v.data for v in z2)
    e = [math.exp(v.data - m) for v in z2]
    return {
        "z1": [v.data for v in z1],
        "h": [v.data for v in h],
        "z2": [v.data for v in z2],
        "p": [ek / sum(e) for ek in e],
        "loss": loss.data,
        "dz2": [v.grad for v in z2],
        "dc": [v.grad for v in cs],
        "dV": [[v.grad for v in row] for row in Vs],
        "dh": [v.grad for v in h],
        "dz1": [v.grad for v in z1],
        "db": [v.grad for v in bs],
        "dW": [[v.grad for v in row] for row in Ws],
        "dx": [v.grad for v in xs],
        "_root": loss,
    }


def _net_loops(x, W, b, V, c, target) -> dict[str, Any]:
    cache = loops.forward(x, W, b, V, c, target)
    return {**cache, **loops.backward(x, W, V, cache, target)}


def _vectorised_model(W, b, V, c):
    """Sequential(Linear, Sigmoid, Linear) in float64 holding W, b, V, c (weights transposed
    into PyTorch's (out, in) layout)."""
    W, V = np.asarray(W, dtype=np.float64), np.asarray(V, dtype=np.float64)
    model = nn.Sequential(
        nn.Linear(W.shape[0], W.shape[1], dtype=np.float64),
        nn.Sigmoid(),
        nn.Linear(V.shape[0], V.shape[1], dtype=np.float64),
    )
    model.load_state_dict(
        {"0.weight": W.T, "0.bias": np.asarray(b), "2.weight": V.T, "2.bias": np.asarray(c)}
    )
    return model


def _net_vectorised(x, W, b, V, c, target) -> dict[str, Any]:
    model = _vectorised_model(W, b, V, c)
    lin1, sig, lin2 = model[0], model[1], model[2]
    xa = np.asarray([x], dtype=np.float64)  # (1, nin)
    z1 = lin1(xa)  # (1, nh)
    h = sig(z1)
    z2 = lin2(h)  # (1, nout)
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(z2, np.array([target]))
    dz2 = loss_fn.backward()
    dh = lin2.backward(dz2)
    dz1 = sig.backward(dh)
    dx = lin1.backward(dz1)
    p = np.exp(z2 - z2.max()) / np.exp(z2 - z2.max()).sum()
    return {
        "z1": z1[0].tolist(),
        "h": h[0].tolist(),
        "z2": z2[0].tolist(),
        "p": p[0].tolist(),
        "loss": loss,
        "dz2": dz2[0].tolist(),
        "dc": lin2.bias.grad.tolist(),
        "dV": lin2.weight.grad.T.tolist(),
        "dh": dh[0].tolist(),
        "dz1": dz1[0].tolist(),
        "db": lin1.bias.grad.tolist(),
        "dW": lin1.weight.grad.T.tolist(),
        "dx": dx[0].tolist(),
    }


_NET_ROWS = ("z1", "h", "z2", "p", "loss", "dz2", "dc", "dV", "dh", "dz1", "db", "dW", "dx")


def _flat(name: str, value: Any) -> list[tuple[str, float]]:
    """('dW[0][1]', number) entries of a nested list, in row-major order."""
    if isinstance(value, (int, float)):
        return [(name, float(value))]
    out: list[tuple[str, float]] = []
    for i, v in enumerate(value):
        out += _flat(f"{name}[{i}]", v)
    return out


def scalar_net(
    out_dir: str | Path,
    x: Sequence[float] | None = None,
    target: int | None = None,
    W: Sequence[Sequence[float]] | None = None,
    b: Sequence[float] | None = None,
    V: Sequence[Sequence[float]] | None = None,
    c: Sequence[float] | None = None,
    *,
    draw: bool = True,
) -> dict[str, Any]:
    """The 2-3-2 network (sigmoid hidden, softmax output) on one sample, computed three ways.

    Defaults (``NET_DEFAULTS``): x = [1, -1], target 0, W = [[1,1,1],[-1,-1,-1]], b = 0,
    V = [[1,1],[-1,-1],[-1,-1]], c = 0. By hand: z1 = 2, h = sigmoid(2) = 0.880797 for each
    hidden unit, z2 = h - h - h = -0.880797 for both outputs, p = [1/2, 1/2], loss = ln 2,
    d loss/d z2 = p - y = [-1/2, 1/2], dV[j] = h[j] (p - y), dc = p - y, and d loss/d h = 0
    (each row of V has equal entries), so dW = 0 and db = 0.

    Writes ``scalar-net.md`` (the table: every forward value and gradient, the three ways) and,
    if ``draw``, ``scalar-net-graph.png`` (the engine's graph).

    Returns:
        {'engine': {...}, 'loops': {...}, 'vectorised': {...}} with lists per quantity (z1, h,
        z2, p, loss, dz2, dc, dV, dh, dz1, db, dW, dx), 'loss', and 'max_abs_diff' (largest
        difference between any two ways over every entry).
    """
    out = _out(out_dir)
    args = {
        "x": NET_DEFAULTS["x"] if x is None else list(x),
        "W": NET_DEFAULTS["W"] if W is None else [list(r) for r in W],
        "b": NET_DEFAULTS["b"] if b is None else list(b),
        "V": NET_DEFAULTS["V"] if V is None else [list(r) for r in V],
        "c": NET_DEFAULTS["c"] if c is None else list(c),
        "target": NET_DEFAULTS["target"] if target is None else int(target),
    }
    args = copy.deepcopy(args)
    nin, nh, nout = len(args["x"]), len(args["b"]), len(args["c"])
    if np.shape(args["W"]) != (nin, nh) or np.shape(args["V"]) != (nh, nout):
        raise ValueError(
            f"scalar_net: expected W ({nin}, {nh}) and V ({nh}, {nout}) for x ({nin},), "
            f"b ({nh},), c ({nout},); got W {np.shape(args['W'])} and V {np.shape(args['V'])}"
        )
    if not 0 <= args["target"] < nout:
        raise ValueError(f"scalar_net: target {args['target']} out of range for {nout} classes")
    order = ("x", "W", "b", "V", "c", "target")
    engine = _net_engine(*(args[k] for k in order))
    root = engine.pop("_root")
    loop = _net_loops(*(args[k] for k in order))
    vec = _net_vectorised(*(args[k] for k in order))

    rows = []
    max_diff = 0.0
    for q in _NET_ROWS:
        entries = zip(_flat(q, engine[q]), _flat(q, loop[q]), _flat(q, vec[q]), strict=True)
        for (name, e), (_, lv), (_, v) in entries:
            diff = max(abs(e - lv), abs(e - v), abs(lv - v))
            max_diff = max(max_diff, diff)
            # + 0.0 turns -0.0 (from -1 * 0.0) into 0.0 in the table
            rows.append(f"| {name} | {e + 0.0:.6f} | {lv + 0.0:.6f} | {v + 0.0:.6f} | {diff:.1e} |")
    lines = [
        "## scalar-net",
        "",
        f"x = {args['x']}, target class {args['target']}, W = {args['W']}, b = {args['b']}, "
        f"V = {args['V']}, c = {args['c']}.  z1 = x W + b, h = sigmoid(z1), z2 = h V + c, "
        "loss = -log softmax(z2)[target]; d-names are gradients of the loss.",
        "",
        "| quantity | scalar engine | loops | vectorised | max difference |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Largest difference between any two ways: {max_diff:.1e}.",
        "",
    ]
    if draw:
        draw_graph(
            root,
            out / "scalar-net-graph.png",
            title="2-3-2 network: sigmoid hidden units, softmax cross-entropy",
        )
        lines += ["![the network's graph](scalar-net-graph.png)", ""]
    (out / "scalar-net.md").write_text("\n".join(lines))
    return {
        "engine": engine,
        "loops": loop,
        "vectorised": vec,
        "loss": engine["loss"],
        "max_abs_diff": max_diff,
    }


@dataclass(frozen=True)
class ScalarNetConfig(Config):
    """The 2-3-2 worked example (its weights are fixed by the example)."""

    draw: bool = True


@register("scalar-net", ScalarNetConfig, "the 2-3-2 sigmoid/softmax network, three ways", order=31)
def run_scalar_net(cfg: ScalarNetConfig, run: Run) -> dict[str, float]:
    result = scalar_net(run.dir, draw=cfg.draw)
    add_fragment(run, "scalar-net")
    return {"loss": result["loss"], "max_abs_diff": result["max_abs_diff"]}


# ------------------------------------------------------------------------------------------
# scalar-train
# ------------------------------------------------------------------------------------------


def _synth(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    ds = load("synth", split="train", n=n, seed=seed, download=False)
    return ds.X.astype(np.float64), ds.y.astype(np.int64)


def scalar_train(
    out_dir: str | Path,
    epochs: int = 300,
    n: int = 200,
    lr: float = 2.0,
    seed: int = 0,
    hidden: int = 3,
) -> dict[str, Any]:
    """Train the 2-``hidden``-2 sigmoid/softmax network on ``synth`` three ways.

    Full-batch gradient descent (``epochs`` steps of size ``lr`` on the mean cross-entropy of
    ``n`` points), from the same initial weights (PyTorch's Linear init drawn from ``seed``):
    the scalar engine (``MLP`` and ``cross_entropy``), the loops of ``handgrad.scalar.loops``,
    and ``handgrad.nn`` layers with ``handgrad.optim.SGD``. The three loss curves agree to
    rounding error.

    Writes ``scalar-train.png`` (the loss curves and their differences) and ``scalar-train.md``
    (final numbers and the time per epoch of each way).

    Returns:
        {'loss': {way: [loss before each step]}, 'final_loss': {way: float}, 'accuracy': float
        (vectorised model on the training set), 'max_curve_diff': float, 'sec_per_epoch':
        {way: float}, 'speedup_vs_engine': {way: float}} with way in 'engine', 'loops',
        'vectorised'.
    """
    for name, value in (("epochs", epochs), ("n", n), ("hidden", hidden)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"scalar_train: {name} must be a positive integer, got {value!r}")
    if not lr > 0:
        raise ValueError(f"scalar_train: lr must be > 0, got {lr!r}")
    out = _out(out_dir)
    X, y = _synth(n, seed)
    Xl, yl = X.tolist(), y.tolist()

    # one initialisation, copied into the three implementations
    rng = np.random.default_rng(seed)
    init = nn.Sequential(
        nn.Linear(2, hidden, rng=rng, dtype=np.float64),
        nn.Sigmoid(),
        nn.Linear(hidden, 2, rng=rng, dtype=np.float64),
    )
    state = init.state_dict()

    losses: dict[str, list[float]] = {"engine": [], "loops": [], "vectorised": []}
    seconds: dict[str, float] = {}

    # 1. the scalar engine: one graph per epoch over the whole batch
    mlp = MLP(2, [hidden, 2], activation="sigmoid")
    mlp.load_state_dict(state)
    params = mlp.parameters()
    t0 = time.perf_counter()
    for _ in range(epochs):
        with paused_gc():  # the graph has no cycles; see paused_gc
            loss = cross_entropy([mlp(x) for x in Xl], yl)
        mlp.zero_grad()
        loss.backward()
        for p in params:
            p.data -= lr * p.grad
        losses["engine"].append(loss.data)
    seconds["engine"] = (time.perf_counter() - t0) / epochs
    del loss

    # 2. explicit loops over lists (W in the worked example's (in, out) layout)
    weights = {
        "W": state["0.weight"].T.tolist(),
        "b": state["0.bias"].tolist(),
        "V": state["2.weight"].T.tolist(),
        "c": state["2.bias"].tolist(),
    }
    t0 = time.perf_counter()
    for _ in range(epochs):
        value, grads = loops.batch_loss_and_grads(Xl, yl, **weights)
        loops.sgd_update(weights, grads, lr)
        losses["loops"].append(value)
    seconds["loops"] = (time.perf_counter() - t0) / epochs

    # 3. vectorised layers
    model = copy.deepcopy(init)
    loss_fn = nn.CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=lr)
    t0 = time.perf_counter()
    for _ in range(epochs):
        value = loss_fn(model(X), y)
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
        losses["vectorised"].append(value)
    seconds["vectorised"] = (time.perf_counter() - t0) / epochs
    accuracy = float((model(X).argmax(axis=1) == y).mean())

    curves = {k: np.asarray(v) for k, v in losses.items()}
    diff_el = np.abs(curves["engine"] - curves["loops"])
    diff_ev = np.abs(curves["engine"] - curves["vectorised"])
    diff_lv = np.abs(curves["loops"] - curves["vectorised"])
    max_diff = float(max(diff_el.max(), diff_ev.max(), diff_lv.max()))
    speedup = {k: seconds["engine"] / seconds[k] for k in seconds}

    _plot_train(out / "scalar-train.png", curves, (diff_el, diff_ev, diff_lv), n, lr)
    lines = [
        "## scalar-train",
        "",
        f"The 2-{hidden}-2 sigmoid/softmax network, full-batch gradient descent on {n} `synth` "
        f"points, lr = {lr:g}, {epochs} epochs, seed {seed}; the same initial weights in the "
        "three implementations.",
        "",
        "![loss curves](scalar-train.png)",
        "",
        "| implementation | final loss | time per epoch | speed-up over the engine |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {curves[key][-1]:.6f} | {1e3 * seconds[key]:.3f} ms | "
            f"{speedup[key]:.1f}x |"
            for key, name in (
                ("engine", "scalar engine (Value)"),
                ("loops", "loops over lists"),
                ("vectorised", "vectorised (handgrad.nn)"),
            )
        ),
        "",
        f"Largest difference between two loss curves: {max_diff:.1e}. "
        f"Training accuracy: {accuracy:.3f}.",
        "",
    ]
    (out / "scalar-train.md").write_text("\n".join(lines))
    return {
        "loss": {k: list(v) for k, v in losses.items()},
        "final_loss": {k: float(v[-1]) for k, v in curves.items()},
        "accuracy": accuracy,
        "max_curve_diff": max_diff,
        "sec_per_epoch": seconds,
        "speedup_vs_engine": speedup,
    }


def _plot_train(path: Path, curves: dict, diffs: tuple, n: int, lr: float) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    epochs = np.arange(1, len(curves["engine"]) + 1)
    styles = {
        "engine": ("scalar engine", "-", 5.0, "#1f77b4"),
        "loops": ("loops over lists", "--", 3.0, "#ff7f0e"),
        "vectorised": ("vectorised", ":", 2.0, "#2ca02c"),
    }
    for key, (label, ls, lw, color) in styles.items():
        ax.plot(epochs, curves[key], ls=ls, lw=lw, color=color, label=label, alpha=0.85)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean cross-entropy")
    ax.set_title(f"synth, {n} points, full batch, lr = {lr:g}")
    ax.legend()
    ax.grid(alpha=0.3)
    tiny = 1e-18  # so that exact agreement (0) still shows on a log axis
    pairs = ("engine - loops", "engine - vectorised", "loops - vectorised")
    for d, label, marker in zip(diffs, pairs, ("o", "s", "^"), strict=True):
        ax2.semilogy(epochs, d + tiny, ls="none", marker=marker, ms=2.5, alpha=0.6, label=label)
    ax2.set_ylim(tiny / 3, 1e-12)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("|difference| of the losses (0 drawn at 1e-18)")
    ax2.set_title("the curves agree to rounding error")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


@dataclass(frozen=True)
class ScalarTrainConfig(Config):
    """Training the 2-3-2 network on ``synth`` with the engine, with loops and vectorised."""

    epochs: int = 300
    n: int = 200
    lr: float = 2.0
    hidden: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "n", self.n >= 1, ">= 1")


@register(
    "scalar-train",
    ScalarTrainConfig,
    "synth with the scalar engine vs loops vs vectorised",
    order=32,
)
def run_scalar_train(cfg: ScalarTrainConfig, run: Run) -> dict[str, float]:
    result = scalar_train(
        run.dir, epochs=cfg.epochs, n=cfg.n, lr=cfg.lr, seed=cfg.seed, hidden=cfg.hidden
    )
    add_fragment(run, "scalar-train")
    out = numbers({k: v for k, v in result.items() if k != "loss"})
    return out
