"""handgrad.scalar.graph: the drawing (files, DOT text, edge directions) and the backward trace
(every step, accumulation on a node used twice, frames)."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from handgrad.scalar import Value, topological_order
from handgrad.scalar.graph import _Layout, draw_graph, to_dot, trace_backward


def _graph():
    """b = (x + x) * (x * y): x is used three times, once twice by the same op."""
    x, y = Value(3.0, "x"), Value(-2.0, "y")
    s = x + x
    s.label = "s"
    p = x * y
    b = s * p
    b.label = "b"
    return x, y, s, p, b


def test_to_dot_has_one_box_per_value_and_one_node_per_op():
    *_, b = _graph()
    b.backward()
    dot = to_dot(b)
    assert dot.startswith("digraph G {") and dot.rstrip().endswith("}")
    boxes = re.findall(r"^  v\d+ \[shape=record", dot, flags=re.M)
    ops = re.findall(r"^  op\d+ \[shape=circle", dot, flags=re.M)
    edges = re.findall(r"^  \w+ -> \w+;", dot, flags=re.M)
    assert len(boxes) == 5 and len(ops) == 3
    # 2 + 2 + 2 inputs into the ops, and 3 op -> result edges
    assert len(edges) == 9
    assert dot.count("v0 -> op2;") == 2  # x + x: two edges from x
    assert "{ x | data 3.0000 | grad -24.0000 }" in dot  # d(2 x^2 y)/dx = 4xy
    assert 'label="*"' in dot and 'label="+"' in dot


def test_gradients_in_the_drawing_are_the_closed_form():
    x, y, _, _, b = _graph()
    b.backward()
    # b = 2x * xy = 2 x^2 y: db/dx = 4xy = -24, db/dy = 2x^2 = 18
    assert x.grad == -24.0 and y.grad == 18.0


@pytest.mark.parametrize("fmt", ["svg", "png", "dot"])
def test_draw_graph_writes_each_format(tmp_path, fmt):
    *_, b = _graph()
    b.backward()
    path = draw_graph(b, tmp_path / f"g.{fmt}")
    data = path.read_bytes()
    if fmt == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    elif fmt == "svg":
        text = data.decode()
        assert "<svg" in text
    else:
        assert data.decode() == to_dot(b)


def test_draw_graph_format_argument_wins_over_suffix(tmp_path):
    *_, b = _graph()
    path = draw_graph(b, tmp_path / "graph", format="png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    path = draw_graph(b, tmp_path / "nosuffix")
    assert b"<svg" in path.read_bytes()


def test_edges_point_in_the_direction_of_the_forward_pass():
    x, *_, b = _graph()
    c = (b * 2.0 + x).tanh()  # a constant and a long edge from x
    lay = _Layout(c, 300, {v: 20 for v in topological_order(c)})  # 20 characters per box
    for a, t, dummies, _ in lay.edges:
        xs = [lay.anchor(a, "out")[0]]
        for d in dummies:
            xs += [lay.anchor(d, "in")[0], lay.anchor(d, "out")[0]]
        xs.append(lay.anchor(t, "in")[0])
        assert all(u <= w for u, w in pairwise(xs)), (a, t)
        assert xs[0] < xs[-1]


def test_draw_graph_errors(tmp_path):
    *_, b = _graph()
    with pytest.raises(ValueError, match=r"draw_graph: format must be one of .*got 'jpg'"):
        draw_graph(b, tmp_path / "g.jpg")
    with pytest.raises(
        ValueError,
        match=r"draw_graph: the graph has 5 values, more than "
        r"max_nodes=3",
    ):
        draw_graph(b, tmp_path / "g.png", max_nodes=3)
    with pytest.raises(TypeError, match=r"draw_graph: value must be a Value, got float"):
        draw_graph(1.0, tmp_path / "g.png")
    with pytest.raises(TypeError, match=r"trace_backward: value must be a Value, got int"):
        trace_backward(3)


# -- backward trace ---------------------------------------------------------------------------


def test_trace_records_every_step_and_leaves_the_gradients_of_backward():
    x, y, s, p, b = _graph()
    trace = trace_backward(b)
    x2, y2, s2, p2, b2 = _graph()
    b2.backward()
    assert (x.grad, y.grad, s.grad, p.grad) == (x2.grad, y2.grad, s2.grad, p2.grad)
    assert len(trace) == 6  # one step per (op, input) edge
    for step in trace.steps:
        assert step.after == step.before + step.local * step.upstream
        # the upstream gradient is already complete when a node passes it down
        assert step.upstream == step.node.grad
        assert step.child is step.node.children[step.position]
        assert step.local == step.node.local_grads[step.position]
    assert trace.grads_after(len(trace)) == {v: v.grad for v in trace.order}


def test_trace_shows_accumulation_on_a_node_used_twice():
    x, _, s, _, b = _graph()
    trace = trace_backward(b)
    into_x = [st for st in trace.steps if st.child is x]
    assert len(into_x) == 3  # twice from x + x, once from x * y
    # p = x*y was made after s = x + x, so it passes its gradient first: grad(p) = s = 6 gives
    # x the contribution y * 6 = -12; then grad(s) = p = -6 arrives twice through x + x
    assert [(st.before, st.after) for st in into_x] == [
        (0.0, -12.0),
        (-12.0, -18.0),
        (-18.0, -24.0),
    ]
    assert [st.position for st in into_x if st.node is s] == [0, 1]
    assert x.grad == -24.0


def test_trace_table_and_markdown():
    *_, b = _graph()
    trace = trace_backward(b)
    text = str(trace)
    lines = text.splitlines()
    assert lines[0].startswith("backward of b: b.grad = 1")
    assert lines[1].split() == [
        "step",
        "node",
        "op",
        "input",
        "local",
        "d",
        "upstream",
        "grad",
        "before",
        "grad",
        "after",
    ]
    assert len(lines) == 3 + len(trace)
    assert lines[3].split()[:4] == ["1", "b", "*", "s"]
    md = trace.to_markdown().splitlines()
    assert len(md) == 2 + len(trace) and md[2].startswith("| 1 | b | * | s |")


def test_trace_frames_gif_and_png(tmp_path):
    from PIL import Image

    *_, b = _graph()
    trace = trace_backward(b)
    gif = trace.draw(tmp_path / "t.gif")
    with Image.open(gif) as im:
        assert im.n_frames == len(trace) + 1
    png = trace.draw(tmp_path / "t.png", frames=[0, 3, 6], ncols=3)
    with Image.open(png) as im:
        w, h = im.size
        assert w > 2.5 * h  # three frames side by side
    with pytest.raises(ValueError, match=r"BackwardTrace.draw: path must end in .gif or .png"):
        trace.draw(tmp_path / "t.svg")
    with pytest.raises(ValueError, match=r"BackwardTrace.draw: frame 7 out of range \[0, 6\]"):
        trace.draw(tmp_path / "t.png", frames=[7])
    with pytest.raises(ValueError, match=r"grads_after: k must be in \[0, 6\], got -1"):
        trace.grads_after(-1)
