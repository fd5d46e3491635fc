"""Training monitors: dead units, update ratios, histograms, the non-finite detector, the figure."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import handgrad.nn as nn
import handgrad.optim as optim
from handgrad.data import DataLoader
from handgrad.experiments import start
from handgrad.train import (
    Callback,
    DivergenceError,
    ModelCheckpoint,
    TrainingMonitor,
    fit,
    load_checkpoint,
    monitor_records,
    monitor_stats,
    monitors,
)
from handgrad.train.checkpoint import save_checkpoint
from handgrad.train.monitors import (
    Histogram,
    NonFiniteWatch,
    dead_fraction,
    first_nonfinite,
    saturated_fraction,
    update_ratio,
)


def data(n: int = 32, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, 2, n)


def one_batch(X: np.ndarray, y: np.ndarray, steps: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` copies of the full batch: a loader with ``len`` and a fixed order."""
    return [(X, y)] * steps


def net(seed: int = 0) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Linear(3, 5, rng=rng, dtype=np.float64),
        nn.ReLU(),
        nn.Linear(5, 2, rng=rng, dtype=np.float64),
    )


# -- dead units ----------------------------------------------------------------------------
def test_dead_fraction_of_a_layer_with_known_dead_units():
    X, y = data()
    model = net()
    # units 1 and 3: zero weights and bias -1, so their pre-activation is -1 for every sample;
    # the other three get bias +100, positive for every sample of standard normal inputs
    model[0].weight.data[[1, 3]] = 0.0
    model[0].bias.data[:] = 100.0
    model[0].bias.data[[1, 3]] = -1.0
    mon = TrainingMonitor(interval="step")
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1e-3), one_batch(X, y),
        epochs=1, callbacks=[mon])  # fmt: skip
    (rec,) = mon.records
    assert rec.dead == {"1": pytest.approx(2 / 5)}
    assert set(rec.saturated) == set()  # no Tanh or Sigmoid


def test_dead_fraction_counts_units_over_all_non_batch_axes():
    out = np.ones((4, 2, 3, 3))
    out[:, 1, 0, 2] = 0.0  # one of 18 positions is zero for every sample: dead
    out[1:, 0, 1, 1] = 0.0  # zero for 3 of 4 samples only: alive
    assert dead_fraction(out) == pytest.approx(1 / 18)
    assert dead_fraction(np.zeros((5, 7))) == 1.0


# -- update ratio --------------------------------------------------------------------------
def test_update_ratio_is_lr_times_grad_norm_over_weight_norm_for_sgd():
    X, y = data()
    model, twin = net(1), net(1)
    lr = 0.05
    mon = TrainingMonitor(interval="step")
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=lr), one_batch(X, y),
        epochs=1, callbacks=[mon])  # fmt: skip
    # the same step by hand on the twin: plain SGD moves w by -lr * g
    loss = nn.CrossEntropyLoss()
    loss(twin(X), y)
    twin.backward(loss.backward())
    expected = {
        name: np.linalg.norm(lr * p.grad) / np.linalg.norm(p.data)
        for name, p in twin.named_parameters()
    }
    (rec,) = mon.records
    assert rec.update_ratio.keys() == expected.keys()
    for name, ratio in expected.items():
        assert rec.update_ratio[name] == pytest.approx(ratio, rel=1e-10), name


# -- histograms ----------------------------------------------------------------------------
def test_histograms_count_every_element_of_outputs_and_gradients():
    X, y = data(n=24)
    model, twin = net(2), net(2)
    mon = TrainingMonitor(interval="step", bins=7)
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), one_batch(X, y),
        epochs=1, callbacks=[mon])  # fmt: skip
    (rec,) = mon.records
    assert list(rec.activations) == ["0", "1", "2"] == list(rec.gradients)
    outs = [X]
    for layer in twin:
        outs.append(layer(outs[-1]))
    # d loss / d logits of a mean cross-entropy: (softmax - onehot) / N
    z = outs[-1] - outs[-1].max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    g_logits = (p - np.eye(2)[y]) / len(y)
    for i, name in enumerate(["0", "1", "2"]):
        h = rec.activations[name]
        assert h.size == outs[i + 1].size == h.counts.sum()
        counts, edges = np.histogram(outs[i + 1], bins=7)
        np.testing.assert_array_equal(h.counts, counts)
        np.testing.assert_allclose(h.edges, edges)
        assert h.mean == pytest.approx(outs[i + 1].mean())
        assert h.std == pytest.approx(outs[i + 1].std())
    g = rec.gradients["2"]
    np.testing.assert_array_equal(g.counts, np.histogram(g_logits, bins=7)[0])
    assert g.size == g_logits.size


