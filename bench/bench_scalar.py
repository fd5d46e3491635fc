"""Speed of handgrad's scalar engine against the real micrograd (PyPI) and a plain reference.

The task: one forward + backward pass of a scalar MLP 2-16-16-1 with a mean hinge loss on 100
two-dimensional points, micrograd's own demo.

``--against micrograd`` (the default; ``pip install -r bench/requirements.txt``) runs it with
ReLU, micrograd's only nonlinearity. Rows:
  micrograd                  micrograd.engine.Value driven by the neuron code below (a neuron
                             is ``sum(w * x, b)``: a chain of ``+``), Python's collector on
  handgrad, same graph       handgrad.scalar.Value driven by the same code: the same graph,
                             node for node, the collector on (handgrad's ``backward`` pauses it
                             itself, the forward pass runs with it)
  ..., gc paused             the same two with the cyclic collector paused during the pass:
                             the engines alone
  micrograd MLP              micrograd.nn.MLP as its demo drives it (inputs made Values,
                             ``sum`` of the losses)
  handgrad MLP               handgrad.scalar.MLP (one n-ary sum node per neuron) and vsum,
                             built inside ``paused_gc()`` as its documentation advises
Each handgrad row is compared with the micrograd row above it. When micrograd is missing, the
script says so and runs ``--against reference`` instead.

``--against reference`` runs it with tanh against a reference engine written in this file the
way such an engine is usually first written (micrograd's design): one object with a
``__dict__`` per node, a ``set`` of children, a closure per node for its backward, a recursive
topological sort, and the garbage collector left on (each closure makes a reference cycle, so
only the collector frees a graph). Rows:
  reference              the engine below
  reference, gc paused   the same, with the cyclic collector paused during the pass
  handgrad, same graph   handgrad.scalar.Value driven by the reference's neuron code
                         (chained ``+``: exactly the reference's graph, node for node), with
                         the collector paused as handgrad's own MLP does: compare it with
                         "reference, gc paused" to see the engine alone
  handgrad MLP           handgrad.scalar.MLP (one n-ary sum node per neuron) and vsum

Every implementation starts from the same weights; the script checks that the losses and all
parameter gradients agree before timing. Rows are timed round-robin, each reports its best
pass. Run: ``python bench/bench_scalar.py [--against micrograd|reference] [--repeat 7]``.
``bench/bench_peers.py`` times the micrograd rows the same way and reports the ratios' spread.
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from handgrad.scalar import MLP, Value, paused_gc, topological_order, vsum

MICROGRAD_MISSING = "micrograd not installed: pip install -r bench/requirements.txt"

# ---------------------------------------------------------------------------------------------
# The reference engine: straightforward, closure per node, recursive topological sort.
# ---------------------------------------------------------------------------------------------


class RefValue:
    def __init__(self, data, _children=(), _op=""):
        self.data = data
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op

    def __add__(self, other):
        other = other if isinstance(other, RefValue) else RefValue(other)
        out = RefValue(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, RefValue) else RefValue(other)
        out = RefValue(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = RefValue(t, (self,), "tanh")

        def _backward():
            self.grad += (1 - t * t) * out.grad

        out._backward = _backward
        return out

    def relu(self):
        out = RefValue(self.data if self.data > 0 else 0.0, (self,), "relu")

        def _backward():
            self.grad += (out.data > 0) * out.grad

        out._backward = _backward
        return out

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rmul__(self, other):
        return self * other

    def backward(self):
        topo = []
        visited = set()

        def build(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    build(child)
                topo.append(v)

        build(self)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()


class RefNeuron:
    """``act(sum(w * x, b))`` for any Value class: the chain of ``+`` micrograd's neuron
    builds; ``activation`` names the Value method applied (None: linear)."""

    def __init__(self, w: np.ndarray, b: float, activation: str | None, value_cls: type) -> None:
        self.w = [value_cls(float(wi)) for wi in w]
        self.b = value_cls(float(b))
        self.activation = activation

    def __call__(self, x: Sequence[Any]) -> Any:
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return getattr(act, self.activation)() if self.activation else act

    def parameters(self):
        return [*self.w, self.b]


class RefMLP:
    """The reference MLP, built from a handgrad MLP's state dict; any Value class."""

    def __init__(
        self, state: dict[str, np.ndarray], value_cls: type, activation: str = "tanh"
    ) -> None:
        keys = sorted({k.split(".")[0] for k in state}, key=int)
        self.layers = []
        for i, k in enumerate(keys):
            w, b = state[f"{k}.weight"], state[f"{k}.bias"]
            act = activation if i < len(keys) - 1 else None
            self.layers.append([RefNeuron(w[j], b[j], act, value_cls) for j in range(len(b))])

    def __call__(self, x):
        for layer in self.layers:
            x = [n(x) for n in layer]
        return x

    def parameters(self):
        return [p for layer in self.layers for n in layer for p in n.parameters()]


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------


def make_data(n: int, seed: int) -> tuple[list[list[float]], list[float]]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    y = np.where(X[:, 0] * X[:, 1] + 0.3 * X[:, 0] > 0, 1.0, -1.0)
    return X.tolist(), y.tolist()


