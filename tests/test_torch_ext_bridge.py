"""to_torch / from_torch: a model and its converted twin compute the same thing.

The oracle is the other library: for MLPs and CNNs in float64, the outputs, the input gradient
and every parameter gradient of the handgrad model and of its torch twin must agree, in both
directions, with the built-in torch layers and with the hand-written Functions.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import handgrad.nn as nn
from handgrad.nn import AvgPool2d, Conv2d, MaxPool2d
from handgrad.torch_ext import from_torch, to_torch
from handgrad.torch_ext import modules as hand

pytestmark = pytest.mark.usefixtures("one_thread")

D = torch.float64


def mlp(rng: int = 0) -> nn.Sequential:
    """Every fully connected layer type, float64."""
    kw = {"rng": rng, "dtype": np.float64}
    return nn.Sequential(
        nn.Linear(5, 8, **kw),
        nn.BatchNorm1d(8, dtype=np.float64),
        nn.ReLU(),
        nn.Linear(8, 8, **kw),
        nn.LeakyReLU(0.1),
        nn.Linear(8, 8, bias=False, **kw),
        nn.Sigmoid(),
        nn.Linear(8, 8, **kw),
        nn.Tanh(),
        nn.Linear(8, 8, **kw),
        nn.Softplus(beta=2.0, threshold=5.0),
        nn.Linear(8, 8, **kw),
        nn.GELU(approximate="tanh"),
        nn.Linear(8, 8, **kw),
        nn.ELU(alpha=0.5),
        nn.Identity(),
        nn.Linear(8, 8, **kw),
        nn.GELU(),
        nn.Sequential(nn.Linear(8, 4, **kw), nn.Softmax(dim=1)),  # nested
        nn.LogSoftmax(dim=-1),
    )


def cnn(rng: int = 0) -> nn.Sequential:
    kw = {"rng": rng, "dtype": np.float64}
    return nn.Sequential(
        Conv2d(2, 4, 3, padding=1, **kw),
        nn.BatchNorm2d(4, dtype=np.float64),
        nn.ReLU(),
        MaxPool2d(2),
        Conv2d(4, 6, (2, 3), stride=(1, 2), padding=(1, 1), groups=2, **kw),
        nn.Tanh(),
        AvgPool2d(2, stride=1, padding=1),
        Conv2d(6, 3, 2, padding="same", dilation=1, bias=False, **kw),
        nn.ELU(),
        nn.Flatten(),
        nn.Linear(3 * 5 * 2, 4, **kw),
    )


def _torch_pass(model: Any, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    model.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    out = model(xt)
    out.backward(torch.tensor(g))
    return (
        out.detach().numpy(),
        xt.grad.numpy(),
        {k: p.grad.numpy().copy() for k, p in model.named_parameters()},
    )


def assert_same_computation(hg: Any, tm: Any, shape: tuple[int, ...], steps: int = 2) -> None:
    """Outputs, input gradients, parameter gradients and state (running statistics) agree,
    pass after pass."""
    gen = np.random.default_rng(123)
    for _ in range(steps):
        x = gen.standard_normal(shape)
        hg.zero_grad()
        out = hg(x)
        g = gen.standard_normal(out.shape)
        gx = hg.backward(g)
        grads = {k: p.grad.copy() for k, p in hg.named_parameters()}
        t_out, t_gx, t_grads = _torch_pass(tm, x, g)
        np.testing.assert_allclose(out, t_out, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gx, t_gx, rtol=1e-9, atol=1e-12)
        assert list(grads) == list(t_grads)
        for name, grad in grads.items():
            np.testing.assert_allclose(grad, t_grads[name], rtol=1e-9, atol=1e-12, err_msg=name)
    t_state = tm.state_dict()
    assert list(hg.state_dict()) == list(t_state)
    for key, value in hg.state_dict().items():
        np.testing.assert_allclose(value, t_state[key].numpy(), rtol=1e-12, err_msg=key)


# -- handgrad -> torch --------------------------------------------------------------------------
@pytest.mark.parametrize("functions", [False, True], ids=["torch.nn", "functions"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_mlp_to_torch_same_outputs_and_gradients(functions: bool, mode: str) -> None:
    hg = mlp()
    hg.train(mode == "train")
    tm = to_torch(hg, functions=functions)
    assert isinstance(tm, torch.nn.Sequential) and isinstance(tm[18], torch.nn.Sequential)
    assert tm.training == (mode == "train") and tm[1].training == (mode == "train")
    if functions:
        assert isinstance(tm[0], hand.Linear) and isinstance(tm[1], hand.BatchNorm1d)
    else:
        assert type(tm[0]) is torch.nn.Linear and type(tm[1]) is torch.nn.BatchNorm1d
    assert_same_computation(hg, tm, (6, 5))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("functions", [False, True], ids=["torch.nn", "functions"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_cnn_to_torch_same_outputs_and_gradients(functions: bool, mode: str) -> None:
    hg = cnn()
    hg.train(mode == "train")
    tm = to_torch(hg, functions=functions)
    assert (type(tm[0]) is hand.Conv2d) == functions
    assert_same_computation(hg, tm, (3, 2, 6, 5))


def test_batch_norm_running_stats_agree_after_training_steps() -> None:
    hg = mlp()
    tm = to_torch(hg, functions=True)
    tb = to_torch(hg)
    gen = np.random.default_rng(7)
    for _ in range(3):
        x = gen.standard_normal((6, 5))
        hg(x)
        tm(torch.tensor(x))
        tb(torch.tensor(x))
    for key, value in hg.state_dict().items():
        np.testing.assert_allclose(tm.state_dict()[key].numpy(), value, rtol=1e-12, err_msg=key)
        np.testing.assert_allclose(tb.state_dict()[key].numpy(), value, rtol=1e-12, err_msg=key)
    assert int(tm.state_dict()["1.num_batches_tracked"]) == 3


# -- torch -> handgrad --------------------------------------------------------------------------
def torch_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 7),
        torch.nn.BatchNorm1d(7, momentum=None),
        torch.nn.GELU(),
        torch.nn.Linear(7, 6, bias=False),
        torch.nn.Softplus(),
        torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.LeakyReLU(0.3)),
        torch.nn.Dropout(0.0),
        torch.nn.Linear(3, 3),
    ).to(D)


def torch_cnn(wrappers: bool = False) -> torch.nn.Module:
    torch.manual_seed(1)
    ns = hand if wrappers else torch.nn
    return torch.nn.Sequential(
        ns.Conv2d(3, 4, 3, stride=2, padding=1),
        ns.BatchNorm2d(4),
        ns.ReLU(),
        ns.Conv2d(4, 4, 2, padding="same", groups=4),
        ns.Sigmoid(),
        ns.MaxPool2d(3, stride=2, padding=1),
        ns.AvgPool2d(1),
        ns.Flatten(),
        ns.Linear(4 * 2 * 2, 5),
        ns.Softmax(dim=1),
    ).to(D)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_mlp_from_torch_same_outputs_and_gradients(mode: str) -> None:
    tm = torch_mlp().train(mode == "train")
    hg = from_torch(tm, rng=0)
    assert isinstance(hg, nn.Sequential) and isinstance(hg[5], nn.Sequential)
    assert hg.training == tm.training and hg[1].training == tm.training
    assert hg[1].momentum is None and hg[3].bias is None
    assert hg[0].weight.dtype == np.float64
    assert_same_computation(hg, tm, (4, 5))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("wrappers", [False, True], ids=["torch.nn", "functions"])
def test_cnn_from_torch_same_outputs_and_gradients(wrappers: bool) -> None:
    tm = torch_cnn(wrappers)
    hg = from_torch(tm)
    assert hg[3].padding == "same" and hg[0].stride == (2, 2)
    assert_same_computation(hg, tm, (2, 3, 8, 7))
    tm.eval()
    hg.eval()
    assert_same_computation(hg, tm, (2, 3, 8, 7), steps=1)


def test_round_trips_keep_names_values_and_dtype() -> None:
    hg = mlp()
    back = from_torch(to_torch(hg, functions=True))
    a, b = hg.state_dict(), back.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key

    tm = torch_mlp()
    again = to_torch(from_torch(tm))
    for (k1, v1), (k2, v2) in zip(tm.state_dict().items(), again.state_dict().items(), strict=True):
        assert k1 == k2 and v1.dtype == v2.dtype and torch.equal(v1, v2)


def test_float32_stays_float32() -> None:
    hg = nn.Sequential(nn.Linear(3, 2, rng=0), nn.BatchNorm1d(2))
    tm = to_torch(hg)
    assert tm[0].weight.dtype == torch.float32 and tm[1].running_var.dtype == torch.float32
    back = from_torch(tm)
    assert back[0].weight.dtype == np.float32 and back[1].running_var.dtype == np.float32
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(hg(x), tm(torch.from_numpy(x)).detach().numpy(), rtol=1e-5)


# -- every layer, one at a time -----------------------------------------------------------------
LAYERS: list[tuple[str, Callable[[], Any]]] = [
    ("Linear", lambda: nn.Linear(3, 2, bias=False, rng=0)),
    ("Identity", nn.Identity),
    ("ReLU", nn.ReLU),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.3)),
    ("Sigmoid", nn.Sigmoid),
    ("Tanh", nn.Tanh),
    ("Softplus", lambda: nn.Softplus(beta=3.0, threshold=4.0)),
    ("GELU", lambda: nn.GELU(approximate="tanh")),
    ("ELU", lambda: nn.ELU(alpha=0.2)),
    ("Softmax", lambda: nn.Softmax(dim=0)),
    ("LogSoftmax", lambda: nn.LogSoftmax(dim=0)),
    ("Dropout", lambda: nn.Dropout(0.3)),
    ("Flatten", lambda: nn.Flatten(0, 1)),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(3, eps=1e-3, momentum=0.2, affine=False)),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(3, momentum=None, track_running_stats=False)),
    ("MSELoss", lambda: nn.MSELoss(reduction="sum")),
    ("BCELoss", nn.BCELoss),
    ("BCEWithLogitsLoss", lambda: nn.BCEWithLogitsLoss(reduction="sum")),
    ("CrossEntropyLoss", lambda: nn.CrossEntropyLoss(reduction="sum")),
    ("NLLLoss", nn.NLLLoss),
    ("Conv2d", lambda: Conv2d(4, 2, (3, 1), 2, (1, 0), 2, 2, rng=0)),
    ("MaxPool2d", lambda: MaxPool2d((3, 2), 1, (1, 0))),
    ("AvgPool2d", lambda: AvgPool2d(2, padding=1)),
]

HYPER = (
    "in_features out_features negative_slope beta threshold approximate alpha dim p start_dim "
    "end_dim num_features eps momentum affine track_running_stats in_channels out_channels "
    "kernel_size stride padding dilation groups reduction"
).split()


def _hyper(layer: Any, names: Any = HYPER) -> dict[str, Any]:
    """The layer's hyperparameters among ``names``, sizes normalised to pairs."""
    out = {}
    for name in names:
        if hasattr(layer, name):
            value = getattr(layer, name)
            pair = name in ("kernel_size", "stride", "padding") and isinstance(value, int)
            out[name] = (value, value) if pair else value
    return out


