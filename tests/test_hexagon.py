"""The edge counter (handgrad.viz.contours) on known shapes, and the ``hexagon`` experiment.

Known polygons are drawn as the 0 level set of f(x) = max_i (n_i . x - r), a piecewise-linear
function whose sublevel set {f < 0} is the regular polygon with unit normals n_i and inradius r;
a circle is the level set of |x| - r. ReLU networks with hand-set weights give a hexagon and a
diamond whose corners are known in closed form.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

import handgrad.nn as nn
from handgrad.experiments import start
from handgrad.experiments.hexagon import HexagonConfig, measure_boundary
from handgrad.viz.contours import (
    count_edges,
    count_pieces,
    curved_fraction,
    level_lines,
    simplify,
)

EXTENT = 1.5
BOX = (-EXTENT, EXTENT, -EXTENT, EXTENT)


def grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.linspace(-EXTENT, EXTENT, resolution)
    xx, yy = np.meshgrid(xs, xs)
    return xx, yy


def polygon_field(k: int, r: float, resolution: int, rotation: float) -> np.ndarray:
    xx, yy = grid(resolution)
    theta = rotation + 2 * np.pi * np.arange(k) / k
    normals = np.stack([np.cos(theta), np.sin(theta)], axis=1)  # (k, 2)
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    return (pts @ normals.T - r).max(axis=1).reshape(xx.shape)


def shoelace(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(x @ np.roll(y, -1) - y @ np.roll(x, -1)))


# -- the counter on known polygons ---------------------------------------------------------
@pytest.mark.parametrize("k", [3, 4, 5, 6, 8])
@pytest.mark.parametrize("resolution", [101, 201])
@pytest.mark.parametrize("rotation", [0.0, 0.37])
def test_regular_polygons_have_k_straight_edges(k, resolution, rotation):
    lines = level_lines(polygon_field(k, 0.5, resolution, rotation), BOX)
    assert len(lines) == 1 and lines[0].closed
    e = count_edges(lines[0])
    assert e.edges == k
    assert e.straight and e.label == str(k)
    # the kept corners are the polygon's corners: at the circumradius r / cos(pi / k)
    radius = np.linalg.norm(e.vertices, axis=1)
    np.testing.assert_allclose(radius, 0.5 / math.cos(math.pi / k), atol=2 * lines[0].cell)


@pytest.mark.parametrize("r", [0.3, 0.8, 1.2])
def test_a_circle_is_curved_with_many_chords(r):
    xx, yy = grid(201)
    (line,) = level_lines(np.hypot(xx, yy) - r, BOX)
    e = count_edges(line)
    assert not e.straight and e.label == "curved"
    assert e.curved_fraction > 0.9
    assert e.edges >= 12  # chords of a circle within 1% of its size: 2 pi / (2 acos(0.97))
    # a curve's chord count grows when the tolerance shrinks (about as tol^-1/2), as long as
    # the tolerance stays above the grid's cell
    if 0.0025 * e.size > line.cell:
        assert count_edges(line, rel_tol=0.0025).edges >= 1.5 * e.edges


def test_open_lines_a_straight_line_and_a_v():
    xx, yy = grid(151)
    (line,) = level_lines(xx + 0.5 * yy - 0.2, BOX)
    e = count_edges(line)
    assert not e.closed and e.edges == 1 and e.straight and e.curved_fraction == 0.0
    (v,) = level_lines(np.abs(xx) - yy - 0.2, BOX)
    e = count_edges(v)
    assert e.edges == 2 and e.straight
    np.testing.assert_allclose(e.vertices[1], [0.0, -0.2], atol=0.02)  # the V's tip


def test_simplify_keeps_every_point_within_tol():
    rng = np.random.default_rng(0)
    pts = np.cumsum(rng.standard_normal((300, 2)), axis=0)  # a random walk
    tol = 2.0
    idx = simplify(pts, tol)
    assert idx[0] == 0 and idx[-1] == len(pts) - 1 and np.all(np.diff(idx) > 0)
    for i, j in itertools.pairwise(idx):
        a, b = pts[i], pts[j]
        t = np.clip((pts[i : j + 1] - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
        d = np.linalg.norm(pts[i : j + 1] - (a + t[:, None] * (b - a)), axis=1)
        assert d.max() <= tol + 1e-12


def test_simplify_a_densified_square_keeps_its_corners():
    corners = np.array([[0, 0], [2, 0], [2, 1], [0, 1]], dtype=float)
    t = np.linspace(0, 1, 17)[:-1, None]
    loop = np.vstack(
        [a + t * (b - a) for a, b in zip(corners, np.roll(corners, -1, 0), strict=True)]
    )
    loop = np.roll(loop, 5, axis=0)  # start in the middle of an edge
    kept = loop[simplify(loop, 1e-6, closed=True)]
    assert {tuple(p) for p in kept} == {tuple(c) for c in corners}
    assert count_edges(loop, closed=True).edges == 4


def test_curved_fraction_of_a_polygon_is_small():
    (line,) = level_lines(polygon_field(6, 0.6, 201, 0.1), BOX)
    assert curved_fraction(line.points, True) < 0.1


@pytest.mark.parametrize("k", [4, 6])
def test_count_pieces_from_the_gradient_of_a_polygon_field(k):
    rotation = 0.2
    (line,) = level_lines(polygon_field(k, 0.5, 201, rotation), BOX)
    theta = rotation + 2 * np.pi * np.arange(k) / k
    normals = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    # the gradient of max_i (n_i . x - r) is the normal of the face that attains the max
    grads = normals[np.argmax(line.points @ normals.T, axis=1)]
    pieces, lengths = count_pieces(grads, line.points, closed=True)
    assert pieces == k
    perimeter = 2 * k * 0.5 * math.tan(math.pi / k)  # closed form, inradius 0.5
    assert lengths.sum() == pytest.approx(line.length, rel=1e-9)
    assert line.length == pytest.approx(perimeter, rel=0.01)


def test_count_pieces_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"count_pieces: expected grads and points \(M, 2\)"):
        count_pieces(np.zeros((4, 2)), np.zeros((5, 2)), closed=False)


def test_counter_errors_are_clear():
    with pytest.raises(ValueError, match="count_edges: invalid rel_tol 0, must be in"):
        count_edges(np.zeros((3, 2)), closed=False, rel_tol=0)
    with pytest.raises(ValueError, match="count_edges: give closed=True or False"):
        count_edges(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"simplify: expected points \(M, 2\), got \(3,\)"):
        simplify(np.zeros(3), 0.1)
    with pytest.raises(ValueError, match=r"level_lines: expected values \(H, W\)"):
        level_lines(np.zeros(5), BOX)


# -- ReLU networks with known boundaries -----------------------------------------------------
def relu_net(directions_deg: list[float], k: float) -> nn.Sequential:
    """z(x) = sum_i relu(u_i . x) - k, u_i unit vectors at the given angles."""
    h = len(directions_deg)
    model = nn.Sequential(nn.Linear(2, h, dtype=np.float64), nn.ReLU(), nn.Linear(h, 1))
    t = np.radians(directions_deg)
    model.load_state_dict(
        {
            "0.weight": np.stack([np.cos(t), np.sin(t)], axis=1),
            "0.bias": np.zeros(h),
            "2.weight": np.ones((1, h)),
            "2.bias": np.array([-k]),
        }
    )
    for p in model.parameters():
        p.astype(np.float64)
    return model


def test_three_relus_at_120_degrees_draw_a_regular_hexagon():
    # z = 0 bends where it crosses a line u_i . x = 0: three lines, each crossed twice. The
    # corners lie on those lines at radius 2k / sqrt(3); the area is (3 sqrt 3 / 2) R^2.
    k = 0.6
    b = measure_boundary(relu_net([0, 120, 240], k), EXTENT, 151, piecewise_linear=True)
    assert b.closed and b.straight
    assert b.edges == 6 and b.pieces == 6 and b.long_pieces == 6
    R = 2 * k / math.sqrt(3)
    np.testing.assert_allclose(np.linalg.norm(b.vertices[0], axis=1), R, atol=0.02)
    assert shoelace(b.vertices[0]) == pytest.approx(1.5 * math.sqrt(3) * R**2, rel=0.03)


def test_four_relus_on_the_axes_draw_a_diamond():
    # relu(x) + relu(-x) + relu(y) + relu(-y) - k = |x| + |y| - k: a square with corners on the
    # axes at distance k
    b = measure_boundary(relu_net([0, 90, 180, 270], 0.8), EXTENT, 151, piecewise_linear=True)
    assert b.closed and b.straight and b.edges == 4 and b.pieces == 4
    np.testing.assert_allclose(np.abs(b.vertices[0]).sum(axis=1), 0.8, atol=1e-6)


def test_one_hidden_unit_gives_a_straight_line_for_relu_and_tanh():
    # z = v act(w . x + b) + c = 0 holds on the line w . x + b = const, whatever act is
    rng = np.random.default_rng(3)
    for act in (nn.ReLU(), nn.Tanh()):
        model = nn.Sequential(nn.Linear(2, 1, rng=rng, dtype=np.float64), act, nn.Linear(1, 1))
        model.load_state_dict(
            {"0.weight": np.array([[1.0, 2.0]]), "0.bias": np.array([0.1]),
             "2.weight": np.array([[2.0]]), "2.bias": np.array([-0.5])}
        )  # fmt: skip
        for p in model.parameters():
            p.astype(np.float64)
        b = measure_boundary(model, EXTENT, 101)
        assert b.lines == 1 and not b.closed and b.edges == 1 and b.straight


# -- the experiment ------------------------------------------------------------------------
def test_config_errors_name_the_field_and_value():
    with pytest.raises(ValueError, match=r"HexagonConfig: invalid depths \(3,\), must be 1"):
        HexagonConfig(depths=(3,))
    with pytest.raises(ValueError, match=r"HexagonConfig: invalid activations .*relu and/or tanh"):
        HexagonConfig(activations=("gelu",))
    with pytest.raises(ValueError, match=r"HexagonConfig: invalid hidden_sizes \(0, 2\)"):
        HexagonConfig(hidden_sizes=(0, 2))
    with pytest.raises(ValueError, match=r"HexagonConfig: invalid extent 0\.5, must be >= 1"):
        HexagonConfig(extent=0.5)


def test_hexagon_tiny_sweep_end_to_end(tmp_path):
    overrides = {
        "hidden_sizes": (1, 5),
        "depths": (1,),
        "seeds": 1,
        "steps": 1500,
        "resolution": 121,
        "quiet": True,
    }
    run, results = start("hexagon", overrides, out=tmp_path)
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    by = {(r["activation"], r["hidden"]): r for r in rows}
    for act in ("relu", "tanh"):
        # one hidden unit: a straight line, right on ~60% of the points at best
        assert by[(act, 1)]["shape"] == "1 open"
    # ReLU boundaries are polygons, and the simplification sees exactly the linear pieces
    # that the network's gradient shows
    for r in rows:
        if r["activation"] == "relu":
            assert r["straight"] and r["edges"] == r["long_pieces"]
    relu5, tanh5 = by[("relu", 5)], by[("tanh", 5)]
    assert relu5["closed"] and relu5["straight"] and relu5["test_accuracy"] > 0.85
    assert relu5["edges"] == 6  # measured: three of the five lines cut the boundary, twice each
    assert tanh5["closed"] and not tanh5["straight"] and tanh5["test_accuracy"] > 0.9
    assert results["relu_boundaries_straight"] == results["relu_boundaries"] == 2
    for name in ("maps.png", "edges.png", "table.csv", "report.md"):
        assert (run.dir / name).exists()
    assert "| 2-h-1 relu | 5 | 6 | 1/1 |" in (run.dir / "report.md").read_text()


def test_hexagon_is_registered():
    from handgrad.experiments import names

    assert "hexagon" in names()