def test_histogram_counts_nonfinite_elements_apart():
    x = np.array([[1.0, np.inf, 2.0], [np.nan, 3.0, 3.0]])
    h = Histogram.of(x, bins=2)
    assert (h.counts.tolist(), h.nonfinite, h.size) == ([1, 3], 2, 6)
    assert h.mean == pytest.approx(9 / 4)
    assert Histogram.of(np.array([np.nan]), bins=3).size == 1
    const = Histogram.of(np.zeros((3, 4)), bins=4)  # a dead ReLU layer: all zeros
    assert const.counts.sum() == 12 and const.edges[0] < 0 < const.edges[-1]
    # values on the way to overflow (a learning rate of 1e30)
    big = Histogram.of(np.full(5, 1e30, dtype=np.float32), bins=4)
    assert big.counts.sum() == 5 and big.edges[0] < 1e30 < big.edges[-1]
    with np.errstate(over="ignore", invalid="ignore"):  # the std of +-1e308 overflows
        wide = Histogram.of(np.array([-1e308, 0.0, 1e308]), bins=2)
    assert (wide.counts.tolist(), wide.edges.tolist()) == ([1, 2], [-1e308, 0.0, 1e308])


def test_histogram_tails_are_counted_apart():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(1001)
    x[[5, 77]] = [1e6, -1e6]  # outliers would squeeze everything else into one bin
    h = Histogram.of(x, bins=10, tail=0.004)  # k = int(0.004 * 1000) = 4 values each side
    s = np.sort(x)
    assert (h.edges[0], h.edges[-1]) == (s[4], s[-5])
    assert (h.under, h.over, h.size) == (4, 4, 1001)
    np.testing.assert_array_equal(h.counts, np.histogram(s[4:-4], bins=10)[0])
    assert h.mean == pytest.approx(x.mean()) and h.std == pytest.approx(x.std())  # every value


def test_first_layer_without_input_gradient_gets_its_gradient_histogram():
    # fit skips a Sequential's first input gradient (Linear.backward_params): still recorded
    X, _ = data()
    models = [
        nn.Sequential(nn.Linear(3, 4, rng=np.random.default_rng(5), dtype=np.float64), nn.Tanh())
        for _ in range(2)
    ]
    model, twin = models
    mon = TrainingMonitor(interval="step")
    fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), one_batch(X, np.zeros((32, 4))),
        epochs=1, callbacks=[mon])  # fmt: skip
    out = twin(X)
    # d MSE(out, 0) / d out = 2 out / size; back through tanh: times 1 - out^2
    g0 = 2 * out / out.size * (1 - out**2)
    (rec,) = mon.records
    np.testing.assert_array_equal(rec.gradients["0"].counts, np.histogram(g0, bins=40)[0])
    assert rec.gradients["0"].std == pytest.approx(g0.std())
    assert rec.saturated["1"] == np.mean(np.abs(out) > 0.97)


# -- which steps are monitored -------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "epochs", "expected"),
    [
        # step 1 (always); epochs 1, 2, 4 (every 2) and 5 (the last), at the last of 4 steps
        ({"every": 2}, 5, [(1, 1), (1, 4), (2, 8), (4, 16), (5, 20)]),
        # steps 1 (always), 3, 6 and 9 of 10, and the last
        ({"every": 3, "interval": "step"}, 3, [(1, 1), (1, 3), (2, 6), (3, 9), (3, 10)]),
    ],
)
def test_monitored_steps(kwargs, epochs, expected):
    X, y = data()
    steps = 4 if epochs == 5 else None
    loader = DataLoader(X, y, batch_size=8, rng=0) if steps else DataLoader(X[:30], y[:30], 9)
    model = net()
    mon = TrainingMonitor(**kwargs)
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), loader,
        epochs=epochs, max_steps=None if steps else 10, callbacks=[mon])  # fmt: skip
    assert [(r.epoch, r.step) for r in mon.records] == expected