@pytest.mark.parametrize(("name", "make"), LAYERS, ids=[n for n, _ in LAYERS])
def test_every_layer_crosses_both_ways_with_its_hyperparameters(name, make) -> None:
    layer = make()
    expected = _hyper(layer)
    tm = to_torch(layer)
    assert type(tm) is getattr(torch.nn, name)
    assert _hyper(tm, expected) == expected
    back = from_torch(tm)
    assert type(back) is type(layer)
    assert _hyper(back) == expected
    assert list(back.state_dict()) == list(layer.state_dict())
    for key, value in layer.state_dict().items():
        assert np.array_equal(back.state_dict()[key], value), key


def test_batch_norm_passes_bias_only_where_it_is_not_the_default() -> None:
    # torch.nn.BatchNorm's bias keyword is new in 2.13: a default layer must build without it
    # (as it does on older torch), a bias-free one must say so
    from handgrad.torch_ext.bridge import torch_constructor

    assert torch_constructor(nn.BatchNorm2d(4)) == (
        "BatchNorm2d", {"num_features": 4, "eps": 1e-5, "momentum": 0.1, "affine": True,
                        "track_running_stats": True},
    )  # fmt: skip
    kwargs = torch_constructor(nn.BatchNorm1d(4, bias=False))[1]
    assert kwargs["bias"] is False
    assert "bias" not in torch_constructor(nn.BatchNorm1d(4, affine=False))[1]
    assert to_torch(nn.BatchNorm1d(4, bias=False)).bias is None


