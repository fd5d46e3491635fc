"""Generic checks driven by the registry: every layer and loss, the same four oracles.

1. central finite differences in float64 (scale-relative error below 1e-7),
2. PyTorch parity of the output and of every gradient in float64 (below 1e-10),
3. dtype preservation (float32 in, float32 out, float32 gradients),
4. shape errors and backward-before-forward errors with clear messages.
"""

from __future__ import annotations

import numpy as np
import pytest

from handgrad.nn import Identity
from layer_cases import CASES, Case

FD_EPS = 1e-6
FD_TOL = 1e-7
TORCH_TOL = 1e-10


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| relative to the larger of the two arrays' max magnitudes."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.abs(a).max(), np.abs(b).max(), 1e-12)
    return float(np.abs(a - b).max() / scale)


def build(case: Case, dtype=np.float64, seed: int = 0):
    rng = np.random.default_rng(seed)
    module = case.make(rng, dtype)
    if case.eval_mode:
        module.eval()
    x = case.draw_input(rng).astype(dtype)
    target = case.draw_target(rng) if case.kind == "loss" else None
    return module, x, target, rng


def has_parameters(case: Case) -> bool:
    module, *_ = build(case)
    return bool(list(module.parameters()))


def objective(case: Case, module, x, target, weights):
    """Scalar function whose gradient backward computes: sum(out * weights), or the loss."""
    if case.kind == "loss":
        return module(x, target)
    return float((module(x) * weights).sum())


def analytic(case: Case, module, x, target, weights):
    module.zero_grad()
    if case.kind == "loss":
        module(x, target)
        dx = module.backward()
    else:
        module(x)
        dx = module.backward(weights)
    return dx, {name: p.grad.copy() for name, p in module.named_parameters()}


def numeric(f, arr: np.ndarray) -> np.ndarray:
    """Central differences of f() with respect to every element of arr (modified in place)."""
    grad = np.zeros_like(arr)
    flat, gflat = arr.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + FD_EPS
        up = f()
        flat[i] = orig - FD_EPS
        down = f()
        flat[i] = orig
        gflat[i] = (up - down) / (2 * FD_EPS)
    return grad


def output_weights(case: Case, module, x, rng):
    if case.kind == "loss":
        return None
    return rng.standard_normal(np.shape(module(x)))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_finite_differences(case: Case) -> None:
    module, x, target, rng = build(case)
    weights = output_weights(case, module, x, rng)
    dx, dparams = analytic(case, module, x, target, weights)

    def f():
        return objective(case, module, x, target, weights)

    assert rel_error(dx, numeric(f, x)) < FD_TOL, "input gradient"
    for name, p in module.named_parameters():
        err = rel_error(dparams[name], numeric(f, p.data))
        assert err < FD_TOL, f"gradient of {name}: relative error {err:.2e}"


def to_torch_input(torch, arr):
    return torch.tensor(arr, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("case", [c for c in CASES if c.make_torch is not None], ids=repr)
def test_torch_parity(case: Case, torch) -> None:
    module, x, target, rng = build(case)
    tmod = case.make_torch().double()
    tmod.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in module.state_dict().items()})
    if case.eval_mode:
        tmod.eval()
    weights = output_weights(case, module, x, rng)
    if weights is not None:  # output_weights ran a forward: reload buffers it may have moved
        module.load_state_dict({k: v.numpy() for k, v in tmod.state_dict().items()})
    module.zero_grad()
    tx = to_torch_input(torch, x)
    if case.kind == "loss":
        out = module(x, target)
        t_target = torch.from_numpy(np.asarray(target))
        t_out = tmod(tx, t_target)
        t_out.backward()
        dx = module.backward()
        assert abs(out - t_out.item()) <= TORCH_TOL * max(1.0, abs(out)), "loss value"
    else:
        out = module(x)
        t_out = tmod(tx)
        t_out.backward(torch.from_numpy(weights))
        dx = module.backward(weights)
        assert rel_error(out, t_out.detach().numpy()) < TORCH_TOL, "output"
    assert rel_error(dx, tx.grad.numpy()) < TORCH_TOL, "input gradient"
    t_params = dict(tmod.named_parameters())
    names = [n for n, _ in module.named_parameters()]
    assert names == list(t_params), "parameter names"
    for name, p in module.named_parameters():
        err = rel_error(p.grad, t_params[name].grad.numpy())
        assert err < TORCH_TOL, f"gradient of {name}: relative error {err:.2e}"
    # buffers (running statistics) move the same way as torch's
    t_state = tmod.state_dict()
    for name, value in module.state_dict().items():
        np.testing.assert_allclose(value, t_state[name].numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_float32_in_float32_out(case: Case) -> None:
    module, x, target, _ = build(case, dtype=np.float32)
    assert x.dtype == np.float32
    if case.kind == "loss":
        value = module(x, target)
        assert isinstance(value, float)
        dx = module.backward()
    else:
        out = module(x)
        assert out.dtype == np.float32, f"output dtype {out.dtype}"
        dx = module.backward(np.ones_like(out))
    assert dx.dtype == np.float32, f"input-gradient dtype {dx.dtype}"
    assert dx.shape == x.shape
    for name, p in module.named_parameters():
        assert p.data.dtype == np.float32, name
        assert p.grad.dtype == np.float32, name


@pytest.mark.parametrize("case", [c for c in CASES if c.bad_input_shape], ids=repr)
def test_shape_error_names_layer_and_shapes(case: Case) -> None:
    module, *_ = build(case)
    bad = np.zeros(case.bad_input_shape)
    with pytest.raises(ValueError, match=case.bad_input_match):
        module(bad)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_backward_before_forward_is_an_error(case: Case) -> None:
    module, *_ = build(case)
    if case.kind == "loss":
        with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
            module.backward()
    elif isinstance(module, Identity):  # saves nothing, so it has nothing to forget
        grad_out = np.ones(case.input_shape)
        np.testing.assert_array_equal(module.backward(grad_out), grad_out)
    else:
        with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
            module.backward(np.ones(case.input_shape))


@pytest.mark.parametrize("case", [c for c in CASES if has_parameters(c)], ids=repr)
def test_gradients_accumulate_until_zero_grad(case: Case) -> None:
    module, x, target, rng = build(case)
    weights = output_weights(case, module, x, rng)
    _, once = analytic(case, module, x, target, weights)
    # a second backward without zero_grad adds the same gradient again
    if case.kind == "loss":
        module(x, target)
        module.backward()
    else:
        module(x)
        module.backward(weights)
    for name, p in module.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[name], rtol=1e-12, atol=1e-14)
    module.zero_grad()
    assert all(not p.grad.any() for p in module.parameters())
