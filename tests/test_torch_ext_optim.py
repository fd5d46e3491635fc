"""handgrad.torch_ext.Adam against torch.optim.Adam, parameter for parameter."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from handgrad.torch_ext import Adam

pytestmark = pytest.mark.usefixtures("one_thread")

D = torch.float64


def _params(seed: int = 0) -> list[torch.Tensor]:
    gen = np.random.default_rng(seed)
    return [
        torch.tensor(gen.standard_normal(s), dtype=D, requires_grad=True)
        for s in ((4, 3), (3,), (2, 2, 2))
    ]


def _loss(params: list[torch.Tensor]) -> torch.Tensor:
    # a non-quadratic loss, so gradients change from step to step in every direction
    w, b, c = params
    return (torch.tanh(w).sum(0) * b).pow(2).sum() + torch.cos(c).sum() + (w**4).mean()


def _train(opt: Any, params: list[torch.Tensor], steps: int) -> list[list[torch.Tensor]]:
    trace = []
    for _ in range(steps):
        opt.zero_grad()
        _loss(params).backward()
        opt.step()
        trace.append([p.detach().clone() for p in params])
    return trace


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"lr": 0.05},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-6, "weight_decay": 0.01},
        {"lr": 0.01, "amsgrad": True},
        {"lr": 0.01, "weight_decay": 0.05, "amsgrad": True},
    ],
    ids=repr,
)
def test_matches_torch_adam_over_100_steps(options: dict[str, Any]) -> None:
    mine, ref = _params(), _params()
    trace = _train(Adam(mine, **options), mine, 100)
    ref_trace = _train(torch.optim.Adam(ref, foreach=False, **options), ref, 100)
    for step, (a, b) in enumerate(zip(trace, ref_trace, strict=True)):
        for p, q in zip(a, b, strict=True):
            # the same operations in the same order: equal to the last bit in practice
            torch.testing.assert_close(p, q, rtol=0, atol=1e-15, msg=f"step {step + 1}")
    # and the run actually moved the parameters
    assert all(not torch.equal(p, q) for p, q in zip(mine, _params(), strict=True))


def test_state_names_shapes_and_first_step_by_hand() -> None:
    p = torch.tensor([1.0, -2.0], dtype=D, requires_grad=True)
    opt = Adam([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    p.grad = torch.tensor([0.5, -4.0], dtype=D)
    opt.step()
    state = opt.state[p]
    assert set(state) == {"step", "m", "v"}
    assert state["step"] == 1
    torch.testing.assert_close(state["m"], torch.tensor([0.05, -0.4], dtype=D))
    torch.testing.assert_close(state["v"], torch.tensor([0.0025, 0.16], dtype=D))
    # step 1 with bias correction: m_hat = g, v_hat = g^2, so p -= lr * g / (|g| + eps)
    expected = [1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 * 4.0 / (4.0 + 1e-8)]
    torch.testing.assert_close(p.detach(), torch.tensor(expected, dtype=D), rtol=1e-14, atol=0)
    assert set(Adam([p], amsgrad=True).state) == set()  # state is created lazily


def test_weight_decay_leaves_grad_untouched_and_skips_params_without_grad() -> None:
    p, q = _params()[:2]
    opt = Adam([p, q], lr=0.1, weight_decay=0.5)
    p.grad = torch.ones_like(p)
    opt.step()
    assert torch.equal(p.grad, torch.ones_like(p))
    assert q not in opt.state and torch.equal(q, _params()[1])


def test_state_dict_round_trip_resumes_exactly() -> None:
    a = _params()
    opt_a = Adam(a, lr=0.03, weight_decay=0.01, amsgrad=True)
    _train(opt_a, a, 30)
    saved_params = [p.detach().clone() for p in a]
    saved_state = copy.deepcopy(opt_a.state_dict())
    rest_a = _train(opt_a, a, 20)

    b = [p.clone().requires_grad_() for p in saved_params]
    opt_b = Adam(b, lr=0.03, weight_decay=0.01, amsgrad=True)
    opt_b.load_state_dict(saved_state)
    assert opt_b.state[b[0]]["step"] == 30
    rest_b = _train(opt_b, b, 20)
    for x, y in zip(rest_a[-1], rest_b[-1], strict=True):
        assert torch.equal(x, y)


def test_closure_is_evaluated_and_returned() -> None:
    p = _params()
    opt = Adam(p, lr=0.01)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _loss(p)
        loss.backward()
        return loss

    first = opt.step(closure)
    assert torch.is_tensor(first) and first.item() == pytest.approx(_loss(_params()).item())


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"lr": -0.1}, r"Adam: invalid lr -0\.1, must be >= 0"),
        ({"lr": float("nan")}, r"Adam: invalid lr nan, must be >= 0"),
        ({"eps": -1e-8}, r"Adam: invalid eps -1e-08, must be >= 0"),
        ({"betas": (1.0, 0.999)}, r"Adam: invalid betas\[0\] 1\.0, must be in \[0, 1\)"),
        ({"betas": (0.9, -0.1)}, r"Adam: invalid betas\[1\] -0\.1, must be in \[0, 1\)"),
        ({"betas": 0.9}, r"Adam: betas must be a pair \(beta1, beta2\), got 0\.9"),
        ({"weight_decay": -1}, r"Adam: invalid weight_decay -1, must be >= 0"),
    ],
)
def test_bad_hyperparameters(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Adam(_params(), **options)
