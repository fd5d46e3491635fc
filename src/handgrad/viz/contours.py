"""Level sets of a 2-D map and how many straight edges they have.

A decision boundary is the 0.5 contour of a probability map (the 0 contour of the logit). This
module extracts it as polylines (matplotlib's contour generator, contourpy, imported only when
called) and measures its shape with NumPy alone:

- :func:`simplify` is the Ramer-Douglas-Peucker simplification: the fewest of the polyline's own
  points such that every point lies within ``tol`` of the simplified line.
- :func:`count_edges` simplifies with a tolerance relative to the contour's size and says how
  many straight edges the boundary has, and whether those edges really are straight (a polygon)
  or the simplification is only approximating a curve.
- :func:`count_pieces` counts the linear pieces of a piecewise-linear boundary exactly, from the
  gradient of the function at the contour's points (a ReLU network is linear in each region of
  its activation pattern, so the boundary bends only where that gradient changes direction).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EdgeCount",
    "Polyline",
    "count_edges",
    "count_pieces",
    "curved_fraction",
    "level_lines",
    "simplify",
]


@dataclass
class Polyline:
    """A contour line: ``points`` (M, 2) in order; ``closed`` if it is a loop (the last point
    is then not repeated); ``cell``: the spacing of the grid it was traced on."""

    points: np.ndarray
    closed: bool
    cell: float = 0.0  # the spacing of the grid it was traced on

    @property
    def length(self) -> float:
        p = np.vstack([self.points, self.points[:1]]) if self.closed else self.points
        return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())


def level_lines(
    values: np.ndarray, extent: tuple[float, float, float, float], level: float = 0.0
) -> list[Polyline]:
    """The ``level`` contour of ``values`` (H, W) sampled on a regular grid over ``extent``
    (``x_min, x_max, y_min, y_max``; row 0 is ``y_min``), longest line first.

    Lines that leave the grid are open; loops are closed. Repeated consecutive points (where
    the contour passes through a grid node) are dropped.
    """
    from contourpy import LineType, contour_generator

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or min(values.shape) < 2:
        raise ValueError(f"level_lines: expected values (H, W) with H, W >= 2, got {values.shape}")
    x0, x1, y0, y1 = extent
    xs = np.linspace(x0, x1, values.shape[1])
    ys = np.linspace(y0, y1, values.shape[0])
    gen = contour_generator(xs, ys, values, line_type=LineType.Separate)
    cell = max((x1 - x0) / (values.shape[1] - 1), (y1 - y0) / (values.shape[0] - 1))
    lines = []
    for pts in gen.lines(level):
        pts = np.asarray(pts, dtype=np.float64)
        keep = np.ones(len(pts), dtype=bool)
        keep[1:] = np.any(np.diff(pts, axis=0) != 0, axis=1)
        pts = pts[keep]
        closed = len(pts) > 2 and bool(np.all(pts[0] == pts[-1]))
        if closed:
            pts = pts[:-1]
        if len(pts) >= 2:
            lines.append(Polyline(pts, closed, float(cell)))
    lines.sort(key=lambda line: -line.length)
    return lines


def _distances(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each point (M, 2) from the segment a-b (to a itself when a == b)."""
    ab = b - a
    denom = float(ab @ ab)
    if denom == 0.0:
        return np.linalg.norm(points - a, axis=1)
    t = np.clip((points - a) @ ab / denom, 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


def _rdp_open(points: np.ndarray, tol: float) -> list[int]:
    """Ramer-Douglas-Peucker on an open polyline: indices kept, first and last included."""
    keep = {0, len(points) - 1}
    stack = [(0, len(points) - 1)]
    while stack:  # iterative, so a long contour cannot exhaust the recursion limit
        i, j = stack.pop()
        if j - i < 2:
            continue
        d = _distances(points[i + 1 : j], points[i], points[j])
        k = int(np.argmax(d))
        if d[k] > tol:
            k += i + 1
            keep.add(k)
            stack += [(i, k), (k, j)]
    return sorted(keep)


def simplify(points: np.ndarray, tol: float, closed: bool = False) -> np.ndarray:
    """Ramer-Douglas-Peucker: indices of the points of ``points`` (M, 2) kept so that every
    point lies within ``tol`` of the simplified polyline.

    For a closed loop the anchors are the point farthest from the centroid (a corner, for a
    polygon) and the point farthest from it; an anchor that turns out to sit in the middle of a
    straight run is dropped, so a polygon's loop keeps exactly its corners.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"simplify: expected points (M, 2), got {points.shape}")
    if tol < 0:
        raise ValueError(f"simplify: invalid tol {tol}, must be >= 0")
    m = len(points)
    if not closed or m < 4:
        return np.array(_rdp_open(points, tol) if m > 1 else list(range(m)))
    start = int(np.argmax(np.linalg.norm(points - points.mean(axis=0), axis=1)))
    loop = np.roll(points, -start, axis=0)
    far = int(np.argmax(np.linalg.norm(loop - loop[0], axis=1)))
    closed_loop = np.vstack([loop, loop[:1]])  # (M + 1, 2), the start repeated at the end
    first = _rdp_open(closed_loop[: far + 1], tol)
    second = [far + k for k in _rdp_open(closed_loop[far:], tol)]
    kept = sorted(set(first) | set(second) - {m})  # index m is the start again
    # drop anchors (0 and far) that are not corners: their neighbours' chord covers them
    for anchor in (0, far):
        if len(kept) <= 3 or anchor not in kept:
            continue
        pos = kept.index(anchor)
        prev, nxt = kept[pos - 1], kept[(pos + 1) % len(kept)]
        span = np.arange(prev, nxt + (m if nxt <= prev else 0) + 1) % m
        if _distances(loop[span], loop[prev], loop[nxt]).max() <= tol:
            kept.remove(anchor)
    return np.sort((np.array(kept) + start) % m)


@dataclass
class EdgeCount:
    """The straight edges of one contour line.

    Attributes:
        edges: segments of the simplified polyline (a closed loop of K corners has K edges).
        vertices: (K, 2) corners kept by the simplification, in order.
        closed: the contour is a loop (else it leaves the grid at both ends).
        tol: the simplification tolerance used (``rel_tol`` times ``size``).
        size: the diagonal of the contour's bounding box.
        curved_fraction: the fraction of the line's length where it turns (by more than
            ``angle_tol`` per point): a few percent for a polygon (the points next to its
            corners), near 1 for a curve, which turns a little at every point.
        straight: ``curved_fraction <= straight_frac``: the line is made of straight edges.
    """

    edges: int
    vertices: np.ndarray
    closed: bool
    tol: float
    size: float
    curved_fraction: float
    straight: bool

    @property
    def label(self) -> str:
        """``'6'`` for six straight edges, ``'curved'`` for a curve."""
        return str(self.edges) if self.straight else "curved"


def _merge_short(points: np.ndarray, idx: np.ndarray, min_len: float, closed: bool) -> np.ndarray:
    """Drop vertices of the simplified line until no edge is shorter than ``min_len``: the
    shortest edge goes first, losing whichever end turns less (an open line keeps its ends)."""
    kept = list(idx)
    while len(kept) > (3 if closed else 2):
        v = points[kept]
        seg = np.diff(np.vstack([v, v[:1]]) if closed else v, axis=0)
        lengths = np.linalg.norm(seg, axis=1)
        i = int(np.argmin(lengths))
        if lengths[i] >= min_len:
            break
        ends = [i, (i + 1) % len(kept)]
        if not closed:
            ends = [e for e in ends if 0 < e < len(kept) - 1]
            if not ends:  # a short line of two points: nothing to merge
                break

        def turn(k: int, seg: np.ndarray = seg) -> float:
            a, b = seg[k - 1], seg[k % len(seg)]
            c = float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300)
            return float(np.arccos(np.clip(c, -1.0, 1.0)))

        kept.pop(min(ends, key=turn))
    return np.array(kept)


def curved_fraction(points: np.ndarray, closed: bool, angle_tol: float = 1e-4) -> float:
    """The fraction of a polyline's length at points where it turns by more than ``angle_tol``
    radians (each point stands for half of each of its two steps).

    On a straight edge the contour of a linear function is exact, so it does not turn at all
    (to rounding: pass a float64 field); a smooth curve turns at every point.
    """
    points = np.asarray(points, dtype=np.float64)
    # a contour through a grid node repeats it up to rounding: such a step has no direction
    step = np.linalg.norm(np.diff(points, axis=0), axis=1)
    scale = float(np.ptp(points, axis=0).max()) if len(points) else 0.0
    points = points[np.concatenate([[True], step > 1e-9 * scale])]
    if len(points) < 3:
        return 0.0
    ring = np.vstack([points[-1:], points, points[:1]]) if closed else points
    d = np.diff(ring, axis=0)  # steps, (S, 2)
    steps = np.linalg.norm(d, axis=1)
    heading = np.arctan2(d[:, 1], d[:, 0])
    turn = np.abs(np.angle(np.exp(1j * np.diff(heading))))  # at each inner point, [0, pi]
    weight = 0.5 * (steps[:-1] + steps[1:])
    total = weight.sum()
    return float(weight[turn > angle_tol].sum() / total) if total > 0 else 0.0


def count_edges(
    line: Polyline | np.ndarray,
    closed: bool | None = None,
    *,
    rel_tol: float = 0.01,
    min_edge: float = 2.0,
    cell: float | None = None,
    straight_frac: float = 0.25,
    angle_tol: float = 1e-4,
) -> EdgeCount:
    """Count the straight edges of a contour line.

    Args:
        line: a :class:`Polyline`, or points (M, 2) with ``closed`` given.
        rel_tol: the simplification tolerance ``tol`` as a fraction of the bounding-box
            diagonal (but at least ``cell``). For a curve the count grows as the tolerance
            shrinks (about as ``rel_tol ** -0.5``); for a polygon it stays.
        min_edge: edges shorter than ``min_edge * tol`` are merged into their neighbours (a
            corner cut that small is not counted, nor the grid's own cut of a sharp corner).
        cell: the grid spacing of the field the line came from (a Polyline carries it).
        straight_frac, angle_tol: the line is straight (a polygon, or a polygonal line) when it
            turns by more than ``angle_tol`` radians per point along at most ``straight_frac``
            of its length (see :func:`curved_fraction`).

    Returns:
        An :class:`EdgeCount`.
    """
    if isinstance(line, Polyline):
        points, closed = line.points, line.closed if closed is None else closed
    else:
        points = np.asarray(line, dtype=np.float64)
        if closed is None:
            raise ValueError("count_edges: give closed=True or False with a points array")
    if not 0 < rel_tol < 1:
        raise ValueError(f"count_edges: invalid rel_tol {rel_tol}, must be in (0, 1)")
    if len(points) < 2:
        raise ValueError(f"count_edges: a line needs >= 2 points, got {len(points)}")
    if cell is None:
        cell = line.cell if isinstance(line, Polyline) else 0.0
    size = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    # the grid cuts each corner within about one cell: a tolerance below that sees the cut
    tol = max(rel_tol * size, cell)
    idx = _merge_short(points, simplify(points, tol, closed), min_edge * tol, bool(closed))
    edges = len(idx) if closed else len(idx) - 1
    frac = curved_fraction(points, bool(closed), angle_tol)
    return EdgeCount(
        edges=edges,
        vertices=points[idx],
        closed=bool(closed),
        tol=tol,
        size=size,
        curved_fraction=frac,
        straight=frac <= straight_frac,
    )


def count_pieces(
    grads: np.ndarray, points: np.ndarray, closed: bool, angle_tol: float = 1e-3
) -> tuple[int, np.ndarray]:
    """The linear pieces of a piecewise-linear level set, counted from the function's gradient.

    Where a function is linear, its gradient is constant and its level set is a straight
    segment; the level set bends exactly where the gradient's direction changes. Given the
    gradient ``grads`` (M, 2) at each point of a contour line ``points`` (M, 2), the pieces are
    the runs of points with the same gradient direction (within ``angle_tol`` radians).

    Returns:
        ``(pieces, lengths)``: the number of pieces and each piece's length along the line. A
        piece shorter than one grid cell may fall between two contour points and be missed.
    """
    grads = np.asarray(grads, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    if grads.shape != points.shape or points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(
            f"count_pieces: expected grads and points (M, 2), got {grads.shape} and {points.shape}"
        )
    angle = np.arctan2(grads[:, 1], grads[:, 0])  # (M,)
    # a point exactly on a kink line (a ReLU input of exactly 0) gets a gradient of its own,
    # unlike both of its neighbours: it is no piece when its neighbours agree with each other,
    # or when it sits on top of a neighbour (a corner traced twice)
    if len(angle) >= 3:

        def differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.abs(np.angle(np.exp(1j * (a - b)))) > angle_tol

        prev, nxt = np.roll(angle, 1), np.roll(angle, -1)
        gap = np.linalg.norm(points - np.roll(points, 1, axis=0), axis=1)
        near = 1e-6 * float(np.ptp(points, axis=0).max())
        twice = (gap < near) | (np.roll(gap, -1) < near)
        lone = differs(angle, prev) & differs(angle, nxt) & (~differs(prev, nxt) | twice)
        if not closed:
            lone[[0, -1]] = False
        angle, points = angle[~lone], points[~lone]
    turn = np.abs(np.angle(np.exp(1j * np.diff(angle))))  # wrapped to [0, pi]
    if closed:
        turn = np.append(turn, abs(np.angle(np.exp(1j * (angle[0] - angle[-1])))))
    steps = np.linalg.norm(np.diff(points, axis=0, append=points[:1]), axis=1)
    if not closed:
        steps = steps[:-1]
    breaks = np.flatnonzero(turn > angle_tol)  # piece boundary between point b and b + 1
    if len(breaks) == 0:
        return 1, np.array([steps.sum()])
    if not closed:
        cuts = np.concatenate([[-1], breaks, [len(steps)]])
        lengths = np.array(
            [
                steps[a + 1 : b].sum() + 0.5 * _edge(steps, a) + 0.5 * _edge(steps, b)
                for a, b in itertools.pairwise(cuts)
            ]
        )
        return len(breaks) + 1, lengths
    # on a loop, k breaks make k pieces; the step that holds a break is split half and half
    m = len(steps)
    lengths = []
    for a, b in zip(breaks, np.roll(breaks, -1), strict=True):
        run = np.arange(a + 1, b if b > a else b + m) % m
        lengths.append(steps[run].sum() + 0.5 * steps[a] + 0.5 * steps[b])
    return len(breaks), np.array(lengths)


def _edge(steps: np.ndarray, i: int) -> float:
    return float(steps[i]) if 0 <= i < len(steps) else 0.0
