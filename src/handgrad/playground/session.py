"""One playground tab's state: its data, network, optimizer and what to draw of them.

A :class:`Session` holds the whole state of the page (the page is a view of it): the settings,
the 2-D data set split into train and test points, a :class:`handgrad.nn.Sequential` built from
the settings, its loss and a :mod:`handgrad.optim` optimizer. :meth:`Session.step` trains it
with handgrad's own forward and hand-written ``backward``; :meth:`Session.snapshot` returns a
JSON-able frame of everything the page draws; :meth:`Session.handle` answers one socket
message. Nothing here imports a web library (``server.py`` does that).

How the settings become a run (so that a run can be redone by hand, as the tests do):

- Data: ONE draw, ``handgrad.data.load(dataset, 'train', seed=seed, n=n_points,
  noise=base + scale * noise[, k=classes])`` (base and scale per data set in :data:`NOISE`),
  split in order: the first ``round(n_points * train_ratio)`` points (at least 1, at most
  ``n_points - 1``) train, the rest test. Changing the ratio moves the split, not the points.
- Features: :data:`FEATURES` applied to (x1, x2), in that table's order, float32.
- Network: ``Linear -> activation`` per hidden width, then ``Linear(last, n_out)``; every
  Linear draws its weight then its bias from ONE ``np.random.default_rng(seed)``, in order.
  Two classes: ``n_out = 1`` and ``BCEWithLogitsLoss`` on 0/1 float32 targets of shape (N, 1);
  k classes: ``n_out = k`` and ``CrossEntropyLoss`` on int64 labels.
- Epoch: ``np.random.default_rng([seed, 1])`` (made at reset) gives one ``permutation`` of the
  training points per epoch; batches are consecutive slices of ``batch_size`` points of it
  (the last one may be smaller). Per batch: ``loss_fn(model(x), t)``, ``optimizer.zero_grad()``,
  ``model.backward(loss_fn.backward(), input_grad=False)``, then L1 adds
  ``reg_rate * sign(w)`` and L2 adds ``reg_rate * w`` to the grad of each Linear weight (not
  the biases), then ``optimizer.step()``.
- After each epoch one forward over the train and one over the test points gives the data
  losses (without the penalty, as TF Playground shows) and accuracies; a history point
  ``[epoch, train_loss, test_loss]`` is added.
"""

from __future__ import annotations

import base64
import copy
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

import handgrad.nn as nn
from handgrad.data import load
from handgrad.optim import SGD, Adam, Optimizer
from handgrad.train.monitors import first_nonfinite

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "DEFAULTS",
    "FEATURES",
    "NOISE",
    "Session",
    "SettingsError",
]


class SettingsError(ValueError):
    """A refused setting or message; the one-line message names the key and quotes the value."""


# -- the tables the settings draw from -------------------------------------------------------
# data set -> (min classes, max classes)
DATASETS: dict[str, tuple[int, int]] = {
    "circle": (2, 2),
    "xor": (2, 2),
    "gaussians": (2, 6),
    "spiral": (2, 6),
    "moons": (2, 2),
    "rings": (2, 6),
}

# The ``noise`` setting (0 .. 0.5) -> the data set's own noise option: base + scale * noise.
# Jitter is the std of Gaussian noise on the coordinates (the plane is about [-1, 1]^2), so
# 0.5 smears a set to about the edge of what a small network can separate; for gaussians the
# option is each blob's spread, which starts at 0.1 so that noise 0 still gives blobs.
NOISE: dict[str, tuple[float, float]] = {
    "circle": (0.0, 0.5),
    "xor": (0.0, 0.5),
    "gaussians": (0.1, 0.8),
    "spiral": (0.0, 0.25),
    "moons": (0.0, 0.5),
    "rings": (0.0, 0.25),
}

# feature name -> its value from the raw (x1, x2) columns (float32 arrays of shape (N,)).
# The plane is about [-1, 1]^2, where sin(x) is nearly x; sin(pi x) makes one full wave across
# it, so the sine features add something the linear ones cannot (as TF Playground's on -6..6).
FEATURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1^2": lambda x1, x2: x1 * x1,
    "x2^2": lambda x1, x2: x2 * x2,
    "x1x2": lambda x1, x2: x1 * x2,
    "sin_x1": lambda x1, x2: np.sin(np.pi * x1),
    "sin_x2": lambda x1, x2: np.sin(np.pi * x2),
}