def test_monitor_changes_no_number_and_detaches():
    X, y = data(64)
    results = []
    for mon in (None, TrainingMonitor(interval="step")):
        model = net(3)
        own = model[1].forward  # an instance attribute set before the monitor must come back
        model[1].__dict__["forward"] = own
        history = fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.3),
                      DataLoader(X, y, 16, rng=1), val=(X, y), epochs=3,
                      callbacks=[mon] if mon else [])  # fmt: skip
        results.append((history, model.state_dict()))
        assert vars(model[1])["forward"] is own
        assert all("backward" not in vars(m) for m in model.modules())
    (h0, s0), (h1, s1) = results
    assert [{k: v for k, v in h.items() if k != "time"} for h in h0] == [
        {k: v for k, v in h.items() if k != "time"} for h in h1
    ]
    assert all(np.array_equal(s0[k], s1[k]) for k in s0)


def test_state_dict_round_trips_through_a_checkpoint(tmp_path):
    X, y = data()
    model = net()
    mon = TrainingMonitor(interval="step", bins=5)
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), one_batch(X, y, 3),
        epochs=1, callbacks=[mon])  # fmt: skip
    save_checkpoint(tmp_path / "m.npz", {"monitor": mon.state_dict()})
    back = TrainingMonitor()
    back.load_state_dict(load_checkpoint(tmp_path / "m.npz")["monitor"])
    assert back.kinds == {"0": "Linear", "1": "ReLU", "2": "Linear"}
    assert len(back.records) == len(mon.records) == 3
    for a, b in zip(mon.records, back.records, strict=True):
        assert (a.step, a.epoch, a.dead, a.update_ratio) == (
            b.step,
            b.epoch,
            b.dead,
            b.update_ratio,
        )
        for name, h in a.gradients.items():
            np.testing.assert_array_equal(h.counts, b.gradients[name].counts)
            np.testing.assert_array_equal(h.edges, b.gradients[name].edges)


# -- the non-finite detector ---------------------------------------------------------------
class InfOut(nn.Module):
    """Identity, but from global step ``at`` on its output has +inf at ``index``."""

    def __init__(self, at: int, index: tuple[int, int]) -> None:
        super().__init__()
        self.at, self.index, self.calls = at, index, 0

    def forward(self, x):
        self.calls += self.training
        out = x.copy()
        if self.calls >= self.at:
            out[self.index] = np.inf
        return out

    def backward(self, grad_out):
        return grad_out


class NaNGrad(InfOut):
    """Identity, but in the backward of step ``at`` its input gradient has NaN at ``index``."""

    def forward(self, x):
        self.calls += self.training
        return x

    def backward(self, grad_out):
        g = grad_out.copy()
        if self.calls == self.at:
            g[self.index] = np.nan
        return g


def nested(middle: nn.Module, seed: int = 0) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Linear(3, 4, rng=rng, dtype=np.float64),
        nn.Sequential(nn.Linear(4, 6, rng=rng, dtype=np.float64), nn.Tanh(), middle),
        nn.Linear(6, 2, rng=rng, dtype=np.float64),
    )


def diverge(model: nn.Module, loss_fn=None, y=None, callbacks=()) -> str:
    X, labels = data(8)
    with pytest.raises(DivergenceError) as info:
        fit(model, loss_fn or nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
            one_batch(X, labels if y is None else y, 4), epochs=5,
            callbacks=[*callbacks, TrainingMonitor(every=1000, interval="step")])  # fmt: skip
    message = str(info.value)
    assert "\n" not in message
    assert all("forward" not in vars(m) for m in model.modules())  # detached
    return message


