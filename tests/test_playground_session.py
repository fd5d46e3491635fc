"""The playground's Session without a browser or a web stack.

Every expected value is computed independently of the session: the data from
``handgrad.data.load``, the network and the epoch redone by hand with ``handgrad.nn`` and
``handgrad.optim``, losses and maps with plain NumPy in float64.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import handgrad.experiments as experiments
import handgrad.nn as nn
from handgrad.data import load, parse_points_csv
from handgrad.optim import SGD, Adam
from handgrad.playground import DEFAULTS, Session, SettingsError
from handgrad.playground.session import make_features, parse_query, settings_query

SMALL = {"n_points": 100}  # 50 train, 50 test: fast


def _decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8)


def _weights(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.state_dict().items()}


def _mlp_forward(x: np.ndarray, weights: list, biases: list, act) -> list[np.ndarray]:
    """Every layer's output (hidden activations, then the logits) in float64."""
    outs = []
    h = np.asarray(x, dtype=np.float64)
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ np.asarray(w, np.float64).T + np.asarray(b, np.float64)
        if i < len(weights) - 1:
            h = act(h)
        outs.append(h)
    return outs


# -- settings -> data, features, network -----------------------------------------------------
def test_defaults_build_the_default_network_on_the_documented_data() -> None:
    s = Session()
    assert s.settings == DEFAULTS and s.settings is not DEFAULTS
    kinds = [type(m).__name__ for m in s.model]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    shapes = [tuple(p.shape) for p in s.model.parameters()]
    assert shapes == [(4, 2), (4,), (2, 4), (2,), (1, 2), (1,)]
    assert isinstance(s.loss_fn, nn.BCEWithLogitsLoss) and isinstance(s.optimizer, SGD)
    data = load("circle", "train", seed=0, n=500, noise=0.0)  # one draw, split 250/250
    np.testing.assert_array_equal(s.train_points, data.X[:250])
    np.testing.assert_array_equal(s.test_points, data.X[250:])
    np.testing.assert_array_equal(s.train_y, data.y[:250])
    np.testing.assert_array_equal(s.train_X, data.X[:250])
    assert s.epoch == 0 and not s.playing and s.error is None and s.history == []


def test_features_hidden_and_classes_shape_the_network() -> None:
    s = Session(
        {
            **SMALL,
            "dataset": "spiral",
            "classes": 4,
            "noise": 0.2,
            "train_ratio": 0.3,
            "features": ["sin_x2", "x1x2", "x1", "x1^2"],  # kept in the table's order
            "hidden": [3, 5, 1],
            "activation": "linear",
        }
    )
    assert s.settings["features"] == ["x1", "x1^2", "x1x2", "sin_x2"]
    kinds = [type(m).__name__ for m in s.model]
    assert kinds == ["Linear", "Identity", "Linear", "Identity", "Linear", "Identity", "Linear"]
    sizes = [(m.in_features, m.out_features) for m in s.model if isinstance(m, nn.Linear)]
    assert sizes == [(4, 3), (3, 5), (5, 1), (1, 4)]
    assert isinstance(s.loss_fn, nn.CrossEntropyLoss)
    # noise 0.2 is the spiral's option 0.25 * 0.2 = 0.05; 30 of 100 points train
    data = load("spiral", "train", seed=0, n=100, k=4, noise=0.05)
    np.testing.assert_array_equal(s.train_points, data.X[:30])
    np.testing.assert_array_equal(s.test_y, data.y[30:])
    x1, x2 = data.X[:30, 0].astype(np.float64), data.X[:30, 1].astype(np.float64)
    expected = np.stack([x1, x1**2, x1 * x2, np.sin(np.pi * x2)], axis=1)
    np.testing.assert_allclose(s.train_X, expected, rtol=1e-6, atol=1e-6)
    assert s.snapshot()["layers"] == [4, 3, 5, 1, 4]

    linear = Session({**SMALL, "hidden": []})  # no hidden layer: logistic regression
    assert [type(m).__name__ for m in linear.model] == ["Linear"]
    assert linear.snapshot()["layers"] == [2, 1]


def test_a_data_set_change_clips_the_class_count_to_what_the_set_allows() -> None:
    s = Session({**SMALL, "dataset": "spiral", "classes": 4})
    s.update({"dataset": "circle"})
    assert s.settings["classes"] == 2 and s.model[-1].out_features == 1
    s.update({"dataset": "rings"})  # 2 is valid for rings: kept
    assert s.settings["classes"] == 2


# -- one step is the epoch done by hand ----------------------------------------------------------
def _by_hand(
    seed: int,
    optimizer: str,
    lr: float,
    reg: str = "none",
    rate: float = 0.0,
    epochs: int = 1,
    *,
    hidden: tuple[int, ...] = (4, 2),
    act: type[nn.Module] = nn.Tanh,
    batch: int = 7,
) -> nn.Sequential:
    """The documented run on circle (100 points, 50 train) redone with handgrad.nn and
    handgrad.optim alone; it stops before the first batch whose loss is not finite."""
    rng = np.random.default_rng(seed)
    widths = [2, *hidden, 1]
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers += [nn.Linear(widths[i], widths[i + 1], rng=rng), act()]
    model = nn.Sequential(*layers[:-1])
    params = list(model.parameters())
    opt = {
        "sgd": lambda: SGD(params, lr=lr),
        "momentum": lambda: SGD(params, lr=lr, momentum=0.9),
        "adam": lambda: Adam(params, lr=lr),
    }[optimizer]()
    data = load("circle", "train", seed=seed, n=100, noise=0.0)
    X, y = data.X[:50], data.y[:50].astype(np.float32)[:, None]
    loss_fn = nn.BCEWithLogitsLoss()
    shuffle = np.random.default_rng([seed, 1])
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    for _ in range(epochs):
        order = shuffle.permutation(50)
        for start in range(0, 50, batch):  # batch 7: 7 batches of 7, then one of 1
            idx = order[start : start + batch]
            with np.errstate(all="ignore"):
                loss = loss_fn(model(X[idx]), y[idx])
            if not math.isfinite(loss):
                return model
            opt.zero_grad()
            model.backward(loss_fn.backward())
            for w in weights:
                if reg == "l1":
                    w.grad += rate * np.sign(w.data)
                elif reg == "l2":
                    w.grad += rate * w.data
            opt.step()
    return model


