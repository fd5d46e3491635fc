"""Drawing a scalar computational graph, and tracing the backward pass step by step.

``draw_graph(value, path)`` draws one box per Value (label, data, grad) and one circle per
operation, with edges in the direction of the forward pass (inputs on the left). It needs no
system binary: it lays the graph out itself and renders it with matplotlib. ``to_dot`` gives
the same graph as Graphviz DOT text, for those who have graphviz.

``trace_backward(value)`` runs ``value.backward()`` while recording every step: which node
passes its gradient to which input, through which local derivative, and the input's gradient
before and after the addition. The trace prints as a table and draws as frames (an animated
GIF, or a grid of frames in one PNG), which shows how a node used twice accumulates.

matplotlib is imported only inside the drawing functions, which draw on a bare ``Figure``
(the Agg canvas): no pyplot, no global backend switch, no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from handgrad.scalar.engine import Value, paused_gc, topological_order

__all__ = ["BackwardStep", "BackwardTrace", "draw_graph", "to_dot", "trace_backward"]

_FORMATS = ("svg", "png", "pdf", "dot")

# geometry, in inches (the axes are drawn in inch units, so text and boxes keep their size)
_FONT = 9.0
_CHAR_W = 0.6 * _FONT / 72.0  # width of one monospace character at _FONT points
_LINE_H = 1.3 * _FONT / 72.0
_BOX_H = 3 * _LINE_H + 0.14  # three lines: name, data, grad
_BOX_PAD = 0.1
_OP_R = 0.2
_DUMMY_H = 0.18  # the slot of a long edge passing through a column
_VGAP = 0.16
_GAP = 0.34
_MARGIN = 0.2
_TITLE_H = 0.3

_LEAF_COLOR = "#e3f0d8"
_VALUE_COLOR = "#dbe8f5"
_OP_COLOR = "#fdf1c9"
_HI_CHILD = "#f9b872"
_HI_NODE = "#9cc3ea"
_HI_EDGE = "#d62728"


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _names(order: Sequence[Value]) -> dict[Value, str]:
    """Each node's label, or ``v<k>`` (k its position in topological order) when it has none."""
    return {v: (v.label if v.label is not None else f"v{k}") for k, v in enumerate(order)}


def _box_lines(name: str, data: float, grad: float) -> tuple[str, str]:
    """The name line and the 'data/grad' lines (numbers right-aligned to each other)."""
    d, g = _fmt(data), _fmt(grad)
    w = max(len(d), len(g))
    return name, f"data {d.rjust(w)}\ngrad {g.rjust(w)}"


def _box_chars(name: str, data: float, grad: float) -> int:
    head, body = _box_lines(name, data, grad)
    return max(len(head), *(len(line) for line in body.split("\n")))


Key = tuple  # ("v", Value) | ("op", Value) | ("d", edge number, column)


