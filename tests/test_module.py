"""The Module contract: names, state dicts (PyTorch's), modes, dtype, printing, errors."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad.nn as nn


def mlp(dtype=np.float32) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(4, 8, rng=0, dtype=dtype),
        nn.BatchNorm1d(8, dtype=dtype),
        nn.ReLU(),
        nn.Dropout(0.5, rng=1),
        nn.Linear(8, 3, rng=2, dtype=dtype),
    )


def test_named_parameters_use_pytorch_dotted_names() -> None:
    names = [name for name, _ in mlp().named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]


def test_state_dict_keys_and_shapes_match_torch() -> None:
    torch = pytest.importorskip("torch")
    tmodel = torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(8, 3),
    )
    ours = {k: v.shape for k, v in mlp().state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in tmodel.state_dict().items()}
    assert ours == theirs


def test_torch_state_dict_converted_to_numpy_loads_unchanged() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    expected = tmodel(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)
    # torch tensors themselves are accepted too
    model.load_state_dict(tmodel.state_dict())
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)


def test_state_dict_is_a_copy_and_round_trips() -> None:
    a, b = mlp(), mlp()
    b[0].weight.data += 1.0
    sd = a.state_dict()
    sd["0.weight"] += 100.0  # editing the copy leaves the model alone
    assert not np.allclose(a[0].weight.data, sd["0.weight"])
    b.load_state_dict(a.state_dict())
    for (na, va), (nb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb
        np.testing.assert_array_equal(va, vb)


def test_load_state_dict_errors_name_the_keys_and_shapes() -> None:
    model = mlp()
    sd = model.state_dict()
    del sd["4.bias"]
    sd["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['4.bias'\], unexpected keys \['extra'\]"):
        model.load_state_dict(sd)
    model.load_state_dict(sd, strict=False)  # non-strict ignores both
    bad = mlp().state_dict()
    bad["0.weight"] = np.zeros((4, 8))
    with pytest.raises(ValueError, match=r"'0.weight' expects shape \(8, 4\), got \(4, 8\)"):
        model.load_state_dict(bad)


def test_train_and_eval_reach_every_submodule() -> None:
    model = mlp()
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_to_double_converts_parameters_and_buffers_in_place() -> None:
    model = mlp()
    params_before = list(model.parameters())
    model.double()
    assert all(
        p.data.dtype == np.float64 and p.grad.dtype == np.float64 for p in model.parameters()
    )
    assert model[1].running_mean.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64
    # the same Parameter objects (so an optimizer built earlier still holds them)
    assert all(a is b for a, b in zip(params_before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got int32"):
        model.to(np.int32)


def test_repr_matches_pytorch_for_shared_layers() -> None:
    torch = pytest.importorskip("torch")
    pairs = [
        (nn.Linear(3, 4), torch.nn.Linear(3, 4)),
        (nn.ReLU(), torch.nn.ReLU()),
        (nn.Sigmoid(), torch.nn.Sigmoid()),
        (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
        (nn.Softplus(2.0, 3.0), torch.nn.Softplus(2.0, 3.0)),
        (nn.ELU(), torch.nn.ELU()),
        (nn.GELU("tanh"), torch.nn.GELU("tanh")),
        (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.BatchNorm1d(5), torch.nn.BatchNorm1d(5)),
        (
            nn.Sequential(nn.Linear(2, 3), nn.Tanh()),
            torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh()),
        ),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def test_sequential_indexing_iteration_and_errors() -> None:
    model = mlp()
    assert len(model) == 5
    assert isinstance(model[0], nn.Linear) and model[-1] is model[4]
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]
    assert [type(m).__name__ for m in model] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    with pytest.raises(TypeError, match="Sequential: argument 1 must be a Module, got int"):
        nn.Sequential(nn.ReLU(), 3)


def test_sequential_backward_runs_layers_in_reverse() -> None:
    model = nn.Sequential(nn.Linear(3, 2, rng=0, dtype=np.float64), nn.Tanh())
    x = np.ones((4, 3))
    out = model(x)
    g = model.backward(np.ones_like(out))
    # by hand: d/dx sum(tanh(x W^T + b)) = (1 - out^2) W
    np.testing.assert_allclose(g, (1 - out**2) @ model[0].weight.data, rtol=1e-14)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: nn.Linear(0, 3), r"Linear: in_features must be a positive integer, got 0"),
        (lambda: nn.Linear(3, 2.5), r"Linear: out_features must be a positive integer, got 2.5"),
        (lambda: nn.Dropout(1.5), r"Dropout: p must be a probability in \[0, 1\], got 1.5"),
        (lambda: nn.GELU("fast"), r"GELU: approximate must be 'none' or 'tanh', got 'fast'"),
        (lambda: nn.Softplus(beta=0), r"Softplus: beta must be > 0, got 0"),
        (lambda: nn.BatchNorm1d(4, momentum=2), r"BatchNorm1d: momentum must be in \[0, 1\]"),
        (lambda: nn.BatchNorm2d(4, eps=0), r"BatchNorm2d: eps must be > 0, got 0"),
        (lambda: nn.BatchNorm1d(-1), r"BatchNorm1d: num_features must be a positive integer"),
        (lambda: nn.MSELoss("avg"), r"MSELoss: reduction must be 'mean' or 'sum', got 'avg'"),
        (lambda: nn.Linear(2, 2, rng="seed"), r"rng must be a numpy.random.Generator"),
    ],
)
def test_bad_hyperparameters_fail_when_built(make, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_subclass_must_call_super_init() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            self.w = 1

    with pytest.raises(RuntimeError, match=r"Broken: call super\(\).__init__\(\)"):
        Broken()


def test_same_seed_same_weights() -> None:
    a, b = nn.Linear(5, 4, rng=7), nn.Linear(5, 4, rng=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, nn.Linear(5, 4, rng=8).weight.data)


def test_default_init_bounds_match_pytorch() -> None:
    # PyTorch: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))
    layer = nn.Linear(400, 300, rng=0)
    bound = 1 / np.sqrt(400)
    for arr in (layer.weight.data, layer.bias.data):
        assert np.abs(arr).max() <= bound
        assert np.abs(arr).max() > 0.95 * bound
    # the variance of U(-a, a) is a^2 / 3
    assert abs(layer.weight.data.var() - bound**2 / 3) < 0.02 * bound**2


def test_backward_without_input_grad_gives_the_same_parameter_gradients() -> None:
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    model = nn.Sequential(
        nn.Linear(4, 5, rng=0, dtype=np.float64),
        nn.ReLU(),
        nn.Linear(5, 3, rng=1, dtype=np.float64),
    )
    model(x)
    assert model.backward(g) is not None
    full = {k: p.grad.copy() for k, p in model.named_parameters()}
    model.zero_grad()
    model(x)
    assert model.backward(g, input_grad=False) is None
    for k, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, full[k])
    # a first layer without backward_params still returns its input gradient
    act_first = nn.Sequential(nn.Tanh(), nn.Linear(4, 3, rng=0, dtype=np.float64))
    act_first(x)
    assert act_first.backward(g, input_grad=False).shape == x.shape


# -- hooks ---------------------------------------------------------------------------------
def conv_net() -> nn.Sequential:
    """Conv2d, BatchNorm2d, ReLU, Flatten and Linear, in float64; input (4, 2, 5, 5)."""
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, rng=0, dtype=np.float64),
        nn.BatchNorm2d(3, dtype=np.float64),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(75, 4, rng=1, dtype=np.float64),
    )


def conv_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((4, 2, 5, 5)), rng.standard_normal((4, 4))


def log_hooks(model: nn.Module) -> tuple[list[tuple[str, str]], list]:
    """Every hook of every module of ``model`` appends ``(event, name)`` to the log."""
    log: list[tuple[str, str]] = []
    handles = []
    for name, m in model.named_modules():
        handles += [
            m.register_forward_pre_hook(lambda m, args, n=name: log.append(("pre", n))),
            m.register_forward_hook(lambda m, args, out, n=name: log.append(("fwd", n))),
            m.register_full_backward_pre_hook(lambda m, g, n=name: log.append(("bpre", n))),
            m.register_full_backward_hook(lambda m, gi, go, n=name: log.append(("bwd", n))),
        ]
    return log, handles


@pytest.mark.parametrize("input_grad", [True, False])
def test_hooks_fire_once_per_layer_in_order(input_grad: bool) -> None:
    model = conv_net()
    x, g = conv_data()
    log, _ = log_hooks(model)
    model(x)
    layers = ["0", "1", "2", "3", "4"]
    forward = [e for n in layers for e in (("pre", n), ("fwd", n))]
    assert log == [("pre", ""), *forward, ("fwd", "")]
    log.clear()
    # input_grad=False: the first layer (Conv2d) runs backward_params only, hooks still once
    model.backward(g, input_grad=input_grad)
    backward = [e for n in reversed(layers) for e in (("bpre", n), ("bwd", n))]
    assert log == [("bpre", ""), *backward, ("bwd", "")]


def test_linear_backward_calling_backward_params_fires_the_hooks_once() -> None:
    layer = nn.Linear(3, 2, rng=0, dtype=np.float64)
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append(gi[0] is None))
    x = np.ones((4, 3))
    layer(x)
    layer.backward(np.ones((4, 2)))
    layer.backward_params(np.ones((4, 2)))
    assert seen == [False, True]  # once each; backward_params computes no input gradient


def test_hooks_of_children_fire_when_a_custom_model_calls_them_directly() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3, rng=0, dtype=np.float64)

        def forward(self, x):
            return x + self.fc(x)

        def backward(self, grad_out):
            return grad_out + self.fc.backward(grad_out)

    model = Residual()
    log, _ = log_hooks(model)
    model(np.ones((2, 3)))
    model.backward(np.ones((2, 3)))
    assert log == [("pre", ""), ("pre", "fc"), ("fwd", "fc"), ("fwd", ""),
                   ("bpre", ""), ("bpre", "fc"), ("bwd", "fc"), ("bwd", "")]  # fmt: skip


def test_handles_remove_hooks_and_the_module_runs_its_own_methods_again() -> None:
    model = conv_net()
    x, g = conv_data()
    log, handles = log_hooks(model)
    assert all("backward" in vars(m) for m in model.modules())  # the hooked entry points
    for h in handles:
        h.remove()
        h.remove()  # a second time does nothing
    model(x)
    model.backward(g)
    assert log == []
    for m in model.modules():
        assert "backward" not in vars(m) and "backward_params" not in vars(m)
        assert m._backward_hooks is None
    layer = nn.ReLU()
    with layer.register_forward_hook(lambda m, a, out: log.append("in")):
        layer(np.ones((1, 2)))
    layer(np.ones((1, 2)))
    assert log == ["in"]


def test_forward_hook_replaces_the_output_and_pre_hook_the_input() -> None:
    model = nn.Sequential(nn.Linear(3, 2, rng=0, dtype=np.float64), nn.Tanh())
    x = np.ones((4, 3))
    plain = model(x)
    handle = model[0].register_forward_hook(lambda m, args, out: 2 * out)
    # (forward() called directly runs no hook)
    np.testing.assert_array_equal(model(x), np.tanh(2 * model[0].forward(x)))
    handle.remove()
    np.testing.assert_array_equal(model(x), plain)
    model[0].register_forward_pre_hook(lambda m, args: args[0] * 0)  # one value: the input
    np.testing.assert_array_equal(model(x), np.tanh(model[0].forward(np.zeros((4, 3)))))


def test_backward_hook_replaces_the_input_gradient() -> None:
    model = nn.Sequential(nn.Linear(3, 2, rng=0, dtype=np.float64), nn.Tanh())
    x, g = np.ones((4, 3)), np.ones((4, 2))
    model(x)
    plain = model.backward(g)
    model[0].register_full_backward_hook(lambda m, gi, go: (3 * gi[0],))
    model(x)
    np.testing.assert_array_equal(model.backward(g), 3 * plain)
    model[1].register_full_backward_pre_hook(lambda m, go: np.zeros_like(go[0]))
    model(x)
    with pytest.raises(TypeError, match=r"Tanh\(\): backward hook <lambda> must return None or "
                       r"a one-element tuple \(grad,\), got ndarray"):  # fmt: skip
        model.backward(g)


def test_hooks_that_return_nothing_change_no_bit() -> None:
    x, g = conv_data()
    results = []
    for hooked in (False, True):
        model = conv_net()
        if hooked:
            log_hooks(model)
        outs = [model(x)]
        outs.append(model.backward(g))
        outs += [p.grad for p in model.parameters()] + [b for _, b in model.named_buffers()]
        results.append(outs)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_backward_hooks_see_the_gradients_torch_computes() -> None:
    torch = pytest.importorskip("torch")
    x, g = conv_data()
    model = conv_net()
    grads: dict[int, tuple] = {}
    for i, layer in enumerate(model):
        layer.register_full_backward_hook(
            lambda m, gi, go, i=i: grads.__setitem__(i, (gi[0].copy(), go[0].copy()))
        )
    model(x)
    model.backward(g)
    # the same network in torch, every intermediate output keeping its gradient
    tmodel = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1),
        torch.nn.BatchNorm2d(3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(75, 4),
    ).double()
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in conv_net().state_dict().items()})
    h = torch.from_numpy(x).requires_grad_(True)
    outs = [h]
    for layer in tmodel:
        outs.append(layer(outs[-1]))
        outs[-1].retain_grad()
    outs[-1].backward(torch.from_numpy(g))
    for i in range(5):
        grad_in, grad_out = grads[i]
        np.testing.assert_allclose(grad_out, outs[i + 1].grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grad_in, outs[i].grad.numpy(), rtol=1e-10, atol=1e-12)
