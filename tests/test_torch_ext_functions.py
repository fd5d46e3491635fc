"""The hand-written autograd Functions of handgrad.torch_ext.

Every Function is checked three ways: ``torch.autograd.gradcheck`` (central finite differences
in float64), agreement of output and gradients with PyTorch's own operators, and the backward
contract (grad_output untouched, None for inputs that need no gradient). Edge cases a course
asks for (zero input, zero weight, ReLU at and near 0, all-negative input, batch size 1 for
batch norm, huge logits) have tests of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck

import handgrad.torch_ext as hx

pytestmark = pytest.mark.usefixtures("one_thread")

F = torch.nn.functional
D = torch.float64


def t(array: Any, grad: bool = True) -> torch.Tensor:
    return torch.tensor(np.asarray(array), dtype=D, requires_grad=grad)


def randn(gen: np.random.Generator, *shape: int, grad: bool = True) -> torch.Tensor:
    return t(gen.standard_normal(shape), grad)


def away(gen: np.random.Generator, *shape: int) -> torch.Tensor:
    """Normal values at least 0.1 from 0, so finite differences never straddle a kink."""
    x = gen.standard_normal(shape)
    return t(np.where(x >= 0, x + 0.1, x - 0.1))


@dataclass
class FnCase:
    """A Function, how to draw its arguments, and PyTorch's reference for the same call."""

    name: str
    fn: Callable[..., Any]
    args: Callable[[np.random.Generator], tuple]
    ref: Callable[..., Any]

    def __repr__(self) -> str:
        return self.name


def _keep_mask(gen: np.random.Generator, shape: tuple[int, ...], p: float) -> torch.Tensor:
    return t((gen.random(shape) >= p) / (1 - p), grad=False)


def _probs(gen: np.random.Generator, n: int, c: int) -> torch.Tensor:
    e = np.exp(gen.standard_normal((n, c)))
    return t(e / e.sum(1, keepdims=True))