class _Layout:
    """A layered drawing: columns from the inputs (left) to the output (right), a circle for
    each op between its inputs and its result, long edges routed through dummy slots in the
    columns they cross, and rows ordered by barycenter sweeps to reduce crossings."""

    def __init__(self, root: Value, max_nodes: int, box_chars: dict[Value, int]) -> None:
        order = topological_order(root)
        if len(order) > max_nodes:
            raise ValueError(
                f"draw_graph: the graph has {len(order)} values, more than max_nodes={max_nodes}; "
                "draw a smaller graph or raise max_nodes"
            )
        self.order = order
        consumers: dict[Value, list[Value]] = {v: [] for v in order}
        level: dict[Value, int] = {}
        for v in order:
            level[v] = 1 + max(level[c] for c in v._prev) if v._prev else 0
            for c in v._prev:
                consumers[c].append(v)
        # a value of level L sits in column 2L, its op in column 2L-1; a leaf sits just left of
        # the first op that reads it (so a constant used late is drawn next to its use)
        col: dict[Key, int] = {}
        for v in order:
            if v._prev:
                col["v", v] = 2 * level[v]
                col["op", v] = 2 * level[v] - 1
            else:
                uses = [2 * level[p] - 1 for p in consumers[v]]
                col["v", v] = max(min(uses) - 1, 0) if uses else 0
        # edges (source, target, dummies, input position); an edge used twice (x + x) appears
        # twice, with positions 0 and 1; an op's edge to its result has position -1
        self.edges: list[tuple[Key, Key, list[Key], int]] = []
        for v in order:
            if v._prev:
                for i, c in enumerate(v._prev):
                    self.edges.append((("v", c), ("op", v), [], i))
                self.edges.append((("op", v), ("v", v), [], -1))
        for e, (a, b, dummies, _) in enumerate(self.edges):
            for c in range(col[a] + 1, col[b]):
                dummies.append(("d", e, c))
                col["d", e, c] = c

        ncols = max(col.values()) + 1
        columns: list[list[Key]] = [[] for _ in range(ncols)]
        for key in col:  # insertion order follows the topological order
            columns[col[key]].append(key)
        preds: dict[Key, list[Key]] = {k: [] for k in col}
        succs: dict[Key, list[Key]] = {k: [] for k in col}
        for a, b, dummies, _ in self.edges:
            chain = [a, *dummies, b]
            for u, w in pairwise(chain):
                succs[u].append(w)
                preds[w].append(u)
        for _ in range(6):
            for neighbours, sweep in ((preds, columns), (succs, columns[::-1])):
                for column in sweep:
                    rank = self._ranks(columns)
                    column.sort(
                        key=lambda k, r=rank, nb=neighbours: (
                            sum(r[n] for n in nb[k]) / len(nb[k]) if nb[k] else r[k]
                        )
                    )

        self.box_w = {v: box_chars[v] * _CHAR_W + 2 * _BOX_PAD for v in order}

        def size(k: Key) -> tuple[float, float]:
            if k[0] == "v":
                return self.box_w[k[1]], _BOX_H
            if k[0] == "op":
                return 2 * _OP_R, 2 * _OP_R
            return 0.0, _DUMMY_H

        col_h = [sum(size(k)[1] for k in c) + _VGAP * (len(c) - 1) for c in columns]
        inner_h = max(col_h)
        x_left = _MARGIN
        self.pos: dict[Key, tuple[float, float]] = {}
        self.col_w: dict[Key, float] = {}
        for c, column in enumerate(columns):
            width = max(size(k)[0] for k in column)
            width = max(width, 2 * _OP_R)
            for k in column:
                self.col_w[k] = width
            y = _MARGIN + (inner_h + col_h[c]) / 2  # top of this column, centred
            for k in column:
                h = size(k)[1]
                self.pos[k] = (x_left + width / 2, y - h / 2)
                y -= h + _VGAP
            x_left += width + _GAP
        self.width = x_left - _GAP + _MARGIN
        self.height = inner_h + 2 * _MARGIN + _TITLE_H

    @staticmethod
    def _ranks(columns: list[list[Key]]) -> dict[Key, float]:
        # a node's slot, centred in its column so that short columns sit in the middle
        rank = {}
        for column in columns:
            off = (len(column) - 1) / 2
            for i, k in enumerate(column):
                rank[k] = i - off
        return rank

    def anchor(self, key: Key, side: str) -> tuple[float, float]:
        """Where an edge leaves (side='out', right) or enters (side='in', left) a node."""
        x, y = self.pos[key]
        if key[0] == "v":
            half = self.box_w[key[1]] / 2
        elif key[0] == "op":
            half = _OP_R
        else:  # a long edge crosses the whole column straight, and bends only between columns
            half = self.col_w[key] / 2
        return (x + half, y) if side == "out" else (x - half, y)


def _edge_path(points: list[tuple[float, float]]) -> Any:
    """A smooth curve through ``points`` with horizontal tangents (cubic Bezier pieces)."""
    from matplotlib.path import Path as MplPath

    verts = [points[0]]
    codes = [MplPath.MOVETO]
    for (x0, y0), (x1, y1) in pairwise(points):
        dx = (x1 - x0) / 2
        verts += [(x0 + dx, y0), (x1 - dx, y1), (x1, y1)]
        codes += [MplPath.CURVE4] * 3
    return MplPath(verts, codes)


