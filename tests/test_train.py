"""The training loop: fit, evaluate, accuracy, callbacks, the divergence guard, progress."""

from __future__ import annotations

import math

import numpy as np
import pytest

import handgrad.nn as nn
import handgrad.optim as optim
from handgrad.data import DataLoader
from handgrad.train import (
    Callback,
    DivergenceError,
    EarlyStopping,
    LambdaCallback,
    LRSchedulerCallback,
    ModelCheckpoint,
    evaluate,
    fit,
    load_checkpoint,
)
from handgrad.train.loop import (
    accuracy_fn,
    binary_accuracy_logits,
    binary_accuracy_probs,
    multiclass_accuracy,
)


def blobs(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian blobs in 2-D, int labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0], [-2.0, 2.0], [-2.0, -2.0]])
    X = centers[y] + 0.5 * rng.standard_normal((n, 2))
    return X.astype(np.float32), y.astype(np.int64)


def classifier(seed: int = 0) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(2, 8, rng=rng), nn.Tanh(), nn.Linear(8, 3, rng=rng))


# -- fit -----------------------------------------------------------------------------------
def test_fit_returns_history_and_learns():
    X, y = blobs()
    model = classifier()
    loader = DataLoader(X, y, batch_size=16, rng=1)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, nn.CrossEntropyLoss(), opt, loader, val=(X, y), epochs=8)
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert [h["step"] for h in history] == [6 * e for e in range(1, 9)]  # 96 / 16 steps each
    assert list(history[0]) == [
        "epoch",
        "step",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "time",
    ]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_accuracy"] > 0.9  # chance is 1/3
    assert all(h["lr"] == 0.1 and h["time"] > 0 for h in history)


def test_fit_equals_a_hand_written_loop():
    """The oracle: the same steps written out by hand give the same parameters, bit for bit,
    and the epoch's loss is the sample-weighted mean of the batch losses."""
    X, y = blobs(50)
    model_a, model_b = classifier(3), classifier(3)
    loss_a, loss_b = nn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    opt_a = optim.SGD(model_a.parameters(), lr=0.05, momentum=0.5)
    opt_b = optim.SGD(model_b.parameters(), lr=0.05, momentum=0.5)
    history = fit(model_a, loss_a, opt_a, DataLoader(X, y, batch_size=16, rng=7), epochs=3)

    loader = DataLoader(X, y, batch_size=16, rng=7)
    epoch_losses = []
    for _ in range(3):
        total, count = 0.0, 0
        for xb, yb in loader:
            value = loss_b(model_b(xb), yb)
            opt_b.zero_grad()
            model_b.backward(loss_b.backward())
            opt_b.step()
            total += value * len(xb)
            count += len(xb)
        epoch_losses.append(total / count)
    for (name, a), b in zip(
        model_a.state_dict().items(), model_b.state_dict().values(), strict=True
    ):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_allclose([h["train_loss"] for h in history], epoch_losses, rtol=1e-12)


def test_fit_with_sum_reduction_reports_per_sample_loss():
    X, y = blobs(40)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=0.0)  # lr 0: the model stays at its init
    history = fit(
        model, nn.CrossEntropyLoss(reduction="sum"), opt, DataLoader(X, y, 16, rng=0), epochs=1
    )
    expected = evaluate(model, nn.CrossEntropyLoss(), (X, y))["loss"]
    assert history[0]["train_loss"] == pytest.approx(expected, rel=1e-6)


def test_max_steps_ends_in_a_partial_epoch():
    X, y = blobs(64)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=0.1)
    history = fit(
        model, nn.CrossEntropyLoss(), opt, DataLoader(X, y, 16, rng=0), epochs=10, max_steps=6
    )
    assert [h["step"] for h in history] == [4, 6]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, r"fit: invalid epochs 0, must be an int >= 1"),
        ({"epochs": 2.5}, r"fit: invalid epochs 2.5"),
        ({"epochs": 1, "max_steps": 0}, r"fit: invalid max_steps 0"),
        ({"epochs": 1, "accuracy": "top5"}, r"fit: invalid accuracy 'top5'"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, match):
    X, y = blobs(8)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=match):
        fit(model, nn.CrossEntropyLoss(), opt, DataLoader(X, y, 4), **kwargs)


# -- evaluate and accuracy -----------------------------------------------------------------
def test_evaluate_matches_closed_form_in_any_batch_size():
    X, y = blobs(37)
    model = classifier()
    model.double()
    Xd = X.astype(np.float64)
    z = model(Xd)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    expected_loss = -logp[np.arange(len(y)), y].mean()
    expected_acc = np.mean(z.argmax(axis=1) == y)
    model.train()
    for bs in (1, 5, 37, 1000):
        scores = evaluate(model, nn.CrossEntropyLoss(), (Xd, y), batch_size=bs)
        assert scores["loss"] == pytest.approx(expected_loss, rel=1e-12)
        assert scores["accuracy"] == expected_acc
    assert model.training  # evaluate restores the mode it found


