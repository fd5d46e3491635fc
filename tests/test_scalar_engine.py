"""handgrad.scalar.engine: every op against PyTorch and finite differences, random expressions
with reused nodes, deep chains, accumulation and repeated backward, error messages."""

from __future__ import annotations

import gc
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad.scalar import Value, paused_gc, topological_order, vsum

torch = pytest.importorskip("torch")


def _t(x: float):
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


# (name, handgrad function, torch function, points)
UNARY = [
    ("neg", lambda v: -v, lambda t: -t, [-1.5, 0.0, 2.0]),
    ("exp", Value.exp, torch.exp, [-3.0, 0.0, 1.7]),
    ("log", Value.log, torch.log, [1e-3, 0.5, 4.0]),
    ("tanh", Value.tanh, torch.tanh, [-4.0, -0.3, 0.0, 2.5]),
    ("sigmoid", Value.sigmoid, torch.sigmoid, [-800.0, -2.0, 0.0, 3.0, 800.0]),
    ("relu", Value.relu, torch.relu, [-1.0, 0.0, 2.0]),
    (
        "leaky_relu",
        Value.leaky_relu,
        torch.nn.functional.leaky_relu,
        [-2.0, 0.0, 3.0],
    ),
    (
        "leaky_relu(0.2)",
        lambda v: v.leaky_relu(0.2),
        lambda t: torch.nn.functional.leaky_relu(t, 0.2),
        [-2.0, 0.0, 3.0],
    ),
    ("softplus", Value.softplus, torch.nn.functional.softplus, [-50.0, -1.0, 0.0, 1.0, 19.0, 25.0]),
    (
        "softplus(beta=2, threshold=5)",
        lambda v: v.softplus(beta=2.0, threshold=5.0),
        lambda t: torch.nn.functional.softplus(t, beta=2.0, threshold=5.0),
        [-3.0, 0.5, 2.4, 2.6, 10.0],
    ),
    ("pow2", lambda v: v**2, lambda t: t**2, [-1.5, 0.0, 3.0]),
    ("pow3", lambda v: v**3, lambda t: t**3, [-1.5, 0.0, 3.0]),
    ("pow-1", lambda v: v**-1, lambda t: t**-1, [-2.0, 0.5, 3.0]),
    ("pow0.5", lambda v: v**0.5, lambda t: t**0.5, [0.25, 4.0]),
    ("pow0", lambda v: v**0, lambda t: t**0, [-2.0, 0.0, 3.0]),
    ("rpow", lambda v: 2.5**v, lambda t: 2.5**t, [-1.0, 0.0, 2.0]),
    ("add-const", lambda v: v + 2.0, lambda t: t + 2.0, [-1.0, 3.0]),
    ("radd-const", lambda v: 2.0 + v, lambda t: 2.0 + t, [-1.0, 3.0]),
    ("sub-const", lambda v: v - 2.0, lambda t: t - 2.0, [-1.0, 3.0]),
    ("rsub-const", lambda v: 2.0 - v, lambda t: 2.0 - t, [-1.0, 3.0]),
    ("mul-const", lambda v: v * -3.0, lambda t: t * -3.0, [-1.0, 3.0]),
    ("rmul-const", lambda v: -3.0 * v, lambda t: -3.0 * t, [-1.0, 3.0]),
    ("div-const", lambda v: v / 4.0, lambda t: t / 4.0, [-1.0, 3.0]),
    ("rdiv-const", lambda v: 4.0 / v, lambda t: 4.0 / t, [-1.0, 3.0]),
]


@pytest.mark.parametrize(("name", "f", "tf", "points"), UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops_match_torch(name, f, tf, points):
    for x in points:
        v = Value(x)
        out = f(v)
        out.backward()
        t = _t(x)
        tout = tf(t)
        tout.backward()
        assert out.data == pytest.approx(tout.item(), rel=1e-12, abs=1e-300), (name, x)
        assert v.grad == pytest.approx(t.grad.item(), rel=1e-12, abs=1e-300), (name, x)


BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
]