# the playground's own table (it does not import handgrad.experiments); "linear" = Identity
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "linear": nn.Identity,
}

OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], float], Optimizer]] = {
    "sgd": lambda params, lr: SGD(params, lr=lr),
    "momentum": lambda params, lr: SGD(params, lr=lr, momentum=0.9),
    "adam": lambda params, lr: Adam(params, lr=lr),
}

REGULARIZATIONS = ("none", "l1", "l2")

DEFAULTS: dict[str, Any] = {
    "dataset": "circle",
    "classes": 2,
    "noise": 0.0,
    "n_points": 500,
    "train_ratio": 0.5,
    "seed": 0,
    "features": ["x1", "x2"],
    "hidden": [4, 2],
    "activation": "tanh",
    "optimizer": "sgd",
    "lr": 0.03,
    "batch_size": 10,
    "regularization": "none",
    "reg_rate": 0.0,
    "speed": 1,
}

# what a change of each key rebuilds: new data (and a reset), a reset, or nothing
DATA_KEYS = frozenset({"dataset", "classes", "noise", "n_points", "train_ratio", "seed"})
NETWORK_KEYS = frozenset({"features", "hidden", "activation", "optimizer"})
MAX_LAYERS, MAX_NEURONS = 6, 8

# message type -> the fields it may have
MESSAGES: dict[str, frozenset[str]] = {
    "set": frozenset({"type", "settings"}),
    **{kind: frozenset({"type"}) for kind in ("play", "pause", "step", "reset", "hello")},
}

GRID = 50  # cells per side of the decision map
NEURON_GRID = 20  # cells per side of each neuron's map
HISTORY_MAX = 2000  # history points kept; beyond, every other one is dropped
DIGITS = 4  # decimals of the weights in a frame
SHUFFLE_STREAM = 1  # the shuffle generator is default_rng([seed, SHUFFLE_STREAM])


# -- validation ------------------------------------------------------------------------------
def _quote(value: Any) -> str:
    """The value as the message shows it: repr, on one line, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(key: str, value: Any, low: int, high: int) -> int:
    """An int in [low, high]; an integral float (10.0, as JSON may send) counts."""
    ok = not isinstance(value, bool) and (
        isinstance(value, numbers.Integral)
        or (isinstance(value, numbers.Real) and math.isfinite(value) and value == int(value))
    )
    if not ok or not low <= int(value) <= high:
        raise SettingsError(f"{key}: expected an integer in {low}..{high}, got {_quote(value)}")
    return int(value)


def _float(key: str, value: Any, low: float, high: float, *, open_low: bool = False) -> float:
    """A finite number in [low, high] (or (low, high] with open_low)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (low < v if open_low else low <= v) and v <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise SettingsError(
            f"{key}: expected a finite number in {bracket}{low:g}, {high:g}], got {_quote(value)}"
        )
    return float(value)


def _choice(key: str, value: Any, valid: Any) -> str:
    if not isinstance(value, str) or value not in valid:
        raise SettingsError(f"{key}: unknown {_quote(value)}; valid: {', '.join(valid)}")
    return value