CASES = [
    FnCase(
        "Linear",
        hx.LinearFunction.apply,
        lambda g: (randn(g, 4, 5), randn(g, 3, 5), randn(g, 3)),
        F.linear,
    ),
    FnCase(
        "Linear-nobias-3d",
        hx.LinearFunction.apply,
        lambda g: (randn(g, 2, 4, 5), randn(g, 3, 5), None),
        F.linear,
    ),
    FnCase(
        "Linear-zero-input",
        hx.LinearFunction.apply,
        lambda g: (t(np.zeros((4, 5))), randn(g, 3, 5), randn(g, 3)),
        F.linear,
    ),
    FnCase(
        "Linear-zero-weight",
        hx.LinearFunction.apply,
        lambda g: (randn(g, 4, 5), t(np.zeros((3, 5))), t(np.zeros(3))),
        F.linear,
    ),
    FnCase(
        "Linear-batch-1",
        hx.LinearFunction.apply,
        lambda g: (randn(g, 1, 5), randn(g, 2, 5)),
        F.linear,
    ),
    FnCase(
        "Conv2d-no-bias-arg",
        hx.Conv2dFunction.apply,
        lambda g: (randn(g, 1, 2, 4, 4), randn(g, 3, 2, 2, 2)),
        F.conv2d,
    ),
    FnCase("ReLU", hx.ReLUFunction.apply, lambda g: (away(g, 4, 6),), torch.relu),
    FnCase(
        "ReLU-near-0",
        hx.ReLUFunction.apply,
        # within 1e-3 of the kink, but farther than gradcheck's step of 1e-6
        lambda g: (t(np.array([-1e-3, -2e-4, -1e-5, 1e-5, 2e-4, 1e-3])),),
        torch.relu,
    ),
    FnCase(
        "ReLU-all-negative",
        hx.ReLUFunction.apply,
        lambda g: (t(-np.abs(g.standard_normal((3, 5))) - 0.01),),
        torch.relu,
    ),
    FnCase(
        "LeakyReLU",
        hx.LeakyReLUFunction.apply,
        lambda g: (away(g, 4, 6), 0.2),
        F.leaky_relu,
    ),
    FnCase("Sigmoid", hx.SigmoidFunction.apply, lambda g: (randn(g, 4, 6),), torch.sigmoid),
    FnCase(
        "Sigmoid-zero-and-saturated",
        hx.SigmoidFunction.apply,
        lambda g: (t(np.array([0.0, -30.0, 30.0, 1e-8])),),
        torch.sigmoid,
    ),
    FnCase("Tanh", hx.TanhFunction.apply, lambda g: (randn(g, 4, 6),), torch.tanh),
    FnCase(
        "Tanh-zero-and-saturated",
        hx.TanhFunction.apply,
        lambda g: (t(np.array([0.0, -20.0, 20.0])),),
        torch.tanh,
    ),
    FnCase("ELU", hx.ELUFunction.apply, lambda g: (away(g, 4, 6), 0.7), F.elu),
    FnCase(
        "Softplus",
        hx.SoftplusFunction.apply,
        # beta * x straddles the threshold: both branches are checked
        lambda g: (t(np.array([-3.0, -0.5, 0.0, 0.7, 4.0, 9.0, 11.0])), 2.0, 10.0),
        F.softplus,
    ),
    FnCase("GELU", hx.GELUFunction.apply, lambda g: (randn(g, 4, 6),), F.gelu),
    FnCase(
        "GELU-tanh",
        hx.GELUFunction.apply,
        lambda g: (randn(g, 4, 6), "tanh"),
        lambda x, a: F.gelu(x, approximate=a),
    ),
    FnCase("Softmax", hx.SoftmaxFunction.apply, lambda g: (randn(g, 3, 5), -1), torch.softmax),
    FnCase("Softmax-dim0", hx.SoftmaxFunction.apply, lambda g: (randn(g, 3, 5), 0), torch.softmax),
    FnCase(
        "LogSoftmax", hx.LogSoftmaxFunction.apply, lambda g: (randn(g, 3, 5), 1), torch.log_softmax
    ),
    FnCase(
        "Dropout",
        hx.DropoutFunction.apply,
        lambda g: (randn(g, 4, 6), _keep_mask(g, (4, 6), 0.3)),
        lambda x, m: x * m,
    ),
    FnCase(
        "Flatten",
        hx.FlattenFunction.apply,
        lambda g: (randn(g, 2, 3, 4, 5), 1, 2),
        lambda x, s, e: x.flatten(s, e),
    ),
    FnCase(
        "BatchNorm-2d-input",
        hx.BatchNormFunction.apply,
        lambda g: (randn(g, 6, 3), randn(g, 3), randn(g, 3), 1e-5),
        lambda x, w, b, eps: F.batch_norm(x, None, None, w, b, True, 0.0, eps),
    ),
    FnCase(
        "BatchNorm-NCL",
        hx.BatchNormFunction.apply,
        lambda g: (randn(g, 3, 2, 4), randn(g, 2), randn(g, 2), 1e-5),
        lambda x, w, b, eps: F.batch_norm(x, None, None, w, b, True, 0.0, eps),
    ),
    FnCase(
        "BatchNorm-NCHW",
        hx.BatchNormFunction.apply,
        lambda g: (randn(g, 2, 3, 3, 2), randn(g, 3), randn(g, 3), 1e-5),
        lambda x, w, b, eps: F.batch_norm(x, None, None, w, b, True, 0.0, eps),
    ),
    FnCase(
        "BatchNorm-N1HW",  # batch size 1 is fine when each channel still has several values
        hx.BatchNormFunction.apply,
        lambda g: (randn(g, 1, 2, 3, 3), randn(g, 2), randn(g, 2), 1e-5),
        lambda x, w, b, eps: F.batch_norm(x, None, None, w, b, True, 0.0, eps),
    ),
    FnCase(
        "BatchNorm-no-affine",
        hx.BatchNormFunction.apply,
        lambda g: (randn(g, 5, 4), None, None, 1e-3),
        lambda x, w, b, eps: F.batch_norm(x, None, None, w, b, True, 0.0, eps),
    ),
    FnCase(
        "BatchNorm-zero-input",  # zero variance: the output is beta, the gradient stays finite
        hx.BatchNormFunction.apply,
        lambda g: (t(np.zeros((4, 3))), randn(g, 3), randn(g, 3), 1e-5),
        lambda x, w, b, eps: F.batch_norm(x, None, None, w, b, True, 0.0, eps),
    ),
    FnCase(
        "BatchNormEval",
        hx.BatchNormEvalFunction.apply,
        lambda g: (
            randn(g, 4, 3, 2, 2),
            randn(g, 3, grad=False),
            t(g.uniform(0.5, 2.0, 3), grad=False),
            randn(g, 3),
            randn(g, 3),
            1e-5,
        ),
        lambda x, m, v, w, b, eps: F.batch_norm(x, m, v, w, b, False, 0.0, eps),
    ),
    FnCase(
        "Conv2d",
        hx.Conv2dFunction.apply,
        lambda g: (randn(g, 2, 3, 6, 5), randn(g, 4, 3, 3, 3), randn(g, 4), 1, 1, 1, 1),
        F.conv2d,
    ),
    FnCase(
        "Conv2d-stride-dilation-groups",
        hx.Conv2dFunction.apply,
        lambda g: (
            randn(g, 2, 4, 7, 6),
            randn(g, 6, 2, 3, 2),
            None,
            (2, 1),
            (1, 2),
            (1, 2),
            2,
        ),
        F.conv2d,
    ),
    FnCase(
        "Conv2d-uneven-padding",
        hx.Conv2dFunction.apply,
        lambda g: (randn(g, 2, 2, 5, 4), randn(g, 3, 2, 2, 3), randn(g, 3), 1, (0, 1, 2, 0)),
        lambda x, w, b, s, p: F.conv2d(F.pad(x, (p[2], p[3], p[0], p[1])), w, b, s),
    ),
    FnCase(
        "Conv2d-zero-weight",
        hx.Conv2dFunction.apply,
        lambda g: (randn(g, 1, 2, 4, 4), t(np.zeros((3, 2, 2, 2))), randn(g, 3), 2, 0, 1, 1),
        F.conv2d,
    ),
    FnCase(
        "MaxPool2d",
        hx.MaxPool2dFunction.apply,
        lambda g: (randn(g, 2, 3, 6, 5), 2, None, 0),
        F.max_pool2d,
    ),
    FnCase(
        "MaxPool2d-overlap-pad",
        hx.MaxPool2dFunction.apply,
        lambda g: (randn(g, 2, 2, 7, 6), 3, 2, 1),
        F.max_pool2d,
    ),
    FnCase(
        "AvgPool2d",
        hx.AvgPool2dFunction.apply,
        lambda g: (randn(g, 2, 3, 6, 5), (2, 3), (1, 2), (1, 1)),
        F.avg_pool2d,
    ),
    FnCase(
        "SoftmaxCrossEntropy",
        hx.SoftmaxCrossEntropyFunction.apply,
        lambda g: (randn(g, 5, 4), torch.tensor(g.integers(0, 4, 5)), "mean"),
        lambda z, y, r: F.cross_entropy(z, y, reduction=r),
    ),
    FnCase(
        "SoftmaxCrossEntropy-sum",
        hx.SoftmaxCrossEntropyFunction.apply,
        lambda g: (randn(g, 5, 4), torch.tensor(g.integers(0, 4, 5)), "sum"),
        lambda z, y, r: F.cross_entropy(z, y, reduction=r),
    ),
    FnCase(
        "SoftmaxCrossEntropy-probs-none",
        hx.SoftmaxCrossEntropyFunction.apply,
        lambda g: (randn(g, 5, 4), _probs(g, 5, 4), "none"),
        lambda z, y, r: F.cross_entropy(z, y, reduction=r),
    ),
    FnCase(
        "SoftmaxCrossEntropy-batch-1",
        hx.SoftmaxCrossEntropyFunction.apply,
        lambda g: (randn(g, 1, 3), torch.tensor([2]), "mean"),
        lambda z, y, r: F.cross_entropy(z, y, reduction=r),
    ),
]