CASES = [
    ("sgd", 0.3, "none", 0.0),
    ("momentum", 0.1, "none", 0.0),
    ("adam", 0.05, "none", 0.0),
    ("sgd", 0.3, "l1", 0.05),
    ("adam", 0.05, "l2", 0.2),
]


@pytest.mark.parametrize(("optimizer", "lr", "reg", "rate"), CASES)
def test_step_equals_the_same_epochs_by_hand(optimizer: str, lr: float, reg: str, rate: float):
    settings = {**SMALL, "seed": 3, "optimizer": optimizer, "lr": lr, "batch_size": 7}
    s = Session({**settings, "regularization": reg, "reg_rate": rate})
    s.step(1)
    s.step(2)
    assert s.epoch == 3
    expected = _by_hand(3, optimizer, lr, reg, rate, epochs=3)
    got = _weights(s.model)
    for name, value in _weights(expected).items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    if reg != "none":  # the penalty made a difference that the comparison above would see
        plain = _weights(_by_hand(3, optimizer, lr, "none", 0.0, epochs=3))
        assert max(np.abs(plain[k] - got[k]).max() for k in got) > 1e-3
    # the shown losses: the data loss (no penalty) of the whole split, in float64 by hand
    lin = [m for m in expected if isinstance(m, nn.Linear)]
    for X, y, shown in ((s.train_X, s.train_y, s.train_loss), (s.test_X, s.test_y, s.test_loss)):
        z = _mlp_forward(X, [m.weight.data for m in lin], [m.bias.data for m in lin], np.tanh)
        z = z[-1][:, 0]
        bce = np.mean(np.logaddexp(0.0, z) - y * z)
        assert shown == pytest.approx(bce, rel=1e-4)
    assert s.history[-1] == [3, s.train_loss, s.test_loss]
    assert [h[0] for h in s.history] == [1, 2, 3]


def test_lr_and_batch_size_take_effect_without_a_reset() -> None:
    s = Session(SMALL)
    s.step(2)
    before = _weights(s.model)
    s.update({"lr": 0.5, "batch_size": 50, "speed": 9, "regularization": "l2"})
    assert s.epoch == 2 and s.optimizer.param_groups[0]["lr"] == 0.5
    assert all(np.array_equal(v, before[k]) for k, v in _weights(s.model).items())
    # one full batch of the 50 training points (l2 at rate 0 adds nothing): w - lr * grad
    X, t = s.train_X, s.train_y.astype(np.float32)[:, None]
    probe = _weights(s.model)
    twin = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2), nn.Tanh(), nn.Linear(2, 1))
    twin.load_state_dict(probe)
    loss_fn = nn.BCEWithLogitsLoss()
    loss_fn(twin(X), t)
    twin.backward(loss_fn.backward())
    grads = {n: p.grad.copy() for n, p in twin.named_parameters()}
    s.step(1)
    for name, value in _weights(s.model).items():
        np.testing.assert_allclose(value, probe[name] - 0.5 * grads[name], rtol=1e-5, atol=1e-6)


# -- reset -------------------------------------------------------------------------------------
def test_reset_restores_the_seeds_weights_bit_for_bit() -> None:
    s = Session({**SMALL, "seed": 11, "optimizer": "adam", "lr": 0.1})
    first = _weights(s.model)
    rng = np.random.default_rng(11)  # the documented draw: weight then bias, layer by layer
    np.testing.assert_array_equal(first["0.weight"], nn.Linear(2, 4, rng=rng).weight.data)
    s.step(3)
    s.snapshot()
    trained = _weights(s.model)
    assert not np.array_equal(trained["0.weight"], first["0.weight"])
    s.playing = True
    s.reset()
    assert s.epoch == 0 and s.history == [] and s.error is None and not s.playing
    for name, value in _weights(s.model).items():
        np.testing.assert_array_equal(value, first[name])
    assert s.snapshot()["history_reset"] is True
    s.step(3)  # the shuffle and the optimizer start over too
    for name, value in _weights(s.model).items():
        np.testing.assert_array_equal(value, trained[name])


# -- refused settings --------------------------------------------------------------------------
BAD = [
    ({"lr": math.nan}, r"^lr: expected a finite number in \(0, 100\], got nan$"),
    ({"lr": 101}, r"^lr: .*got 101$"),
    ({"lr": -0.1}, r"^lr: .*got -0\.1$"),
    ({"lr": 0}, r"^lr: .*got 0$"),
    ({"lr": math.inf}, r"^lr: .*got inf$"),
    ({"lr": "0.1"}, r"^lr: .*got '0\.1'$"),
    ({"hidden": [4, 0]}, r"^hidden: layer 2 must have 1\.\.8 neurons, got 0$"),
    ({"hidden": [4] * 50}, r"^hidden: at most 6 layers, got 50$"),
    ({"hidden": [9]}, r"^hidden: layer 1 must have 1\.\.8 neurons, got 9$"),
    ({"hidden": "4,2"}, r"^hidden: expected a list of layer widths, got '4,2'$"),
    ({"batch_size": 0}, r"^batch_size: expected an integer in 1\.\.1000, got 0$"),
    ({"batch_size": True}, r"^batch_size: .*got True$"),
    ({"batch_size": 2.5}, r"^batch_size: .*got 2\.5$"),
    ({"activation": "foo"}, r"^activation: unknown 'foo'; valid: relu, tanh, sigmoid, "),
    ({"optimizer": "rmsprop"}, r"^optimizer: unknown 'rmsprop'; valid: sgd, momentum, adam$"),
    ({"foo": 1}, r"^foo: unknown setting \(got 1\); valid: dataset, classes, "),
    ({"classes": 4}, r"^classes: circle has 2 classes, got 4$"),
    ({"dataset": "spiral", "classes": 7}, r"^classes: spiral takes 2\.\.6 classes, got 7$"),
    ({"dataset": "mnist"}, r"^dataset: unknown 'mnist'; valid: circle, xor, "),
    ({"features": []}, r"^features: choose at least one of x1, x2, "),
    ({"features": ["x3"]}, r"^features: unknown 'x3'; valid: x1, x2, x1\^2, "),
    ({"noise": 0.6}, r"^noise: expected a finite number in \[0, 0\.5\], got 0\.6$"),
    ({"n_points": 5}, r"^n_points: expected an integer in 10\.\.2000, got 5$"),
    ({"train_ratio": 1.0}, r"^train_ratio: .*got 1\.0$"),
    ({"seed": -1}, r"^seed: .*got -1$"),
    ({"reg_rate": -1e-3}, r"^reg_rate: .*got -0\.001$"),
    ({"regularization": "l3"}, r"^regularization: unknown 'l3'; valid: none, l1, l2$"),
    ({"speed": 101}, r"^speed: expected an integer in 1\.\.100, got 101$"),
]


