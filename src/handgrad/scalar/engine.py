"""A scalar autograd engine: ``Value`` and a backward pass in reverse topological order.

Every operation creates one ``Value`` that records its inputs (``_prev``) and the local
derivative of its output with respect to each input (``_local``), computed during the forward
pass. ``backward()`` then applies the chain rule from the output down, adding
``local * grad`` into each input; a node used twice receives two contributions.

Why it is fast for a pure-Python engine: ``__slots__`` (no per-object dict), no closure per
node (the local derivatives are plain floats), an iterative traversal (no recursion limit), and
the cyclic garbage collector paused during ``backward`` (and, with ``paused_gc``, while a
batch's graph is built): the graph holds no reference cycles, so reference counting alone frees
it, and the collector's periodic rescans of a growing graph are pure overhead.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import count
from numbers import Real
from operator import attrgetter

__all__ = ["Value", "make_node", "paused_gc", "sum_nodes", "topological_order", "vsum"]

# Creation order is a topological order: a node is always created after its inputs.
_next_id = count().__next__
_new = object.__new__


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector inside the block (restored on exit).

    Building a graph allocates one object per operation; each allocation counts towards the
    collector's thresholds, and its periodic full collections rescan the whole (cycle-free)
    graph. Pausing it is safe because reference counting frees the graph.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def make_node(data: float, prev: tuple, local: tuple, op: str) -> Value:
    """A result Value without the checks of ``Value.__init__``: the fast path for building an
    operation (``prev`` its input Values, ``local`` d out / d input for each); inputs are
    trusted, so only code that has already checked them (the engine, ``scalar.nn``) uses it."""
    v = _new(Value)
    v.data = data
    v.grad = 0.0
    v.label = None
    v._prev = prev
    v._local = local
    v._op = op
    v._id = _next_id()
    return v


def _as_value(x: object, where: str) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, Real):
        return make_node(float(x), (), (), "")
    raise TypeError(f"Value.{where}: operand must be a Value or a real number, got {x!r}")


class Value:
    """A scalar that remembers how it was computed.

    Args:
        data: a real number (stored as a Python float).
        label: an optional name, shown by ``repr``, ``draw_graph`` and ``trace_backward``.

    Attributes:
        data: the value (float).
        grad: d(root)/d(self) after ``root.backward()`` (float, 0.0 until then).

    Operators ``+ - * /``, ``**`` with a number exponent, unary ``-``, and their reflected forms
    with numbers (``2 * v``, ``1 - v``, ``1 / v``) build new Values.
    """

    __slots__ = ("_id", "_local", "_op", "_prev", "data", "grad", "label")

    def __init__(self, data: float, label: str | None = None) -> None:
        if isinstance(data, Value) or isinstance(data, bool) or not isinstance(data, Real):
            raise TypeError(f"Value: data must be a real number, got {data!r}")
        if label is not None and not isinstance(label, str):
            raise TypeError(f"Value: label must be a str or None, got {label!r}")
        self.data: float = float(data)
        self.grad: float = 0.0
        self.label: str | None = label
        self._prev: tuple[Value, ...] = ()
        self._local: tuple[float, ...] = ()
        self._op: str = ""
        self._id: int = _next_id()

    # -- arithmetic: each op stores d out / d input for every input ----------------------------
    def __add__(self, other: Value | float) -> Value:
        if not isinstance(other, Value):
            other = _as_value(other, "__add__")
        return make_node(self.data + other.data, (self, other), (1.0, 1.0), "+")

    __radd__ = __add__

    def __sub__(self, other: Value | float) -> Value:
        if not isinstance(other, Value):
            other = _as_value(other, "__sub__")
        return make_node(self.data - other.data, (self, other), (1.0, -1.0), "-")

    def __rsub__(self, other: float) -> Value:
        return _as_value(other, "__rsub__") - self

    def __mul__(self, other: Value | float) -> Value:
        if not isinstance(other, Value):
            other = _as_value(other, "__mul__")
        # d(ab)/da = b, d(ab)/db = a
        return make_node(self.data * other.data, (self, other), (other.data, self.data), "*")

    __rmul__ = __mul__

    def __truediv__(self, other: Value | float) -> Value:
        if not isinstance(other, Value):
            other = _as_value(other, "__truediv__")
        a, b = self.data, other.data
        if b == 0.0:
            raise ZeroDivisionError(f"Value.__truediv__: division by zero ({a!r} / 0.0)")
        # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
        return make_node(a / b, (self, other), (1.0 / b, -a / (b * b)), "/")

    def __rtruediv__(self, other: float) -> Value:
        return _as_value(other, "__rtruediv__") / self

    def __neg__(self) -> Value:
        return make_node(-self.data, (self,), (-1.0,), "neg")

    def __pos__(self) -> Value:
        return self

    def __pow__(self, exponent: float) -> Value:
        if isinstance(exponent, Value) or isinstance(exponent, bool):
            raise TypeError(
                f"Value.__pow__: exponent must be a number, got {exponent!r}; "
                "for a Value exponent use (x.log() * y).exp()"
            )
        if not isinstance(exponent, Real):
            raise TypeError(f"Value.__pow__: exponent must be a number, got {exponent!r}")
        p = float(exponent)
        x = self.data
        if x < 0.0 and not p.is_integer():
            raise ValueError(f"Value.__pow__: {x!r} ** {p!r} is not a real number")
        if x == 0.0 and p < 1.0 and p != 0.0:
            raise ValueError(f"Value.__pow__: 0.0 ** {p!r} has no finite derivative")
        # d x^p / dx = p x^(p-1)
        local = 0.0 if p == 0.0 else p * x ** (p - 1.0)
        return make_node(x**p, (self,), (local,), f"**{p:g}")

    def __rpow__(self, base: float) -> Value:
        if isinstance(base, bool) or not isinstance(base, Real) or base <= 0:
            raise ValueError(f"Value.__rpow__: base must be a positive number, got {base!r}")
        # c^x = exp(x ln c), so d c^x / dx = c^x ln c
        out = float(base) ** self.data
        return make_node(out, (self,), (out * math.log(base),), f"{float(base):g}**")

    # -- functions ------------------------------------------------------------------------------
    def exp(self) -> Value:
        try:
            e = math.exp(self.data)
        except OverflowError:  # as torch: exp of a large number is inf
            e = math.inf
        return make_node(e, (self,), (e,), "exp")  # d e^x / dx = e^x

    def log(self) -> Value:
        x = self.data
        if x <= 0.0:
            raise ValueError(f"Value.log: input must be > 0, got {x!r}")
        return make_node(math.log(x), (self,), (1.0 / x,), "log")

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return make_node(t, (self,), (1.0 - t * t,), "tanh")  # written from the output

    def sigmoid(self) -> Value:
        x = self.data
        # two forms so that exp never overflows
        if x >= 0.0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        return make_node(s, (self,), (s * (1.0 - s),), "sigmoid")

    def relu(self) -> Value:
        x = self.data
        # the derivative at 0 is taken as 0, as in PyTorch
        if x > 0.0:
            return make_node(x, (self,), (1.0,), "relu")
        return make_node(0.0, (self,), (0.0,), "relu")

    def leaky_relu(self, negative_slope: float = 0.01) -> Value:
        x = self.data
        # at 0 the slope is negative_slope, as in PyTorch
        if x > 0.0:
            return make_node(x, (self,), (1.0,), "leaky_relu")
        return make_node(negative_slope * x, (self,), (float(negative_slope),), "leaky_relu")

    def softplus(self, beta: float = 1.0, threshold: float = 20.0) -> Value:
        """log(1 + exp(beta x)) / beta; linear (x) where beta x > threshold, as in PyTorch."""
        if isinstance(beta, bool) or not isinstance(beta, Real) or beta <= 0:
            raise ValueError(f"Value.softplus: beta must be > 0, got {beta!r}")
        bx = beta * self.data
        if bx > threshold:
            return make_node(self.data, (self,), (1.0,), "softplus")
        # log1p(exp(bx)) written as max(bx, 0) + log1p(exp(-|bx|)) so exp never overflows
        out = (max(bx, 0.0) + math.log1p(math.exp(-abs(bx)))) / beta
        if bx >= 0.0:
            s = 1.0 / (1.0 + math.exp(-bx))
        else:
            e = math.exp(bx)
            s = e / (1.0 + e)
        return make_node(out, (self,), (s,), "softplus")  # d/dx = sigmoid(beta x)

    # -- backward -------------------------------------------------------------------------------
    def backward(self, gradient: float = 1.0) -> None:
        """Fill ``grad`` of every node this Value depends on with d(self)/d(node).

        Visits the graph in reverse topological order, iteratively (no recursion limit). As in
        PyTorch, leaves (Values made by the user, parameters) *accumulate* across calls until
        ``zero_grad``; intermediate nodes are reset at the start of each call, so calling
        ``backward`` again after ``zero_grad`` gives the same gradients.

        Args:
            gradient: d(loss)/d(self), 1.0 by default.
        """
        with paused_gc():
            order = topological_order(self)
            for node in order:
                if node._prev:
                    node.grad = 0.0
            self.grad += float(gradient)
            for node in reversed(order):
                # chain rule: each input gets local derivative * this node's (complete) grad;
                # binary and unary ops are unrolled, as they are nearly every node
                prev = node._prev
                n = len(prev)
                if n == 2:
                    g = node.grad
                    a, b = prev
                    da, db = node._local
                    a.grad += da * g
                    b.grad += db * g
                elif n == 1:
                    prev[0].grad += node._local[0] * node.grad
                elif n:
                    g = node.grad
                    # equal lengths by construction; strict=True would cost time at every node
                    for child, d in zip(prev, node._local):  # noqa: B905
                        child.grad += d * g

    def zero_grad(self) -> None:
        """Set ``grad`` to 0.0 for this Value and every node it depends on."""
        for node in topological_order(self):
            node.grad = 0.0

    # -- introspection --------------------------------------------------------------------------
    @property
    def op(self) -> str:
        """The operation that produced this Value ('' for a leaf)."""
        return self._op

    @property
    def children(self) -> tuple[Value, ...]:
        """The inputs of the operation (a Value used twice appears twice)."""
        return self._prev

    @property
    def local_grads(self) -> tuple[float, ...]:
        """d(self)/d(input) for each input in ``children``, as computed in the forward pass."""
        return self._local

    def __float__(self) -> float:
        return self.data

    def __repr__(self) -> str:
        name = f", label={self.label!r}" if self.label is not None else ""
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g}{name})"


def topological_order(root: Value) -> list[Value]:
    """Every node ``root`` depends on, inputs before outputs (``root`` last), each once.

    Iterative: collects the reachable nodes with an explicit stack, then sorts them by creation
    order, which is a topological order because a node is always created after its inputs.
    """
    seen = {root}
    stack = [root]
    add = seen.add
    push = stack.append
    pop = stack.pop
    while stack:
        for child in pop()._prev:
            if child not in seen:
                add(child)
                push(child)
    return sorted(seen, key=_by_id)


_by_id = attrgetter("_id")


def vsum(values: Iterable[Value | float]) -> Value:
    """The sum of several Values as one node (one local derivative of 1 per input).

    Equivalent to chaining ``+`` but builds a single node instead of ``len(values) - 1``.
    """
    items = [v if isinstance(v, Value) else _as_value(v, "vsum") for v in values]
    if not items:
        raise ValueError("vsum: needs at least one value, got an empty sequence")
    return sum_nodes(items)


def sum_nodes(items: list[Value]) -> Value:
    """:func:`vsum` without the checks: ``items`` must be a non-empty list of Values."""
    n = len(items)
    return make_node(sum([v.data for v in items]), tuple(items), (1.0,) * n, "sum")