def _grad_inputs(args: tuple) -> list[torch.Tensor]:
    return [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]


def _detached_copy(args: tuple) -> tuple:
    return tuple(
        a.detach().clone().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a
        for a in args
    )


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_gradcheck(case: FnCase) -> None:
    args = case.args(np.random.default_rng(0))
    assert gradcheck(case.fn, args, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_matches_torch_output_and_gradients(case: FnCase) -> None:
    gen = np.random.default_rng(1)
    args = case.args(gen)
    ref_args = _detached_copy(args)
    out = case.fn(*args)
    ref = case.ref(*ref_args)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    g = torch.tensor(gen.standard_normal(tuple(out.shape)), dtype=D)
    grads = torch.autograd.grad(out, _grad_inputs(args), g)
    ref_grads = torch.autograd.grad(ref, _grad_inputs(ref_args), g)
    for mine, theirs in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_backward_leaves_grad_output_untouched(case: FnCase) -> None:
    gen = np.random.default_rng(2)
    args = case.args(gen)
    out = case.fn(*args)
    g = torch.tensor(gen.standard_normal(tuple(out.shape)), dtype=D)
    before, version = g.clone(), g._version
    out.backward(g)
    assert g._version == version
    assert torch.equal(g, before)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_backward_returns_none_where_no_gradient_is_needed(case: FnCase) -> None:
    gen = np.random.default_rng(3)
    args = case.args(gen)
    tensor_pos = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
    for keep in tensor_pos:
        # only argument `keep` requires a gradient; backward must return None for the others
        partial = tuple(
            a.detach().requires_grad_(i == keep) if isinstance(a, torch.Tensor) else a
            for i, a in enumerate(args)
        )
        out = case.fn(*partial)
        grads = out.grad_fn.apply(torch.ones_like(out))
        grads = grads if isinstance(grads, tuple) else (grads,)
        # one gradient per argument; arguments left to their defaults may get trailing Nones
        assert len(grads) >= len(args)
        for i, grad in enumerate(grads):
            if i == keep:
                assert grad is not None and grad.shape == args[i].shape
            else:
                assert grad is None, f"{case.name}: gradient returned for argument {i}"


def test_graph_is_made_of_the_hand_written_functions() -> None:
    gen = np.random.default_rng(4)
    x, w, b = randn(gen, 4, 3), randn(gen, 2, 3), randn(gen, 2)
    out = hx.SoftmaxCrossEntropyFunction.apply(
        hx.ReLUFunction.apply(hx.LinearFunction.apply(x, w, b)), torch.tensor([0, 1, 1, 0])
    )
    names = []
    stack = [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or type(node).__name__ == "AccumulateGrad":
            continue
        names.append(type(node).__name__)
        stack.extend(n for n, _ in node.next_functions)
    assert names == [
        "SoftmaxCrossEntropyFunctionBackward",
        "ReLUFunctionBackward",
        "LinearFunctionBackward",
    ]


# -- ReLU at exactly 0 ---------------------------------------------------------------------------
def test_relu_gradient_at_zero_is_zero_like_torch() -> None:
    # finite differences at the kink give 1/2, which no subgradient convention matches;
    # PyTorch takes 0 there, and so do we (also for -0.0)
    x = t(np.array([0.0, -0.0, 0.0, 1e-300, -1e-300]))
    hx.ReLUFunction.apply(x).sum().backward()
    ref = x.detach().clone().requires_grad_()
    torch.relu(ref).sum().backward()
    assert torch.equal(x.grad, ref.grad)
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: v if abs(v) > 1e-3 else 0.0),
        min_size=1,
        max_size=8,
    )
)
def test_relu_and_leaky_relu_gradients_match_torch_everywhere(values: list[float]) -> None:
    for mine, theirs in (
        (hx.ReLUFunction.apply, torch.relu),
        (lambda x: hx.LeakyReLUFunction.apply(x, 0.1), lambda x: F.leaky_relu(x, 0.1)),
    ):
        x, y = t(values), t(values)
        mine(x).sum().backward()
        theirs(y).sum().backward()
        assert torch.equal(x.grad, y.grad)


