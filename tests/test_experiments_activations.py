"""The ``activations`` experiment: derivatives from ``backward`` against finite differences,
closed forms and PyTorch, and the values returned where a derivative is undefined."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from handgrad.experiments import start
from handgrad.experiments.activations import (
    ActivationsConfig,
    central_difference,
    derivative,
    one_sided,
    variants,
)

CFG = ActivationsConfig(points=201)
X = np.linspace(-5, 5, 201)


def test_closed_forms_of_smooth_derivatives():
    by = {v.label: v for v in variants(CFG)}
    s = 1 / (1 + np.exp(-X))
    np.testing.assert_allclose(derivative(by["Sigmoid"].make(), X)[1], s * (1 - s), atol=1e-15)
    np.testing.assert_allclose(derivative(by["Tanh"].make(), X)[1], 1 / np.cosh(X) ** 2, atol=1e-15)
    phi = np.exp(-0.5 * X**2) / math.sqrt(2 * math.pi)
    cdf = np.array([0.5 * (1 + math.erf(x / math.sqrt(2))) for x in X])
    np.testing.assert_allclose(derivative(by["GELU"].make(), X)[1], cdf + X * phi, atol=1e-12)
    for beta in CFG.softplus_betas:
        d = derivative(by[f"Softplus(beta={beta:g})"].make(), X)[1]
        expected = np.where(beta * X > 20, 1.0, 1 / (1 + np.exp(-beta * X)))
        np.testing.assert_allclose(d, expected, atol=1e-15)


def test_one_sided_differences_at_kinks():
    by = {v.label: v for v in variants(CFG)}
    np.testing.assert_allclose(one_sided(by["ReLU"].make(), 0.0, 1e-4), (0.0, 1.0), atol=1e-12)
    np.testing.assert_allclose(
        one_sided(by["ELU(alpha=0.5)"].make(), 0.0, 1e-4), (0.5, 1.0), atol=1e-7
    )
    # away from a kink, both sides agree with the slope: 1 - tanh(0.3)^2
    left, right = one_sided(by["Tanh"].make(), 0.3, 1e-4)
    assert left == pytest.approx(1 - math.tanh(0.3) ** 2, abs=1e-8)
    assert right == pytest.approx(left, abs=1e-8)
    assert central_difference(by["ReLU"].make(), np.array([0.0]), 1e-5)[0] == pytest.approx(0.5)


def test_backward_matches_torch_everywhere_including_kinks():
    torch = pytest.importorskip("torch")
    for v in variants(CFG):
        xs = np.concatenate([X, [s.x for s in v.special]])
        t = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
        v.make_torch(torch)(t).sum().backward()
        np.testing.assert_allclose(
            derivative(v.make(), xs)[1], t.grad.numpy(), rtol=1e-12, atol=1e-14, err_msg=v.label
        )


def test_activations_end_to_end(tmp_path):
    run, results = start("activations", {"points": 201, "quiet": True}, out=tmp_path)
    errors = {k: v for k, v in results.items() if k.endswith("max_abs_error")}
    assert len(errors) == 12
    # central differences in float64 with step 1e-5: truncation ~1e-10, rounding ~1e-11
    assert max(errors.values()) < 1e-8
    assert results["ReLU.at_0"] == 0.0
    assert results["LeakyReLU(0.1).at_0"] == pytest.approx(0.1)
    assert results["ELU(alpha=0.5).at_0"] == pytest.approx(0.5)
    assert results["Softplus(beta=5).at_4"] == pytest.approx(1 / (1 + math.exp(-20)), abs=1e-15)
    report = (run.dir / "report.md").read_text()
    assert "| ReLU | 0 | kink: slopes 0 and 1 | 0 | 1 | 0.5 | 0 |" in report
    assert (run.dir / "activations.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((run.dir / "results.json").read_text()) == results


def test_config_errors():
    with pytest.raises(ValueError, match=r"ActivationsConfig: invalid x_max -6\.0, must be >"):
        ActivationsConfig(x_max=-6.0)
    with pytest.raises(ValueError, match=r"ActivationsConfig: invalid eps 0\.5, must be in"):
        ActivationsConfig(eps=0.5)
    with pytest.raises(ValueError, match=r"ActivationsConfig: invalid softplus_betas \(0\.0,\)"):
        ActivationsConfig(softplus_betas=(0.0,))