@pytest.mark.parametrize(("change", "match"), BAD, ids=[str(c) for c, _ in BAD])
def test_a_bad_setting_is_refused_and_changes_nothing(change: dict, match: str) -> None:
    s = Session(SMALL)
    s.step(1)
    before = (json.dumps(s.settings), _weights(s.model), s.epoch, s.train_points.copy())
    # a valid change that would draw new data comes with it: validate all, then apply
    with pytest.raises(SettingsError, match=match) as info:
        s.update({"n_points": 60, "seed": 4, **change})
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert json.dumps(s.settings) == before[0] and s.epoch == before[2]
    np.testing.assert_array_equal(s.train_points, before[3])
    for name, value in _weights(s.model).items():
        np.testing.assert_array_equal(value, before[1][name])
    with pytest.raises(SettingsError, match=match):
        Session({"n_points": 60, **change})


# -- messages ----------------------------------------------------------------------------------
MALFORMED = [
    ("not json, a string", r"^message: expected an object"),
    ([1, 2], r"^message: expected an object, got \[1, 2\]$"),
    ({}, r"^type: unknown message type None"),
    ({"type": "jump"}, r"^type: unknown message type 'jump'; valid: set, play, pause, "),
    ({"type": 3}, r"^type: unknown message type 3"),
    ({"type": ["play"]}, r"^type: unknown message type \['play'\]"),
    ({"type": "set"}, r"^settings: a 'set' message needs a settings object$"),
    ({"type": "set", "settings": [1]}, r"^settings: expected an object, got \[1\]$"),
    ({"type": "set", "settings": {"lr": -1}}, r"^lr: "),
    ({"type": "set", "settings": {"hidden": [8] * 50}}, r"^hidden: at most 6 layers, got 50$"),
    ({"type": "play", "now": True}, r"^now: unexpected field in a 'play' message$"),
]


@pytest.mark.parametrize(("message", "match"), MALFORMED, ids=[str(m) for m, _ in MALFORMED])
def test_a_malformed_message_gets_an_error_reply_and_changes_nothing(message, match) -> None:
    s = Session(SMALL)
    s.step(1)
    before = (json.dumps(s.settings), s.epoch, s.playing, _weights(s.model))
    reply = s.handle(message)
    assert reply is not None and set(reply) == {"type", "message"} and reply["type"] == "error"
    assert isinstance(reply["message"], str) and "\n" not in reply["message"]
    assert re.search(match, reply["message"]), reply["message"]
    assert (json.dumps(s.settings), s.epoch, s.playing) == before[:3]
    for name, value in _weights(s.model).items():
        np.testing.assert_array_equal(value, before[3][name])


def test_messages_drive_the_session() -> None:
    s = Session(SMALL)
    hello = s.handle({"type": "hello"})
    assert hello["type"] == "frame" and len(hello["points"]["train"]) == 50
    assert s.handle({"type": "play"})["playing"] is True and s.playing
    assert s.handle({"type": "pause"})["playing"] is False
    s.playing = True
    frame = s.handle({"type": "step"})
    assert frame["epoch"] == 1 and frame["playing"] is False and len(frame["history"]) == 1
    assert "points" not in frame  # only with hello or when the data changed
    frame = s.handle({"type": "set", "settings": {"lr": 0.2}})
    assert frame["settings"]["lr"] == 0.2 and frame["epoch"] == 1
    frame = s.handle({"type": "set", "settings": {"n_points": 40}})
    assert frame["epoch"] == 0 and len(frame["points"]["train"]) == 20
    s.step(2)
    assert s.handle({"type": "reset"})["epoch"] == 0


# -- divergence --------------------------------------------------------------------------------
DIVERGING = {  # lr 10 on a linear network: float32 overflows within the first epoch
    "a layer overflows": ({"hidden": [8] * 6}, "the output of layer 4 (Linear)"),
    "the loss overflows": ({"hidden": [8, 8]}, "the train loss"),
}


@pytest.mark.parametrize(("network", "culprit"), DIVERGING.values(), ids=DIVERGING.keys())
def test_a_divergence_stops_playing_and_names_the_first_non_finite_tensor(network, culprit):
    s = Session({**SMALL, "lr": 10, "activation": "linear", **network})
    s.playing = True
    for _ in range(20):
        s.step(1)
        if s.error:
            break
    assert s.playing is False and s.error is not None
    m = re.fullmatch(
        r"diverged at epoch (\d+): (.+?) is (nan|inf|-inf)( \(logits up to .+\))?; "
        r"lower the learning rate",
        s.error,
    )
    assert m, s.error
    epoch, named = int(m.group(1)), m.group(2)
    assert named == culprit  # measured; checked independently below
    params = dict(s.model.named_parameters())
    assert all(np.isfinite(p.data).all() for p in params.values())  # state kept: before NaN
    if epoch == s.epoch + 1:  # the weights are those the failing batch saw, as by hand
        expected = _by_hand(0, "sgd", 10.0, epochs=1, hidden=tuple(network["hidden"]),
                            act=nn.Identity, batch=10)  # fmt: skip
        for name, value in _weights(expected).items():
            np.testing.assert_array_equal(params[name].data, value, err_msg=name)
    x = s.train_X.astype(np.float32)
    if named.startswith("the output of layer "):  # mid-epoch: the epoch did not complete
        assert epoch == s.epoch + 1
        index = int(named.split()[4])
        with np.errstate(all="ignore"):
            for i, layer in enumerate(s.model):  # every layer before it is finite
                x = layer(x)
                assert np.isfinite(x).all() == (i < index), i
                if i == index:
                    break
        assert f"({type(s.model[index]).__name__})" in named
    else:  # the loss over the whole split: the logits, in float64, are beyond float32's sum
        assert named == "the train loss" and epoch == s.epoch
        lin = [m for m in s.model if isinstance(m, nn.Linear)]
        z = _mlp_forward(x, [m.weight.data for m in lin], [m.bias.data for m in lin], lambda h: h)
        assert np.abs(z[-1]).sum() > np.finfo(np.float32).max
    epoch = s.epoch
    s.step(3)  # stays stopped
    assert s.epoch == epoch and s.handle({"type": "play"})["playing"] is False
    json.dumps(s.snapshot(full=True), allow_nan=False)
    s.reset()
    assert s.error is None and math.isfinite(s.train_loss)