@pytest.mark.parametrize(
    ("name", "make", "pred", "target"),
    [
        (
            "MSELoss",
            lambda: nn.MSELoss(reduction="sum"),
            (3, 2),
            lambda g: g.standard_normal((3, 2)),
        ),
        ("BCELoss", nn.BCELoss, "probs", lambda g: g.random((3, 2))),
        ("BCEWithLogitsLoss", nn.BCEWithLogitsLoss, (3, 2), lambda g: g.random((3, 2))),
        ("CrossEntropyLoss", nn.CrossEntropyLoss, (3, 4), lambda g: g.integers(0, 4, 3)),
        ("NLLLoss", lambda: nn.NLLLoss(reduction="sum"), (3, 4), lambda g: g.integers(0, 4, 3)),
    ],
)
def test_losses_compute_the_same_value_and_gradient(name, make, pred, target) -> None:
    gen = np.random.default_rng(0)
    loss = make()
    z = gen.random((3, 2)) * 0.9 + 0.05 if pred == "probs" else gen.standard_normal(pred)
    y = target(gen)
    value = loss(z, y)
    grad = loss.backward()
    zt = torch.tensor(z, requires_grad=True)
    tv = to_torch(loss)(zt, torch.tensor(y))
    tv.backward()
    assert value == pytest.approx(tv.item(), rel=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-15)
    if name == "CrossEntropyLoss":
        assert type(to_torch(loss, functions=True)) is hand.CrossEntropyLoss