@pytest.mark.parametrize(("name", "f"), BINARY, ids=[b[0] for b in BINARY])
def test_binary_ops_match_torch(name, f):
    for x, y in [(1.5, -2.0), (-0.3, 0.7), (4.0, 4.0)]:
        a, b = Value(x), Value(y)
        out = f(a, b)
        out.backward()
        ta, tb = _t(x), _t(y)
        f(ta, tb).backward()
        assert out.data == pytest.approx(f(x, y), rel=1e-14)
        assert a.grad == pytest.approx(ta.grad.item(), rel=1e-14)
        assert b.grad == pytest.approx(tb.grad.item(), rel=1e-14)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    x=st.floats(-30.0, 30.0, allow_nan=False),
    op=st.sampled_from(["tanh", "sigmoid", "softplus", "exp", "sq", "leaky_relu"]),
)
def test_unary_derivatives_match_finite_differences(x, op):
    def f(v):
        return v * v if op == "sq" else getattr(v, op)()

    # keep the finite-difference step from crossing the kink of leaky_relu, or softplus's
    # switch to the identity at threshold=20 (as in PyTorch, a jump of about 2e-9 there)
    if op == "leaky_relu" and abs(x) < 1e-4:
        x = 0.5
    if op == "softplus" and abs(x - 20.0) < 1e-4:
        x = 19.5
    v = Value(x)
    f(v).backward()
    h = 1e-6 * max(1.0, abs(x))
    numeric = (f(Value(x + h)).data - f(Value(x - h)).data) / (2 * h)
    assert v.grad == pytest.approx(numeric, rel=1e-5, abs=1e-7)


def test_extreme_inputs_stay_finite_as_in_torch():
    for x in (-1000.0, 1000.0):
        v = Value(x)
        s = v.sigmoid()
        s.backward()
        assert math.isfinite(s.data) and math.isfinite(v.grad)
        assert s.data == torch.sigmoid(torch.tensor(x, dtype=torch.float64)).item()
        sp = Value(x).softplus()
        assert sp.data == pytest.approx(
            torch.nn.functional.softplus(torch.tensor(x, dtype=torch.float64)).item()
        )
    assert Value(1000.0).exp().data == math.inf  # as torch.exp


# -- random expressions -----------------------------------------------------------------------


def _random_program(rng: np.random.Generator, n_leaves: int, n_ops: int) -> list[tuple]:
    """A random straight-line program; operands are drawn from every earlier node, so nodes
    are reused (sometimes as both operands of one op)."""
    prog = []
    for k in range(n_ops):
        avail = n_leaves + k
        op = rng.choice(
            [
                "add",
                "sub",
                "mul",
                "div",
                "tanh",
                "sigmoid",
                "exp",
                "log",
                "pow",
                "relu",
                "softplus",
                "const",
            ]
        )
        i = int(rng.integers(avail))
        # favour recent nodes, so the graph gets deep as well as wide
        j = int(rng.integers(max(0, avail - 4), avail)) if rng.random() < 0.7 else i
        c = float(rng.uniform(-2, 2))
        prog.append((str(op), i, j, c))
    return prog


def _run(prog, leaves, lib):
    """Evaluate a program on handgrad Values (lib='hg') or torch tensors (lib='torch')."""
    nodes = list(leaves)
    for op, i, j, c in prog:
        a, b = nodes[i], nodes[j]
        if op == "add":
            r = a + b
        elif op == "sub":
            r = a - b
        elif op == "mul":
            r = a * b
        elif op == "div":
            r = a / (b * b + 1.0)  # keep the denominator away from 0
        elif op == "tanh":
            r = a.tanh()
        elif op == "sigmoid":
            r = a.sigmoid()
        elif op == "exp":
            r = (a.tanh() * 2.0).exp()  # bounded, so nothing overflows
        elif op == "log":
            r = (a * a + 0.5).log()
        elif op == "pow":
            r = (a * a + 1.0) ** 1.5
        elif op == "relu":
            r = a.relu() if lib == "hg" else torch.relu(a)
        elif op == "softplus":
            r = a.softplus() if lib == "hg" else torch.nn.functional.softplus(a)
        else:  # const: reflected ops with a number
            r = c - a * c if c > 0 else c / (a * a + 1.0)
        nodes.append(r)
    # the output sums the last few nodes, so several paths lead back to each leaf
    out = nodes[-1]
    for r in nodes[-4:-1]:
        out = out + r
    return out


