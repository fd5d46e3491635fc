"""Speed of handgrad's scalar engine against a straightforward reference engine.

The task: one forward + backward pass of a scalar MLP 2-16-16-1 (tanh) with a mean hinge loss
on 100 two-dimensional points, the demo of micrograd-style engines. The reference engine below
is written the way such an engine is usually first written: one object with a ``__dict__`` per
node, a ``set`` of children, a closure per node for its backward, a recursive topological sort,
and the garbage collector left on (each closure makes a reference cycle, so only the collector
frees a graph).

Rows:
  reference              the engine below
  reference, gc paused   the same, with the cyclic collector paused during the pass
  handgrad, same graph   handgrad.scalar.Value driven by the reference's neuron code
                         (chained ``+``: exactly the reference's graph, node for node), with
                         the collector paused as handgrad's own MLP does: compare it with
                         "reference, gc paused" to see the engine alone
  handgrad MLP           handgrad.scalar.MLP (one n-ary sum node per neuron) and vsum

Every implementation starts from the same weights; the script checks that the losses and all
parameter gradients agree before timing. Run: ``python bench/bench_scalar.py [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import sys
import time
from collections.abc import Callable

import numpy as np

from handgrad.scalar import MLP, Value, paused_gc, topological_order, vsum

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
    def __init__(self, w, b, nonlin, value_cls):
        self.w = [value_cls(float(wi)) for wi in w]
        self.b = value_cls(float(b))
        self.nonlin = nonlin

    def __call__(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return act.tanh() if self.nonlin else act

    def parameters(self):
        return [*self.w, self.b]


class RefMLP:
    """The reference MLP, built from a handgrad MLP's state dict; any Value class."""

    def __init__(self, state: dict[str, np.ndarray], value_cls: type):
        keys = sorted({k.split(".")[0] for k in state}, key=int)
        self.layers = []
        for i, k in enumerate(keys):
            w, b = state[f"{k}.weight"], state[f"{k}.bias"]
            nonlin = i < len(keys) - 1
            self.layers.append([RefNeuron(w[j], b[j], nonlin, value_cls) for j in range(len(b))])

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


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--repeat", type=int, default=7, help="timed passes per row (the best is reported)"
    )
    ap.add_argument("--n", type=int, default=100, help="number of points")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    X, y = make_data(args.n, args.seed)
    hg = MLP(2, [16, 16, 1], activation="tanh", rng=args.seed)
    state = hg.state_dict()
    rows: list[tuple[str, object, Callable, bool]] = [
        ("reference", RefMLP(state, RefValue), hinge_loss_chained, False),
        ("reference, gc paused", RefMLP(state, RefValue), hinge_loss_chained, True),
        ("handgrad, same graph", RefMLP(state, Value), hinge_loss_chained, True),
        ("handgrad MLP", hg, hinge_loss_vsum, False),
    ]

    # every row must compute the same loss and the same gradients before it is timed
    want_loss, want_grads = None, None
    for name, model, loss_fn, pause in rows:
        _, _, loss = run_pass(model, loss_fn, X, y, pause)
        grads = np.array([p.grad for p in model.parameters()])
        if want_loss is None:
            want_loss, want_grads = loss.data, grads
        elif not (
            math.isclose(loss.data, want_loss, rel_tol=1e-12)
            and np.allclose(grads, want_grads, rtol=1e-9, atol=1e-12)
        ):
            raise SystemExit(f"{name}: loss or gradients differ from the reference")
    del loss

    print(
        f"scalar MLP 2-16-16-1 (tanh), hinge loss, {args.n} points, "
        f"best of {args.repeat} passes; Python {platform.python_version()}, {sys.platform}"
    )
    print(
        f"{'implementation':<22} {'nodes':>7} {'forward ms':>11} {'backward ms':>12} "
        f"{'total ms':>9} {'speed-up':>9}"
    )
    # rows are timed round-robin, so that a burst of load on the machine hits all of them; each
    # row reports its fastest pass (the least disturbed one)
    best: dict[str, tuple[float, float]] = {}
    nodes: dict[str, int] = {}
    for _ in range(args.repeat):
        for name, model, loss_fn, pause in rows:
            # start each pass from a clean heap: the reference's previous graph is made of
            # cycles, and collecting them here, outside the timing, favours the reference
            gc.collect()
            f, b, loss = run_pass(model, loss_fn, X, y, pause)
            nodes[name] = count_nodes(loss)
            del loss
            if name not in best or f + b < sum(best[name]):
                best[name] = (f, b)
    totals = {name: sum(fb) for name, fb in best.items()}
    for name, (f, b) in best.items():
        speedup = totals["reference"] / totals[name]
        print(
            f"{name:<22} {nodes[name]:>7} {1e3 * f:>11.1f} {1e3 * b:>12.1f} "
            f"{1e3 * totals[name]:>9.1f} {speedup:>8.2f}x"
        )
    ratio = totals["reference"] / totals["handgrad MLP"]
    same = totals["reference"] / totals["handgrad, same graph"]
    print(f"ratio reference / handgrad MLP: {ratio:.2f}x  (same graph: {same:.2f}x)")
    return ratio


if __name__ == "__main__":
    main()