# -- softmax cross-entropy ----------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(2, 5),
    st.floats(1.0, 1e4),
    st.integers(0, 2**16),
)
def test_cross_entropy_is_stable_for_huge_logits(n: int, c: int, scale: float, seed: int) -> None:
    gen = np.random.default_rng(seed)
    z = t(gen.standard_normal((n, c)) * scale)
    y = torch.tensor(gen.integers(0, c, n))
    loss = hx.SoftmaxCrossEntropyFunction.apply(z, y)
    loss.backward()
    zr = z.detach().clone().requires_grad_()
    ref = F.cross_entropy(zr, y)
    ref.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(z.grad, zr.grad, rtol=1e-12, atol=1e-15)


def test_cross_entropy_gradient_is_p_minus_y_over_n() -> None:
    # worked example: uniform logits over 2 classes give p = (1/2, 1/2)
    z = t(np.zeros((2, 2)))
    loss = hx.SoftmaxCrossEntropyFunction.apply(z, torch.tensor([0, 1]))
    loss.backward()
    assert loss.item() == pytest.approx(np.log(2.0), rel=1e-15)
    expected = np.array([[-0.5, 0.5], [0.5, -0.5]]) / 2
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-15)


def test_cross_entropy_probability_target_gets_gradient_minus_log_softmax() -> None:
    gen = np.random.default_rng(5)
    z, y = randn(gen, 3, 4), _probs(gen, 3, 4)
    hx.SoftmaxCrossEntropyFunction.apply(z, y, "sum").backward()
    torch.testing.assert_close(y.grad, -torch.log_softmax(z.detach(), 1), rtol=1e-12, atol=0)