def _render(
    ax: Any,
    lay: _Layout,
    names: dict[Value, str],
    grads: dict[Value, float],
    highlight: tuple[Value, int] | None = None,
) -> None:
    """Draw the graph on ``ax`` (inch coordinates); ``highlight=(node, i)`` marks one backward
    step: the edge from input ``i`` of ``node`` into its op, and from the op to ``node``."""
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    ax.set_xlim(0, lay.width)
    ax.set_ylim(0, lay.height)
    ax.set_aspect("equal")
    ax.axis("off")
    hi_node, hi_pos = highlight if highlight is not None else (None, None)
    hi_child = hi_node._prev[hi_pos] if hi_node is not None else None

    # edges first, so boxes are drawn over their ends; copies of one edge (x + x) are spread
    # apart vertically so that both are visible
    count: dict[tuple[Key, Key], int] = {}
    for a, b, _, _ in lay.edges:
        count[a, b] = count.get((a, b), 0) + 1
    seen: dict[tuple[Key, Key], int] = {}
    for a, b, dummies, pos in lay.edges:
        i = seen.get((a, b), 0)
        seen[a, b] = i + 1
        off = (i - (count[a, b] - 1) / 2) * 0.12
        (xa, ya), (xb, yb) = lay.anchor(a, "out"), lay.anchor(b, "in")
        points = [(xa, ya + off)]
        for d in dummies:
            points += [lay.anchor(d, "in"), lay.anchor(d, "out")]
        points.append((xb, yb + off))
        on_path = highlight is not None and (
            (b == ("op", hi_node) and pos == hi_pos) or a == ("op", hi_node)
        )
        ax.add_patch(
            FancyArrowPatch(
                path=_edge_path(points),
                arrowstyle="-|>",
                mutation_scale=9,
                color=_HI_EDGE if on_path else "#555555",
                lw=2.0 if on_path else 0.9,
                zorder=3 if on_path else 1,
            )
        )
    for key, (x, y) in lay.pos.items():
        kind = key[0]
        if kind == "d":
            continue
        v = key[1]
        if kind == "op":
            ax.add_patch(Circle((x, y), _OP_R, fc=_OP_COLOR, ec="#8a7a3a", lw=0.8, zorder=4))
            op = v._op if len(v._op) <= 5 else v._op[:4] + "."
            size = _FONT if len(op) <= 2 else _FONT - 2
            ax.text(x, y, op, ha="center", va="center", fontsize=size, zorder=5)
            continue
        w = lay.box_w[v]
        if v is hi_child:
            fc = _HI_CHILD
        elif v is hi_node:
            fc = _HI_NODE
        else:
            fc = _LEAF_COLOR if not v._prev else _VALUE_COLOR
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2 + 0.04, y - _BOX_H / 2 + 0.04),
                w - 0.08,
                _BOX_H - 0.08,
                boxstyle="round,pad=0.04",
                fc=fc,
                ec="#34495e",
                lw=0.8,
                zorder=4,
            )
        )
        head, body = _box_lines(names[v], v.data, grads[v])
        ax.text(
            x,
            y + _LINE_H,
            head,
            ha="center",
            va="center",
            fontsize=_FONT,
            family="monospace",
            weight="bold",
            zorder=5,
        )
        ax.text(
            x,
            y - _LINE_H / 2,
            body,
            ha="center",
            va="center",
            fontsize=_FONT,
            family="monospace",
            multialignment="left",
            linespacing=1.3,
            zorder=5,
        )


def _resolve_format(path: Path, format: str | None, where: str) -> str:
    fmt = format if format is not None else (path.suffix[1:].lower() or "svg")
    if fmt not in _FORMATS:
        raise ValueError(f"{where}: format must be one of {list(_FORMATS)}, got {fmt!r}")
    return fmt


def draw_graph(
    value: Value,
    path: str | Path,
    format: str | None = None,
    *,
    title: str | None = None,
    max_nodes: int = 300,
    dpi: int = 150,
) -> Path:
    """Draw the computational graph of ``value`` into ``path`` and return the path.

    One box per Value (label, data, grad; unlabelled values are called ``v<k>``), one circle
    per operation, edges in the direction of the forward pass. Leaves are green, computed values
    blue.

    Args:
        value: the output whose graph is drawn.
        path: the file to write.
        format: 'svg', 'png', 'pdf' (matplotlib) or 'dot' (Graphviz text); by default taken
            from the suffix of ``path`` ('svg' if it has none).
        title: an optional title above the graph.
        max_nodes: refuse graphs with more Values than this (a clear error instead of an
            unreadable picture).
        dpi: resolution of a PNG.
    """
    if not isinstance(value, Value):
        raise TypeError(f"draw_graph: value must be a Value, got {type(value).__name__}")
    path = Path(path)
    fmt = _resolve_format(path, format, "draw_graph")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "dot":
        path.write_text(to_dot(value, max_nodes=max_nodes))
        return path
    order = topological_order(value)
    names = _names(order)
    grads = {v: v.grad for v in order}
    chars = {v: _box_chars(names[v], v.data, v.grad) for v in order}
    lay = _Layout(value, max_nodes, chars)
    _save_figure(lay, names, grads, None, title, path, fmt, dpi)
    return path