def test_evaluate_uses_eval_mode_and_has_no_accuracy_for_regression():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(3, 1, rng=rng), nn.Dropout(0.9, rng=rng))
    X = rng.standard_normal((20, 3)).astype(np.float32)
    target = rng.standard_normal((20, 1)).astype(np.float32)
    a = evaluate(model, nn.MSELoss(), (X, target))
    b = evaluate(model, nn.MSELoss(), (X, target))
    assert a == b  # dropout is off in eval mode, so the score is deterministic
    assert set(a) == {"loss"}
    expected = float(np.mean((model[0](X) - target) ** 2))
    assert a["loss"] == pytest.approx(expected, rel=1e-6)


def test_evaluate_rejects_mismatched_and_empty_data():
    model = classifier()
    with pytest.raises(ValueError, match=r"evaluate: X and y differ in length: 3 vs 2"):
        evaluate(model, nn.CrossEntropyLoss(), (np.zeros((3, 2)), np.zeros(2, int)))
    with pytest.raises(ValueError, match=r"evaluate: the data is empty"):
        evaluate(model, nn.CrossEntropyLoss(), (np.zeros((0, 2)), np.zeros(0, int)))


def test_accuracy_functions_on_worked_examples():
    logits = np.array([[2.0], [-1.0], [0.5], [-0.1]])
    assert binary_accuracy_logits(logits, np.array([1, 0, 0, 0])) == (3, 4)
    assert binary_accuracy_logits(logits, np.array([[1.0], [0.0], [1.0], [1.0]])) == (3, 4)
    probs = np.array([0.9, 0.2, 0.6, 0.4])
    assert binary_accuracy_probs(probs, np.array([1.0, 1.0, 1.0, 0.0])) == (3, 4)
    scores = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    assert multiclass_accuracy(scores, np.array([1, 2, 2])) == (2, 3)
    assert multiclass_accuracy(scores, np.eye(3)[[1, 0, 0]]) == (2, 3)  # probability targets


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        (nn.BCEWithLogitsLoss(), binary_accuracy_logits),
        (nn.BCELoss(), binary_accuracy_probs),
        (nn.CrossEntropyLoss(), multiclass_accuracy),
        (nn.NLLLoss(), multiclass_accuracy),
        (nn.MSELoss(), None),
    ],
)
def test_auto_accuracy_is_chosen_by_the_loss(loss, expected):
    assert accuracy_fn("auto", loss) is expected


