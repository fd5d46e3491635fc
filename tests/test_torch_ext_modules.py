"""The torch.nn.Module wrappers of handgrad.torch_ext: each against PyTorch's own module.

A wrapper and the built-in module get the same state dict and the same float64 input; outputs,
input gradients, parameter gradients and (for batch norm) running statistics must agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import handgrad.torch_ext as hx

pytestmark = pytest.mark.usefixtures("one_thread")

D = torch.float64


# (name, wrapper factory, built-in factory, input shape)
PAIRS: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[int, ...]]] = [
    ("Linear", lambda: hx.Linear(5, 3), lambda: torch.nn.Linear(5, 3), (4, 5)),
    (
        "Linear-nobias",
        lambda: hx.Linear(5, 3, bias=False),
        lambda: torch.nn.Linear(5, 3, bias=False),
        (2, 4, 5),
    ),
    ("ReLU", hx.ReLU, torch.nn.ReLU, (4, 6)),
    ("LeakyReLU", lambda: hx.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2), (4, 6)),
    ("Sigmoid", hx.Sigmoid, torch.nn.Sigmoid, (4, 6)),
    ("Tanh", hx.Tanh, torch.nn.Tanh, (4, 6)),
    ("ELU", lambda: hx.ELU(0.5), lambda: torch.nn.ELU(0.5), (4, 6)),
    ("Softplus", lambda: hx.Softplus(2.0, 1.0), lambda: torch.nn.Softplus(2.0, 1.0), (4, 6)),
    ("GELU", hx.GELU, torch.nn.GELU, (4, 6)),
    ("GELU-tanh", lambda: hx.GELU("tanh"), lambda: torch.nn.GELU("tanh"), (4, 6)),
    ("Softmax", lambda: hx.Softmax(1), lambda: torch.nn.Softmax(1), (4, 6)),
    ("LogSoftmax", lambda: hx.LogSoftmax(-1), lambda: torch.nn.LogSoftmax(-1), (4, 6)),
    ("Flatten", hx.Flatten, torch.nn.Flatten, (2, 3, 4, 2)),
    ("BatchNorm1d", lambda: hx.BatchNorm1d(3), lambda: torch.nn.BatchNorm1d(3), (5, 3)),
    ("BatchNorm1d-NCL", lambda: hx.BatchNorm1d(3), lambda: torch.nn.BatchNorm1d(3), (4, 3, 2)),
    (
        "BatchNorm2d-no-affine",
        lambda: hx.BatchNorm2d(2, affine=False, momentum=None),
        lambda: torch.nn.BatchNorm2d(2, affine=False, momentum=None),
        (3, 2, 3, 3),
    ),
    (
        "Conv2d",
        lambda: hx.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
        lambda: torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
        (2, 4, 7, 6),
    ),
    (
        "Conv2d-same",
        lambda: hx.Conv2d(2, 3, 3, padding="same"),
        lambda: torch.nn.Conv2d(2, 3, 3, padding="same"),
        (2, 2, 5, 4),
    ),
    (
        "Conv2d-same-uneven",  # total padding 1 and 3: the extra row/column goes at the end
        lambda: hx.Conv2d(2, 3, (2, 4), padding="same", bias=False),
        lambda: torch.nn.Conv2d(2, 3, (2, 4), padding="same", bias=False),
        (2, 2, 5, 6),
    ),
    (
        "Conv2d-valid",
        lambda: hx.Conv2d(2, 3, 3, padding="valid"),
        lambda: torch.nn.Conv2d(2, 3, 3, padding="valid"),
        (1, 2, 5, 4),
    ),
    ("MaxPool2d", lambda: hx.MaxPool2d(3, 2, 1), lambda: torch.nn.MaxPool2d(3, 2, 1), (2, 2, 7, 6)),
    ("AvgPool2d", lambda: hx.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2), (2, 3, 6, 5)),
]


def _pair(make: Callable[[], Any], make_ref: Callable[[], Any]) -> tuple[Any, Any]:
    mine, ref = make().to(D), make_ref().to(D)
    ref.load_state_dict(mine.state_dict())
    return mine, ref


def _run(mod: Any, x: np.ndarray, g: np.ndarray | None) -> tuple[Any, ...]:
    """Forward and backward once; g=None draws the output gradient (seeded) from the shape."""
    xt = torch.tensor(x, dtype=D, requires_grad=True)
    out = mod(xt)
    if g is None:
        g = np.random.default_rng(x.size).standard_normal(tuple(out.shape))
    out.backward(torch.tensor(g, dtype=D))
    return out.detach(), xt.grad, g


# torch's own module warns that it copies the input for uneven 'same' padding
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize(("name", "make", "make_ref", "shape"), PAIRS, ids=[p[0] for p in PAIRS])
def test_wrapper_matches_builtin_module(name, make, make_ref, shape) -> None:
    gen = np.random.default_rng(0)
    mine, ref = _pair(make, make_ref)
    assert isinstance(mine, type(ref))  # a drop-in: same class hierarchy, state names, repr
    assert list(mine.state_dict()) == list(ref.state_dict())
    for mode in ("train", "eval", "train"):
        mine.train(mode == "train")
        ref.train(mode == "train")
        x = gen.standard_normal(shape)
        ref.zero_grad()
        out, gx, g = _run(mine, x, None)
        ref_out, ref_gx, _ = _run(ref, x, g)
        torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gx, ref_gx, rtol=1e-10, atol=1e-12)
        ref_params = dict(ref.named_parameters())
        for pname, p in mine.named_parameters():
            torch.testing.assert_close(p.grad, ref_params[pname].grad, rtol=1e-10, atol=1e-12)
            p.grad = None
        # running statistics and num_batches_tracked follow PyTorch's update exactly
        ref_state = ref.state_dict()
        for key, value in mine.state_dict().items():
            torch.testing.assert_close(value, ref_state[key], rtol=1e-12, atol=1e-14)


def test_sequential_runs_only_on_hand_written_functions() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        hx.Conv2d(1, 2, 3, padding=1),
        hx.BatchNorm2d(2),
        hx.ReLU(),
        hx.MaxPool2d(2),
        hx.Flatten(),
        hx.Linear(8, 4),
        hx.Tanh(),
        hx.Linear(4, 3),
    ).to(D)
    loss = hx.CrossEntropyLoss()(model(torch.randn(3, 1, 4, 4, dtype=D)), torch.tensor([0, 2, 1]))
    seen: set[str] = set()
    stack = [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        seen.add(type(node).__name__)
        stack.extend(n for n, _ in node.next_functions)
    assert seen == {
        "SoftmaxCrossEntropyFunctionBackward",
        "LinearFunctionBackward",
        "TanhFunctionBackward",
        "FlattenFunctionBackward",
        "MaxPool2dFunctionBackward",
        "ReLUFunctionBackward",
        "BatchNormFunctionBackward",
        "Conv2dFunctionBackward",
        "AccumulateGrad",
    }
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_cross_entropy_loss_module_matches_torch() -> None:
    gen = np.random.default_rng(1)
    z = torch.tensor(gen.standard_normal((5, 3)), dtype=D, requires_grad=True)
    zr = z.detach().clone().requires_grad_()
    y = torch.tensor([0, 2, 1, 1, 0])
    for reduction in ("mean", "sum", "none"):
        z.grad = zr.grad = None
        out = hx.CrossEntropyLoss(reduction)(z, y)
        ref = torch.nn.CrossEntropyLoss(reduction=reduction)(zr, y)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=0)
        out.sum().backward()
        ref.sum().backward()
        torch.testing.assert_close(z.grad, zr.grad, rtol=1e-12, atol=1e-15)
    assert repr(hx.CrossEntropyLoss("sum")) == "CrossEntropyLoss(reduction='sum')"


def test_dropout_mask_statistics_and_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    drop = hx.Dropout(0.25, generator=gen)
    x = torch.ones(200, 100, dtype=D, requires_grad=True)
    out = drop(x)
    kept = out != 0
    # kept units are scaled by 1 / (1 - p); about 1 - p of them are kept
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.75))
    assert abs(kept.double().mean().item() - 0.75) < 0.01
    out.sum().backward()
    torch.testing.assert_close(x.grad, out.detach())  # d(x * mask)/dx = mask, and x = 1
    drop.eval()
    assert drop(x) is x
    assert torch.equal(hx.Dropout(1.0)(x), torch.zeros_like(x))


def test_batch_norm_running_stats_over_many_steps_and_eval() -> None:
    gen = np.random.default_rng(2)
    mine, ref = _pair(
        lambda: hx.BatchNorm1d(4, momentum=0.3), lambda: torch.nn.BatchNorm1d(4, momentum=0.3)
    )
    for _ in range(5):
        x = torch.tensor(gen.standard_normal((6, 4)) * 3 + 1, dtype=D)
        mine(x)
        ref(x)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(mine.state_dict()[key], value, rtol=1e-13, atol=1e-15)
    assert int(mine.num_batches_tracked) == 5
    mine.eval()
    ref.eval()
    x = torch.tensor(gen.standard_normal((2, 4)), dtype=D)
    torch.testing.assert_close(mine(x), ref(x), rtol=1e-12, atol=1e-14)


def test_batch_norm_module_batch_size_1_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"more than 1 value per channel .* got input \(1, 3\)"):
        hx.BatchNorm1d(3)(torch.ones(1, 3))
    bn = hx.BatchNorm1d(3)
    bn(torch.randn(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(torch.ones(1, 3))
    assert int(bn.num_batches_tracked) == 1  # the failed batch did not count


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: hx.Conv2d(2, 3, 3, padding_mode="reflect"),
            r"Conv2d: padding_mode must be 'zeros', got 'reflect'",
        ),
        (lambda: hx.Softmax(None), r"Softmax: dim must be an int, got None"),
        (lambda: hx.LogSoftmax(None), r"LogSoftmax: dim must be an int, got None"),
        (
            lambda: hx.CrossEntropyLoss("avg"),
            r"CrossEntropyLoss: reduction must be 'mean', 'sum' or 'none', got 'avg'",
        ),
    ],
)
def test_bad_options_are_refused(make: Callable[[], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()