def test_a_non_finite_weight_is_named() -> None:
    s = Session(SMALL)
    s.model[2].weight.data[1, 0] = np.inf  # "2.weight"
    s.step(1)
    assert s.error is not None and s.error.startswith("diverged at epoch 1: 2.weight is ")
    frame = s.snapshot()
    json.dumps(frame, allow_nan=False)
    assert frame["error"] == s.error and frame["playing"] is False


# -- frames ------------------------------------------------------------------------------------
def test_a_frame_is_json_and_decodes_to_the_right_sizes() -> None:
    s = Session({"hidden": [8] * 6, "features": ["x1", "x2", "x1x2"]})
    s.step(2)
    full = s.snapshot(full=True)
    text = json.dumps(full, allow_nan=False)
    assert json.loads(text)["epoch"] == 2
    frame = s.snapshot()
    assert len(json.dumps(frame, allow_nan=False)) < 60_000
    assert frame["layers"] == [3, 8, 8, 8, 8, 8, 8, 1]
    assert frame["feature_names"] == ["x1", "x2", "x1x2"]
    assert [np.shape(w) for w in frame["weights"]] == [(8, 3)] + [(8, 8)] * 5 + [(1, 8)]
    assert [len(b) for b in frame["biases"]] == [8] * 6 + [1]
    grid = frame["grid"]
    assert grid["size"] == 50 and grid["classes"] == 2 and len(grid["extent"]) == 4
    assert _decode(grid["label"]).size == 2500 and _decode(grid["label"]).max() <= 1
    assert _decode(grid["confidence"]).size == 2500
    maps = frame["neurons"]["maps"]
    assert frame["neurons"]["size"] == 20 and [len(m) for m in maps] == frame["layers"]
    assert all(_decode(m).size == 400 for layer in maps for m in layer)
    assert len(full["points"]["train"]) == 250 and len(full["points"]["test"]) == 250
    assert "points" not in frame and frame["history"] == [] and not frame["history_reset"]
    assert len(full["history"]) == 2 and full["history_reset"]
    s.step(3)
    assert [h[0] for h in s.snapshot()["history"]] == [3, 4, 5]


def test_the_maps_show_what_the_network_computes() -> None:
    s = Session({**SMALL, "hidden": [3], "activation": "tanh", "seed": 2})
    s.step(30)
    frame = s.snapshot()
    xmin, xmax, ymin, ymax = frame["grid"]["extent"]
    assert xmin == -xmax and ymin == -ymax and xmax >= np.abs(s.train_points).max()
    w, b = frame["weights"], frame["biases"]  # rounded to 4 decimals
    G, g = 50, 20

    def centres(n: int) -> np.ndarray:  # row 0 = top, cell centres
        xs = xmin + (np.arange(n) + 0.5) * (xmax - xmin) / n
        ys = ymax - (np.arange(n) + 0.5) * (ymax - ymin) / n
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    hidden, logits = _mlp_forward(centres(G), w, b, np.tanh)
    label = _decode(frame["grid"]["label"])
    sure = np.abs(logits[:, 0]) > 1e-2  # away from the boundary (weights are rounded)
    np.testing.assert_array_equal(label[sure], (logits[sure, 0] > 0).astype(np.uint8))
    p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
    conf = (np.maximum(p, 1 - p) - 0.5) / 0.5 * 255
    assert np.abs(_decode(frame["grid"]["confidence"]) - conf).max() <= 1.5
    hidden, logits = _mlp_forward(centres(g), w, b, np.tanh)
    maps = frame["neurons"]["maps"]
    for j in range(3):
        expected = (hidden[:, j] + 1) / 2 * 255
        assert np.abs(_decode(maps[1][j]) - expected).max() <= 1.5
    x1 = centres(g)[:, 0]
    np.testing.assert_allclose(_decode(maps[0][0]), (x1 / np.abs(x1).max() + 1) / 2 * 255, atol=1)
    out = 2.0 / (1.0 + np.exp(-logits[:, 0])) - 1.0
    assert np.abs(_decode(maps[2][0]) - (out + 1) / 2 * 255).max() <= 1.5


# -- learning ----------------------------------------------------------------------------------
def test_the_test_loss_falls_on_circle_with_the_default_settings() -> None:
    # measured: test loss 0.694 at epoch 0, 0.163 at epoch 300 (accuracy 0.98)
    s = Session()
    start = s.test_loss
    s.step(300)
    assert start > 0.68 and s.test_loss < 0.3 and s.test_accuracy > 0.9


def test_a_k_class_spiral_trains_with_a_softmax_output() -> None:
    # measured: test loss 1.107 -> 0.084 and accuracy 0.99 after 50 epochs
    s = Session(
        {"dataset": "spiral", "classes": 3, "n_points": 300, "hidden": [8, 8],
         "optimizer": "adam", "lr": 0.03}
    )  # fmt: skip
    assert s.model[-1].out_features == 3 and isinstance(s.loss_fn, nn.CrossEntropyLoss)
    s.step(50)
    assert s.test_loss < 0.3 and s.test_accuracy > 0.9
    # the shown loss is the softmax cross-entropy of the test split, in float64 by hand
    lin = [m for m in s.model if isinstance(m, nn.Linear)]
    z = _mlp_forward(s.test_X, [m.weight.data for m in lin], [m.bias.data for m in lin], np.tanh)
    z = z[-1]
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    assert s.test_loss == pytest.approx(-logp[np.arange(len(z)), s.test_y].mean(), rel=1e-4)
    frame = s.snapshot()
    assert frame["grid"]["classes"] == 3 and len(frame["neurons"]["maps"][-1]) == 3
    assert set(_decode(frame["grid"]["label"]).tolist()) == {0, 1, 2}


