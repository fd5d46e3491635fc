"""SumNormalize / LogSumNormalize (hand-written backward vs finite differences and closed forms)
and the ``normalization`` experiment end to end on a tiny config."""

from __future__ import annotations

import json

import numpy as np
import pytest

import handgrad.nn as nn
from handgrad.check import gradcheck, numerical_gradient
from handgrad.experiments import make_config, start
from handgrad.experiments import normalization as exp
from handgrad.nn.normalize import LOG_FLOOR, LogSumNormalize, SumNormalize

PNG = b"\x89PNG\r\n\x1a\n"


def positive(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.2, 2.0, shape)


# -- the layers ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [SumNormalize, LogSumNormalize])
@pytest.mark.parametrize(("dim", "shape"), [(-1, (4, 5)), (0, (3, 4, 2)), (1, (2, 3, 4))])
def test_gradcheck_against_finite_differences(cls, dim, shape):
    report = gradcheck(cls(dim=dim), positive(shape), seed=1)
    assert report.passed, str(report)


def test_worked_example():
    a = np.array([[1.0, 2.0, 1.0]])
    layer = SumNormalize()
    np.testing.assert_allclose(layer(a), [[0.25, 0.5, 0.25]])
    # grad_in_i = (g_i - <g, p>) / S with S = 4, g = e_1: <g, p> = 0.5
    np.testing.assert_allclose(
        layer.backward(np.array([[0.0, 1.0, 0.0]])), [[-0.125, 0.125, -0.125]]
    )
    log_layer = LogSumNormalize()
    np.testing.assert_allclose(log_layer(a), np.log([[0.25, 0.5, 0.25]]))
    # d/dx_i (log x_1 - log S) = delta_i1 / x_1 - 1 / S
    np.testing.assert_allclose(
        log_layer.backward(np.array([[0.0, 1.0, 0.0]])), [[-0.25, 0.25, -0.25]]
    )


def test_exp_in_front_reproduces_softmax_and_log_softmax():
    z = np.random.default_rng(2).standard_normal((5, 4))
    g = np.random.default_rng(3).standard_normal((5, 4))
    for ours, ref in ((SumNormalize(), nn.Softmax()), (LogSumNormalize(), nn.LogSoftmax())):
        np.testing.assert_allclose(ours(np.exp(z)), ref(z), rtol=1e-12, atol=1e-14)
        # chain rule through a = exp(z): d/dz = d/da * exp(z)
        np.testing.assert_allclose(ours.backward(g) * np.exp(z), ref.backward(g), rtol=1e-10)


def test_sum_head_with_nll_matches_finite_differences_at_the_logits():
    z = np.random.default_rng(4).standard_normal((6, 3)) * 2
    y = np.array([0, 1, 2, 2, 1, 0])
    head, loss = nn.Sequential(nn.Softplus(), LogSumNormalize(dim=1)), nn.NLLLoss()

    def f():
        return loss(head(z), y)

    f()
    analytic = head.backward(loss.backward())
    np.testing.assert_allclose(analytic, numerical_gradient(f, z), rtol=1e-6, atol=1e-9)
    # closed form: d/dz_i = sigmoid(z_i) (1 / S - [i = y] / a_y) / N
    a, s = np.log1p(np.exp(z)), np.log1p(np.exp(z)).sum(axis=1, keepdims=True)
    onehot = np.eye(3)[y]
    closed = (1 / (1 + np.exp(-z))) * (1 / s - onehot / a) / len(z)
    np.testing.assert_allclose(analytic, closed, rtol=1e-10)


def test_zero_entry_is_clamped_not_infinite():
    layer = LogSumNormalize()
    x = np.array([[0.0, 1.0, 3.0]])
    out = layer(x)
    np.testing.assert_allclose(out, [[LOG_FLOOR - np.log(4.0), -np.log(4.0), np.log(0.75)]])
    grad = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(grad, [[-3 / 4, 1 - 3 / 4, 1 / 3 - 3 / 4]])
    assert np.isfinite(grad).all()


