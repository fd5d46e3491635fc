"""handgrad.scalar.nn: Neuron, Layer, MLP and the softmax cross-entropy helper, against PyTorch,
the vectorised handgrad.nn layers and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

import handgrad.nn as hnn
from handgrad.scalar import MLP, Layer, Neuron, Value, cross_entropy, softmax

torch = pytest.importorskip("torch")

TORCH_ACT = {
    "tanh": lambda: torch.nn.Tanh(),
    "sigmoid": lambda: torch.nn.Sigmoid(),
    "relu": lambda: torch.nn.ReLU(),
    "leaky_relu": lambda: torch.nn.LeakyReLU(0.01),
    "softplus": lambda: torch.nn.Softplus(),
}


def _torch_mlp(mlp: MLP):
    layers = []
    sizes = [mlp.nin, *mlp.nouts]
    for i in range(len(mlp.nouts)):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]).double())
        if i < len(mlp.nouts) - 1:
            layers.append(TORCH_ACT[mlp.activation]())
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in mlp.state_dict().items()})
    return model


@pytest.mark.parametrize("activation", sorted(TORCH_ACT))
def test_mlp_forward_and_gradients_match_torch(activation):
    rng = np.random.default_rng(1)
    mlp = MLP(3, [4, 5, 3], activation=activation, rng=rng)
    tmodel = _torch_mlp(mlp)
    X = rng.standard_normal((6, 3))
    y = rng.integers(0, 3, size=6)
    logits = [mlp(list(x)) for x in X]
    loss = cross_entropy(logits, list(y))
    loss.backward()
    tlogits = tmodel(torch.from_numpy(X))
    tloss = torch.nn.functional.cross_entropy(tlogits, torch.from_numpy(y))
    tloss.backward()
    np.testing.assert_allclose(
        [[v.data for v in row] for row in logits], tlogits.detach().numpy(), rtol=1e-12, atol=1e-14
    )
    assert loss.data == pytest.approx(tloss.item(), rel=1e-12)
    grads = {name: p.grad.numpy() for name, p in tmodel.named_parameters()}
    for i, layer in enumerate(mlp.layers):
        gw = np.array([[w.grad for w in n.w] for n in layer.neurons])
        gb = np.array([n.b.grad for n in layer.neurons])
        np.testing.assert_allclose(gw, grads[f"{2 * i}.weight"], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(gb, grads[f"{2 * i}.bias"], rtol=1e-10, atol=1e-14)


def test_mlp_matches_vectorised_handgrad_layers():
    mlp = MLP(2, [3, 2], activation="sigmoid", rng=7)
    model = hnn.Sequential(
        hnn.Linear(2, 3, dtype=np.float64), hnn.Sigmoid(), hnn.Linear(3, 2, dtype=np.float64)
    )
    model.load_state_dict(mlp.state_dict())  # the same keys and shapes
    x = np.array([[0.3, -1.1]])
    out = mlp(list(x[0]))
    np.testing.assert_allclose([v.data for v in out], model(x)[0], rtol=1e-14)


def test_initialisation_follows_linear_and_the_seed():
    a = MLP(4, [8, 2], rng=3)
    b = MLP(4, [8, 2], rng=3)
    c = MLP(4, [8, 2], rng=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key])
    assert not np.array_equal(sa["0.weight"], sc["0.weight"])
    assert np.abs(sa["0.weight"]).max() <= 1 / math.sqrt(4)
    assert np.abs(sa["2.weight"]).max() <= 1 / math.sqrt(8)
    assert sa["0.weight"].shape == (8, 4) and sa["2.bias"].shape == (2,)
    assert len(a.parameters()) == 8 * 4 + 8 + 2 * 8 + 2


def test_state_dict_round_trip_and_labels():
    a = MLP(2, [3, 1], rng=0)
    b = MLP(2, [3, 1], rng=1)
    b.load_state_dict({k: torch.from_numpy(v) for k, v in a.state_dict().items()})
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value)
    assert a.layers[0].neurons[1].w[0].label == "0.weight[1,0]"
    assert a.layers[1].neurons[0].b.label == "2.bias[0]"
    assert Layer(2, 2).neurons[1].w[1].label == "weight[1,1]"
    assert Neuron(2).w[1].label == "w[1]" and Neuron(2).b.label == "b"


def test_neuron_and_layer():
    n = Neuron(3, activation="linear", rng=0)
    x = [1.0, -2.0, 0.5]
    out = n(x)
    want = sum(w.data * xi for w, xi in zip(n.w, x, strict=True)) + n.b.data
    assert out.data == pytest.approx(want)
    out.backward()
    assert [w.grad for w in n.w] == x and n.b.grad == 1.0
    layer = Layer(3, 4, activation="tanh", rng=0)
    ys = layer([Value(v) for v in x])
    assert len(ys) == 4 and len(layer.parameters()) == 16
    np.testing.assert_allclose(
        [v.data for v in ys], np.tanh(layer.weight @ np.array(x) + layer.bias), rtol=1e-14
    )


# -- cross-entropy and softmax ----------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_matches_torch(reduction):
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((5, 4)) * 3
    Z[0] += 1000.0  # huge logits: log-sum-exp must stay finite
    y = rng.integers(0, 4, size=5)
    zs = [[Value(float(v)) for v in row] for row in Z]
    loss = cross_entropy(zs, list(y), reduction=reduction)
    loss.backward()
    tz = torch.tensor(Z, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tz, torch.from_numpy(y), reduction=reduction)
    tloss.backward()
    assert loss.data == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(
        [[v.grad for v in row] for row in zs], tz.grad.numpy(), rtol=1e-10, atol=1e-15
    )


def test_cross_entropy_with_probability_targets_matches_torch():
    rng = np.random.default_rng(2)
    z = rng.standard_normal(3)
    p = rng.dirichlet(np.ones(3))
    zs = [Value(float(v)) for v in z]
    loss = cross_entropy(zs, list(p))
    loss.backward()
    tz = torch.tensor(z, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tz[None], torch.from_numpy(p)[None])
    tloss.backward()
    assert loss.data == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose([v.grad for v in zs], tz.grad.numpy(), rtol=1e-10)


def test_cross_entropy_gradient_is_p_minus_y_and_matches_finite_differences():
    z = [0.5, -1.0, 2.0]
    zs = [Value(v) for v in z]
    cross_entropy(zs, 2).backward()
    e = np.exp(z)
    p = e / e.sum()
    np.testing.assert_allclose([v.grad for v in zs], p - np.eye(3)[2], rtol=1e-12)
    h = 1e-6
    for i in range(3):
        up, down = list(z), list(z)
        up[i] += h
        down[i] -= h
        numeric = (
            cross_entropy([Value(v) for v in up], 2).data
            - cross_entropy([Value(v) for v in down], 2).data
        ) / (2 * h)
        assert zs[i].grad == pytest.approx(numeric, rel=1e-6)


def test_softmax_matches_torch():
    z = [0.2, 3.0, -1.0, 800.0]
    zs = [Value(v) for v in z]
    ps = softmax(zs)
    (ps[0] * 2.0 + ps[1] * ps[2] + ps[3]).backward()
    tz = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    tp = torch.softmax(tz, 0)
    (tp[0] * 2.0 + tp[1] * tp[2] + tp[3]).backward()
    np.testing.assert_allclose([p.data for p in ps], tp.detach().numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose([v.grad for v in zs], tz.grad.numpy(), rtol=1e-9, atol=1e-300)


# -- errors -----------------------------------------------------------------------------------


def test_error_messages():
    with pytest.raises(ValueError, match=r"Neuron: nin must be a positive integer, got 0"):
        Neuron(0)
    with pytest.raises(ValueError, match=r"Layer: nout must be a positive integer, got -1"):
        Layer(2, -1)
    with pytest.raises(ValueError, match=r"MLP: unknown activation 'swish', expected one of"):
        MLP(2, [3], activation="swish")
    with pytest.raises(ValueError, match=r"MLP: nouts must be a non-empty list of sizes, got 3"):
        MLP(2, 3)
    with pytest.raises(ValueError, match=r"MLP: nouts must be a positive integer, got 2.5"):
        MLP(2, [2.5])
    with pytest.raises(
        ValueError,
        match=r"MLP\(nin=2, nouts=\[3, 1\], activation='tanh'\): expected 2 inputs, "
        r"got 3",
    ):
        MLP(2, [3, 1], rng=0)([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"Neuron\(nin=2, activation='tanh'\): expected 2 inputs"):
        Neuron(2, rng=0)([1.0])
    with pytest.raises(KeyError, match=r"missing keys \['2.weight', '2.bias'\]"):
        MLP(2, [3, 1], rng=0).load_state_dict(MLP(2, [3], rng=0).state_dict())
    with pytest.raises(ValueError, match=r"'0.weight' expects shape \(3, 2\), got \(2, 3\)"):
        MLP(2, [3], rng=0).load_state_dict({"0.weight": np.zeros((2, 3)), "0.bias": np.zeros(3)})
    z = [Value(0.0), Value(1.0)]
    with pytest.raises(ValueError, match=r"cross_entropy: target 2 out of range for 2 classes"):
        cross_entropy(z, 2)
    with pytest.raises(ValueError, match=r"cross_entropy: sample 1: target -1 out of range"):
        cross_entropy([z, z], [0, -1])
    with pytest.raises(ValueError, match=r"cross_entropy: target has 3 probabilities for 2"):
        cross_entropy(z, [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match=r"cross_entropy: reduction must be 'mean' or 'sum'"):
        cross_entropy(z, 0, reduction="none")
    with pytest.raises(ValueError, match=r"cross_entropy: got 2 samples but 1 targets"):
        cross_entropy([z, z], [0])
    with pytest.raises(TypeError, match=r"cross_entropy: target must be a class index or a list"):
        cross_entropy(z, None)