def test_nonfinite_output_names_the_layer_and_position():
    message = diverge(nested(InfOut(at=3, index=(2, 5))))
    assert message.startswith("training diverged: the loss is nan at epoch 1, step 3 of 4")
    assert message.endswith(
        "Try a smaller learning rate. First non-finite value: the output of layer '1.2' "
        "(InfOut) in the forward pass (1 of 48 values, first at index (2, 5): inf)."
    )


def test_nonfinite_gradient_names_the_layer_of_the_step_before():
    # step 2's backward poisons the first layers' gradients; the update makes their weights
    # NaN and step 3's loss is NaN: the report goes back to the gradient
    message = diverge(nested(NaNGrad(at=2, index=(7, 1))))
    assert "the loss is nan at epoch 1, step 3 of 4 (global step 3)" in message
    assert message.endswith(
        "First non-finite value: the input gradient computed by layer '1.2' (NaNGrad) in the "
        "backward pass of global step 2 (1 of 48 values, first at index (7, 1): nan)."
    )


def test_parameter_poisoned_outside_the_optimizer_is_named():
    class Poison(Callback):
        def on_step_end(self, state, batch, loss):
            if state.step == 2:
                state.model[2].weight.data[1, 4] = -np.inf

    message = diverge(nested(nn.Identity()), callbacks=[Poison()])
    assert message.endswith(
        "First non-finite value: parameter '2.weight' after the update of global step 2, "
        "though every gradient was finite (1 of 12 values, first at index (1, 4): -inf); the "
        "update overflowed or the parameter was changed outside the optimizer."
    )


def test_nonfinite_loss_with_finite_layers_blames_the_loss():
    y = np.zeros((8, 2))
    y[3, 1] = np.nan
    message = diverge(nested(nn.Identity()), loss_fn=nn.MSELoss(), y=y)
    assert "at epoch 1, step 1 of 4" in message
    assert message.endswith(
        "Every layer's output and gradient was finite: the loss function itself produced "
        "the non-finite value."
    )


def test_nonfinite_watch_works_without_a_monitor():
    model = nested(InfOut(at=1, index=(0, 3)))
    watch = NonFiniteWatch(model)
    model(data(8)[0])
    assert watch.diagnose() == (
        "First non-finite value: the output of layer '1.2' (InfOut) in the forward pass "
        "(1 of 48 values, first at index (0, 3): inf)."
    )
    watch.detach()
    assert all(m._backward_hooks is None and not m._forward_hooks for m in model.modules())


def test_statistics_on_their_own():
    assert saturated_fraction(np.array([0.5, 0.99, 0.01, 0.9]), "Sigmoid") == 0.5
    assert update_ratio(np.array([3.0, 4.0]), np.array([3.0, 4.5])) == pytest.approx(0.1)
    assert np.isnan(update_ratio(np.zeros(2), np.ones(2)))
    with pytest.raises(ValueError, match=r"kind must be 'Tanh' or 'Sigmoid', got 'ReLU'"):
        saturated_fraction(np.zeros(2), "ReLU")