# -- errors --------------------------------------------------------------------------------------
def test_batch_norm_batch_size_1_is_a_clear_error() -> None:
    x = t(np.ones((1, 3)))
    with pytest.raises(
        ValueError,
        match=r"BatchNormFunction: expected more than 1 value per channel in training mode, "
        r"got input \(1, 3\)",
    ):
        hx.BatchNormFunction.apply(x, t(np.ones(3)), t(np.zeros(3)), 1e-5)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: hx.LinearFunction.apply(t(np.ones((4, 6))), t(np.ones((3, 5))), None),
            ValueError,
            r"LinearFunction: expected input \(N, 5\) for weight \(3, 5\), got input \(4, 6\)",
        ),
        (
            lambda: hx.LinearFunction.apply(t(np.ones((4, 5))), t(np.ones((3, 5))), t(np.ones(2))),
            ValueError,
            r"LinearFunction: expected bias \(3,\) for weight \(3, 5\), got \(2,\)",
        ),
        (
            lambda: hx.BatchNormFunction.apply(t(np.ones((4, 3))), t(np.ones(2)), None, 1e-5),
            ValueError,
            r"BatchNormFunction: expected gamma \(3,\) for input \(4, 3\), got \(2,\)",
        ),
        (
            lambda: hx.BatchNormFunction.apply(t(np.ones(4)), None, None, 1e-5),
            ValueError,
            r"BatchNormFunction: expected input \(N, C\) or \(N, C, \*\), got \(4,\)",
        ),
        (
            lambda: hx.Conv2dFunction.apply(t(np.ones((1, 2, 5, 5))), t(np.ones((4, 3, 3, 3)))),
            ValueError,
            r"Conv2dFunction: expected input \(N, 3, H, W\) for weight \(4, 3, 3, 3\) and "
            r"groups=1, got \(1, 2, 5, 5\)",
        ),
        (
            lambda: hx.Conv2dFunction.apply(t(np.ones((1, 3, 2, 2))), t(np.ones((4, 3, 3, 3)))),
            ValueError,
            r"Conv2dFunction: kernel \(3, 3\) .* larger than the input \(1, 3, 2, 2\)",
        ),
        (
            lambda: hx.AvgPool2dFunction.apply(t(np.ones((1, 1, 4, 4))), 2.5),
            ValueError,
            r"AvgPool2dFunction: kernel_size must be an int or a pair of ints, got 2\.5",
        ),
        (
            lambda: hx.Conv2dFunction.apply(
                t(np.ones((1, 1, 4, 4))), t(np.ones((1, 1, 2, 2))), None, (1, 1, 1)
            ),
            ValueError,
            r"Conv2dFunction: stride must be an int or a pair of ints, got \(1, 1, 1\)",
        ),
        (
            lambda: hx.MaxPool2dFunction.apply(t(np.ones((1, 1, 4, 4))), 2, 2, 2),
            ValueError,
            r"MaxPool2dFunction: padding \(2, 2\) must be at most half of kernel_size \(2, 2\)",
        ),
        (
            lambda: hx.AvgPool2dFunction.apply(t(np.ones((4, 4))), 2),
            ValueError,
            r"AvgPool2dFunction: expected input \(N, C, H, W\), got \(4, 4\)",
        ),
        (
            lambda: hx.SoftmaxCrossEntropyFunction.apply(t(np.ones((2, 3))), torch.tensor([0, 3])),
            ValueError,
            r"SoftmaxCrossEntropyFunction: target class 3 out of range for 3 classes",
        ),
        (
            lambda: hx.SoftmaxCrossEntropyFunction.apply(t(np.ones((2, 3))), torch.tensor([0])),
            ValueError,
            r"SoftmaxCrossEntropyFunction: class target must be \(2,\) for logits \(2, 3\), "
            r"got \(1,\)",
        ),
        (
            lambda: hx.SoftmaxCrossEntropyFunction.apply(
                t(np.ones((2, 3))), torch.tensor([0, 1]), "avg"
            ),
            ValueError,
            r"SoftmaxCrossEntropyFunction: reduction must be 'mean', 'sum' or 'none', "
            r"got 'avg'",
        ),
        (
            lambda: hx.GELUFunction.apply(t(np.ones(2)), "erf"),
            ValueError,
            r"GELUFunction: approximate must be 'none' or 'tanh', got 'erf'",
        ),
        (
            lambda: hx.DropoutFunction.apply(t(np.ones((2, 3))), t(np.ones(3), grad=False)),
            ValueError,
            r"DropoutFunction: mask shape \(3,\) does not match input \(2, 3\)",
        ),
    ],
)
def test_bad_input_messages(call: Callable[[], Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()