# -- errors ----------------------------------------------------------------------------------------
class Custom(nn.Module):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return x


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: to_torch(nn.Sequential(nn.ReLU(), nn.Sequential(nn.Tanh(), Custom()))),
            r"to_torch: unsupported layer Custom at '1\.1'; supported: .*Linear.*ReLU",
        ),
        (lambda: to_torch(Custom()), r"to_torch: unsupported layer Custom at '<root>'"),
        (
            lambda: to_torch(nn.Sequential(nn.MSELoss()), functions=True),
            r"to_torch\(functions=True\): MSELoss at '0' has no hand-written Function; "
            r"use functions=False",
        ),
        (
            lambda: from_torch(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.LSTM(2, 3))),
            r"from_torch: unsupported layer LSTM at '1'; supported: ",
        ),
        (
            lambda: from_torch(torch.nn.Sequential(torch.nn.MaxPool2d(2, ceil_mode=True))),
            r"from_torch: MaxPool2d at '0' has ceil_mode=True; handgrad supports only "
            r"ceil_mode=False",
        ),
        (
            lambda: from_torch(torch.nn.AvgPool2d(3, padding=1, count_include_pad=False)),
            r"from_torch: AvgPool2d at '<root>' has count_include_pad=False",
        ),
        (
            lambda: from_torch(torch.nn.Conv2d(1, 1, 3, padding_mode="circular")),
            r"from_torch: Conv2d at '<root>' has padding_mode='circular'",
        ),
        (
            lambda: from_torch(torch.nn.CrossEntropyLoss(label_smoothing=0.1)),
            r"from_torch: CrossEntropyLoss at '<root>' has label_smoothing=0\.1",
        ),
        (
            lambda: from_torch(torch.nn.CrossEntropyLoss(weight=torch.ones(3))),
            r"from_torch: CrossEntropyLoss at '<root>' has weight=tensor",
        ),
        (
            lambda: from_torch(torch.nn.Sequential(torch.nn.Softmax())),
            r"from_torch: Softmax at '0' has dim=None; give the dimension explicitly",
        ),
        (
            lambda: from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2).half())),
            r"from_torch: Linear at '0' has dtype\(s\) \['float16'\]; handgrad supports float32 "
            r"or float64",
        ),
    ],
)
def test_unsupported_layers_and_options_are_named(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        call()


# -- torch stays optional -----------------------------------------------------------------------
def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_core_packages_do_not_import_torch() -> None:
    proc = _python(
        "import sys, handgrad, handgrad.nn, handgrad.optim, handgrad.data\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad[:5]\n"
    )
    assert proc.returncode == 0, proc.stderr


def test_torch_ext_without_torch_is_a_clear_import_error() -> None:
    proc = _python(
        "import sys\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "import handgrad.nn\n"
        "try:\n"
        "    import handgrad.torch_ext\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        'handgrad.torch_ext needs PyTorch, which is not installed: pip install "handgrad[torch]"'
        in proc.stdout
    )


# -- accelerator (runs only where one is present) --------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("functions", [False, True], ids=["torch.nn", "functions"])
def test_exported_model_runs_on_cuda(functions: bool) -> None:
    hg = mlp()
    cpu = to_torch(hg, functions=functions)
    gpu = to_torch(hg, functions=functions).to("cuda")
    x = torch.randn(6, 5, dtype=D)
    out_cpu, out_gpu = cpu(x), gpu(x.to("cuda"))
    out_cpu.sum().backward()
    out_gpu.sum().backward()
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-9, atol=1e-12)
    for p, q in zip(cpu.parameters(), gpu.parameters(), strict=True):
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-8, atol=1e-12)
