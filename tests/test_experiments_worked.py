"""The scalar worked examples and torch-parity, run end to end as registered experiments."""

from __future__ import annotations

import math

import pytest

from handgrad.experiments import start


def test_scalar_graph_gradients_match_the_closed_form(tmp_path) -> None:
    x, y, z = 1.5, -0.5, 2.0
    run, results = start("scalar-graph", {"x": x, "y": y, "z": z, "gif": False}, out=tmp_path)
    # w = a * b = 2 x a^2 with a = x y + z
    a = x * y + z
    assert results["w"] == pytest.approx(2 * x * a**2, rel=1e-15)
    assert results["dw/dx"] == pytest.approx(2 * a**2 + 4 * x * a * y, rel=1e-15)
    assert results["dw/dy"] == pytest.approx(4 * x**2 * a, rel=1e-15)
    assert results["dw/dz"] == pytest.approx(4 * x * a, rel=1e-15)
    report = (run.dir / "report.md").read_text()
    assert "scalar-graph.png" in report and (run.dir / "scalar-graph.png").exists()


def test_scalar_net_three_ways_agree_on_ln2(tmp_path) -> None:
    _, results = start("scalar-net", {"draw": False}, out=tmp_path)
    assert results["loss"] == pytest.approx(math.log(2), rel=1e-15)
    assert results["max_abs_diff"] < 1e-12


def test_scalar_train_curves_coincide(tmp_path) -> None:
    _, results = start("scalar-train", {"epochs": 15, "n": 40}, out=tmp_path)
    assert results["max_curve_diff"] < 1e-12


def test_torch_parity_on_the_circle(tmp_path) -> None:
    pytest.importorskip("torch")
    run, results = start("torch-parity", {"epochs": 2}, out=tmp_path)
    assert results["max_param_diff"] < 1e-9
    assert results["test_accuracy_handgrad"] == results["test_accuracy_torch"]
    assert (run.dir / "torch_parity_circle.png").exists()