@pytest.mark.parametrize("seed", range(25))
def test_random_expressions_match_torch(seed):
    rng = np.random.default_rng(seed)
    n_leaves = 4
    prog = _random_program(rng, n_leaves, n_ops=int(rng.integers(5, 60)))
    xs = rng.uniform(-1.5, 1.5, size=n_leaves)
    leaves = [Value(float(x), label=f"x{k}") for k, x in enumerate(xs)]
    tleaves = [_t(float(x)) for x in xs]
    out = _run(prog, leaves, "hg")
    tout = _run(prog, tleaves, "torch")
    out.backward()
    tout.backward()
    assert out.data == pytest.approx(tout.item(), rel=1e-10, abs=1e-12)
    for v, t in zip(leaves, tleaves, strict=True):
        want = 0.0 if t.grad is None else t.grad.item()  # None: the leaf was not used
        assert v.grad == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_intermediate_gradients_match_torch_retain_grad():
    a, b = Value(0.7), Value(-1.2)
    c = a * b
    d = c.tanh() + a
    e = d * c
    e.backward()
    ta, tb = _t(0.7), _t(-1.2)
    tc = ta * tb
    tc.retain_grad()
    td = tc.tanh() + ta
    td.retain_grad()
    te = td * tc
    te.backward()
    assert c.grad == pytest.approx(tc.grad.item(), rel=1e-14)
    assert d.grad == pytest.approx(td.grad.item(), rel=1e-14)
    assert a.grad == pytest.approx(ta.grad.item(), rel=1e-14)


# -- accumulation, repeated backward ----------------------------------------------------------


def test_node_used_twice_accumulates():
    a = Value(3.0)
    (a * a).backward()
    assert a.grad == 6.0  # d a^2/da = 2a
    b = Value(-2.0)
    (b + b).backward()
    assert b.grad == 2.0
    x = Value(1.5)
    y = x * x * x + x  # x used four times
    y.backward()
    assert x.grad == pytest.approx(3 * 1.5**2 + 1)


def test_backward_again_after_zero_grad_gives_the_same_result():
    x, y = Value(0.3), Value(-0.8)
    z = ((x * y).tanh() + x * x) * y
    z.backward()
    first = (x.grad, y.grad, z.grad)
    z.zero_grad()
    assert (x.grad, y.grad, z.grad) == (0.0, 0.0, 0.0)
    z.backward()
    assert (x.grad, y.grad, z.grad) == first


def test_backward_twice_accumulates_into_leaves_like_torch():
    x = Value(0.3)
    z = (x * x).tanh() * x
    z.backward()
    z.backward()
    tx = _t(0.3)
    tz = (tx * tx).tanh() * tx
    tz.backward(retain_graph=True)
    tz.backward()
    assert x.grad == pytest.approx(tx.grad.item(), rel=1e-14)


def test_backward_gradient_argument_scales():
    x = Value(2.0)
    y = x**3
    y.backward(0.5)
    assert x.grad == pytest.approx(0.5 * 12.0)


# -- deep graphs ------------------------------------------------------------------------------


def test_deep_chain_of_10000_nodes_matches_torch():
    # x is reused at every level, so its gradient accumulates 5000 contributions
    n = 5000  # two ops per level: 10 000 nodes deep
    x = Value(0.4)
    v = x
    tx = _t(0.4)
    tv = tx
    for _ in range(n):
        v = (v * 0.999).tanh() + x * 0.0015
        tv = (tv * 0.999).tanh() + tx * 0.0015
    assert len(topological_order(v)) > 10_000
    v.backward()
    tv.backward()
    assert v.data == pytest.approx(tv.item(), rel=1e-12)
    assert x.grad == pytest.approx(tx.grad.item(), rel=1e-10)