def test_float32_stays_float32():
    x = positive((3, 4)).astype(np.float32)
    for cls in (SumNormalize, LogSumNormalize):
        layer = cls()
        assert layer(x).dtype == np.float32
        assert layer.backward(np.ones_like(x)).dtype == np.float32


@pytest.mark.parametrize("cls", [SumNormalize, LogSumNormalize])
def test_errors_name_layer_and_values(cls):
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"{name}\(dim=-1\): expected input >= 0 .*got min -0.5"):
        cls()(np.array([[1.0, -0.5]]))
    with pytest.raises(ValueError, match=rf"{name}\(dim=-1\): .*smallest sum 0"):
        cls()(np.array([[1.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=rf"{name}\(dim=3\): dim 3 is out of range .* \(2, 2\)"):
        cls(dim=3)(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        cls().backward(np.ones((2, 2)))


# -- the experiment ------------------------------------------------------------------------
def test_probe_records_the_softmax_logit_gradient_p_minus_y():
    cfg = exp.NormalizationConfig(hidden=(5,))
    model, probe = exp.build_model(2, 3, "softmax", cfg, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
    y = np.array([0, 2, 1, 1])
    loss = nn.NLLLoss()
    loss(model(x), y)
    model.backward(loss.backward())
    logits = model[:-2](x).astype(np.float64)  # everything before the probe
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = np.linalg.norm(p - np.eye(3)[y], axis=1).mean()
    assert probe.norms == [pytest.approx(expected, rel=1e-5)]


def test_both_heads_start_from_the_same_weights():
    cfg = exp.NormalizationConfig(hidden=(4,))
    a, _ = exp.build_model(2, 3, "softmax", cfg, np.random.default_rng(7))
    b, _ = exp.build_model(2, 3, "sum", cfg, np.random.default_rng(7))
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb
        np.testing.assert_array_equal(pa.data, pb.data)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"datasets": "spiral,mnist"}, r"invalid datasets \('spiral', 'mnist'\), must be one or"),
        ({"seeds": "0"}, r"NormalizationConfig: invalid seeds 0, must be >= 1"),
        ({"spiral_lr": "-1"}, r"NormalizationConfig: invalid spiral_lr -1.0, must be > 0"),
        ({"positive": "relu"}, r"normalization: positive=relu is not one of softplus, sigmoid"),
    ],
)
def test_config_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        make_config("normalization", overrides)


def test_normalization_end_to_end(tmp_path):
    overrides = {
        "datasets": "spiral,digits",
        "seeds": 1,
        "spiral_epochs": 40,
        "spiral_n": 300,
        "digits_epochs": 3,
        "quiet": True,
    }
    run, results = start("normalization", overrides, out=tmp_path)
    for name in ("curves", "grad_norms", "accuracy"):
        assert (run.dir / f"{name}.png").read_bytes()[:8] == PNG
    # chance is 1/3 on the spiral and 1/10 on the digits: both heads learn, by a wide margin
    for head in exp.HEADS:
        assert results[f"spiral_{head}_test_accuracy"] >= 1 / 3 + 0.3
        assert results[f"digits_{head}_test_accuracy"] >= 0.1 + 0.6
        assert results[f"spiral_{head}_train_loss"] < np.log(3)  # below the uniform guess
    diff = results["spiral_sum_test_accuracy"] - results["spiral_softmax_test_accuracy"]
    assert results["spiral_accuracy_difference"] == pytest.approx(diff)
    report = run.report_path.read_text()
    assert "difference (sum - softmax)" in report and "](grad_norms.png)" in report
    lines = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert len(lines) == 2 * (40 + 3)  # one line per epoch, head and data set
    assert {"grad_norm_logits", "grad_norm_params", "head", "dataset"} <= set(lines[0])
