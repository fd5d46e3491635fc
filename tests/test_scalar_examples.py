"""The worked examples (handgrad.experiments.scalar): scalar-graph against the closed form,
scalar-net three ways against each other, the hand-derived numbers and PyTorch, scalar-train
end to end on a small config."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

import handgrad.scalar
from handgrad.experiments.scalar import NET_DEFAULTS, scalar_graph, scalar_net, scalar_train
from handgrad.scalar.loops import backward, forward


def _closed_form(x: float, y: float, z: float) -> dict[str, float]:
    # w = a * b = a * (2x) * a = 2 x a^2 with a = xy + z
    a = x * y + z
    return {
        "a": a,
        "b": 2 * x * a,
        "w": 2 * x * a**2,
        "dw/dx": 2 * a**2 + 4 * x * a * y,
        "dw/dy": 4 * x**2 * a,
        "dw/dz": 4 * x * a,
        "dw/da": 4 * x * a,  # w = a * b with b = 2 x a: dw/da (holding b) = b
        "dw/db": a,
    }


def test_scalar_graph_matches_the_closed_form_and_writes_its_files(tmp_path):
    r = scalar_graph(tmp_path, x=3.0, y=-2.0, z=10.0, gif=False)
    for key, want in _closed_form(3.0, -2.0, 10.0).items():
        assert r[key] == pytest.approx(want, rel=1e-14), key
    assert (r["w"], r["dw/dx"], r["dw/dy"], r["dw/dz"]) == (96.0, -64.0, 144.0, 48.0)
    assert r["steps"] == 10
    for name in ("scalar-graph.png", "scalar-graph.dot", "scalar-trace.png", "scalar-graph.md"):
        assert (tmp_path / name).stat().st_size > 0
    md = (tmp_path / "scalar-graph.md").read_text()
    assert "![graph](scalar-graph.png)" in md and "| dw/dx | -64 |" in md


@pytest.mark.parametrize(("x", "y", "z"), [(0.5, 1.5, -0.25), (-1.25, 0.75, 2.0)])
def test_scalar_graph_other_points(tmp_path, monkeypatch, x, y, z):
    # the drawing is checked above; here only the numbers, so skip the figures
    import handgrad.experiments.scalar as ex
    from handgrad.scalar.graph import BackwardTrace

    monkeypatch.setattr(ex, "draw_graph", lambda *a, **k: None)
    monkeypatch.setattr(BackwardTrace, "draw", lambda *a, **k: None)
    r = scalar_graph(tmp_path, x=x, y=y, z=z, gif=False)
    for key, want in _closed_form(x, y, z).items():
        assert r[key] == pytest.approx(want, rel=1e-12, abs=1e-14), key


# -- scalar-net -------------------------------------------------------------------------------

H = 1.0 / (1.0 + math.exp(-2.0))  # sigmoid(2) = 0.880797...


def test_scalar_net_three_ways_agree_with_the_hand_derived_numbers(tmp_path):
    r = scalar_net(tmp_path)
    assert r["max_abs_diff"] < 1e-15
    hand = {
        "z1": [2.0, 2.0, 2.0],
        "h": [H, H, H],
        "z2": [-H, -H],
        "p": [0.5, 0.5],
        "loss": math.log(2.0),
        "dz2": [-0.5, 0.5],
        "dc": [-0.5, 0.5],
        "dV": [[-0.5 * H, 0.5 * H]] * 3,
        "dh": [0.0, 0.0, 0.0],
        "dz1": [0.0, 0.0, 0.0],
        "db": [0.0, 0.0, 0.0],
        "dW": [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
        "dx": [0.0, 0.0],
    }
    for way in ("engine", "loops", "vectorised"):
        for key, want in hand.items():
            np.testing.assert_allclose(
                r[way][key], want, rtol=1e-14, atol=1e-15, err_msg=f"{way} {key}"
            )
    assert H == pytest.approx(0.880797, abs=5e-7)
    md = (tmp_path / "scalar-net.md").read_text()
    assert "| dV[0][0] | -0.440399 | -0.440399 | -0.440399 |" in md
    assert "| loss | 0.693147 | 0.693147 | 0.693147 |" in md
    assert (tmp_path / "scalar-net-graph.png").stat().st_size > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_scalar_net_random_weights_three_ways_and_torch(tmp_path, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal(3), rng.standard_normal((3, 4)), rng.standard_normal(4)
    V, c = rng.standard_normal((4, 2)), rng.standard_normal(2)
    r = scalar_net(tmp_path, x, 1, W, b, V, c, draw=False)
    assert r["max_abs_diff"] < 1e-12
    tW, tb, tV, tc = (torch.tensor(a, requires_grad=True) for a in (W, b, V, c))
    tx = torch.tensor(x, requires_grad=True)
    logits = torch.sigmoid(tx @ tW + tb) @ tV + tc
    loss = torch.nn.functional.cross_entropy(logits[None], torch.tensor([1]))
    loss.backward()
    assert r["loss"] == pytest.approx(loss.item(), rel=1e-12)
    for key, t in (("dW", tW), ("db", tb), ("dV", tV), ("dc", tc), ("dx", tx)):
        np.testing.assert_allclose(r["engine"][key], t.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_loops_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(2).tolist()
    W, b = rng.standard_normal((2, 3)).tolist(), rng.standard_normal(3).tolist()
    V, c = rng.standard_normal((3, 2)).tolist(), rng.standard_normal(2).tolist()
    g = backward(x, W, V, forward(x, W, b, V, c, 0), 0)
    h = 1e-6
    for i in range(2):
        for j in range(3):
            up = [row[:] for row in W]
            down = [row[:] for row in W]
            up[i][j] += h
            down[i][j] -= h
            numeric = forward(x, up, b, V, c, 0)["loss"] - forward(x, down, b, V, c, 0)["loss"]
            assert g["dW"][i][j] == pytest.approx(numeric / (2 * h), rel=1e-6, abs=1e-9)


def test_scalar_net_errors(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"scalar_net: expected W \(2, 3\) and V \(3, 2\) .*got "
        r"W \(3, 2\)",
    ):
        scalar_net(tmp_path, W=np.ones((3, 2)), draw=False)
    with pytest.raises(ValueError, match=r"scalar_net: target 5 out of range for 2 classes"):
        scalar_net(tmp_path, target=5, draw=False)
    assert NET_DEFAULTS["W"] == [[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]]  # not mutated


# -- scalar-train -----------------------------------------------------------------------------


def test_scalar_train_small_config_three_curves_agree_and_learn(tmp_path):
    r = scalar_train(tmp_path, epochs=100, n=64, lr=4.0, seed=0)
    assert r["max_curve_diff"] < 1e-12
    curves = r["loss"]
    assert len(curves["engine"]) == len(curves["loops"]) == len(curves["vectorised"]) == 100
    assert curves["engine"][0] > 0.7
    assert r["final_loss"]["vectorised"] < 0.35
    assert r["accuracy"] >= 0.8
    assert set(r["sec_per_epoch"]) == {"engine", "loops", "vectorised"}
    assert r["speedup_vs_engine"]["engine"] == 1.0
    md = (tmp_path / "scalar-train.md").read_text()
    assert "| vectorised (handgrad.nn) |" in md and "![loss curves](scalar-train.png)" in md
    assert (tmp_path / "scalar-train.png").stat().st_size > 0


def test_scalar_train_errors(tmp_path):
    with pytest.raises(ValueError, match=r"scalar_train: epochs must be a positive integer, got 0"):
        scalar_train(tmp_path, epochs=0)
    with pytest.raises(ValueError, match=r"scalar_train: lr must be > 0, got -1"):
        scalar_train(tmp_path, lr=-1)


def test_the_scalar_engine_package_imports_no_other_part_of_handgrad():
    # the worked examples use data, nn and optim, so they live in experiments/, not in scalar/
    allowed = ("handgrad.scalar", "handgrad._util")
    for path in Path(handgrad.scalar.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            elif isinstance(node, ast.Import):
                mods = [alias.name for alias in node.names]
            else:
                continue
            for mod in mods:
                if mod.startswith("handgrad"):
                    assert mod.startswith(allowed), f"{path.name} imports {mod}"