def test_the_package_imports_no_web_stack() -> None:
    code = (
        "import sys, handgrad.playground; "
        "bad = [m for m in ('starlette', 'uvicorn', 'handgrad.experiments') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# == the second half: your own data, the backward pass, a way out ==============================


def _np_forward(x, weights, biases, act):
    """Every Linear's z and every activation's a, in float64, by hand."""
    zs, acts = [], [np.asarray(x, np.float64)]
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = acts[-1] @ np.asarray(w, np.float64).T + np.asarray(b, np.float64)
        zs.append(z)
        if i < len(weights) - 1:
            acts.append(act(z))
    return zs, acts


def _np_backward(zs, acts, weights, target, classes):
    """delta = dL/dz of every Linear (output first), dL/dW and dL/db, for the batch's mean
    BCE-with-logits (2 classes) or cross-entropy loss, with tanh between the layers."""
    z = zs[-1]
    n = len(z)
    if classes == 2:
        loss = np.mean(np.logaddexp(0.0, z[:, 0]) - target * z[:, 0])
        delta = (1.0 / (1.0 + np.exp(-z)) - target[:, None]) / n
    else:
        m = z.max(axis=1, keepdims=True)
        logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        loss = -np.mean(logp[np.arange(n), target])
        delta = (np.exp(logp) - np.eye(classes)[target]) / n
    deltas, gw, gb = [], [], []
    for i in range(len(weights) - 1, -1, -1):
        deltas.append(delta)
        gw.append(delta.T @ acts[i])
        gb.append(delta.sum(axis=0))
        if i:
            delta = (delta @ np.asarray(weights[i], np.float64)) * (1.0 - acts[i] ** 2)
    return loss, deltas, gw, gb


# -- your own data -------------------------------------------------------------------------------
def test_switching_to_custom_keeps_the_points_and_the_training() -> None:
    s = Session(SMALL)
    s.step(2)
    shown = np.concatenate([s.train_points, s.test_points])
    weights = _weights(s.model)
    frame = s.handle({"type": "set", "settings": {"dataset": "custom"}})
    assert frame["settings"]["dataset"] == "custom" and frame["epoch"] == 2
    assert all(np.array_equal(v, weights[k]) for k, v in _weights(s.model).items())
    both = np.concatenate([s.train_points, s.test_points])
    assert sorted(map(tuple, both.tolist())) == sorted(map(tuple, shown.tolist()))
    assert len(frame["points"]["train"]) == 50 and frame["class_names"] == ["0", "1"]
    s.step(1)
    assert s.epoch == 3


def test_points_are_added_removed_and_cleared_while_training_goes_on() -> None:
    s = Session({**SMALL, "dataset": "custom", "classes": 3})
    assert s.train_X.shape == (0, 2) and s.snapshot()["train_loss"] is None
    s.step(5)  # nothing to train on: nothing happens
    assert s.epoch == 0
    s.playing = True
    for i in range(12):
        reply = s.handle({"type": "add_point", "x1": i / 12, "x2": -i / 12, "label": i % 3})
        assert reply["type"] == "frame" and reply["playing"]
    assert len(reply["points"]["train"]) == 6 and len(reply["points"]["test"]) == 6
    assert reply["points"]["train"][1] == [round(2 / 12, 3), round(-2 / 12, 3), 2]
    s.step(3)
    assert s.epoch == 3 and s.playing
    # the nearest point within the radius goes; none within: nothing changes
    assert s.remove_point(0.0, 0.01, 0.05) and len(s._all_y) == 11
    assert not s.remove_point(5.0, 5.0, 0.1) and len(s._all_y) == 11
    assert s.handle({"type": "remove_point", "x1": 0.0, "x2": 0.0, "radius": 0.01})["type"]
    s.step(1)
    assert s.epoch == 4
    frame = s.handle({"type": "clear_points"})
    assert frame["points"] == {"train": [], "test": []} and frame["train_loss"] is None
    json.dumps(frame, allow_nan=False)


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ({"type": "add_point", "x1": 0, "x2": 0, "label": 2}, r"label: expected a class in 0\.\.1"),
        ({"type": "add_point", "x1": float("nan"), "x2": 0, "label": 0}, "x1: expected a finite"),
        ({"type": "add_point", "x1": 0, "x2": 1e9, "label": 0}, "x2: expected a finite"),
        ({"type": "add_point", "x1": 0, "x2": 0}, "label: a 'add_point' message needs it"),
        ({"type": "remove_point", "x1": 0, "x2": 0, "radius": 0}, "radius"),
        ({"type": "load_csv"}, "base64 or as text"),
        ({"type": "load_csv", "base64": "!!"}, "not valid base64"),
        ({"type": "set", "settings": {"dataset": "custom", "classes": 7}}, "classes"),
    ],
)
def test_bad_point_messages_are_refused_and_change_nothing(message, match) -> None:
    s = Session(SMALL)
    before = (s.settings, s.train_points.copy(), s.test_points.copy())
    reply = s.handle(message)
    assert reply["type"] == "error" and re.search(match, reply["message"]), reply
    assert s.settings == before[0] and np.array_equal(s.train_points, before[1])


def test_classes_cannot_drop_below_the_classes_the_points_use() -> None:
    s = Session({"dataset": "custom", "classes": 4})
    s.add_point(0.1, 0.1, 3)
    reply = s.handle({"type": "set", "settings": {"classes": 3}})
    assert reply == {"type": "error", "message": "classes: the points use 4 classes, got 3"}
    assert s.handle({"type": "set", "settings": {"classes": 5}})["layers"][-1] == 5


def test_a_csv_upload_replaces_the_points_and_a_bad_one_keeps_them() -> None:
    s = Session(SMALL)
    text = "x,y,kind\n0.5,0.5,cat\n-0.5,0.5,dog\n0.5,-0.5,bird\n-0.5,-0.5,cat\n"
    encoded = base64.b64encode(text.encode()).decode()
    frame = s.handle({"type": "load_csv", "base64": encoded, "name": "../../pets.csv"})
    assert frame["settings"]["dataset"] == "custom" and frame["settings"]["classes"] == 3
    assert frame["class_names"] == ["cat", "dog", "bird"] and frame["layers"][-1] == 3
    assert frame["points"]["train"] == [[0.5, 0.5, 0], [0.5, -0.5, 2]]
    assert frame["epoch"] == 0
    kept = (s.settings, s.train_points.copy(), s.class_names)
    bad = base64.b64encode(b"x,y,kind\n1,2,cat\n3,oops,dog\n").decode()
    reply = s.handle({"type": "load_csv", "base64": bad, "name": "C:\\tmp\\pets.csv"})
    assert reply == {"type": "error", "message": "pets.csv line 3: x2 is not a number: 'oops'"}
    assert (s.settings, s.class_names) == (kept[0], kept[2])
    assert np.array_equal(s.train_points, kept[1])
    reply = s.handle({"type": "load_csv", "base64": base64.b64encode(b"1,2,\xfe").decode()})
    assert reply["message"] == "CSV: not UTF-8 (line 1: invalid start byte)"
    # the download is the same CSV: it reads back as the same points and names
    back = parse_points_csv(s.points_csv())
    assert back.classes == ("cat", "dog", "bird") and back.y.tolist() == [0, 1, 2, 0]