def hinge_loss_chained(model, X, y):
    scores = [model(x)[0] for x in X]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores, strict=True)]
    return sum(losses) * (1.0 / len(losses))


def hinge_loss_vsum(model, X, y):
    with paused_gc():
        scores = [model(x)[0] for x in X]
        losses = [(1 - yi * si).relu() for yi, si in zip(y, scores, strict=True)]
        return vsum(losses) * (1.0 / len(losses))


def hinge_loss_micrograd(model: Any, X: list[list[float]], y: list[float]) -> Any:
    """The loss as micrograd's demo computes it: inputs made Values, ``sum`` of the losses."""
    from micrograd.engine import Value as MicrogradValue

    inputs = [[MicrogradValue(v) for v in row] for row in X]
    scores = [model(x) for x in inputs]  # a one-output micrograd MLP returns the Value itself
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores, strict=True)]
    return sum(losses) * (1.0 / len(losses))


class Row(NamedTuple):
    """One timed implementation: a model, its loss function, and whether the cyclic garbage
    collector is paused around the whole pass."""

    name: str
    model: Any
    loss_fn: Callable
    pause: bool


def reference_rows(n_in: int, sizes: Sequence[int], seed: int) -> list[Row]:
    """The tanh rows against the reference engine of this file."""
    hg = MLP(n_in, list(sizes), activation="tanh", rng=seed)
    state = hg.state_dict()
    return [
        Row("reference", RefMLP(state, RefValue), hinge_loss_chained, False),
        Row("reference, gc paused", RefMLP(state, RefValue), hinge_loss_chained, True),
        Row("handgrad, same graph", RefMLP(state, Value), hinge_loss_chained, True),
        Row("handgrad MLP", hg, hinge_loss_vsum, False),
    ]


def has_micrograd() -> bool:
    import importlib.util

    return importlib.util.find_spec("micrograd") is not None


def micrograd_mlp(state: dict[str, np.ndarray]) -> Any:
    """micrograd.nn.MLP with the weights of ``state`` (keys ``0.weight`` (out, in), ...)."""
    from micrograd.nn import MLP as MicrogradMLP

    keys = sorted({k.split(".")[0] for k in state}, key=int)
    nin = state[f"{keys[0]}.weight"].shape[1]
    model = MicrogradMLP(nin, [len(state[f"{k}.bias"]) for k in keys])
    for layer, k in zip(model.layers, keys, strict=True):
        w, b = state[f"{k}.weight"], state[f"{k}.bias"]
        for j, neuron in enumerate(layer.neurons):
            for i, wi in enumerate(neuron.w):
                wi.data = float(w[j, i])
            neuron.b.data = float(b[j])
    return model


# (what is compared, the micrograd row, the handgrad row): each pair is one ratio
MICROGRAD_PAIRS: list[tuple[str, str, str]] = [
    ("same graph, Python's default collector", "micrograd", "handgrad, same graph"),
    (
        "same graph, collector paused for both",
        "micrograd, gc paused",
        "handgrad, same graph, gc paused",
    ),
    ("each library's own MLP class", "micrograd MLP", "handgrad MLP"),
]


def micrograd_rows(n_in: int, sizes: Sequence[int], seed: int) -> list[Row]:
    """The ReLU rows against the real micrograd (which must be installed)."""
    from micrograd.engine import Value as MicrogradValue

    hg = MLP(n_in, list(sizes), activation="relu", rng=seed)
    state = hg.state_dict()
    return [
        Row("micrograd", RefMLP(state, MicrogradValue, "relu"), hinge_loss_chained, False),
        Row("handgrad, same graph", RefMLP(state, Value, "relu"), hinge_loss_chained, False),
        Row(
            "micrograd, gc paused", RefMLP(state, MicrogradValue, "relu"), hinge_loss_chained, True
        ),
        Row(
            "handgrad, same graph, gc paused",
            RefMLP(state, Value, "relu"),
            hinge_loss_chained,
            True,
        ),
        Row("micrograd MLP", micrograd_mlp(state), hinge_loss_micrograd, False),
        Row("handgrad MLP", hg, hinge_loss_vsum, False),
    ]