def test_very_deep_chain_needs_no_recursion():
    limit = sys.getrecursionlimit()
    x = Value(1.0)
    v = x
    for _ in range(100_000):
        v = v + 1.0
    v.backward()
    assert x.grad == 1.0
    assert v.data == 100_001.0
    assert sys.getrecursionlimit() == limit
    del v  # freeing a 100 000-deep chain must not crash either


def test_topological_order_puts_inputs_first():
    x = Value(1.0)
    y = x * 2.0
    z = y + x
    w = z * y
    order = topological_order(w)
    assert order[-1] is w
    pos = {v: k for k, v in enumerate(order)}
    for v in order:
        for c in v.children:
            assert pos[c] < pos[v]
    assert len(order) == len(set(order)) == 5  # x, the constant 2.0, y, z, w


def test_vsum_matches_chained_add():
    xs = [Value(float(k) / 3) for k in range(5)]
    s = vsum([*xs, 2.0])
    s.backward()
    assert s.data == pytest.approx(sum(k / 3 for k in range(5)) + 2.0)
    assert [v.grad for v in xs] == [1.0] * 5
    xs[0].grad = 0.0
    t = vsum([xs[0], xs[0]])
    t.backward()
    assert xs[0].grad == 2.0


def test_paused_gc_restores_the_collector_state():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_graph_has_no_reference_cycles():
    # reference counting alone frees a graph, which is why pausing the collector is safe
    def alive() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is Value)

    gc.collect()
    gc.disable()
    try:
        before = alive()
        x = Value(1.0)
        y = (x * x).tanh() + x * 2.0
        y.backward()
        assert alive() == before + 6
        del x, y
        assert alive() == before  # freed without the collector
    finally:
        gc.enable()


def test_introspection_and_repr():
    x = Value(2.0, label="x")
    y = x * 3.0
    assert y.op == "*" and y.children[0] is x and y.local_grads == (3.0, 2.0)
    assert float(y) == 6.0
    assert repr(x) == "Value(data=2, grad=0, label='x')"
    assert +x is x


# -- errors -----------------------------------------------------------------------------------


def test_error_messages():
    with pytest.raises(TypeError, match=r"Value: data must be a real number, got 'a'"):
        Value("a")
    with pytest.raises(TypeError, match=r"Value: data must be a real number, got True"):
        Value(True)
    with pytest.raises(TypeError, match=r"Value: label must be a str or None, got 3"):
        Value(1.0, label=3)
    with pytest.raises(ValueError, match=r"Value.log: input must be > 0, got 0.0"):
        Value(0.0).log()
    with pytest.raises(ValueError, match=r"Value.__pow__: -2.0 \*\* 0.5 is not a real number"):
        Value(-2.0) ** 0.5
    with pytest.raises(ValueError, match=r"Value.__pow__: 0.0 \*\* -1.0 has no finite derivative"):
        Value(0.0) ** -1
    with pytest.raises(TypeError, match=r"Value.__pow__: exponent must be a number, got Value"):
        Value(2.0) ** Value(2.0)
    with pytest.raises(ZeroDivisionError, match=r"Value.__truediv__: division by zero"):
        Value(1.0) / 0.0
    with pytest.raises(TypeError, match=r"Value.__add__: operand must be a Value or a real"):
        Value(1.0) + "2"
    with pytest.raises(TypeError, match=r"Value.__mul__: operand must be a Value or a real"):
        Value(1.0) * [2]
    with pytest.raises(ValueError, match=r"Value.softplus: beta must be > 0, got 0"):
        Value(1.0).softplus(beta=0)
    with pytest.raises(ValueError, match=r"Value.__rpow__: base must be a positive number, got -2"):
        (-2) ** Value(1.0)
    with pytest.raises(ValueError, match=r"vsum: needs at least one value"):
        vsum([])