def test_the_points_download_of_a_generated_set_reads_back_exactly() -> None:
    s = Session(SMALL)
    data, kind = s.download("points.csv")
    assert kind.startswith("text/csv")
    back = parse_points_csv(data)
    np.testing.assert_array_equal(back.X, np.concatenate([s.train_points, s.test_points]))
    np.testing.assert_array_equal(back.y, np.concatenate([s.train_y, s.test_y]))


# -- the backward pass ---------------------------------------------------------------------------
def test_the_gradients_view_shows_the_last_steps_gradients_and_deltas() -> None:
    # one batch per epoch: the last step's batch is every training point, from the seed's weights
    s = Session({**SMALL, "batch_size": 1000, "view": "weights"})
    assert "gradients" not in s.snapshot() and "backward" not in vars(s.model[0])
    s.update({"view": "gradients"})
    assert "backward" in vars(s.model[0])  # the hook's entry point; gone with the view
    assert s.snapshot()["gradients"] is None  # no step yet
    lin = [m for m in s.model if isinstance(m, nn.Linear)]
    weights = [m.weight.data.copy() for m in lin]
    biases = [m.bias.data.copy() for m in lin]
    s.step(1)
    frame = s.snapshot()
    zs, acts = _np_forward(s.train_X, weights, biases, np.tanh)
    _, deltas, gw, gb = _np_backward(zs, acts, weights, s.train_y.astype(np.float64), 2)
    grads = frame["gradients"]
    assert grads["batch"] == 50
    for i in range(3):  # output first in the by-hand lists
        j = 2 - i
        np.testing.assert_allclose(grads["weights"][j], gw[i], rtol=2e-3, atol=1e-7)
        np.testing.assert_allclose(grads["biases"][j], gb[i], rtol=2e-3, atol=1e-7)
        np.testing.assert_allclose(grads["delta"][j], deltas[i].sum(axis=0), rtol=2e-3, atol=1e-7)
        np.testing.assert_allclose(
            grads["delta_abs"][j], np.abs(deltas[i]).sum(axis=0), rtol=2e-3, atol=1e-7
        )
    s.update({"view": "weights"})
    assert "gradients" not in s.snapshot() and "backward" not in vars(s.model[0])