def run_pass(model, loss_fn, X, y, pause: bool) -> tuple[float, float, object]:
    """One forward + backward; returns (forward seconds, backward seconds, loss)."""
    for p in model.parameters():
        p.grad = 0.0
    was = gc.isenabled()
    if pause:
        gc.disable()
    try:
        t0 = time.perf_counter()
        loss = loss_fn(model, X, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
    finally:
        if pause and was:
            gc.enable()
    return t1 - t0, t2 - t1, loss


def count_nodes(loss) -> int:
    if isinstance(loss, Value):
        return len(topological_order(loss))
    seen, stack = {loss}, [loss]
    while stack:
        for c in stack.pop()._prev:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return len(seen)


def check_rows(rows: Sequence[Row], X, y) -> float:
    """One pass of every row; raises RuntimeError unless all give the first row's loss and
    parameter gradients. Returns that loss."""
    want_loss, want_grads = None, None
    for row in rows:
        _, _, loss = run_pass(row.model, row.loss_fn, X, y, row.pause)
        grads = np.array([p.grad for p in row.model.parameters()], dtype=np.float64)
        if want_loss is None:
            want_loss, want_grads = float(loss.data), grads
        elif not (
            math.isclose(loss.data, want_loss, rel_tol=1e-12)
            and np.allclose(grads, want_grads, rtol=1e-9, atol=1e-12)
        ):
            raise RuntimeError(f"{row.name}: loss or gradients differ from {rows[0].name}'s")
    assert want_loss is not None
    return want_loss


def time_rows(
    rows: Sequence[Row], X, y, repeat: int
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, int]]:
    """(forward, backward) seconds of every pass of every row, and each row's node count.

    The rows are timed round-robin, so that a burst of load on the machine hits all of them;
    each pass starts from a clean heap: a previous micrograd-style graph is made of cycles, and
    collecting them here, outside the timing, favours the engine that makes them.
    """
    times: dict[str, list[tuple[float, float]]] = {row.name: [] for row in rows}
    nodes: dict[str, int] = {}
    for _ in range(repeat):
        for row in rows:
            gc.collect()
            f, b, loss = run_pass(row.model, row.loss_fn, X, y, row.pause)
            nodes[row.name] = count_nodes(loss)
            del loss
            times[row.name].append((f, b))
    return times, nodes


def best_passes(
    times: dict[str, list[tuple[float, float]]],
) -> dict[str, tuple[float, float]]:
    """Each row's fastest pass (the least disturbed one)."""
    return {name: min(passes, key=sum) for name, passes in times.items()}


def print_rows(
    best: dict[str, tuple[float, float]], nodes: dict[str, int], baseline: dict[str, str]
) -> None:
    """The table: ``baseline[name]`` is the row whose time the speed-up of ``name`` divides."""
    width = max(22, *(len(name) + 1 for name in best))
    print(
        f"{'implementation':<{width}} {'nodes':>7} {'forward ms':>11} {'backward ms':>12} "
        f"{'total ms':>9} {'speed-up':>9}"
    )
    for name, (f, b) in best.items():
        speedup = sum(best[baseline[name]]) / (f + b)
        print(
            f"{name:<{width}} {nodes[name]:>7} {1e3 * f:>11.1f} {1e3 * b:>12.1f} "
            f"{1e3 * (f + b):>9.1f} {speedup:>8.2f}x"
        )


def against_reference(n: int, seed: int, repeat: int) -> None:
    X, y = make_data(n, seed)
    rows = reference_rows(2, [16, 16, 1], seed)
    check_rows(rows, X, y)
    print(
        f"scalar MLP 2-16-16-1 (tanh), hinge loss, {n} points, "
        f"best of {repeat} passes; Python {platform.python_version()}, {sys.platform}"
    )
    times, nodes = time_rows(rows, X, y, repeat)
    best = best_passes(times)
    print_rows(best, nodes, {row.name: "reference" for row in rows})
    totals = {name: sum(fb) for name, fb in best.items()}
    ratio = totals["reference"] / totals["handgrad MLP"]
    same = totals["reference"] / totals["handgrad, same graph"]
    print(f"ratio reference / handgrad MLP: {ratio:.2f}x  (same graph: {same:.2f}x)")


def against_micrograd(n: int, seed: int, repeat: int) -> None:
    import importlib.metadata

    X, y = make_data(n, seed)
    rows = micrograd_rows(2, [16, 16, 1], seed)
    check_rows(rows, X, y)
    print(
        f"scalar MLP 2-16-16-1 (ReLU), hinge loss, {n} points, best of {repeat} passes; "
        f"micrograd {importlib.metadata.version('micrograd')}, "
        f"Python {platform.python_version()}, {sys.platform}"
    )
    times, nodes = time_rows(rows, X, y, repeat)
    best = best_passes(times)
    baseline = {row.name: row.name for row in rows}
    for _, theirs, ours in MICROGRAD_PAIRS:
        baseline[ours] = theirs
    print_rows(best, nodes, baseline)
    for what, theirs, ours in MICROGRAD_PAIRS:
        ratio = sum(best[theirs]) / sum(best[ours])
        print(f"micrograd / handgrad, {what}: {ratio:.2f}x")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--against",
        choices=("micrograd", "reference"),
        default="micrograd",
        help="the real micrograd (ReLU) or this file's reference engine (tanh)",
    )
    ap.add_argument(
        "--repeat", type=int, default=7, help="timed passes per row (the best is reported)"
    )
    ap.add_argument("--n", type=int, default=100, help="number of points")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.against == "micrograd" and not has_micrograd():
        print(f"{MICROGRAD_MISSING}; timing the reference engine instead\n")
        args.against = "reference"
    if args.against == "micrograd":
        against_micrograd(args.n, args.seed, args.repeat)
    else:
        against_reference(args.n, args.seed, args.repeat)


if __name__ == "__main__":
    main()