def _features(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise SettingsError(f"features: expected a list of names, got {_quote(value)}")
    for name in value:
        _choice("features", name, FEATURES)
    if not value:
        raise SettingsError(f"features: choose at least one of {', '.join(FEATURES)}, got []")
    return [name for name in FEATURES if name in value]  # the table's order, no repeats


def _hidden(value: Any) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise SettingsError(f"hidden: expected a list of layer widths, got {_quote(value)}")
    if len(value) > MAX_LAYERS:
        raise SettingsError(f"hidden: at most {MAX_LAYERS} layers, got {len(value)}")
    widths = []
    for i, width in enumerate(value):
        try:
            widths.append(_int("hidden", width, 1, MAX_NEURONS))
        except SettingsError:
            raise SettingsError(
                f"hidden: layer {i + 1} must have 1..{MAX_NEURONS} neurons, got {_quote(width)}"
            ) from None
    return widths


def validate(settings: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` updated by ``changes``, every value checked; raises SettingsError.

    When ``changes`` picks a data set and no ``classes``, the class count is clipped to what
    the new set allows (circle after a 4-class spiral gets 2), as the page expects.
    """
    if not isinstance(changes, Mapping):
        raise SettingsError(f"settings: expected an object, got {_quote(changes)}")
    for key, value in changes.items():
        if key not in DEFAULTS:
            raise SettingsError(
                f"{key}: unknown setting (got {_quote(value)}); valid: {', '.join(DEFAULTS)}"
            )
    new = {**settings, **changes}
    out: dict[str, Any] = {}
    out["dataset"] = dataset = _choice("dataset", new["dataset"], DATASETS)
    low, high = DATASETS[dataset]
    classes = new["classes"]
    if "classes" not in changes and "dataset" in changes and isinstance(classes, int):
        classes = min(max(classes, low), high)
    if low == high and classes != low and isinstance(classes, numbers.Real):
        raise SettingsError(f"classes: {dataset} has {low} classes, got {_quote(classes)}")
    try:
        out["classes"] = _int("classes", classes, low, high)
    except SettingsError:
        raise SettingsError(
            f"classes: {dataset} takes {low}..{high} classes, got {_quote(classes)}"
        ) from None
    out["noise"] = _float("noise", new["noise"], 0.0, 0.5)
    out["n_points"] = _int("n_points", new["n_points"], 10, 2000)
    out["train_ratio"] = _float("train_ratio", new["train_ratio"], 0.1, 0.9)
    out["seed"] = _int("seed", new["seed"], 0, 2**31 - 1)
    out["features"] = _features(new["features"])
    out["hidden"] = _hidden(new["hidden"])
    out["activation"] = _choice("activation", new["activation"], ACTIVATIONS)
    out["optimizer"] = _choice("optimizer", new["optimizer"], OPTIMIZERS)
    out["lr"] = _float("lr", new["lr"], 0.0, 10.0, open_low=True)
    out["batch_size"] = _int("batch_size", new["batch_size"], 1, 1000)
    out["regularization"] = _choice("regularization", new["regularization"], REGULARIZATIONS)
    out["reg_rate"] = _float("reg_rate", new["reg_rate"], 0.0, 1.0)
    out["speed"] = _int("speed", new["speed"], 1, 100)
    return out


# -- small helpers ---------------------------------------------------------------------------
def make_features(points: np.ndarray, names: list[str]) -> np.ndarray:
    """The network's input: (N, 2) raw points -> (N, len(names)) float32 features."""
    x1 = points[:, 0].astype(np.float32, copy=False)
    x2 = points[:, 1].astype(np.float32, copy=False)
    return np.stack([FEATURES[name](x1, x2) for name in names], axis=1).astype(np.float32)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode("ascii")


def _to_uint8(v: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly to 0..255, clipped; NaN -> the middle."""
    scaled = (np.nan_to_num(v, nan=(low + high) / 2) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _number(x: float) -> float | None:
    """A float for JSON: non-finite values become None (JSON has no NaN)."""
    return float(x) if math.isfinite(x) else None


def _nested(a: np.ndarray) -> list[Any]:
    """Rounded nested lists with None where a value is not finite."""
    rounded = np.round(a.astype(np.float64), DIGITS)
    if np.isfinite(rounded).all():
        return rounded.tolist()
    return np.where(np.isfinite(rounded), rounded, None).tolist()


# -- the session -----------------------------------------------------------------------------
class Session:
    """One tab's playground: settings, data, network, optimizer, and the frames to draw.

    Args:
        settings: changes to :data:`DEFAULTS` (validated as :meth:`update` does).

    Attributes:
        settings: the validated settings (a JSON-able copy; change it with :meth:`update`).
        epoch: epochs trained since the last reset.
        playing: whether the server should keep training (set by the play/pause messages;
            cleared by a reset, a step message and a divergence).
        error: None, or the divergence message (training stops until a reset).
        model, loss_fn, optimizer: the handgrad network, its loss and optimizer.
        train_points, test_points: raw (N, 2) float32 coordinates.
        train_X, test_X: the features of those points (N, n_features) float32.
        train_y, test_y: int64 class labels (N,).
        train_loss, test_loss, train_accuracy, test_accuracy: after the last epoch.
        history: ``[epoch, train_loss, test_loss]`` per epoch since the reset (thinned to at
            most :data:`HISTORY_MAX` points on long runs).

    A session is not thread-safe: one caller at a time (the server awaits each call).

    Examples:
        >>> s = Session({"hidden": [3]})
        >>> s.step(2); s.epoch
        2
        >>> s.snapshot()["layers"]
        [2, 3, 1]
    """

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings: dict[str, Any] = validate(copy.deepcopy(DEFAULTS), settings or {})
        self.playing = False
        self._make_data()
        self.reset()

    # -- building ----------------------------------------------------------------------------
    def _make_data(self) -> None:
        s = self.settings
        name, n = s["dataset"], s["n_points"]
        base, scale = NOISE[name]
        options: dict[str, Any] = {"n": n, "noise": base + scale * s["noise"]}
        if DATASETS[name][1] > 2:
            options["k"] = s["classes"]
        data = load(name, "train", seed=s["seed"], **options)
        n_train = min(max(round(n * s["train_ratio"]), 1), n - 1)
        self.train_points, self.test_points = data.X[:n_train], data.X[n_train:]
        self.train_y, self.test_y = data.y[:n_train], data.y[n_train:]
        # a square view that holds every point, with a margin, rounded up to 0.1
        half = float(np.abs(data.X).max()) * 1.1 if n else 1.0
        half = max(1.0, math.ceil(half * 10.0) / 10.0)
        self.extent = [-half, half, -half, half]
        self._points_changed = True

    def _apply_features(self) -> None:
        names = self.settings["features"]
        self.train_X = make_features(self.train_points, names)
        self.test_X = make_features(self.test_points, names)
        self._all_X = np.concatenate([self.train_X, self.test_X])
        self._all_y = np.concatenate([self.train_y, self.test_y])
        if self.settings["classes"] == 2:  # BCEWithLogits targets: (N, 1) floats
            self._train_t = self.train_y.astype(np.float32).reshape(-1, 1)
            self._test_t = self.test_y.astype(np.float32).reshape(-1, 1)
        else:
            self._train_t, self._test_t = self.train_y, self.test_y

    def reset(self) -> None:
        """Rebuild the network and optimizer from the seed (the same weights, bit for bit),
        epoch 0, empty history, no error, paused; the losses are those of the new weights."""
        s = self.settings
        self._apply_features()
        rng = np.random.default_rng(s["seed"])
        k = s["classes"]
        n_out = 1 if k == 2 else k
        widths = [len(s["features"]), *s["hidden"], n_out]
        layers: list[nn.Module] = []
        for i in range(len(widths) - 1):
            layers.append(nn.Linear(widths[i], widths[i + 1], rng=rng))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[s["activation"]]())
        self.model = nn.Sequential(*layers)
        self.linears: list[nn.Linear] = [m for m in layers if isinstance(m, nn.Linear)]
        self.loss_fn: nn.Loss = nn.BCEWithLogitsLoss() if k == 2 else nn.CrossEntropyLoss()
        self._eval_loss: nn.Loss = type(self.loss_fn)()
        self.optimizer = OPTIMIZERS[s["optimizer"]](list(self.model.parameters()), s["lr"])
        self._shuffle = np.random.default_rng([s["seed"], SHUFFLE_STREAM])
        self.epoch = 0
        self.playing = False
        self.error: str | None = None
        self.history: list[list[float]] = []
        self._history_sent = 0
        self._history_reset = True
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._evaluate()

    def update(self, changes: Mapping[str, Any]) -> None:
        """Validate ``changes`` (a partial settings dict) and apply them; on SettingsError
        nothing changes. Data keys (dataset, classes, noise, n_points, train_ratio, seed) draw
        new data and reset; network keys (features, hidden, activation, optimizer) reset; lr,
        batch_size, regularization, reg_rate and speed take effect at the next batch."""
        new = validate(self.settings, changes)
        changed = {key for key in new if new[key] != self.settings[key]}
        self.settings = new
        if changed & DATA_KEYS:
            self._make_data()
        if changed & (DATA_KEYS | NETWORK_KEYS):
            self.reset()
        elif "lr" in changed:
            for group in self.optimizer.param_groups:
                group["lr"] = new["lr"]

    # -- training ----------------------------------------------------------------------------
    def step(self, epochs: int = 1) -> None:
        """Train ``epochs`` epochs (each one pass over the shuffled training points in
        mini-batches), then recompute the losses and accuracies. Does nothing while
        :attr:`error` is set; a divergence sets it, pauses and stops within the epoch."""
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
            raise ValueError(f"Session.step: epochs must be an integer >= 0, got {epochs!r}")
        # overflow is expected on the way to a divergence, which is reported in `error`
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._train(epochs)

    def _train(self, epochs: int) -> None:
        s = self.settings
        model, loss_fn, opt = self.model, self.loss_fn, self.optimizer
        X, t = self.train_X, self._train_t
        n = len(X)
        bs = min(s["batch_size"], n)
        rate = s["reg_rate"] if s["regularization"] != "none" else 0.0
        l1 = s["regularization"] == "l1"
        params = list(model.parameters())
        for _ in range(epochs):
            if self.error is not None:
                return
            # the state the epoch starts from, to replay it if it diverges (a few small copies)
            start = ([p.data.copy() for p in params], opt.state_dict())
            order = self._shuffle.permutation(n)
            Xs, ts = X[order], t[order]
            for i in range(0, n, bs):
                loss = loss_fn(model(Xs[i : i + bs]), ts[i : i + bs])
                if not math.isfinite(loss):
                    self._diverged(self.epoch + 1, start, Xs, ts, bs, rate, l1)
                    return
                opt.zero_grad()
                model.backward(loss_fn.backward(), input_grad=False)
                if rate:
                    self._penalize(rate, l1)
                opt.step()
            self.epoch += 1
            self._evaluate()
            if not (math.isfinite(self.train_loss) and math.isfinite(self.test_loss)):
                self._diverged(self.epoch, start, Xs, ts, bs, rate, l1)
                return
            self._record()

    def _penalize(self, rate: float, l1: bool) -> None:
        """Add the L1 (rate * sign(w)) or L2 (rate * w) penalty's gradient to each weight's."""
        for lin in self.linears:
            w = lin.weight
            w.grad += (np.sign(w.data) if l1 else w.data) * w.grad.dtype.type(rate)

    def _evaluate(self) -> None:
        """Data losses and accuracies of the current weights: one forward over all points."""
        n = len(self.train_X)
        logits = self.model(self._all_X)  # (N_train + N_test, n_out)
        if logits.shape[1] == 1:
            hits = (logits[:, 0] > 0) == self._all_y
        else:
            hits = logits.argmax(axis=1) == self._all_y
        self.train_loss = self._eval_loss(logits[:n], self._train_t)
        self.test_loss = self._eval_loss(logits[n:], self._test_t)
        self.train_accuracy = int(np.count_nonzero(hits[:n])) / n
        self.test_accuracy = int(np.count_nonzero(hits[n:])) / (len(hits) - n)

    def _record(self) -> None:
        self.history.append([self.epoch, self.train_loss, self.test_loss])
        if len(self.history) > HISTORY_MAX:  # keep every other point, the first and the last
            last = self.history[-1]
            self.history = self.history[::2]
            if self.history[-1] is not last:
                self.history.append(last)
            self._history_reset = True

    def _diverged(
        self,
        epoch: int,
        start: tuple[list[np.ndarray], dict[str, Any]],
        Xs: np.ndarray,
        ts: np.ndarray,
        bs: int,
        rate: float,
        l1: bool,
    ) -> None:
        """Stop, and name the first tensor that went non-finite.

        The epoch is replayed from ``start`` (the model and optimizer state it began with),
        the same batches in the same order, checking every layer's output, the loss, every
        gradient (in backward order) and every parameter after each step; then the state
        reached when the divergence was seen is put back ("keeps the state").
        """
        self.playing = False
        model, loss_fn, opt = self.model, self.loss_fn, self.optimizer
        params = list(model.named_parameters())
        end = ([p.data.copy() for _, p in params], opt.state_dict())
        _restore(params, opt, start)
        layers = [(name, m) for name, m in model.named_modules() if name]
        what = _first_bad_param(params, "")
        for i in range(0, len(Xs), bs):
            if what:
                break
            x = Xs[i : i + bs]
            for name, layer in layers:
                x = layer(x)
                if not np.isfinite(x).all():
                    what = f"the output of layer {name} ({type(layer).__name__}) is {_first_bad(x)}"
                    break
            if what:
                break
            loss = loss_fn(x, ts[i : i + bs])
            if not math.isfinite(loss):
                what = f"the loss is {loss}"
                break
            opt.zero_grad()
            model.backward(loss_fn.backward(), input_grad=False)
            what = _first_bad_param(params[::-1], "the gradient of ")
            if rate and not what:
                self._penalize(rate, l1)
            opt.step()
            what = what or _first_bad_param(params, "")
        if what is None:  # every batch was finite, the loss over a whole split was not
            split = "train" if not math.isfinite(self.train_loss) else "test"
            logits = model(self.train_X if split == "train" else self.test_X)
            loss = getattr(self, f"{split}_loss")
            what = f"the {split} loss is {loss} (logits up to {np.abs(logits).max():.3g})"
        _restore(params, opt, end)
        self.error = f"diverged at epoch {epoch}: {what}; lower the learning rate"

    # -- messages ------------------------------------------------------------------------------
    def handle(self, message: Any) -> dict[str, Any] | None:
        """Answer one socket message (a dict already parsed from JSON).

        ``set`` (with ``settings``), ``play``, ``pause``, ``step`` (one epoch, pauses),
        ``reset`` and ``hello`` reply with a frame (``hello``: a full one). Anything else, or a
        refused setting, replies ``{"type": "error", "message": one line}`` and changes
        nothing. Never raises for a bad message.
        """
        try:
            return self._handle(message)
        except SettingsError as e:
            return {"type": "error", "message": str(e)}

    def _handle(self, message: Any) -> dict[str, Any]:
        if not isinstance(message, Mapping):
            raise SettingsError(f"message: expected an object, got {_quote(message)}")
        kind = message.get("type")
        if not isinstance(kind, str) or kind not in MESSAGES:
            raise SettingsError(
                f"type: unknown message type {_quote(kind)}; valid: {', '.join(MESSAGES)}"
            )
        extra = sorted(str(k) for k in message if k not in MESSAGES[kind])
        if extra:
            raise SettingsError(f"{extra[0]}: unexpected field in a {kind!r} message")
        if kind == "set":
            if "settings" not in message:
                raise SettingsError("settings: a 'set' message needs a settings object")
            self.update(message["settings"])
        elif kind == "play":
            self.playing = self.error is None
        elif kind == "pause":
            self.playing = False
        elif kind == "step":
            self.playing = False
            self.step(1)
        elif kind == "reset":
            self.reset()
        return self.snapshot(full=kind == "hello")

    # -- frames --------------------------------------------------------------------------------
    def snapshot(self, full: bool = False) -> dict[str, Any]:
        """A JSON-able frame of everything the page draws (see the playground spec).

        ``history`` holds the points since the previous frame (all of them with ``full`` or
        after a reset/thinning, then ``history_reset`` is True); ``points`` comes only with
        ``full`` or when the data changed. Non-finite numbers (after a divergence) are None.

        Maps: ``grid.label``/``grid.confidence`` are G*G bytes (G = 50), row 0 the top
        (y = ymax), column 0 the left (x = xmin), sampled at cell centres. ``neurons.maps``
        has one list per layer: the input features (each divided by its largest |value| on
        the grid), each hidden layer's activations, and the output (2p - 1 for each output
        probability: sigmoid for two classes, softmax for k); each map is g*g bytes (g = 20)
        of the value mapped -1..1 -> 0..255 (clipped).
        """
        s = self.settings
        k = s["classes"]
        reset = full or self._history_reset
        history = self.history if reset else self.history[self._history_sent :]
        self._history_sent, self._history_reset = len(self.history), False
        frame: dict[str, Any] = {
            "type": "frame",
            "settings": copy.deepcopy(s),
            "epoch": self.epoch,
            "playing": self.playing,
            "error": self.error,
            "train_loss": _number(self.train_loss),
            "test_loss": _number(self.test_loss),
            "train_accuracy": _number(self.train_accuracy),
            "test_accuracy": _number(self.test_accuracy),
            "history": [[e, _number(a), _number(b)] for e, a, b in history],  # type: ignore[arg-type]
            "history_reset": reset,
            "layers": [len(s["features"]), *s["hidden"], 1 if k == 2 else k],
            "feature_names": list(s["features"]),
            "weights": [_nested(lin.weight.data) for lin in self.linears],
            "biases": [_nested(lin.bias.data) for lin in self.linears],  # type: ignore[union-attr]
        }
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            frame.update(self._maps())
        if full or self._points_changed:
            self._points_changed = False
            frame["points"] = {
                "train": _points(self.train_points, self.train_y),
                "test": _points(self.test_points, self.test_y),
            }
        return frame

    def _maps(self) -> dict[str, Any]:
        """The decision map and every neuron's map from one layer-by-layer forward over the
        G*G grid and the g*g grid stacked together."""
        G, g = GRID, NEURON_GRID
        big, small = _grid(self.extent, G), _grid(self.extent, g)
        x = make_features(np.concatenate([big, small]), self.settings["features"])
        inputs = x[G * G :]
        scale = np.abs(inputs).max(axis=0)
        maps = [_to_uint8(inputs / np.where(scale > 0, scale, 1.0), -1.0, 1.0)]
        layers = list(self.model)
        for i, layer in enumerate(layers):
            x = layer(x)
            if i % 2 == 1:  # after each hidden activation
                maps.append(_to_uint8(x[G * G :], -1.0, 1.0))
        k = self.settings["classes"]
        if k == 2:
            with np.errstate(over="ignore"):
                p1 = 1.0 / (1.0 + np.exp(-x[:, 0].astype(np.float64)))
            probs = np.stack([1.0 - p1, p1], axis=1)
            out = p1[G * G :, None]
        else:
            z = x.astype(np.float64)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            probs = out = z / z.sum(axis=1, keepdims=True)
            out = out[G * G :]
        maps.append(_to_uint8(2.0 * out - 1.0, -1.0, 1.0))
        probs = probs[: G * G]
        label = np.nan_to_num(probs, nan=0.0).argmax(axis=1)
        confidence = _to_uint8(probs.max(axis=1), 1.0 / k, 1.0)
        return {
            "grid": {
                "size": G,
                "extent": list(self.extent),
                "classes": k,
                "label": _b64(label),
                "confidence": _b64(confidence),
            },
            "neurons": {
                "size": g,
                "maps": [[_b64(m[:, j]) for j in range(m.shape[1])] for m in maps],
                "range": [-1.0, 1.0],
            },
        }


def _grid(extent: list[float], size: int) -> np.ndarray:
    """(size*size, 2) cell centres, row-major from the top-left (xmin, ymax) corner."""
    xmin, xmax, ymin, ymax = extent
    xs = xmin + (np.arange(size) + 0.5) * (xmax - xmin) / size
    ys = ymax - (np.arange(size) + 0.5) * (ymax - ymin) / size
    gx, gy = np.meshgrid(xs, ys)  # (size, size): rows are y, top first
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def _points(points: np.ndarray, labels: np.ndarray) -> list[list[float]]:
    xy = np.round(points.astype(np.float64), 3)
    return [[x, y, int(c)] for (x, y), c in zip(xy.tolist(), labels.tolist(), strict=True)]


def _restore(
    params: list[tuple[str, nn.Parameter]],
    opt: Optimizer,
    state: tuple[list[np.ndarray], dict[str, Any]],
) -> None:
    """Put back the parameter values and optimizer state saved as ``state``."""
    for (_, p), data in zip(params, state[0], strict=True):
        np.copyto(p.data, data)
    opt.load_state_dict(state[1])


def _first_bad_param(params: list[tuple[str, nn.Parameter]], prefix: str) -> str | None:
    """'<prefix><name> is inf' for the first parameter (or its gradient, with a prefix) that
    is not finite, else None."""
    for name, p in params:
        a = p.grad if prefix else p.data
        if first_nonfinite(a):
            return f"{prefix}{name} is {_first_bad(a)}"
    return None


def _first_bad(a: np.ndarray) -> str:
    """The first non-finite value of ``a`` (C order) as text: 'nan', 'inf' or '-inf'."""
    flat = np.asarray(a).ravel()
    return str(flat[int(np.argmax(~np.isfinite(flat)))])