@pytest.mark.parametrize(
    ("optimizer", "reg", "point", "classes"),
    [
        ("sgd", "none", 5, 2),
        ("sgd", "l2", None, 2),
        ("momentum", "l1", 0, 2),
        ("adam", "none", None, 3),
        ("adam", "l2", 7, 3),
    ],
)
def test_one_step_explained_is_the_step_computed_by_hand(optimizer, reg, point, classes):
    settings = {"dataset": "spiral", "classes": classes, "n_points": 60, "batch_size": 8}
    s = Session({**settings, "optimizer": optimizer, "lr": 0.1, "seed": 4, "hidden": [3, 2]})
    s.update({"regularization": reg, "reg_rate": 0.05})
    s.step(2)
    s.playing = True
    params = dict(s.model.named_parameters())
    before = {k: p.data.astype(np.float64) for k, p in params.items()}
    state = {k: {n: np.array(v, np.float64) for n, v in s.optimizer.state.get(p, {}).items()}
             for k, p in params.items()}  # fmt: skip
    frame, table = s.replies({"type": "explain_step", "point": point})
    assert frame["type"] == "frame" and table["type"] == "explain" and not s.playing
    assert frame["epoch"] == 2 and table["epoch"] == 2
    idx = table["indices"]
    assert (idx == [point]) if point is not None else (len(idx) == 8 == table["batch"])
    json.dumps(table, allow_nan=False)
    x = s.train_X[idx].astype(np.float64)
    np.testing.assert_array_equal(table["input"], s.train_X[idx])
    assert table["targets"] == s.train_y[idx].tolist()
    W = [before[f"{i}.weight"] for i in (0, 2, 4)]
    B = [before[f"{i}.bias"] for i in (0, 2, 4)]
    zs, acts = _np_forward(x, W, B, np.tanh)
    target = s.train_y[idx].astype(np.float64 if classes == 2 else np.int64)
    loss, deltas, gw, gb = _np_backward(zs, acts, W, target, classes)
    close = {"rtol": 2e-4, "atol": 1e-6}
    assert table["loss"] == pytest.approx(loss, rel=1e-5)
    for i, layer in enumerate(table["layers"]):
        assert layer["linear"] == str(2 * i)
        np.testing.assert_array_equal(layer["weight"], W[i])
        np.testing.assert_allclose(layer["z"], zs[i], **close)
        if i < 2:
            np.testing.assert_allclose(layer["a"], acts[i + 1], **close)
    assert table["layers"][-1]["a"] is None
    for i, back in enumerate(table["backward"]):  # the output layer first
        assert back["linear"] == str(4 - 2 * i)
        np.testing.assert_allclose(back["delta"], deltas[i], **close)
        np.testing.assert_allclose(back["grad_weight"], gw[i], **close)
        np.testing.assert_allclose(back["grad_bias"], gb[i], **close)
        assert (back["grad_input"] is None) == (i == 2)
        if back["grad_input"] is not None:  # dL/da of the layer below
            np.testing.assert_allclose(back["grad_input"], deltas[i] @ W[2 - i], **close)
    rate, lr = 0.05, 0.1
    for entry in table["update"]:
        name = entry["name"]
        layer = int(name.split(".")[0]) // 2
        g = (gw if name.endswith("weight") else gb)[2 - layer]
        if reg != "none" and name.endswith("weight"):
            g = g + rate * (np.sign(before[name]) if reg == "l1" else before[name])
        np.testing.assert_allclose(entry["grad"], g, **close)
        if optimizer == "sgd":
            step = lr * g
        elif optimizer == "momentum":
            buf = 0.9 * state[name]["momentum_buffer"] + g
            np.testing.assert_allclose(entry["buffer"], buf, **close)
            step = lr * buf
        else:
            t = state[name]["step"] + 1
            m = 0.9 * state[name]["exp_avg"] + 0.1 * g
            v = 0.999 * state[name]["exp_avg_sq"] + 0.001 * g * g
            assert entry["step"] == t and entry["bias_correction1"] == pytest.approx(1 - 0.9**t)
            np.testing.assert_allclose(entry["m"], m, **close)
            np.testing.assert_allclose(entry["v"], v, rtol=2e-4, atol=1e-10)
            np.testing.assert_allclose(entry["m_hat"], m / (1 - 0.9**t), **close)
            step = lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
            np.testing.assert_allclose(entry["update"], -step, rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(entry["after"], before[name] - step, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(entry["after"], params[name].data)


def test_the_shown_delta_is_what_handgrads_backward_computed() -> None:
    s = Session({**SMALL, "hidden": [3]})
    model = copy.deepcopy(s.model)
    table = s.explain_step(4)
    x, t = s.train_X[[4]], s._train_t[[4]]
    loss_fn = nn.BCEWithLogitsLoss()
    loss_fn(model(x), t)
    g = loss_fn.backward()
    np.testing.assert_array_equal(table["backward"][0]["delta"], g)  # dL/dz of the output
    g = model[1].backward(model[2].backward(g))
    np.testing.assert_array_equal(table["backward"][1]["delta"], g)  # dL/dz of the hidden layer


def test_check_gradients_runs_gradcheck_on_a_float64_copy(monkeypatch) -> None:
    s = Session({**SMALL, "hidden": [4, 3], "activation": "relu"})
    s.step(2)
    weights = _weights(s.model)
    reply = s.handle({"type": "gradcheck"})
    assert reply["type"] == "gradcheck" and reply["passed"] and reply["status"] == "PASSED"
    assert reply["verdict"].startswith("network: PASSED") and reply["points"] == 32
    tensors = [r["tensor"] for r in reply["rows"]]
    assert tensors == ["input", "0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias",
                       "loss (logits)"]  # fmt: skip
    assert all(r["status"] == "ok" and r["max_abs_err"] < 1e-6 for r in reply["rows"])
    assert s.model[0].weight.data.dtype == np.float32
    assert all(np.array_equal(v, weights[k]) for k, v in _weights(s.model).items())
    # a wrong hand-written backward is caught: ReLU passing the gradient everywhere
    monkeypatch.setattr(nn.ReLU, "backward", lambda self, grad_out: grad_out)
    reply = s.handle({"type": "gradcheck"})
    assert not reply["passed"] and reply["status"] == "FAILED"
    assert "FAIL" in [r["status"] for r in reply["rows"]]


def test_monitors_give_dead_units_and_update_ratios() -> None:
    s = Session({**SMALL, "hidden": [4], "activation": "relu", "batch_size": 1000})
    s.model[0].bias.data[2] = -100.0  # unit 2 is 0 for every point: dead
    before = [p.data.copy() for p in s.model.parameters()]
    s.step(1)
    frame = s.snapshot()
    z = s.train_X @ s.model[0].weight.data.T + s.model[0].bias.data
    dead = np.mean(~(z > 0).any(axis=0))
    assert frame["monitors"]["layers"] == [
        {"column": 1, "kind": "ReLU", "dead": pytest.approx(dead), "saturated": None}
    ]
    assert dead >= 0.25  # unit 2 at least (measured: 0.5)
    after = list(s.model.parameters())
    for i, ratio in enumerate(frame["monitors"]["update_ratio"]):
        for j, key in ((2 * i, "weight"), (2 * i + 1, "bias")):
            expected = np.linalg.norm(after[j].data - before[j]) / np.linalg.norm(before[j])
            assert ratio[key] == pytest.approx(expected, rel=1e-5)
    tanh = Session(SMALL).snapshot()["monitors"]
    assert [m["kind"] for m in tanh["layers"]] == ["Tanh", "Tanh"]
    assert tanh["layers"][0]["dead"] is None and tanh["update_ratio"][0]["weight"] is None


def test_a_divergence_names_its_origin_in_the_frame() -> None:
    s = Session({**SMALL, "lr": 10, "activation": "linear", "hidden": [8] * 6})
    for _ in range(20):
        s.step(1)
        if s.error:
            break
    origin = s.snapshot()["nan_origin"]
    assert origin["kind"] == "output" and origin["layer"] == "4" and origin["column"] == 3
    assert origin["tensor"] == "output of layer 4 (Linear)" and origin["value"] in ("inf", "-inf")
    assert origin["detail"].endswith(origin["value"]) and origin["epoch"] >= 1
    s.reset()
    assert s.snapshot()["nan_origin"] is None
    s.model[2].weight.data[0, 0] = np.nan
    s.step(1)
    origin = s.snapshot()["nan_origin"]
    assert (origin["kind"], origin["tensor"], origin["column"]) == ("parameter", "2.weight", 2)


# -- a way out -----------------------------------------------------------------------------------
REPRODUCE = {
    "defaults": ({"n_points": 200}, 6),
    "spiral, adam, features, L1": (
        {"dataset": "spiral", "classes": 3, "noise": 0.2, "n_points": 150, "hidden": [6, 4],
         "activation": "relu", "optimizer": "adam", "lr": 0.02, "train_ratio": 0.7, "seed": 5,
         "features": ["x1", "x2", "x1^2", "sin_x2"], "regularization": "l1", "reg_rate": 0.002,
         "batch_size": 16},
        4,
    ),
    "xor, momentum, linear, L2, no hidden layer": (
        {"dataset": "xor", "optimizer": "momentum", "activation": "linear", "hidden": [],
         "regularization": "l2", "reg_rate": 0.01, "n_points": 100, "seed": 3},
        3,
    ),
}  # fmt: skip


@pytest.mark.parametrize(("settings", "epochs"), REPRODUCE.values(), ids=REPRODUCE.keys())
def test_reproduce_runs_the_same_network_in_the_lab(tmp_path, settings, epochs) -> None:
    s = Session(settings, workdir=tmp_path / "work")
    s.step(epochs)
    reply = s.handle({"type": "reproduce"})
    assert reply["exact"] and reply["note"] is None and reply["epochs"] == epochs
    assert reply["csv"] is None and not (tmp_path / "work").exists()
    argv = shlex.split(reply["command"])
    assert argv == reply["argv"] and argv[:4] == ["handgrad", "run", "boundary", "--set"]
    overrides = {
        **experiments.parse_set(argv[4:]),
        "quiet": "true",
        "resolution": "10",
        "snapshots": "1",
    }
    _, results = experiments.start("boundary", overrides, out=tmp_path / "runs")
    assert results["train_loss"] == reply["train_loss"] == s.train_loss  # bit for bit
    assert results["test_loss"] == s.test_loss


def test_reproduce_writes_drawn_points_into_the_workdir_only(tmp_path) -> None:
    s = Session({"dataset": "custom", "classes": 3, "seed": 2}, workdir=tmp_path / "work")
    rng = np.random.default_rng(0)
    for i in range(30):
        x1, x2 = rng.uniform(-1, 1, 2).tolist()
        s.add_point(x1 + i % 3 - 1, x2, i % 3)
    s.update({"regularization": "l2", "reg_rate": 0.01, "features": ["x1", "x2", "x1x2"]})
    s.step(5)
    reply = s.handle({"type": "reproduce"})
    path = Path(reply["csv"])
    assert reply["exact"] and path.parent == (tmp_path / "work").resolve()
    assert re.fullmatch(r"points-[0-9a-f]{16}\.csv", path.name)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert f"data={path}" in reply["argv"]
    back = parse_points_csv(path.read_bytes())
    np.testing.assert_array_equal(back.X, np.concatenate([s._custom[0]]))
    overrides = {**experiments.parse_set(reply["argv"][4:]), "quiet": "true", "resolution": "10"}
    _, results = experiments.start("boundary", overrides, out=tmp_path / "runs")
    assert results["train_loss"] == s.train_loss and results["test_loss"] == s.test_loss
    assert s.handle({"type": "reproduce"})["csv"] == reply["csv"]  # the same file again


def test_reproduce_says_when_the_run_cannot_be_redone_exactly(tmp_path) -> None:
    s = Session(SMALL, workdir=tmp_path)
    assert "no epoch trained yet" in s.reproduce()["note"]
    s.step(2)
    assert s.reproduce()["exact"]
    s.update({"lr": 0.5})
    reply = s.reproduce()
    assert not reply["exact"] and "changed during this run" in reply["note"]
    assert "lr=0.5" in reply["argv"]
    s.reset()
    s.step(1)
    assert s.reproduce()["exact"]
    s.explain_step(0)
    assert not s.reproduce()["exact"]
    s.update({"dataset": "custom"})
    s.clear_points()
    assert (
        s.handle({"type": "reproduce"})["message"] == "reproduce: there are no points to train on"
    )


def test_reproduce_command_runs_in_a_shell(tmp_path) -> None:
    s = Session({"n_points": 60, "hidden": [3], "features": ["x1", "x2", "x1^2"]},
                workdir=tmp_path / "work")  # fmt: skip
    s.step(2)
    reply = s.reproduce()
    command = reply["command"] + " --quiet --out runs"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    subprocess.run(command, shell=True, cwd=tmp_path, check=True, env=env, capture_output=True)
    (run,) = (tmp_path / "runs").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["train_loss"] == s.train_loss


def test_downloads_are_a_checkpoint_and_a_torch_model(tmp_path) -> None:
    from handgrad.train import load_checkpoint

    work = tmp_path / "work"
    s = Session({**SMALL, "hidden": [5, 3], "features": ["x1", "x2", "sin_x1"]}, workdir=work)
    s.step(3)
    data, _ = s.download("weights.npz")
    assert list(work.iterdir()) == []  # made in the workdir, nothing left behind
    (tmp_path / "w.npz").write_bytes(data)
    ckpt = load_checkpoint(tmp_path / "w.npz")
    assert ckpt["epoch"] == 3 and ckpt["settings"] == s.settings
    for key, value in s.model.state_dict().items():
        np.testing.assert_array_equal(ckpt["model"][key], value)
    assert s.download("../../etc/passwd") is None and s.download("weights.npz/..") is None
    torch = pytest.importorskip("torch")
    (tmp_path / "model.pt").write_bytes(s.download("model.pt")[0])
    source = s.download("model.py")[0].decode()
    (tmp_path / "model.py").write_text(source)
    namespace: dict = {"__file__": str(tmp_path / "model.py"), "__name__": "model"}
    exec(compile(source, "model.py", "exec"), namespace)
    points = s.test_points[:10]
    with torch.no_grad():
        got = namespace["model"](namespace["features"](torch.from_numpy(points))).numpy()
    np.testing.assert_allclose(got, s.model(make_features(points, s.settings["features"])),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


# -- settings in the URL -------------------------------------------------------------------------
def test_settings_round_trip_through_the_url_query() -> None:
    settings = {**DEFAULTS, "dataset": "spiral", "classes": 3, "hidden": [], "lr": 0.1,
                "features": ["x1", "x1^2", "sin_x2"], "view": "gradients"}  # fmt: skip
    query = settings_query(settings)
    assert query == ("dataset=spiral&classes=3&features=x1,x1%5E2,sin_x2&hidden=&lr=0.1"
                     "&view=gradients")  # fmt: skip
    assert {**DEFAULTS, **parse_query("?" + query)} == settings
    assert settings_query(DEFAULTS) == ""
    s = Session()
    frame = s.handle({"type": "hello", "query": query})
    assert frame["settings"] == settings and frame["query"] == query
    assert "points" in frame and frame["history_reset"]


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("hidden=4,x", "hidden: expected integers, got '4,x'"),
        ("lr=fast", "lr: expected float, got 'fast'"),
        ("lr=-1", r"lr: expected a finite number in \(0, 100\]"),
        ("colour=red", "colour: unknown setting"),
        ("hidden=9", "hidden: layer 1 must have 1..8 neurons"),
    ],
)
def test_a_bad_url_is_refused_after_a_full_frame(query, match) -> None:
    s = Session()
    replies = s.replies({"type": "hello", "query": query})
    assert [r["type"] for r in replies] == ["frame", "error"]
    assert re.search(match, replies[1]["message"]) and replies[0]["settings"] == DEFAULTS
    assert s.settings == DEFAULTS


def test_hello_takes_settings_or_a_query_not_both() -> None:
    s = Session()
    assert s.handle({"type": "hello", "settings": {"hidden": [2]}})["layers"] == [2, 2, 1]
    reply = s.handle({"type": "hello", "settings": {}, "query": ""})
    assert reply["type"] == "error" and "not both" in reply["message"]
