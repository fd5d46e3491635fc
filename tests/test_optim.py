"""Optimizers: parity with torch.optim step by step, worked first steps, exact resume from a
state dict (through an .npz file), the state dict layout, and error messages."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

from handgrad import optim
from handgrad.nn import Parameter

SHAPES = [(3, 4), (4,), (2, 3, 2), (1,)]


def grad_fn(x: np.ndarray) -> np.ndarray:
    """The gradient of sum(0.35 x^2 - cos(3x)/3 + 0.1 x): a deterministic, non-convex function
    of the current parameters, so momentum and second moments see changing gradients."""
    return (0.7 * x + np.sin(3.0 * x) + 0.1).astype(x.dtype)


def make_params(dtype=np.float64, seed=0) -> list[Parameter]:
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def set_grads(params: list[Parameter]) -> None:
    for p in params:
        p.grad[...] = grad_fn(p.data)


def run(opt: optim.Optimizer, params: list[Parameter], steps: int) -> None:
    for _ in range(steps):
        set_grads(params)
        opt.step()


# -- every option combination against torch.optim ---------------------------------------------
SGD_CONFIGS = [
    {"lr": 0.05, "momentum": m, "dampening": d, "nesterov": n, "weight_decay": wd}
    for m, d, n, wd in itertools.product([0.0, 0.9], [0.0, 0.5], [False, True], [0.0, 0.1])
    if not (n and (m == 0 or d != 0))
] + [
    {"lr": 0.05, "momentum": 0.9, "maximize": True, "weight_decay": 0.1},
    {"lr": 0.05, "maximize": True},
]
ADAM_CONFIGS = [
    {"lr": 0.05, "weight_decay": wd, "amsgrad": a}
    for wd, a in itertools.product([0.0, 0.1], [False, True])
] + [
    {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.05, "amsgrad": True},
    {"lr": 0.05, "weight_decay": 0.1, "maximize": True},
]
RMSPROP_CONFIGS = [
    {"lr": 0.01, "alpha": a, "momentum": m, "centered": c, "weight_decay": wd}
    for a, m, c, wd in itertools.product([0.99, 0.9], [0.0, 0.5], [False, True], [0.0, 0.1])
] + [{"lr": 0.01, "momentum": 0.5, "centered": True, "maximize": True}]

PARITY_CASES = (
    [("SGD", c) for c in SGD_CONFIGS]
    + [("Adam", c) for c in ADAM_CONFIGS]
    + [("AdamW", c) for c in ADAM_CONFIGS]
    + [("RMSprop", c) for c in RMSPROP_CONFIGS]
)


def run_against_torch(name: str, kwargs: dict, steps: int, dtype=np.float64):
    """Run handgrad and torch side by side, both given the same NumPy gradients."""
    torch = pytest.importorskip("torch")
    hparams = make_params(dtype)
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in hparams]
    hopt = getattr(optim, name)(hparams, **kwargs)
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    for _ in range(steps):
        for hp, tp in zip(hparams, tparams, strict=True):
            g = grad_fn(hp.data)
            hp.grad[...] = g
            tp.grad = torch.from_numpy(g.copy())
        hopt.step()
        topt.step()
    return hopt, topt, hparams, tparams


@pytest.mark.parametrize(("name", "kwargs"), PARITY_CASES, ids=lambda v: str(v))
def test_matches_torch_50_steps_float64(name, kwargs):
    torch = pytest.importorskip("torch")
    hopt, topt, hparams, tparams = run_against_torch(name, kwargs, steps=50)
    start = make_params()
    for hp, tp, p0 in zip(hparams, tparams, start, strict=True):
        assert not np.allclose(hp.data, p0.data)  # the run went somewhere
        np.testing.assert_allclose(hp.data, tp.detach().numpy(), rtol=0, atol=1e-10)
    # the optimizer state too, key for key (torch's state keys are the reference)
    tstate = topt.state_dict()["state"]
    hstate = hopt.state_dict()["state"]
    assert sorted(hstate) == sorted(tstate)
    for i, tentry in tstate.items():
        assert set(hstate[i]) == set(tentry)
        for key, tval in tentry.items():
            if isinstance(tval, torch.Tensor) and tval.ndim > 0:
                np.testing.assert_allclose(hstate[i][key], tval.numpy(), rtol=0, atol=1e-10)
            else:
                assert hstate[i][key] == float(tval)
    if kwargs.get("amsgrad"):  # the max must have mattered somewhere
        assert any((s["max_exp_avg_sq"] > s["exp_avg_sq"]).any() for s in hstate.values())


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_param_groups_match_torch(name):
    torch = pytest.importorskip("torch")
    extra = {"SGD": {"momentum": 0.9}, "RMSprop": {"momentum": 0.3}}.get(name, {})
    hparams = make_params()
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in hparams]

    def groups(ps):
        return [{"params": ps[:2], "lr": 0.03}, {"params": ps[2:], "weight_decay": 0.2}]

    hopt = getattr(optim, name)(groups(hparams), lr=0.01, **extra)
    topt = getattr(torch.optim, name)(groups(tparams), lr=0.01, **extra)
    for _ in range(30):
        for hp, tp in zip(hparams, tparams, strict=True):
            hp.grad[...] = grad_fn(hp.data)
            tp.grad = torch.from_numpy(hp.grad.copy())
        hopt.step()
        topt.step()
    for hp, tp in zip(hparams, tparams, strict=True):
        np.testing.assert_allclose(hp.data, tp.detach().numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
        ("Adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
        ("AdamW", {"lr": 0.05}),
        ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ],
)
def test_float32_stays_float32_and_tracks_torch(name, kwargs):
    # torch's CPU kernels fuse multiply-adds, NumPy rounds twice: agreement to float32
    # rounding, not bit for bit
    hopt, _, hparams, tparams = run_against_torch(name, kwargs, steps=5, dtype=np.float32)
    for hp, tp in zip(hparams, tparams, strict=True):
        assert hp.data.dtype == np.float32
        np.testing.assert_allclose(hp.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    for entry in hopt.state.values():
        for value in entry.values():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32


# -- worked steps (no torch needed) -----------------------------------------------------------
def one_param(values, grad) -> Parameter:
    p = Parameter(np.array(values, dtype=np.float64))
    p.grad[...] = grad
    return p


def test_sgd_momentum_dampening_worked_example():
    # constant gradient g: b1 = g (undamped), b2 = 0.9 g + 0.5 g, b3 = 0.9 b2 + 0.5 g
    p = one_param([1.0, -2.0], [0.5, 1.0])
    g = p.grad.copy()
    opt = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    expected = p.data.copy()
    b = g.copy()
    for t in range(3):
        if t > 0:
            b = 0.9 * b + 0.5 * g
        expected = expected - 0.1 * b
        opt.step()
    np.testing.assert_allclose(p.data, expected, rtol=0, atol=1e-15)


def test_sgd_maximize_ascends():
    p = one_param([1.0, -2.0], [0.5, 1.0])
    optim.SGD([p], lr=0.1, maximize=True).step()
    np.testing.assert_allclose(p.data, [1.05, -1.9], rtol=0, atol=1e-15)


def test_adam_first_step_is_lr_times_sign():
    # m_hat = g and v_hat = g^2 after one step, so the step is lr * g / (|g| + eps)
    p = one_param([1.0, -2.0, 3.0], [0.5, -4.0, 1e-3])
    g = p.grad.copy()
    optim.Adam([p], lr=0.01).step()
    np.testing.assert_allclose(
        p.data, [1.0, -2.0, 3.0] - 0.01 * g / (np.abs(g) + 1e-8), rtol=0, atol=1e-15
    )


def test_adamw_decays_decoupled_while_adam_adds_l2_to_the_gradient():
    # with a zero gradient AdamW only shrinks p by (1 - lr wd); Adam sees g = wd p and
    # takes a full normalised step of about lr against sign(p)
    pw = one_param([1.0, -2.0], [0.0, 0.0])
    pa = one_param([1.0, -2.0], [0.0, 0.0])
    optim.AdamW([pw], lr=0.01, weight_decay=0.1).step()
    optim.Adam([pa], lr=0.01, weight_decay=0.1).step()
    np.testing.assert_allclose(pw.data, [0.999, -1.998], rtol=0, atol=1e-15)
    np.testing.assert_allclose(pa.data, [0.99, -1.99], rtol=0, atol=1e-9)


def test_rmsprop_first_step_worked_example():
    p = one_param([1.0, -2.0], [0.5, -4.0])
    g = p.grad.copy()
    optim.RMSprop([p], lr=0.01, alpha=0.9).step()
    expected = np.array([1.0, -2.0]) - 0.01 * g / (np.sqrt(0.1 * g**2) + 1e-8)
    np.testing.assert_allclose(p.data, expected, rtol=0, atol=1e-15)


def test_parameters_without_grad_are_skipped_and_grads_are_not_modified():
    p, q = make_params()[:2]
    set_grads([p, q])
    q.grad = None
    q0, g0 = q.data.copy(), p.grad.copy()
    opt = optim.Adam([p, q], lr=0.1, weight_decay=0.5, maximize=True)
    opt.step()
    np.testing.assert_array_equal(q.data, q0)
    np.testing.assert_array_equal(p.grad, g0)  # weight decay and maximize use scratch space
    assert q not in opt.state
    assert p in opt.state


def test_zero_grad_zeroes_in_place():
    params = make_params()
    set_grads(params)
    grads = [p.grad for p in params]
    optim.SGD(params, lr=0.1).zero_grad()
    for p, g in zip(params, grads, strict=True):
        assert p.grad is g
        assert not g.any()


def test_mixed_dtypes_share_no_scratch():
    p32 = Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    p64 = Parameter(np.arange(4, dtype=np.float64))
    for p in (p32, p64):
        p.grad[...] = 1.0
    opt = optim.SGD([p32, p64], lr=0.5, momentum=0.9, weight_decay=0.1, nesterov=True)
    opt.step()
    # first step: b = g' = 1 + 0.1 p, d = g' + 0.9 b = 1.9 g'
    for p, p0 in ((p32, np.arange(6).reshape(2, 3)), (p64, np.arange(4))):
        np.testing.assert_allclose(p.data, p0 - 0.5 * 1.9 * (1 + 0.1 * p0), rtol=1e-6, atol=1e-6)
    assert p32.data.dtype == np.float32
    assert p64.data.dtype == np.float64


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True}),
        ("SGD", {"momentum": 0.9, "dampening": 0.1}),
        ("Adam", {"amsgrad": True, "weight_decay": 0.1}),
        ("AdamW", {"amsgrad": True, "maximize": True}),
        ("RMSprop", {"momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    ],
)
def test_step_allocates_no_full_size_temporaries(name, kwargs):
    # 8 MB of parameters: a single full-size temporary would show as >= 8 MB
    p = Parameter(np.ones((1000, 1000)))
    p.grad[...] = 0.5
    opt = getattr(optim, name)([p], **kwargs)
    opt.step()  # lazy state and scratch are allocated here
    tracemalloc.start()
    try:
        for _ in range(3):
            opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000, f"{name} step allocated {peak} bytes"


# -- state dicts ------------------------------------------------------------------------------
RESUME_CASES = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05}),
    ("Adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.05, "betas": (0.8, 0.99)}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.1}),
]


@pytest.mark.parametrize(("name", "kwargs"), RESUME_CASES)
def test_resume_through_npz_is_bit_exact(tmp_path, name, kwargs):
    cls = getattr(optim, name)
    ref_params = make_params()
    ref = cls(ref_params, **kwargs)
    run(ref, ref_params, 40)

    params = make_params()
    opt = cls(params, **kwargs)
    run(opt, params, 20)
    path = tmp_path / "ckpt.npz"
    np.savez(
        path,
        **optim.flatten_state(opt.state_dict(), prefix="optimizer."),
        **{f"param{i}": p.data for i, p in enumerate(params)},
    )
    del opt, params

    with np.load(path, allow_pickle=False) as f:
        flat = dict(f)
    params = make_params()
    for i, p in enumerate(params):
        p.data[...] = flat[f"param{i}"]
    opt = cls(params, lr=123.0)  # hyperparameters come back from the state dict
    opt.load_state_dict(optim.unflatten_state(flat, prefix="optimizer."))
    run(opt, params, 20)
    for p, q in zip(params, ref_params, strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    assert opt.param_groups[0]["lr"] == kwargs["lr"]
    for p, q in zip(params, ref_params, strict=True):
        for key, value in ref.state.get(q, {}).items():
            np.testing.assert_array_equal(opt.state[p][key], value)


def test_state_dict_is_a_copy():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    run(opt, params, 2)
    sd = opt.state_dict()
    saved = sd["state"][0]["exp_avg"].copy()
    run(opt, params, 2)
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], saved)
    assert sd["state"][0]["step"] == 2.0


def test_state_dict_layout_matches_torch_and_loads_both_ways():
    torch = pytest.importorskip("torch")
    kwargs = {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}
    hopt, topt, hparams, tparams = run_against_torch("Adam", kwargs, steps=10)
    hsd, tsd = hopt.state_dict(), topt.state_dict()
    assert hsd["param_groups"][0]["params"] == tsd["param_groups"][0]["params"] == [0, 1, 2, 3]
    for key, value in hsd["param_groups"][0].items():
        assert tsd["param_groups"][0][key] == value, key
    assert list(hsd["state"]) == list(tsd["state"])

    # torch's state dict (tensors) into handgrad, then 10 more steps each
    params2 = [Parameter(t.detach().numpy().copy()) for t in tparams]
    hopt2 = optim.Adam(params2)
    hopt2.load_state_dict(tsd)
    # handgrad's state dict into torch (tensors made from the arrays)
    tparams2 = [torch.tensor(p.data.copy(), requires_grad=True) for p in hparams]
    topt2 = torch.optim.Adam(tparams2)
    topt2.load_state_dict(
        {
            "state": {
                i: {k: torch.as_tensor(v) for k, v in entry.items()}
                for i, entry in hsd["state"].items()
            },
            "param_groups": hsd["param_groups"],
        }
    )
    for _ in range(10):
        for hp, tp in zip(params2, tparams2, strict=True):
            hp.grad[...] = grad_fn(hp.data)
            tp.grad = torch.from_numpy(grad_fn(tp.detach().numpy()))
        hopt2.step()
        topt2.step()
    for hp, tp in zip(params2, tparams2, strict=True):
        np.testing.assert_allclose(hp.data, tp.detach().numpy(), rtol=0, atol=1e-10)


def test_load_state_dict_casts_to_param_dtype():
    params64 = make_params()
    opt64 = optim.Adam(params64, lr=0.1)
    run(opt64, params64, 3)
    params32 = make_params(np.float32)
    opt32 = optim.Adam(params32)
    opt32.load_state_dict(opt64.state_dict())
    assert opt32.state[params32[0]]["exp_avg"].dtype == np.float32
    np.testing.assert_allclose(
        opt32.state[params32[0]]["exp_avg"], opt64.state[params64[0]]["exp_avg"], rtol=1e-6
    )


def test_load_state_dict_errors():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, 1)
    sd = opt.state_dict()
    two_groups = optim.SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: state dict has 1 parameter "):
        two_groups.load_state_dict(sd)
    with pytest.raises(ValueError, match=r"parameter group 0 has 4 parameters in the state dict"):
        optim.SGD(params[:3], lr=0.1).load_state_dict(sd)
    other = [Parameter(np.zeros(s)) for s in [(4, 3), (4,), (2, 3, 2), (1,)]]
    with pytest.raises(ValueError, match=r"'momentum_buffer' of parameter 0 has shape \(3, 4\)"):
        optim.SGD(other, lr=0.1).load_state_dict(sd)
    with pytest.raises(KeyError, match="expected keys 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})
    bad = opt.state_dict()
    bad["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"SGD: invalid lr -1\.0"):
        opt.load_state_dict(bad)


# -- flatten_state / unflatten_state ----------------------------------------------------------
def test_flatten_state_round_trip_keeps_types(tmp_path):
    state = {
        "state": {0: {"step": 3.0, "exp_avg": np.arange(6.0).reshape(2, 3)}, 2: {}},
        "param_groups": [
            {"lr": 0.1, "betas": (0.9, 0.999), "amsgrad": False, "params": [0, 1]},
            {"lr": 1, "param_names": ["0.weight", "0.bias"], "note": "x", "foreach": None},
        ],
        "last_epoch": 4,
        "empty": [],
    }
    flat = optim.flatten_state(state)
    assert flat["state.0.step:float"] == 3.0
    assert flat["param_groups[0].betas:tuple"].tolist() == [0.9, 0.999]
    path = tmp_path / "s.npz"
    np.savez(path, **flat)
    with np.load(path, allow_pickle=False) as f:
        back = optim.unflatten_state(dict(f))
    np.testing.assert_array_equal(back["state"][0].pop("exp_avg"), np.arange(6.0).reshape(2, 3))
    state["state"][0].pop("exp_avg")
    assert back == state
    assert type(back["param_groups"][0]["betas"]) is tuple
    assert type(back["param_groups"][1]["lr"]) is int
    assert type(back["param_groups"][0]["amsgrad"]) is bool


def test_flatten_state_errors():
    with pytest.raises(ValueError, match=r"key 'a\.b' at 'x' contains one of"):
        optim.flatten_state({"x": {"a.b": 1.0}})
    with pytest.raises(TypeError, match=r"cannot store object at 'x'"):
        optim.flatten_state({"x": object()})
    with pytest.raises(TypeError, match=r"'x' must hold numbers, bools or strings"):
        optim.flatten_state({"x": [np.zeros(2)]})
    with pytest.raises(ValueError, match="unknown type tag 'set'"):
        optim.unflatten_state({"x:set": np.zeros(1)})


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs", "exc", "match"),
    [
        ("SGD", {"lr": -0.1}, ValueError, r"^SGD: invalid lr -0.1, must be >= 0$"),
        ("SGD", {"lr": float("nan")}, ValueError, r"SGD: invalid lr nan"),
        ("SGD", {"lr": "0.1"}, TypeError, r"SGD: lr must be a real number, got '0.1'"),
        ("SGD", {"momentum": -0.5}, ValueError, r"SGD: invalid momentum -0.5, must be >= 0"),
        ("SGD", {"dampening": 1.5}, ValueError, r"SGD: invalid dampening 1.5, must be in \[0, 1\]"),
        ("SGD", {"weight_decay": -1e-4}, ValueError, r"SGD: invalid weight_decay -0.0001"),
        (
            "SGD",
            {"nesterov": True},
            ValueError,
            r"SGD: nesterov=True requires momentum > 0 and dampening = 0, "
            r"got momentum=0.0, dampening=0.0",
        ),
        (
            "SGD",
            {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
            ValueError,
            r"got momentum=0.9, dampening=0.1",
        ),
        ("Adam", {"lr": -1e-3}, ValueError, r"Adam: invalid lr -0.001, must be >= 0"),
        ("Adam", {"eps": -1e-8}, ValueError, r"Adam: invalid eps -1e-08, must be >= 0"),
        ("Adam", {"betas": (1.2, 0.999)}, ValueError, r"Adam: invalid betas\[0\] 1.2, must be in"),
        ("Adam", {"betas": (0.9, 1.0)}, ValueError, r"Adam: invalid betas\[1\] 1.0, .* \[0, 1\)"),
        ("Adam", {"betas": 0.9}, ValueError, r"Adam: betas must be a pair \(beta1, beta2\)"),
        ("Adam", {"weight_decay": -0.1}, ValueError, r"Adam: invalid weight_decay -0.1"),
        ("AdamW", {"betas": (0.9, -0.1)}, ValueError, r"AdamW: invalid betas\[1\] -0.1"),
        ("AdamW", {"weight_decay": -1.0}, ValueError, r"AdamW: invalid weight_decay -1.0"),
        ("RMSprop", {"lr": -0.01}, ValueError, r"RMSprop: invalid lr -0.01, must be >= 0"),
        ("RMSprop", {"alpha": 1.5}, ValueError, r"RMSprop: invalid alpha 1.5, must be in \[0, 1\]"),
        ("RMSprop", {"alpha": -0.1}, ValueError, r"RMSprop: invalid alpha -0.1"),
        ("RMSprop", {"eps": -1.0}, ValueError, r"RMSprop: invalid eps -1.0"),
        ("RMSprop", {"momentum": -0.9}, ValueError, r"RMSprop: invalid momentum -0.9"),
        ("RMSprop", {"weight_decay": -0.1}, ValueError, r"RMSprop: invalid weight_decay -0.1"),
    ],
)
def test_invalid_hyperparameters(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(optim, name)(make_params(), **kwargs)


def test_invalid_params():
    params = make_params()
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"SGD: params must be an iterable .* got ndarray"):
        optim.SGD(np.zeros(3), lr=0.1)
    with pytest.raises(TypeError, match="Adam: can only optimize handgrad Parameters, got ndarray"):
        optim.Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="Adam: a param group contains the same parameter twice"):
        optim.Adam([params[0], params[0]])
    with pytest.raises(
        ValueError, match="SGD: some parameters appear in more than one parameter group"
    ):
        optim.SGD([{"params": params[:2]}, {"params": params[1:]}], lr=0.1)
    with pytest.raises(TypeError, match="SGD: params must be an ordered collection, got a set"):
        optim.SGD([{"params": set(params)}], lr=0.1)
    with pytest.raises(ValueError, match="RMSprop: invalid lr -1"):
        optim.RMSprop([{"params": params[:2], "lr": -1}, {"params": params[2:]}])


def test_grad_shape_mismatch_is_named():
    p = Parameter(np.zeros((2, 3)))
    p.grad = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"SGD: parameter \(2, 3\) has grad of shape \(3, 2\)"):
        optim.SGD([p], lr=0.1).step()


def test_named_parameters_and_repr():
    params = make_params()
    opt = optim.SGD([(f"p{i}", p) for i, p in enumerate(params)], lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["param_names"] == ["p0", "p1", "p2", "p3"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["p0", "p1", "p2", "p3"]
    assert "lr: 0.1" in repr(opt)
    assert "momentum: 0.9" in repr(opt)


def test_closure_is_called_and_returned():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)

    def closure():
        set_grads(params)
        return 1.5

    before = params[0].data.copy()
    assert opt.step(closure) == 1.5
    np.testing.assert_allclose(params[0].data, before - 0.1 * grad_fn(before), rtol=0, atol=1e-15)


def test_optimizes_a_module_parameters():
    from handgrad.nn import Linear

    model = Linear(3, 2, rng=0, dtype=np.float64)
    x = np.arange(6.0).reshape(2, 3)
    opt = optim.SGD(model.parameters(), lr=0.1)
    w0, b0 = model.weight.data.copy(), model.bias.data.copy()
    model(x)
    model.backward(np.ones((2, 2)))  # d sum(out) / d W = column sums of x, d / d b = N
    opt.step()
    np.testing.assert_allclose(model.weight.data, w0 - 0.1 * x.sum(0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(model.bias.data, b0 - 0.1 * 2.0, rtol=0, atol=1e-15)
