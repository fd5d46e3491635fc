"""Layer behaviour the generic registry cannot see: randomness, modes, edge values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import handgrad.nn as nn

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


def test_dropout_training_mask_is_inverted_and_reproducible() -> None:
    x = np.ones((200, 500))
    drop = nn.Dropout(0.3, rng=0)
    out = drop(x)
    kept = out != 0
    # survivors are scaled by 1 / (1 - p) so the expectation is unchanged
    np.testing.assert_allclose(out[kept], 1 / 0.7)
    assert abs(kept.mean() - 0.7) < 0.005  # 100 000 Bernoulli draws: sd ~ 0.0015
    # the backward pass uses the same mask
    np.testing.assert_array_equal(drop.backward(np.full_like(x, 2.0)), 2.0 * out)
    np.testing.assert_array_equal(nn.Dropout(0.3, rng=0)(x), out)  # same seed, same mask


def test_dropout_eval_and_edge_probabilities() -> None:
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert nn.Dropout(0.5).eval()(x) is x
    np.testing.assert_array_equal(nn.Dropout(0.0)(x), x)
    zero = nn.Dropout(1.0)
    np.testing.assert_array_equal(zero(x), np.zeros_like(x))
    np.testing.assert_array_equal(zero.backward(np.ones_like(x)), np.zeros_like(x))


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.integers(1, 20), elements=finite))
def test_relu_family_derivatives_at_and_around_zero_match_torch(x) -> None:
    torch = pytest.importorskip("torch")
    x = np.concatenate([x, [0.0, -0.0]])  # always include the kink itself
    for ours, theirs in [
        (nn.ReLU(), torch.nn.ReLU()),
        (nn.LeakyReLU(0.1), torch.nn.LeakyReLU(0.1)),
        (nn.ELU(0.7), torch.nn.ELU(0.7)),
    ]:
        t = torch.tensor(x, requires_grad=True)
        theirs(t).sum().backward()
        ours(x)
        np.testing.assert_allclose(ours.backward(np.ones_like(x)), t.grad.numpy(), rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (3, 4), elements=st.floats(-1e4, 1e4, allow_nan=False, width=64)))
def test_cross_entropy_is_finite_for_huge_logits_and_grad_is_softmax_minus_onehot(z) -> None:
    y = np.array([0, 3, 1])
    ce = nn.CrossEntropyLoss()
    loss = ce(z, y)
    assert np.isfinite(loss)
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    expected = (p - np.eye(4)[y]) / 3
    np.testing.assert_allclose(ce.backward(), expected, rtol=1e-12, atol=1e-15)
    # the value is log-sum-exp minus the target logit, computed stably by hand
    lse = z.max(axis=1) + np.log(np.exp(shifted).sum(axis=1))
    np.testing.assert_allclose(loss, np.mean(lse - z[np.arange(3), y]), rtol=1e-10, atol=1e-14)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, 6, elements=st.floats(-1e4, 1e4, allow_nan=False, width=64)))
def test_bce_with_logits_and_sigmoid_are_stable_for_huge_values(z) -> None:
    target = np.array([0.0, 1.0, 0.5, 1.0, 0.0, 0.25])
    bce = nn.BCEWithLogitsLoss(reduction="sum")
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow anywhere
        loss = bce(z, target)
        grad = bce.backward()
        s = nn.Sigmoid()(z)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # closed form: softplus(z) - y z, derivative sigmoid(z) - y
    np.testing.assert_allclose(loss, np.sum(np.logaddexp(0, z) - target * z), rtol=1e-12)
    np.testing.assert_allclose(grad, s - target, rtol=1e-12, atol=1e-300)


def test_bce_clamps_log_at_minus_100_like_torch() -> None:
    torch = pytest.importorskip("torch")
    p = np.array([0.0, 1.0, 1e-50, 0.5])
    y = np.array([1.0, 0.0, 1.0, 0.5])
    ours = nn.BCELoss()
    tp = torch.tensor(p, requires_grad=True)
    expected = torch.nn.BCELoss()(tp, torch.tensor(y))
    expected.backward()
    assert ours(p, y) == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(ours.backward(), tp.grad.numpy(), rtol=1e-12)


def test_tiny_batches() -> None:
    lin = nn.Linear(3, 2, rng=0, dtype=np.float64)
    x = np.ones((1, 3))
    out = lin(x)
    lin.backward(np.ones_like(out))
    np.testing.assert_array_equal(lin.bias.grad, [1.0, 1.0])
    assert nn.CrossEntropyLoss()(np.zeros((1, 5)), np.array([2])) == pytest.approx(np.log(5))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3, .*\): expected more than 1 value "):
        nn.BatchNorm1d(3)(np.ones((1, 3)))
    bn = nn.BatchNorm1d(3).eval()  # eval mode uses running statistics: one sample is fine
    np.testing.assert_allclose(bn(np.ones((1, 3))), np.ones((1, 3)) / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_batchnorm_backward_forms_agree() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5, 3))
    g = rng.standard_normal(x.shape)
    compact, staged = (
        nn.BatchNorm1d(5, dtype=np.float64),
        nn.BatchNorm1d(5, backward_form="staged", dtype=np.float64),
    )
    compact(x), staged(x)
    np.testing.assert_allclose(compact.backward(g), staged.backward(g), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="backward_form must be 'compact' or 'staged'"):
        nn.BatchNorm1d(5, backward_form="autograd")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: nn.MSELoss()(np.zeros((3, 2)), np.zeros((3,))),
            r"MSELoss\(reduction='mean'\): prediction and target must have the same shape, "
            r"got \(3, 2\) and \(3,\)",
        ),
        (
            lambda: nn.CrossEntropyLoss()(np.zeros((3, 4)), np.array([0, 4, 1])),
            r"CrossEntropyLoss\(.*\): class targets must be in \[0, 4\), got values in \[0, 4\]",
        ),
        (
            lambda: nn.CrossEntropyLoss()(np.zeros((3, 4)), np.array([0, 1])),
            r"expected class targets of shape \(3,\) for input \(3, 4\), got \(2,\)",
        ),
        (
            lambda: nn.CrossEntropyLoss()(np.zeros((3, 4, 2)), np.array([0, 1, 2])),
            r"CrossEntropyLoss\(.*\): expected input \(N, C\), got \(3, 4, 2\)",
        ),
        (
            lambda: nn.NLLLoss()(np.zeros((2, 3)), np.array([0.0, 1.0])),
            r"NLLLoss\(.*\): class targets must be integers, got dtype float64",
        ),
        (
            lambda: nn.BCELoss()(np.array([0.5, 1.2]), np.array([0.0, 1.0])),
            r"BCELoss\(.*\): predictions must be probabilities in \[0, 1\], got values in "
            r"\[0.5, 1.2\]",
        ),
        (
            lambda: nn.Flatten(2)(np.zeros((3, 4))),
            r"Flatten\(start_dim=2, end_dim=-1\): cannot flatten input of shape \(3, 4\)",
        ),
    ],
)
def test_loss_and_layer_input_errors(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()