def _save_figure(lay, names, grads, highlight, title, path, fmt, dpi) -> None:
    # a bare Figure on the Agg canvas: no pyplot, no global backend switch
    from matplotlib.figure import Figure

    fig = Figure(figsize=(lay.width, lay.height))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    _render(ax, lay, names, grads, highlight)
    if title:
        ax.text(_MARGIN, lay.height - 0.1, title, fontsize=_FONT + 1, va="top")
    fig.savefig(path, format=fmt, dpi=dpi)


def to_dot(value: Value, *, max_nodes: int = 300) -> str:
    """The graph of ``value`` as Graphviz DOT text (render with ``dot -Tsvg``)."""
    order = topological_order(value)
    if len(order) > max_nodes:
        raise ValueError(
            f"to_dot: the graph has {len(order)} values, more than max_nodes={max_nodes}"
        )
    names = _names(order)
    index = {v: k for k, v in enumerate(order)}

    def esc(s: str) -> str:
        return (
            s.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("{", "\\{")
            .replace("}", "\\}")
            .replace("<", "\\<")
            .replace(">", "\\>")
            .replace("|", "\\|")
        )

    lines = ["digraph G {", "  rankdir=LR;", '  node [fontname="monospace", fontsize=10];']
    for v in order:
        k = index[v]
        fill = _LEAF_COLOR if not v._prev else _VALUE_COLOR
        label = f"{{ {esc(names[v])} | data {_fmt(v.data)} | grad {_fmt(v.grad)} }}"
        lines.append(
            f'  v{k} [shape=record, style="rounded,filled", fillcolor="{fill}", label="{label}"];'
        )
        if v._prev:
            lines.append(
                f'  op{k} [shape=circle, style=filled, fillcolor="{_OP_COLOR}", '
                f'label="{esc(v._op)}"];'
            )
            for c in v._prev:
                lines.append(f"  v{index[c]} -> op{k};")
            lines.append(f"  op{k} -> v{k};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# backward trace
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackwardStep:
    """One addition of the backward pass: ``child.grad += local * upstream``.

    Attributes:
        index: 1, 2, ... in the order the additions happen.
        node: the Value whose gradient is passed down (the output of ``op``).
        op: the operation that produced ``node``.
        child: the input of ``op`` that receives the gradient.
        position: which input of ``op`` ``child`` is (0, 1, ...; x + x has x at 0 and 1).
        local: d node / d child, computed in the forward pass.
        upstream: d root / d node (``node.grad``, already complete at this step).
        before: ``child.grad`` before the addition.
        after: ``child.grad`` after it (``before + local * upstream``).
    """

    index: int
    node: Value
    op: str
    child: Value
    position: int
    local: float
    upstream: float
    before: float
    after: float


@dataclass
class BackwardTrace:
    """The steps of one backward pass, printable as a table and drawable as frames."""

    root: Value
    order: list[Value]
    names: dict[Value, str]
    initial: dict[Value, float]
    steps: list[BackwardStep] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.steps)

    def rows(self) -> list[list[str]]:
        """The table: step, node, op, input, local, upstream, grad before, grad after."""
        return [
            [
                str(s.index),
                self.names[s.node],
                s.op,
                self.names[s.child],
                f"{s.local:.6g}",
                f"{s.upstream:.6g}",
                f"{s.before:.6g}",
                f"{s.after:.6g}",
            ]
            for s in self.steps
        ]

    _HEADER = ("step", "node", "op", "input", "local d", "upstream", "grad before", "grad after")

    def __str__(self) -> str:
        rows = [list(self._HEADER), *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._HEADER))]
        lines = [
            f"backward of {self.names[self.root]}: {self.names[self.root]}.grad = "
            f"{self.initial[self.root]:.6g}; each step adds local d * upstream into the input"
        ]
        for j, r in enumerate(rows):
            lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The table as GitHub markdown."""
        lines = [
            "| " + " | ".join(self._HEADER) + " |",
            "|" + "|".join("---:" if i in (0, 4, 5, 6, 7) else "---" for i in range(8)) + "|",
        ]
        for r in self.rows():
            lines.append("| " + " | ".join(r) + " |")
        return "\n".join(lines)

    def grads_after(self, k: int) -> dict[Value, float]:
        """Every node's gradient after the first ``k`` steps (k=0: just the seed)."""
        if not 0 <= k <= len(self.steps):
            raise ValueError(
                f"BackwardTrace.grads_after: k must be in [0, {len(self.steps)}], got {k}"
            )
        grads = dict(self.initial)
        for s in self.steps[:k]:
            grads[s.child] = s.after
        return grads

    def draw(
        self,
        path: str | Path,
        *,
        frames: Sequence[int] | None = None,
        ncols: int = 3,
        fps: float = 1.0,
        dpi: int = 110,
    ) -> Path:
        """Draw the backward pass as frames, one per step, and return the path.

        A '.gif' path gives an animated GIF; a '.png' path gives one image with the frames in
        a grid of ``ncols`` columns. Frame k shows every gradient after k steps, with the edge
        that step follows in red, its input in orange and its node in blue.

        Args:
            frames: which frames to draw (0 = before any step, k = after step k); all by
                default.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".gif", ".png"):
            raise ValueError(f"BackwardTrace.draw: path must end in .gif or .png, got {path}")
        ks = list(range(len(self.steps) + 1)) if frames is None else list(frames)
        for k in ks:
            if not 0 <= k <= len(self.steps):
                raise ValueError(
                    f"BackwardTrace.draw: frame {k} out of range [0, {len(self.steps)}]"
                )
        # box widths fit the widest text any frame will show
        chars = {v: 0 for v in self.order}
        for k in ks:
            g = self.grads_after(k)
            for v in self.order:
                chars[v] = max(chars[v], _box_chars(self.names[v], v.data, g[v]))
        lay = _Layout(self.root, 10**9, chars)
        path.parent.mkdir(parents=True, exist_ok=True)

        def caption(k: int) -> str:
            if k == 0:
                return f"start: d{self.names[self.root]}/d{self.names[self.root]} = 1"
            s = self.steps[k - 1]
            return (
                f"step {k}: grad({self.names[s.child]}) += {s.local:.4g} x {s.upstream:.4g}"
                f"   ({s.before:.4g} -> {s.after:.4g})"
            )

        def paint(ax: Any, k: int) -> None:
            s = self.steps[k - 1] if k > 0 else None
            _render(
                ax,
                lay,
                self.names,
                self.grads_after(k),
                (s.node, s.position) if s is not None else None,
            )
            ax.text(
                _MARGIN,
                lay.height - 0.1,
                caption(k),
                fontsize=_FONT + 1,
                va="top",
                family="monospace",
            )

        if suffix == ".gif":
            # each frame rendered on the Agg canvas, then assembled by Pillow (a dependency of
            # matplotlib), so no external program is needed
            from PIL import Image

            images = []
            for k in ks:
                fig = Figure(figsize=(lay.width, lay.height), dpi=dpi)
                canvas = FigureCanvasAgg(fig)
                paint(fig.add_axes((0.0, 0.0, 1.0, 1.0)), k)
                canvas.draw()
                rgba = Image.frombuffer(
                    "RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1
                )
                images.append(rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE))
            images[0].save(
                path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
            )
            return path

        ncols = max(1, min(ncols, len(ks)))
        nrows = -(-len(ks) // ncols)
        fig = Figure(figsize=(lay.width * ncols, lay.height * nrows))
        for i, k in enumerate(ks):
            r, c = divmod(i, ncols)
            paint(fig.add_axes((c / ncols, 1 - (r + 1) / nrows, 1 / ncols, 1 / nrows)), k)
        fig.savefig(path, dpi=dpi)
        return path


def trace_backward(value: Value, gradient: float = 1.0) -> BackwardTrace:
    """Run ``value.backward(gradient)`` and record each step.

    The gradients it leaves are exactly those of ``value.backward(gradient)`` (intermediate
    nodes reset, leaves accumulate). The steps follow the reverse topological order: a node
    passes its gradient down only once every use of it has been counted.

    Returns:
        a BackwardTrace; ``print(trace)`` shows the table, ``trace.draw('t.gif')`` the frames.
    """
    if not isinstance(value, Value):
        raise TypeError(f"trace_backward: value must be a Value, got {type(value).__name__}")
    with paused_gc():
        order = topological_order(value)
        for v in order:
            if v._prev:
                v.grad = 0.0
        value.grad += float(gradient)
        trace = BackwardTrace(value, order, _names(order), {v: v.grad for v in order})
        n = 0
        for node in reversed(order):
            g = node.grad
            for i, (child, d) in enumerate(zip(node._prev, node._local, strict=True)):
                before = child.grad
                child.grad = before + d * g
                n += 1
                trace.steps.append(
                    BackwardStep(n, node, node._op, child, i, d, g, before, child.grad)
                )
    return trace