@pytest.mark.parametrize("module", [monitors, monitor_stats, monitor_records])
def test_examples_run(module):
    finder, runner = doctest.DocTestFinder(exclude_empty=True), doctest.DocTestRunner()
    report: list[str] = []
    # as doctest.testmod: the module's own names, and np and nn as in handgrad.nn's examples
    for test in finder.find(module, globs={**vars(module), "np": np, "nn": nn}):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_first_nonfinite_text():
    assert first_nonfinite(np.ones(3)) is None
    assert first_nonfinite(np.arange(3)) is None  # integers are always finite
    assert first_nonfinite(np.array([[0, 1], [np.nan, np.inf]])) == (
        "2 of 4 values, first at index (1, 0): nan"
    )


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"every": 0}, ValueError, r"TrainingMonitor: invalid every 0, must be an int >= 1"),
        ({"every": 1.5}, ValueError, r"TrainingMonitor: invalid every 1\.5, must be an int"),
        ({"interval": "day"}, ValueError, r"invalid interval 'day', must be 'epoch' or 'step'"),
        ({"bins": 0}, ValueError, r"TrainingMonitor: invalid bins 0, must be an int >= 1"),
        ({"tail": 0.5}, ValueError, r"TrainingMonitor: invalid tail 0\.5, must be in \[0, 0\.5\)"),
        ({"layers": "0"}, TypeError, r"layers must be a list of names, got the string '0'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainingMonitor(**kwargs)


def test_bad_layers_model_metric_and_empty_plot():
    with pytest.raises(ValueError, match=r"unknown layer '7'; the model's modules are '0', '1'"):
        TrainingMonitor(layers=["0", "7"]).attach(net())
    with pytest.raises(TypeError, match=r"must be a handgrad Module .*got int"):
        TrainingMonitor().attach(3)
    with pytest.raises(ValueError, match=r"unknown metric 'deadness'; valid: dead, saturated"):
        TrainingMonitor().series("deadness", "1")
    with pytest.raises(ValueError, match=r"plot_monitors: the monitor has no records"):
        TrainingMonitor().plot()


def test_layers_selects_what_is_recorded():
    X, y = data()
    model = net()
    mon = TrainingMonitor(interval="step", layers=["1"])
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), one_batch(X, y),
        epochs=1, callbacks=[mon])  # fmt: skip
    assert list(mon.records[0].activations) == ["1"] == list(mon.records[0].gradients)
    assert len(mon.records[0].update_ratio) == 4  # every parameter


# -- end to end ----------------------------------------------------------------------------
TINY = {"n_train": 64, "n_test": 32, "batch_size": 16, "snapshots": (1,), "resolution": 8,
        "quiet": True}  # fmt: skip


def test_toy_run_with_monitors_writes_monitors_png(tmp_path):
    run, _ = start("toy", {**TINY, "epochs": 4, "monitors": True}, out=tmp_path)
    png = run.dir / "monitors.png"
    assert png.exists() and 10_000 < png.stat().st_size < 400_000
    report = run.report_path.read_text()
    assert "![training monitors" in report and "(monitors.png)" in report
    assert "Monitors at global step 16 (epoch 4): saturated outputs '1'" in report
    state = load_checkpoint(run.checkpoint_path)["callbacks"]["TrainingMonitor[0]"]
    assert state["step"].tolist() == [1, 4, 8, 12, 16]  # the first, and the last of each epoch
    assert state["kinds"] == {"0": "Linear", "1": "Tanh", "2": "Linear", "3": "Sigmoid",
                              "4": "Linear"}  # fmt: skip
    assert json.loads((run.dir / "config.json").read_text())["config"]["monitors"] is True


def test_resumed_run_has_the_same_records(tmp_path):
    X, y = data(48)

    def train(epochs, resume_from=None, path=tmp_path / "full.npz"):
        model = net(4)
        opt = optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        mon = TrainingMonitor(interval="step", every=2)
        fit(model, nn.CrossEntropyLoss(), opt, DataLoader(X, y, 16, rng=2), epochs=epochs,
            callbacks=[mon, ModelCheckpoint(path)], resume_from=resume_from)  # fmt: skip
        return mon

    full = train(4)
    train(2, path=tmp_path / "half.npz")
    resumed = train(4, resume_from=tmp_path / "half.npz", path=tmp_path / "half.npz")
    assert (
        [r.step for r in resumed.records]
        == [1, 2, 4, 6, 8, 10, 12]
        == [r.step for r in full.records]
    )
    for a, b in zip(full.records, resumed.records, strict=True):
        assert a.update_ratio == b.update_ratio and a.dead == b.dead
        for name, h in a.activations.items():
            np.testing.assert_array_equal(h.counts, b.activations[name].counts)


def test_toy_run_that_diverges_names_the_layer_and_keeps_the_figure(tmp_path):
    with pytest.raises(DivergenceError, match=r"First non-finite value: ") as info:
        start("toy", {**TINY, "epochs": 3, "lr": 1e30, "monitors": True}, out=tmp_path)
    assert "the input gradient computed by layer" in str(info.value) or "parameter '" in str(
        info.value
    )
    assert len(list(tmp_path.glob("toy-*/monitors.png"))) == 1
