"""Learning-rate schedules: torch's lr sequences and state dicts, closed forms, exact resume,
and error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from handgrad import optim
from handgrad.nn import Parameter

LRS = (0.1, 0.03)  # two param groups with different initial lrs
EPOCHS = 45

SCHEDULES = [
    ("StepLR", {"step_size": 3}),
    ("StepLR", {"step_size": 4, "gamma": 0.5}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 10}),  # 45 epochs: past T_max and back up twice
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.01}),
]


def make_optimizer(lrs=LRS) -> optim.SGD:
    params = [Parameter(np.zeros(3)) for _ in lrs]
    return optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)])


def make_torch_optimizer(torch, lrs=LRS):
    params = [torch.zeros(3, requires_grad=True) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)])


def lr_sequence(opt, sched, epochs: int) -> list[list[float]]:
    """The lrs after construction and after each epoch (optimizer step, then scheduler)."""
    out = [list(sched.get_last_lr())]
    for _ in range(epochs):
        opt.step()
        sched.step()
        out.append(list(sched.get_last_lr()))
        assert [g["lr"] for g in opt.param_groups] == out[-1]
    return out


def closed_form(name: str, kwargs: dict, base_lr: float, e: int) -> float:
    if name == "StepLR":
        return base_lr * kwargs.get("gamma", 0.1) ** (e // kwargs["step_size"])
    if name == "ExponentialLR":
        return base_lr * kwargs["gamma"] ** e
    eta_min, T = kwargs.get("eta_min", 0.0), kwargs["T_max"]
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * e / T)) / 2


def assert_state_dicts_match(mine: dict, theirs: dict) -> None:
    assert set(mine) == set(theirs)
    for key, value in theirs.items():
        if isinstance(value, list):
            np.testing.assert_allclose(mine[key], value, rtol=1e-12, atol=0)
        else:
            assert mine[key] == pytest.approx(value, rel=1e-12, abs=0), key


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULES)
def test_lr_sequence_and_state_dict_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    opt, topt = make_optimizer(), make_torch_optimizer(torch)
    sched = getattr(optim, name)(opt, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    assert_state_dicts_match(sched.state_dict(), tsched.state_dict())
    ours, theirs = lr_sequence(opt, sched, EPOCHS), lr_sequence(topt, tsched, EPOCHS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    assert sched.last_epoch == tsched.last_epoch == EPOCHS
    assert_state_dicts_match(sched.state_dict(), tsched.state_dict())
    # the optimizer's groups carry torch's 'initial_lr'
    assert opt.state_dict()["param_groups"][1]["initial_lr"] == LRS[1]


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULES)
def test_lr_sequence_follows_the_closed_form(name, kwargs):
    opt = make_optimizer()
    sched = getattr(optim, name)(opt, **kwargs)
    seq = lr_sequence(opt, sched, EPOCHS)
    expected = [[closed_form(name, kwargs, lr, e) for lr in LRS] for e in range(EPOCHS + 1)]
    np.testing.assert_allclose(seq, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULES)
def test_loading_torch_state_dict_continues_like_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    topt = make_torch_optimizer(torch)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    lr_sequence(topt, tsched, 12)
    opt = make_optimizer()
    sched = getattr(optim, name)(opt, **kwargs)
    for group, tgroup in zip(opt.param_groups, topt.param_groups, strict=True):
        group["lr"] = tgroup["lr"]
    sched.load_state_dict(tsched.state_dict())
    ours, theirs = lr_sequence(opt, sched, 20), lr_sequence(topt, tsched, 20)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULES)
def test_resume_from_npz_is_exact(tmp_path, name, kwargs):
    opt = make_optimizer()
    sched = getattr(optim, name)(opt, **kwargs)
    reference = lr_sequence(opt, sched, 30)

    opt = make_optimizer()
    sched = getattr(optim, name)(opt, **kwargs)
    first = lr_sequence(opt, sched, 12)
    path = tmp_path / "ckpt.npz"
    np.savez(
        path,
        **optim.flatten_state(opt.state_dict(), prefix="optimizer."),
        **optim.flatten_state(sched.state_dict(), prefix="scheduler."),
    )
    with np.load(path, allow_pickle=False) as f:
        flat = dict(f)
    opt = make_optimizer(lrs=(5.0, 5.0))  # everything must come from the checkpoint
    sched = getattr(optim, name)(opt, **kwargs)
    opt.load_state_dict(optim.unflatten_state(flat, prefix="optimizer."))
    sched.load_state_dict(optim.unflatten_state(flat, prefix="scheduler."))
    assert sched.get_last_lr() == first[-1]
    rest = lr_sequence(opt, sched, 18)
    assert first + rest[1:] == reference  # bit for bit


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULES)
def test_constructing_with_last_epoch_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    opt, topt = make_optimizer(), make_torch_optimizer(torch)
    for group, tgroup, lr in zip(opt.param_groups, topt.param_groups, LRS, strict=True):
        group["initial_lr"] = tgroup["initial_lr"] = lr
        group["lr"] = tgroup["lr"] = lr / 2
    sched = getattr(optim, name)(opt, last_epoch=5, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, last_epoch=5, **kwargs)
    ours, theirs = lr_sequence(opt, sched, 15), lr_sequence(topt, tsched, 15)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_schedule_keeps_outside_lr_changes_like_torch():
    # the recursive forms multiply the current lr, so a manual change persists
    torch = pytest.importorskip("torch")
    opt, topt = make_optimizer(), make_torch_optimizer(torch)
    sched = optim.CosineAnnealingLR(opt, T_max=10)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=10)
    lr_sequence(opt, sched, 3)
    lr_sequence(topt, tsched, 3)
    opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = 0.5
    ours, theirs = lr_sequence(opt, sched, 5), lr_sequence(topt, tsched, 5)
    np.testing.assert_allclose(ours[1:], theirs[1:], rtol=1e-12)


def test_schedule_drives_the_optimizer_step():
    p = Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(4):
        p.grad[...] = 1.0
        opt.step()
        sched.step()
    # lrs used: 1, 1, 0.5, 0.5
    np.testing.assert_allclose(p.data, [-3.0], rtol=0, atol=1e-15)


def test_get_lr_outside_step_warns():
    sched = optim.ExponentialLR(make_optimizer(), gamma=0.5)
    with pytest.warns(UserWarning, match="use get_last_lr"):
        sched.get_lr()


@pytest.mark.parametrize(
    ("name", "kwargs", "exc", "match"),
    [
        ("StepLR", {"step_size": 0}, ValueError, r"StepLR: invalid step_size 0, must be a pos"),
        ("StepLR", {"step_size": 2.5}, ValueError, r"StepLR: invalid step_size 2\.5"),
        ("StepLR", {"step_size": 2, "gamma": -0.1}, ValueError, r"StepLR: invalid gamma -0\.1"),
        ("ExponentialLR", {"gamma": 0.0}, ValueError, r"ExponentialLR: invalid gamma 0\.0, must"),
        ("ExponentialLR", {"gamma": "a"}, TypeError, r"ExponentialLR: gamma must be a real"),
        ("CosineAnnealingLR", {"T_max": 0}, ValueError, r"CosineAnnealingLR: invalid T_max 0"),
        (
            "CosineAnnealingLR",
            {"T_max": 5, "eta_min": -1e-3},
            ValueError,
            r"CosineAnnealingLR: invalid eta_min -0\.001, must be >= 0",
        ),
        ("StepLR", {"step_size": 2, "last_epoch": -2}, ValueError, r"invalid last_epoch -2"),
        (
            "StepLR",
            {"step_size": 2, "last_epoch": 3},
            KeyError,
            r"StepLR: param_groups\[0\] has no 'initial_lr'",
        ),
    ],
)
def test_invalid_arguments(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(optim, name)(make_optimizer(), **kwargs)


def test_optimizer_must_be_a_handgrad_optimizer():
    with pytest.raises(TypeError, match=r"StepLR: optimizer must be a handgrad\.optim\.Optimizer"):
        optim.StepLR(object(), step_size=2)