# -- divergence ----------------------------------------------------------------------------
class NaNAt(Callback):
    """Makes the loss NaN from a given (epoch, batch) on, by poisoning a weight."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_step_end(self, state, batch, loss):
        # after the step of (epoch, batch - 1) the next forward sees a NaN weight
        if state.epoch + 1 == self.epoch and batch + 1 == self.batch:
            state.model[0].weight.data[0, 0] = np.nan


def test_divergence_names_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path):
    X, y = blobs(64)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "ckpt.npz"
    with pytest.raises(DivergenceError) as info:
        fit(
            model,
            nn.CrossEntropyLoss(),
            opt,
            DataLoader(X, y, 16, rng=0),
            epochs=5,
            callbacks=[NaNAt(epoch=3, batch=2), ModelCheckpoint(path)],
        )
    message = str(info.value)
    assert message.startswith(
        "training diverged: the loss is nan at epoch 3, step 3 of 4 (global step 11); "
        f"the last good checkpoint is kept at {path}"
    )
    assert "\n" not in message
    assert (info.value.epoch, info.value.step) == (3, 11)
    assert len(info.value.history) == 2
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 2
    assert all(np.isfinite(a).all() for a in ckpt["model"].values())


def test_divergence_in_the_last_step_is_caught_by_the_validation_loss(tmp_path):
    X, y = blobs(64)
    model = classifier()
    path = tmp_path / "ckpt.npz"
    with pytest.raises(DivergenceError) as info:
        fit(
            model,
            nn.CrossEntropyLoss(),
            optim.SGD(model.parameters(), lr=0.1),
            DataLoader(X, y, 16, rng=0),
            val=(X, y),
            epochs=5,
            callbacks=[NaNAt(epoch=2, batch=4), ModelCheckpoint(path)],
        )
    assert str(info.value).startswith(
        "training diverged: the validation loss is nan after epoch 2 (global step 8); "
        f"the last good checkpoint is kept at {path}"
    )
    assert load_checkpoint(path)["epoch"] == 1  # the poisoned epoch 2 was never saved


def test_real_divergence_is_caught_without_numpy_warnings(recwarn):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 2)).astype(np.float32)
    target = (X @ np.array([[1.0], [-2.0]], dtype=np.float32)) + 3
    model = nn.Linear(2, 1, rng=rng)
    opt = optim.SGD(model.parameters(), lr=100.0)  # far past 2 / (largest curvature)
    with pytest.raises(DivergenceError, match=r"the loss is (inf|nan) at epoch \d+, step \d+ of 4"):
        fit(model, nn.MSELoss(), opt, DataLoader(X, target, 16, rng=0), epochs=50)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


# -- callbacks -----------------------------------------------------------------------------
def test_early_stopping_stops_after_patience_epochs_without_improvement():
    scores = [1.0, 0.8, 0.85, 0.9, 0.7, 0.75, 0.76, 0.77, 0.5]

    def feed(state, logs):
        logs["score"] = scores[state.epoch - 1]

    X, y = blobs(16)
    model = classifier()
    stopper = EarlyStopping(monitor="score", patience=3, min_delta=0.0)
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        optim.SGD(model.parameters(), lr=0.01),
        DataLoader(X, y, 8, rng=0),
        epochs=len(scores),
        callbacks=[LambdaCallback(on_epoch_end=feed), stopper],
    )
    # best 0.7 at epoch 5, then 3 epochs without improvement: stop after epoch 8
    assert len(history) == 8
    assert stopper.best == 0.7 and stopper.best_epoch == 5
    assert history[-1]["stopped"] == (
        "early stopping: score has not improved on 0.7 (epoch 5) for 3 epochs"
    )


def test_early_stopping_mode_max_and_errors():
    stopper = EarlyStopping(monitor="acc", patience=1, mode="max", min_delta=0.05)

    class S:
        epoch, stop, stop_reason = 1, False, None

    state = S()
    stopper.on_epoch_end(state, {"acc": 0.5})
    state.epoch = 2
    stopper.on_epoch_end(state, {"acc": 0.54})  # +0.04 is not more than min_delta
    assert state.stop
    with pytest.raises(ValueError, match=r"EarlyStopping: monitor 'val_loss' is not in the "):
        EarlyStopping().on_epoch_end(state, {"train_loss": 1.0})
    with pytest.raises(ValueError, match=r"EarlyStopping: invalid mode 'up'"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match=r"EarlyStopping: invalid patience 0"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match=r"EarlyStopping: invalid min_delta -1"):
        EarlyStopping(min_delta=-1)


def test_lr_scheduler_callback_per_epoch_and_per_step():
    X, y = blobs(32)
    model = classifier()
    opt = optim.SGD(model.parameters(), lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        DataLoader(X, y, 16, rng=0),
        epochs=5,
        callbacks=[LRSchedulerCallback(sched)],
        accuracy=None,
    )
    assert [h["lr"] for h in history] == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert "train_accuracy" not in history[0]

    opt = optim.SGD(model.parameters(), lr=1.0)
    per_step = LRSchedulerCallback(optim.ExponentialLR(opt, gamma=0.5), interval="step")
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        DataLoader(X, y, 16, rng=0),
        epochs=2,
        callbacks=[per_step],
    )
    assert [h["lr"] for h in history] == [1.0, 0.25]  # two steps per epoch
    with pytest.raises(ValueError, match=r"LRSchedulerCallback: invalid interval 'batch'"):
        LRSchedulerCallback(sched, interval="batch")


def test_model_checkpoint_every_and_last_epoch(tmp_path):
    saved = []

    class Spy(ModelCheckpoint):
        def save(self, state):
            saved.append(state.epoch)
            super().save(state)

    X, y = blobs(16)
    model = classifier()
    fit(
        model,
        nn.CrossEntropyLoss(),
        optim.SGD(model.parameters(), lr=0.1),
        DataLoader(X, y, 8, rng=0),
        epochs=7,
        callbacks=[Spy(tmp_path / "c.npz", every=3)],
    )
    assert saved == [3, 6, 7]
    assert load_checkpoint(tmp_path / "c.npz")["epoch"] == 7
    with pytest.raises(ValueError, match=r"ModelCheckpoint: invalid every 0"):
        ModelCheckpoint(tmp_path / "c.npz", every=0)


def test_keyboard_interrupt_propagates_and_keeps_the_checkpoint(tmp_path):
    class Interrupt(Callback):
        def on_step_end(self, state, batch, loss):
            if state.epoch == 2 and batch == 1:
                raise KeyboardInterrupt

    X, y = blobs(64)
    model = classifier()
    path = tmp_path / "c.npz"
    with pytest.raises(KeyboardInterrupt):
        fit(
            model,
            nn.CrossEntropyLoss(),
            optim.SGD(model.parameters(), lr=0.1),
            DataLoader(X, y, 16, rng=0),
            epochs=5,
            callbacks=[Interrupt(), ModelCheckpoint(path)],
        )
    assert load_checkpoint(path)["epoch"] == 2


# -- progress ------------------------------------------------------------------------------
def _quick_fit(progress):
    X, y = blobs(64)
    model = classifier()
    return fit(
        model,
        nn.CrossEntropyLoss(),
        optim.SGD(model.parameters(), lr=0.1),
        DataLoader(X, y, 2, rng=0),
        epochs=2,
        progress=progress,
        desc="unit",
    )


def test_progress_bar_shows_live_numbers_when_asked(capsys):
    _quick_fit(progress=True)
    err = capsys.readouterr().err
    assert "unit" in err and "64/64" in err and "loss=" in err and "epoch=2" in err


@pytest.mark.parametrize("progress", [False, None])
def test_progress_bar_is_quiet_when_off_or_not_a_terminal(capsys, progress):
    _quick_fit(progress=progress)  # under pytest stderr is not a terminal
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_history_values_are_finite_numbers():
    history = _quick_fit(progress=False)
    for h in history:
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in h.values())
