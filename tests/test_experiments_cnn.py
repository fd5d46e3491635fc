"""The CNN and batch-norm experiments end to end on tiny configs, and the pieces they share.

MNIST and CIFAR-10 are tiny files in the real formats (written by helpers of
test_experiments.py), with learnable class patterns; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import handgrad.nn as nn
from handgrad.data import DataLoader
from handgrad.data import cifar as cifar_mod
from handgrad.experiments import batchnorm as bn_exp
from handgrad.experiments import make_config, resume, start
from handgrad.experiments.batchnorm import BackwardFormCheck, bn_mlp, compare_backward_forms
from handgrad.experiments.classifier import conv_net
from handgrad.optim import SGD
from handgrad.train import fit, read_run_config
from test_experiments import PNG, write_cifar, write_mnist


def check_figures(run, results, figures):
    assert all(np.isfinite(v) for v in results.values())
    report = run.report_path.read_text()
    for name in figures:
        assert (run.dir / f"{name}.png").read_bytes()[:8] == PNG, name
        assert f"]({name}.png)" in report
    assert json.loads((run.dir / "results.json").read_text()) == results
    return report


# -- shared pieces -------------------------------------------------------------------------
def test_conv_net_follows_the_spec():
    rng = np.random.default_rng(0)
    model = conv_net(
        (3, 8, 8), ("4", "M", "6", "6", "M"), (5,), 10, rng=rng, batchnorm=True,
        conv_dropout=0.1, dropout=0.2,
    )  # fmt: skip
    kinds = [type(m).__name__ for m in model]
    conv = ["Conv2d", "BatchNorm2d"]
    # a convolution's ReLU follows the pooling when one comes next (the same function)
    assert kinds == [
        *conv, "MaxPool2d", "ReLU", "Dropout", *conv, "ReLU", *conv, "MaxPool2d", "ReLU",
        "Dropout", "Flatten", "Linear", "ReLU", "Dropout", "Linear",
    ]  # fmt: skip
    assert model[-4].in_features == 6 * 2 * 2  # 8x8 pooled twice
    assert model(np.zeros((2, 3, 8, 8), np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"conv_net: cannot max-pool a 1x1 map"):
        conv_net((1, 2, 2), ("M", "M"), (), 3, rng=rng)


def test_convnet_gradients_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    model = conv_net((1, 6, 6), ("3", "M", "4"), (5,), 3, rng=rng, dtype=np.float64)
    ref = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(36, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3),
    ).double()  # fmt: skip
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = rng.standard_normal((4, 1, 6, 6))
    y = np.array([0, 2, 1, 2])
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(model(x), y)
    assert model.backward(loss_fn.backward(), input_grad=False) is None  # no data gradient
    xt = torch.from_numpy(x).requires_grad_(True)
    ref_loss = torch.nn.functional.cross_entropy(ref(xt), torch.from_numpy(y))
    ref_loss.backward()
    assert loss == pytest.approx(ref_loss.item(), rel=1e-12)
    grads = {k: p.grad.numpy() for k, p in ref.named_parameters()}
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
    # asked for, the input gradient is torch's
    model.zero_grad()
    loss_fn(model(x), y)
    dx = model.backward(loss_fn.backward(), input_grad=True)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "overrides", "match"),
    [
        ("digits-cnn", {"layers": "16,X"}, r"DigitsCNNConfig: invalid layers \('16', 'X'\), must"),
        ("digits-cnn", {"layers": "0,M"}, r"invalid layers \('0', 'M'\), must be conv widths"),
        ("digits-cnn", {"epochs": "0"}, r"DigitsCNNConfig: invalid epochs 0, must be >= 1"),
        ("mnist-cnn", {"lr": "-1"}, r"MnistCNNConfig: invalid lr -1.0, must be > 0"),
        ("mnist-cnn", {"max_train": "0"}, r"invalid max_train 0, must be >= 1 or none"),
        ("cifar10-cnn", {"dropout": "1"}, r"Cifar10CNNConfig: invalid dropout 1.0, must be in"),
        ("batchnorm", {"batch_size": "1"}, r"BatchNormConfig: invalid batch_size 1, must be >= 2"),
        ("batchnorm", {"hidden": ""}, r"BatchNormConfig: invalid hidden \(\), must be widths"),
        ("batchnorm", {"dtype": "float16"}, r"batchnorm: dtype=float16 is not one of float32"),
    ],
)
def test_bad_configs_name_the_field_and_value(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_config(name, overrides)


# -- digits-cnn ----------------------------------------------------------------------------
def test_digits_cnn_learns(tmp_path):
    overrides = {"epochs": 3, "quiet": True}  # the default network, 3 epochs instead of 15
    run, results = start("digits-cnn", overrides, out=tmp_path)
    report = check_figures(run, results, ["curves", "predictions"])
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert results["test_accuracy"] >= 0.85  # chance: 10%
    assert "Target: test accuracy >= 98%" in report
    # the cosine schedule ran the lr down to nearly 0 over the 3 epochs
    assert run.history[0]["lr"] == pytest.approx(2e-3)
    assert run.history[-1]["lr"] < 0.3 * 2e-3


# -- mnist-cnn and cifar10-cnn on tiny files -----------------------------------------------
BN_STATE = ("weight", "bias", "running_mean", "running_var")


@pytest.mark.usefixtures("tiny_mnist")
def test_mnist_cnn_on_tiny_idx_files(tmp_path):
    write_mnist(tmp_path / "data" / "mnist", n_train=300, n_test=100)
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "download": False,
        "epochs": 5,
        "val_size": 44,
        "quiet": True,
    }
    run, results = start("mnist-cnn", overrides, out=tmp_path / "runs")
    report = check_figures(run, results, ["curves", "predictions"])
    # the default network: conv 3x3 32 -> BN -> pool -> ReLU -> conv 3x3 64 -> BN -> pool ->
    # ReLU -> linear, trained on images shifted by up to a pixel
    saved = read_run_config(run.dir)[1]
    assert (saved["batchnorm"], saved["shift"]) == (True, 1)
    with np.load(run.checkpoint_path, allow_pickle=False) as ckpt:
        shapes = {k: ckpt[k].shape for k in ckpt.files if k.startswith("model/")}
    bn = {f"model/{i}.{name}": (c,) for i, c in ((1, 32), (5, 64)) for name in BN_STATE}
    bn |= {"model/1.num_batches_tracked": (), "model/5.num_batches_tracked": ()}
    assert shapes == {
        "model/0.weight": (32, 1, 3, 3), "model/0.bias": (32,),
        "model/4.weight": (64, 32, 3, 3), "model/4.bias": (64,),
        "model/9.weight": (10, 64 * 7 * 7), "model/9.bias": (10,),
        **bn,
    }  # fmt: skip
    assert run.history[-1]["step"] == 20  # 256 training images, batch 64, 5 epochs
    assert results["test_accuracy"] >= 0.6  # chance: 10%
    assert "Trained on 256 of the mnist training images and tested on 100" in report


def test_cifar10_cnn_on_tiny_pickle_batches(tmp_path, monkeypatch):
    write_cifar(tmp_path / "data" / "cifar10" / "cifar-10-batches-py", per_batch=40, n_test=60)
    # the real files have published MD5s; these tiny ones have none to check
    monkeypatch.setattr(cifar_mod, "CIFAR10", dataclasses.replace(cifar_mod.CIFAR10, md5={}))
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "download": False,
        "epochs": 3,
        "lr": 1e-3,  # the course's 1e-4 needs more than 3 short epochs
        "quiet": True,
    }
    run, results = start("cifar10-cnn", overrides, out=tmp_path / "runs")
    report = check_figures(run, results, ["curves", "predictions"])
    assert [h["step"] for h in run.history] == [7, 14, 21]  # 200 images, batch 32
    assert "val_accuracy" not in results  # the curves use the test set (val_size=0)
    assert "val_loss" in run.history[0]  # the test set, drawn as "test"
    assert results["test_accuracy"] >= 0.4  # chance: 10%
    assert "the 77% reference applies to the full data" in report


# -- batchnorm -----------------------------------------------------------------------------
def test_compare_backward_forms_agree_and_leave_grads_alone():
    rng = np.random.default_rng(2)
    layer = nn.BatchNorm1d(5, dtype=np.float64)
    layer.weight.data[:] = rng.uniform(0.5, 2, 5)
    layer(rng.standard_normal((16, 5)) * 3 + 1)
    layer.weight.grad[:] = 7.0
    g = rng.standard_normal((16, 5))
    max_abs, max_rel = compare_backward_forms(layer, g)
    assert max_rel < 1e-13 and max_abs < 1e-13
    assert np.all(layer.weight.grad == 7.0) and np.all(layer.bias.grad == 0.0)
    assert layer.backward_form == "compact"


def test_compare_backward_forms_sees_a_wrong_form(monkeypatch):
    rng = np.random.default_rng(3)
    layer = nn.BatchNorm1d(4, dtype=np.float64)
    layer(rng.standard_normal((8, 4)))
    right = nn.BatchNorm1d._backward_staged

    def off_by_a_bit(self, *args):  # a staged form that forgot a tiny term
        return right(self, *args) * (1 + 1e-6)

    monkeypatch.setattr(nn.BatchNorm1d, "_backward_staged", off_by_a_bit)
    _, max_rel = compare_backward_forms(layer, rng.standard_normal((8, 4)))
    assert 0.5e-6 < max_rel < 2e-6


def test_form_check_runs_on_each_epochs_first_batch(monkeypatch):
    calls = []

    def counting(layer, grad_out):
        calls.append(grad_out.shape)
        return compare_backward_forms(layer, grad_out)

    monkeypatch.setattr(bn_exp, "compare_backward_forms", counting)
    rng = np.random.default_rng(4)
    model = bn_mlp(6, (5, 5), 3, "relu", batchnorm="staged", rng=rng, dtype=np.float64)
    X, y = rng.standard_normal((40, 6)), rng.integers(0, 3, 40)
    loader = DataLoader(X, y, batch_size=10, rng=rng)
    opt = SGD(model.parameters(), lr=0.1)
    check = BackwardFormCheck()
    fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=3, callbacks=[check], progress=False)
    assert calls == [(10, 5)] * 6  # 2 BatchNorm layers, on 1 batch of each of 3 epochs
    assert check.epochs == [1, 2, 3]
    assert max(check.max_rel) < 1e-12  # float64
    assert all("backward" not in m.__dict__ for m in model)  # the wrappers are gone


def test_batchnorm_on_digits_float32_and_float64(tmp_path):
    common = {"epochs": 4, "hidden": (32, 32), "quiet": True}
    run, results = start("batchnorm", common, out=tmp_path)
    report = check_figures(run, results, ["curves", "backward_forms"])
    # the two backward forms agree to float32 rounding on every epoch's first batch
    assert 0 < results["form_max_rel_diff"] < 1e-5
    assert "the compact and the staged BatchNorm backward agree" in report
    # three networks, 4 epochs each, logged with their names
    lines = [json.loads(s) for s in run.metrics_path.read_text().splitlines()]
    assert [(d["model"], d["epoch"]) for d in lines] == [
        (v, e) for v in ("plain", "bn-compact", "bn-staged") for e in range(1, 5)
    ]
    # with the same start and the same batches, BatchNorm learns far faster (chance: 10%)
    assert results["bn_compact_test_accuracy"] >= 0.9
    assert results["bn_compact_test_accuracy"] >= results["plain_test_accuracy"] + 0.1
    assert abs(results["bn_staged_test_accuracy"] - results["bn_compact_test_accuracy"]) < 0.01

    _, results64 = start("batchnorm", {**common, "dtype": "float64"}, out=tmp_path)
    assert results64["form_max_rel_diff"] < 1e-12
    assert results64["form_param_max_diff"] < 1e-10  # the two BN networks stay together


@pytest.mark.usefixtures("tiny_mnist")
def test_batchnorm_on_tiny_mnist_resumes_exactly(tmp_path):
    write_mnist(tmp_path / "data" / "mnist", n_train=300, n_test=100)
    overrides = {
        "dataset": "mnist",
        "data_dir": str(tmp_path / "data"),
        "download": False,
        "hidden": (16,),
        "val_size": 44,
        "batch_size": 32,
        "quiet": True,
    }
    _, results = start("batchnorm", {**overrides, "epochs": 3}, out=tmp_path / "a")
    assert results["form_max_rel_diff"] < 1e-5
    assert results["bn_compact_test_accuracy"] >= 0.6  # chance: 10%
    # two epochs, then resumed to three: the same numbers as the uninterrupted run
    short, _ = start("batchnorm", {**overrides, "epochs": 2}, out=tmp_path / "b")
    _, resumed = resume(short.dir, {"epochs": 3})
    for key in results:
        if key != "time_s":
            assert resumed[key] == results[key], key


def test_pooling_before_relu_is_the_same_network_bit_for_bit():
    # conv_net places a convolution's ReLU after the next pooling; the textbook order (ReLU
    # first) must give identical outputs and gradients, ties and all-negative windows included
    rng = np.random.default_rng(3)
    model = conv_net((1, 8, 8), ("4", "M", "6", "M"), (5,), 3, rng=rng, batchnorm=True)
    textbook = []
    for m in model:
        if isinstance(m, nn.ReLU) and isinstance(textbook[-1], nn.MaxPool2d):
            textbook.insert(len(textbook) - 1, m)  # move the ReLU in front of its pooling
        else:
            textbook.append(m)
    kinds = [type(m).__name__ for m in textbook[:4]]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    x = rng.standard_normal((6, 1, 8, 8)).astype(np.float32)
    x[:, :, :4] = 0.0  # blank rows, as MNIST's borders: windows of equal values
    y = np.array([0, 1, 2, 0, 1, 2])
    results = []
    for net in (model, nn.Sequential(*textbook)):
        net.zero_grad()
        loss_fn = nn.CrossEntropyLoss()
        loss = loss_fn(net(x), y)
        dx = net.backward(loss_fn.backward())
        results.append((loss, dx, [p.grad.copy() for p in net.parameters()]))
    (l1, dx1, g1), (l2, dx2, g2) = results
    assert l1 == l2
    np.testing.assert_array_equal(dx1, dx2)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_array_equal(a, b)
