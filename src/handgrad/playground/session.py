"""One playground tab's state: its data, network, optimizer and what to draw of them.

A :class:`Session` holds the whole state of the page (the page is a view of it): the settings,
the 2-D data set split into train and test points, a :class:`handgrad.nn.Sequential` built from
the settings, its loss and a :mod:`handgrad.optim` optimizer. :meth:`Session.step` trains it
with handgrad's own forward and hand-written ``backward``; :meth:`Session.snapshot` returns a
JSON-able frame of everything the page draws; :meth:`Session.handle` answers one socket
message. Nothing here imports a web library (``server.py`` does that).

How the settings become a run (so that a run can be redone by hand, as the tests do, or by
``handgrad run boundary``, as :meth:`Session.reproduce` writes it):

- Data: ONE draw, ``handgrad.data.load(dataset, 'train', seed=seed, n=n_points,
  noise=base + scale * noise[, k=classes])`` (base and scale per data set in :data:`NOISE`),
  split in order: the first ``round(n_points * train_ratio)`` points (at least 1, at most
  ``n_points - 1``) train, the rest test. Changing the ratio moves the split, not the points.
  ``dataset='custom'``: your own list of points (drawn, uploaded as CSV, or a copy of the
  points shown when you switched), split by ``handgrad.data.points.interleaved_split``.
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

What the page sees of the backward pass comes from handgrad itself, through module hooks
(``register_full_backward_pre_hook`` for each neuron's delta = dL/dz, forward hooks for the
step table) and the optimizer's own state; :mod:`handgrad.train.monitor_stats` gives the live
monitors and :mod:`handgrad.check` the gradient check.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import math
import numbers
import secrets
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np

import handgrad.nn as nn
from handgrad.data import load
from handgrad.data.points import (
    FEATURES,
    MAX_CLASSES,
    MAX_POINTS,
    PointsError,
    head_split,
    interleaved_split,
    make_features,
    parse_points_csv,
    points_csv,
)
from handgrad.optim import SGD, Adam, Optimizer
from handgrad.train.monitor_stats import (
    dead_fraction,
    first_nonfinite,
    saturated_fraction,
    update_ratio,
)

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "DEFAULTS",
    "FEATURES",
    "NOISE",
    "Session",
    "SettingsError",
    "make_features",
    "parse_query",
    "settings_query",
]


class SettingsError(ValueError):
    """A refused setting or message; the one-line message names the key and quotes the value."""


# -- the tables the settings draw from -------------------------------------------------------
# data set -> (min classes, max classes); "custom" is your own list of points
DATASETS: dict[str, tuple[int, int]] = {
    "circle": (2, 2),
    "xor": (2, 2),
    "gaussians": (2, 6),
    "spiral": (2, 6),
    "moons": (2, 2),
    "rings": (2, 6),
    "custom": (2, MAX_CLASSES),
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

MOMENTUM = 0.9  # the "momentum" optimizer: SGD with this momentum
OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], float], Optimizer]] = {
    "sgd": lambda params, lr: SGD(params, lr=lr),
    "momentum": lambda params, lr: SGD(params, lr=lr, momentum=MOMENTUM),
    "adam": lambda params, lr: Adam(params, lr=lr),
}

REGULARIZATIONS = ("none", "l1", "l2")
VIEWS = ("weights", "gradients")

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
    "view": "weights",
}

# what a change of each key rebuilds: new data (and a reset), a reset, or nothing
DATA_KEYS = frozenset({"dataset", "classes", "noise", "n_points", "train_ratio", "seed"})
NETWORK_KEYS = frozenset({"features", "hidden", "activation", "optimizer"})
# keys that change the training from the next batch on (a run changed midway cannot be redone
# from epoch 0 by one command)
TRAINING_KEYS = frozenset({"lr", "batch_size", "regularization", "reg_rate"})
MAX_LAYERS, MAX_NEURONS = 6, 8
MAX_COORD = 1e4  # |x1|, |x2| of a drawn point
MAX_LR = 100.0  # high enough to watch a network diverge

# message type -> the fields it may have
MESSAGES: dict[str, frozenset[str]] = {
    "set": frozenset({"type", "settings"}),
    **{kind: frozenset({"type"}) for kind in ("play", "pause", "step", "reset")},
    "hello": frozenset({"type", "settings", "query"}),
    "add_point": frozenset({"type", "x1", "x2", "label"}),
    "remove_point": frozenset({"type", "x1", "x2", "radius"}),
    "clear_points": frozenset({"type"}),
    "load_csv": frozenset({"type", "base64", "text", "name"}),
    "explain_step": frozenset({"type", "point"}),
    "gradcheck": frozenset({"type"}),
    "reproduce": frozenset({"type"}),
}

GRID = 50  # cells per side of the decision map
NEURON_GRID = 20  # cells per side of each neuron's map
HISTORY_MAX = 2000  # history points kept; beyond, every other one is dropped
DIGITS = 4  # decimals of the weights in a frame
GRAD_DIGITS = 4  # significant digits of the gradients in a frame
SHUFFLE_STREAM = 1  # the shuffle generator is default_rng([seed, SHUFFLE_STREAM])
EXPLAIN_ROWS = 16  # per-sample rows shown in the step table
GRADCHECK_POINTS = 32  # training points the gradient check uses


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
    out["lr"] = _float("lr", new["lr"], 0.0, MAX_LR, open_low=True)
    out["batch_size"] = _int("batch_size", new["batch_size"], 1, 1000)
    out["regularization"] = _choice("regularization", new["regularization"], REGULARIZATIONS)
    out["reg_rate"] = _float("reg_rate", new["reg_rate"], 0.0, 1.0)
    out["speed"] = _int("speed", new["speed"], 1, 100)
    out["view"] = _choice("view", new["view"], VIEWS)
    return out


# -- settings in the URL ---------------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def settings_query(settings: Mapping[str, Any]) -> str:
    """The URL query of the settings that differ from :data:`DEFAULTS`, in their order
    (lists comma-separated, floats in their shortest form); ``''`` for the defaults.

    Examples:
        >>> settings_query({**DEFAULTS, "hidden": [8, 8], "lr": 0.1})
        'hidden=8,8&lr=0.1'
    """
    pairs = [(k, _text(settings[k])) for k in DEFAULTS if settings[k] != DEFAULTS[k]]
    return urlencode(pairs, safe=",")


def parse_query(query: str) -> dict[str, Any]:
    """The settings changes a URL query holds (the inverse of :func:`settings_query`), typed
    like :data:`DEFAULTS` but not yet range-checked (:func:`validate` does that).

    Examples:
        >>> parse_query("?hidden=8,8&features=x1,x1%5E2&lr=0.1")
        {'hidden': [8, 8], 'features': ['x1', 'x1^2'], 'lr': 0.1}
        >>> parse_query("hidden=")
        {'hidden': []}
    """
    if not isinstance(query, str):
        raise SettingsError(f"query: expected a string, got {_quote(query)}")
    out: dict[str, Any] = {}
    for key, text in parse_qsl(query.removeprefix("?"), keep_blank_values=True):
        if key not in DEFAULTS:
            raise SettingsError(
                f"{key}: unknown setting (got {_quote(text)}); valid: {', '.join(DEFAULTS)}"
            )
        default = DEFAULTS[key]
        parts = [p for p in text.split(",") if p.strip()]
        try:
            if key == "hidden":
                out[key] = [int(p) for p in parts]
            elif isinstance(default, list):
                out[key] = parts
            elif isinstance(default, int):
                out[key] = int(text)
            elif isinstance(default, float):
                out[key] = float(text)
            else:
                out[key] = text
        except ValueError:
            raise SettingsError(
                f"{key}: expected {'integers' if key == 'hidden' else type(default).__name__},"
                f" got {_quote(text)}"
            ) from None
    return out


# -- small helpers ---------------------------------------------------------------------------
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


def _significant(a: np.ndarray) -> list[Any]:
    """Nested lists of ``a`` to :data:`GRAD_DIGITS` significant digits (gradients span many
    orders of magnitude, so decimals would round the small ones to 0); None where not finite.

    Scaling by an exact power of ten and dividing back gives the double nearest to the
    rounded decimal, which JSON writes in that short form (0.001234, not 0.0012340000000001).
    """
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e = np.floor(np.log10(np.abs(a)))  # -inf at 0
        e = np.clip(np.where(np.isfinite(e), e, 0.0) - (GRAD_DIGITS - 1), -300.0, 300.0)
        p = 10.0 ** np.abs(e)
        rounded = np.where(e < 0, np.round(a * p) / p, np.round(a / p) * p)
    return _exact(rounded)


def _exact(a: Any) -> Any:
    """Nested lists of the exact values (a float32 becomes the float64 of the same value), or
    a float; None where a value is not finite."""
    a = np.asarray(a, dtype=np.float64)
    if np.isfinite(a).all():
        return a.tolist()
    return np.where(np.isfinite(a), a, None).tolist()


def _column(layer: str) -> int:
    """The drawing column of a module of the Sequential (``'4'``, or a parameter's layer):
    Linear 2i and its activation 2i + 1 make the neurons of column i + 1."""
    return int(layer) // 2 + 1


# -- the session -----------------------------------------------------------------------------
class Session:
    """One tab's playground: settings, data, network, optimizer, and the frames to draw.

    Args:
        settings: changes to :data:`DEFAULTS` (validated as :meth:`update` does).
        workdir: the folder :meth:`reproduce` writes drawn points into (created when first
            needed; default ``./playground-runs``). Nothing else is ever written.

    Attributes:
        settings: the validated settings (a JSON-able copy; change it with :meth:`update`).
        session_id: a random id (the server's download routes use it).
        epoch: epochs trained since the last reset.
        playing: whether the server should keep training (set by the play/pause messages;
            cleared by a reset, a step message and a divergence).
        error: None, or the divergence message (training stops until a reset).
        nan_origin: None, or where the divergence began (a dict, see :meth:`snapshot`).
        model, loss_fn, optimizer: the handgrad network, its loss and optimizer.
        linears: the network's Linear layers, input to output.
        train_points, test_points: raw (N, 2) float32 coordinates.
        train_X, test_X: the features of those points (N, n_features) float32.
        train_y, test_y: int64 class labels (N,).
        class_names: the label of each class in CSV files (custom data: the uploaded names).
        train_loss, test_loss, train_accuracy, test_accuracy: after the last epoch (NaN for a
            split without points).
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

    def __init__(
        self, settings: Mapping[str, Any] | None = None, *, workdir: str | Path | None = None
    ) -> None:
        self.settings: dict[str, Any] = validate(copy.deepcopy(DEFAULTS), settings or {})
        self.session_id = secrets.token_urlsafe(12)
        self.workdir = Path("playground-runs") if workdir is None else Path(workdir)
        self.playing = False
        self._custom: tuple[np.ndarray, np.ndarray] | None = None
        self.class_names: list[str] = []
        self._grad_hooks: list[Any] = []
        self._make_data()
        self.reset()

    # -- building ----------------------------------------------------------------------------
    def _make_data(self) -> None:
        s = self.settings
        name = s["dataset"]
        if name == "custom":  # an empty list (a custom set is otherwise made by a switch)
            empty = (np.zeros((0, 2), np.float32), np.zeros(0, np.int64))
            self._custom = self._custom or empty
            self._split_custom()
            self.extent = _extent(self._custom[0])
            return
        n = s["n_points"]
        base, scale = NOISE[name]
        options: dict[str, Any] = {"n": n, "noise": base + scale * s["noise"]}
        if DATASETS[name][1] > 2:
            options["k"] = s["classes"]
        data = load(name, "train", seed=s["seed"], **options)
        n_train = head_split(n, s["train_ratio"])
        self.train_points, self.test_points = data.X[:n_train], data.X[n_train:]
        self.train_y, self.test_y = data.y[:n_train], data.y[n_train:]
        self._custom = None
        self.class_names = [str(c) for c in range(s["classes"])]
        self.extent = _extent(data.X)
        self._points_changed = True

    def _split_custom(self) -> None:
        """Train and test points of the custom list (see interleaved_split)."""
        assert self._custom is not None
        X, y = self._custom
        test = interleaved_split(len(X), self.settings["train_ratio"])
        self.train_points, self.test_points = X[~test], X[test]
        self.train_y, self.test_y = y[~test], y[test]
        names = self.class_names[: self.settings["classes"]]
        while len(names) < self.settings["classes"]:  # a new class gets its number as name
            number = str(len(names))
            names.append(number if number not in names else f"class {number}")
        self.class_names = names
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

    def _network(self, rng: np.random.Generator) -> nn.Sequential:
        """``Linear -> activation`` per hidden width, then the output Linear (float32)."""
        s = self.settings
        k = s["classes"]
        widths = [len(s["features"]), *s["hidden"], 1 if k == 2 else k]
        layers: list[nn.Module] = []
        for i in range(len(widths) - 1):
            layers.append(nn.Linear(widths[i], widths[i + 1], rng=rng))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[s["activation"]]())
        return nn.Sequential(*layers)

    def reset(self) -> None:
        """Rebuild the network and optimizer from the seed (the same weights, bit for bit),
        epoch 0, empty history, no error, paused; the losses are those of the new weights."""
        s = self.settings
        self._apply_features()
        self.model = self._network(np.random.default_rng(s["seed"]))
        self._layers: list[nn.Module] = list(self.model)
        self.linears: list[nn.Linear] = [m for m in self._layers if isinstance(m, nn.Linear)]
        self.loss_fn: nn.Loss = (
            nn.BCEWithLogitsLoss() if s["classes"] == 2 else nn.CrossEntropyLoss()
        )
        self._eval_loss: nn.Loss = type(self.loss_fn)()
        self.optimizer = OPTIMIZERS[s["optimizer"]](list(self.model.parameters()), s["lr"])
        self._shuffle = np.random.default_rng([s["seed"], SHUFFLE_STREAM])
        self.epoch = 0
        self.playing = False
        self.error: str | None = None
        self.nan_origin: dict[str, Any] | None = None
        self.history: list[list[float]] = []
        self._history_sent = 0
        self._history_reset = True
        self._stepped = False  # a step was done since the reset (the gradients exist)
        self._before: list[np.ndarray] | None = None  # the parameters before the last step
        self._replayable = True  # the run so far is `epoch` epochs of the current settings
        self._watch_gradients(s["view"] == "gradients")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._evaluate()

    def _watch_gradients(self, on: bool) -> None:
        """(Un)hook every Linear's backward so that its delta = dL/dz (the gradient flowing
        into it, which handgrad's backward computes anyway) is kept for the frames."""
        for handle in self._grad_hooks:
            handle.remove()
        self._grad_hooks = []
        self._deltas: list[np.ndarray | None] = [None] * len(self.linears)
        if not on:
            return
        for i, lin in enumerate(self.linears):

            def keep(module: nn.Module, grad_output: tuple, i: int = i) -> None:
                self._deltas[i] = grad_output[0]  # a reference: backward makes a new array

            self._grad_hooks.append(lin.register_full_backward_pre_hook(keep))

    def update(self, changes: Mapping[str, Any]) -> None:
        """Validate ``changes`` (a partial settings dict) and apply them; on SettingsError
        nothing changes. Data keys (dataset, classes, noise, n_points, train_ratio, seed) draw
        new data and reset; network keys (features, hidden, activation, optimizer) reset; lr,
        batch_size, regularization, reg_rate, speed and view take effect at the next batch.

        Custom data: switching to it copies the points shown (train then test) and keeps the
        network training; ``classes``, ``seed`` and ``train_ratio`` reset; ``noise`` and
        ``n_points`` do nothing; ``classes`` cannot drop below the classes the points use.
        """
        new = validate(self.settings, changes)
        old = self.settings
        if new["dataset"] == "custom":
            labels = self._custom[1] if old["dataset"] == "custom" else self._all_y  # type: ignore[index]
            used = int(labels.max()) + 1 if len(labels) else 0
            if new["classes"] < used:
                raise SettingsError(
                    f"classes: the points use {used} classes, got {_quote(new['classes'])}"
                )
        changed = {key for key in new if new[key] != old[key]}
        self.settings = new
        if new["dataset"] == "custom":
            to_custom = old["dataset"] != "custom"
            if to_custom:  # the points shown become your own list, the network trains on
                self._custom = (
                    np.concatenate([self.train_points, self.test_points]),
                    np.concatenate([self.train_y, self.test_y]),
                )
            if to_custom or changed & {"train_ratio", "classes"}:
                self._split_custom()
            reset = changed & (NETWORK_KEYS | {"classes", "seed", "train_ratio"})
            if reset:
                self.reset()
            elif to_custom:
                self._points_edited()
        else:
            if changed & DATA_KEYS:
                self._make_data()
            reset = changed & (DATA_KEYS | NETWORK_KEYS)
            if reset:
                self.reset()
        if not reset:
            if "lr" in changed:
                for group in self.optimizer.param_groups:
                    group["lr"] = new["lr"]
            if changed & TRAINING_KEYS and self.epoch:
                self._replayable = False
            if "view" in changed:
                self._watch_gradients(new["view"] == "gradients")

    # -- your own points ---------------------------------------------------------------------
    def _to_custom(self) -> tuple[np.ndarray, np.ndarray]:
        if self.settings["dataset"] != "custom":
            self.update({"dataset": "custom"})
        assert self._custom is not None
        return self._custom

    def _points_edited(self) -> None:
        """The custom list changed: new split, features and losses; training goes on."""
        self._split_custom()
        self._apply_features()
        if self.epoch:
            self._replayable = False
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._evaluate()

    def add_point(self, x1: float, x2: float, label: int) -> None:
        """Add a point of class ``label`` at (x1, x2) to the custom points (switching to
        them first if a generated set is shown)."""
        x1 = _float("x1", x1, -MAX_COORD, MAX_COORD)
        x2 = _float("x2", x2, -MAX_COORD, MAX_COORD)
        k = self.settings["classes"]
        try:
            label = _int("label", label, 0, k - 1)
        except SettingsError:
            raise SettingsError(
                f"label: expected a class in 0..{k - 1} (raise classes for another), "
                f"got {_quote(label)}"
            ) from None
        if len(self._all_y) >= MAX_POINTS:
            raise SettingsError(f"add_point: at most {MAX_POINTS:,} points")
        X, y = self._to_custom()
        point = np.array([[x1, x2]], dtype=np.float32)
        self._custom = (np.concatenate([X, point]), np.append(y, np.int64(label)))
        if max(abs(x1), abs(x2)) > self.extent[1]:  # the view grows to hold the point
            self.extent = _extent(self._custom[0])
        self._points_edited()

    def remove_point(self, x1: float, x2: float, radius: float) -> bool:
        """Remove the custom point nearest to (x1, x2) if it lies within ``radius``; returns
        whether one was removed."""
        x1 = _float("x1", x1, -MAX_COORD, MAX_COORD)
        x2 = _float("x2", x2, -MAX_COORD, MAX_COORD)
        radius = _float("radius", radius, 0.0, 2 * MAX_COORD, open_low=True)
        X, y = self._to_custom()
        if not len(X):
            return False
        d = np.hypot(X[:, 0].astype(np.float64) - x1, X[:, 1].astype(np.float64) - x2)
        i = int(np.argmin(d))
        if d[i] > radius:
            return False
        self._custom = (np.delete(X, i, axis=0), np.delete(y, i))
        self._points_edited()
        return True

    def clear_points(self) -> None:
        """Custom data with no points (training waits for some)."""
        self._to_custom()
        self._custom = (np.zeros((0, 2), np.float32), np.zeros(0, np.int64))
        self._points_edited()

    def load_csv(self, data: bytes | str, name: str = "CSV") -> None:
        """Replace the points by those of a CSV file (see :mod:`handgrad.data.points`),
        switch to custom data with as many classes as the file has (at least 2), and reset.
        A bad file raises SettingsError naming the line; nothing changes then."""
        try:
            points = parse_points_csv(data, name=name)
        except PointsError as e:
            raise SettingsError(str(e)) from None
        k = max(2, len(points.classes))
        new = validate(self.settings, {"dataset": "custom", "classes": k})
        self.settings = new
        self._custom = (points.X, points.y)
        self.class_names = list(points.classes)
        self._split_custom()
        self.extent = _extent(points.X)
        self.reset()

    def points_csv(self) -> str:
        """The current points as CSV text (custom: the list; generated: train then test),
        labels written as :attr:`class_names`."""
        if self._custom is not None:
            X, y = self._custom
        else:
            X = np.concatenate([self.train_points, self.test_points])
            y = np.concatenate([self.train_y, self.test_y])
        return points_csv(X, y, self.class_names)

    # -- training ----------------------------------------------------------------------------
    def step(self, epochs: int = 1) -> None:
        """Train ``epochs`` epochs (each one pass over the shuffled training points in
        mini-batches), then recompute the losses and accuracies. Does nothing while
        :attr:`error` is set or there is no training point; a divergence sets the error,
        pauses and stops within the epoch."""
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
        if n == 0:
            return
        bs = min(s["batch_size"], n)
        last = (n - 1) // bs * bs  # where the epoch's last batch starts
        rate = s["reg_rate"] if s["regularization"] != "none" else 0.0
        l1 = s["regularization"] == "l1"
        params = list(model.parameters())
        tested = len(self.test_X) > 0
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
                if i == last:  # for the update/weight ratios of the monitors
                    self._before = [p.data.copy() for p in params]
                opt.step()
            self.epoch += 1
            self._stepped = True
            self._evaluate()
            if not math.isfinite(self.train_loss) or (tested and not math.isfinite(self.test_loss)):
                self._diverged(self.epoch, start, Xs, ts, bs, rate, l1)
                return
            self._record()

    def _penalize(self, rate: float, l1: bool) -> dict[str, np.ndarray]:
        """Add the L1 (rate * sign(w)) or L2 (rate * w) penalty's gradient to each weight's;
        returns what was added, by parameter name."""
        added = {}
        for i, lin in enumerate(self.linears):
            w = lin.weight
            penalty = (np.sign(w.data) if l1 else w.data) * w.grad.dtype.type(rate)
            w.grad += penalty
            added[f"{2 * i}.weight"] = penalty
        return added

    def _evaluate(self) -> None:
        """Data losses and accuracies of the current weights: one forward over all points,
        layer by layer (the hidden activations are kept for the monitors)."""
        n, total = len(self.train_X), len(self._all_X)
        nan = math.nan
        self._acts: list[np.ndarray] = []
        if total == 0:
            self.train_loss = self.test_loss = self.train_accuracy = self.test_accuracy = nan
            return
        x = self._all_X  # (N_train + N_test, n_features)
        for i, layer in enumerate(self._layers):
            x = layer(x)
            if i % 2:
                self._acts.append(x)
        logits = x  # (N_train + N_test, n_out)
        if logits.shape[1] == 1:
            hits = (logits[:, 0] > 0) == self._all_y
        else:
            hits = logits.argmax(axis=1) == self._all_y
        self.train_loss = self._eval_loss(logits[:n], self._train_t) if n else nan
        self.test_loss = self._eval_loss(logits[n:], self._test_t) if total > n else nan
        self.train_accuracy = int(np.count_nonzero(hits[:n])) / n if n else nan
        self.test_accuracy = int(np.count_nonzero(hits[n:])) / (total - n) if total > n else nan

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
        origin = _first_bad_param(params, "parameter")
        for i in range(0, len(Xs), bs):
            if origin:
                break
            x = Xs[i : i + bs]
            for name, layer in layers:
                x = layer(x)
                if not np.isfinite(x).all():
                    origin = _origin(
                        "output", f"output of layer {name} ({type(layer).__name__})", name, x
                    )
                    break
            if origin:
                break
            loss = loss_fn(x, ts[i : i + bs])
            if not math.isfinite(loss):
                origin = _origin("loss", "loss", None, np.float64(loss))
                break
            opt.zero_grad()
            model.backward(loss_fn.backward(), input_grad=False)
            origin = _first_bad_param(params[::-1], "gradient")
            if rate and not origin:
                self._penalize(rate, l1)
            opt.step()
            origin = origin or _first_bad_param(params, "parameter")
        if origin is None:  # every batch was finite, the loss over a whole split was not
            split = "train" if not math.isfinite(self.train_loss) else "test"
            logits = model(self.train_X if split == "train" else self.test_X)
            loss = getattr(self, f"{split}_loss")
            origin = _origin("loss", f"{split} loss", None, np.float64(loss))
            origin["logits_max"] = float(np.abs(logits).max())
        _restore(params, opt, end)
        if origin["layer"] is None:
            origin["column"] = len(self.linears)
        origin["epoch"] = epoch
        self.nan_origin = origin
        self.error = f"diverged at epoch {epoch}: {_origin_text(origin)}; lower the learning rate"

    # -- the backward pass, explained ----------------------------------------------------------
    def explain_step(self, point: int | None = None) -> dict[str, Any]:
        """Pause and do ONE optimizer step on training point ``point`` (an index into
        ``train_points``) or, with None, on one mini-batch of ``batch_size`` training points
        (drawn as an epoch's first batch); return the step as a JSON-able table (see the
        protocol: forward layer by layer, the loss, delta and gradients layer by layer back,
        and each parameter's update with the optimizer's state). Every number is the one
        handgrad computed, caught by hooks on the layers and read from the optimizer; the
        epoch counter does not move."""
        n = len(self.train_X)
        if n == 0:
            raise SettingsError("explain_step: there are no training points")
        if self.error is not None:
            raise SettingsError("explain_step: the network diverged; reset it first")
        s = self.settings
        if point is None:
            idx = self._shuffle.permutation(n)[: min(s["batch_size"], n)]
        else:
            idx = np.array([_int("point", point, 0, n - 1)])
        x, t = self.train_X[idx], self._train_t[idx]
        model, loss_fn, opt = self.model, self.loss_fn, self.optimizer
        outputs: dict[str, np.ndarray] = {}
        deltas: dict[str, np.ndarray] = {}
        grad_in: dict[str, np.ndarray | None] = {}
        handles = []
        for name, layer in model.named_modules():
            if not name:
                continue
            handles.append(
                layer.register_forward_hook(
                    lambda m, args, out, name=name: outputs.__setitem__(name, out.copy())
                )
            )
            if isinstance(layer, nn.Linear):
                handles.append(
                    layer.register_full_backward_pre_hook(
                        lambda m, go, name=name: deltas.__setitem__(name, go[0].copy())
                    )
                )
                handles.append(
                    layer.register_full_backward_hook(
                        lambda m, gi, go, name=name: grad_in.__setitem__(
                            name, None if gi[0] is None else gi[0].copy()
                        )
                    )
                )
        params = list(model.named_parameters())
        before = {k: p.data.copy() for k, p in params}
        rate = s["reg_rate"] if s["regularization"] != "none" else 0.0
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss = loss_fn(model(x), t)
                opt.zero_grad()
                model.backward(loss_fn.backward(), input_grad=False)
                raw = {k: p.grad.copy() for k, p in params}
                added = self._penalize(rate, s["regularization"] == "l1") if rate else {}
                used = {k: p.grad.copy() for k, p in params}
                self._before = [before[k] for k, _ in params]
                opt.step()
        finally:
            for handle in handles:
                handle.remove()
        self.playing = False
        self._stepped = True
        self._replayable = False
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._evaluate()
        if not math.isfinite(self.train_loss):
            origin = _first_bad_param(params, "parameter") or _origin(
                "loss", "train loss", None, np.float64(self.train_loss)
            )
            origin["epoch"] = self.epoch
            origin.setdefault("column", len(self.linears))
            self.nan_origin = origin
            self.error = (
                f"diverged in the explained step: {_origin_text(origin)}; lower the learning rate"
            )
        rows = min(len(idx), EXPLAIN_ROWS)
        last = len(self.linears) - 1
        logits = outputs[str(2 * last)].astype(np.float64)
        if logits.shape[1] == 1:
            probs = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid without overflow
        else:
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = e / e.sum(axis=1, keepdims=True)
        layers, back = [], []
        for i in range(last + 1):
            lin, act = str(2 * i), (str(2 * i + 1) if i < last else None)
            layers.append(
                {
                    "linear": lin,
                    "activation": s["activation"] if act else None,
                    "weight": _exact(before[f"{lin}.weight"]),
                    "bias": _exact(before[f"{lin}.bias"]),
                    "z": _exact(outputs[lin][:rows]),
                    "a": _exact(outputs[act][:rows]) if act else None,
                }
            )
        for i in range(last, -1, -1):
            lin = str(2 * i)
            g_in = grad_in.get(lin)
            back.append(
                {
                    "linear": lin,
                    "delta": _exact(deltas[lin][:rows]),
                    "grad_weight": _exact(raw[f"{lin}.weight"]),
                    "grad_bias": _exact(raw[f"{lin}.bias"]),
                    "penalty_weight": _exact(added[f"{lin}.weight"]) if added else None,
                    "grad_input": None if g_in is None else _exact(g_in[:rows]),
                }
            )
        return {
            "type": "explain",
            "point": None if point is None else int(idx[0]),
            "indices": idx.tolist(),
            "batch": len(idx),
            "rows_shown": rows,
            "epoch": self.epoch,
            "optimizer": s["optimizer"],
            "lr": s["lr"],
            "regularization": s["regularization"],
            "reg_rate": s["reg_rate"],
            "loss_fn": type(loss_fn).__name__,
            "feature_names": list(s["features"]),
            "points": _exact(self.train_points[idx][:rows]),
            "targets": self.train_y[idx][:rows].tolist(),
            "input": _exact(x[:rows]),
            "layers": layers,
            "output": {"logits": _exact(logits[:rows]), "probabilities": _exact(probs[:rows])},
            "loss": _number(loss),
            "backward": back,
            "update": [self._explain_update(k, p, before[k], used[k]) for k, p in params],
        }

    def _explain_update(
        self, name: str, p: nn.Parameter, before: np.ndarray, grad: np.ndarray
    ) -> dict[str, Any]:
        """One parameter's update in the explained step, with the optimizer's own state."""
        kind = self.settings["optimizer"]
        entry: dict[str, Any] = {
            "name": name,
            "before": _exact(before),
            "grad": _exact(grad),
            "after": _exact(p.data),
        }
        state = self.optimizer.state.get(p, {})
        if kind == "sgd":
            entry["rule"] = "w - lr * g"
        elif kind == "momentum":
            entry["rule"] = "buf = g (first step) or momentum * buf + g; w - lr * buf"
            entry["momentum"] = MOMENTUM
            entry["buffer"] = _exact(state["momentum_buffer"])
        else:
            group = self.optimizer.param_groups[0]
            beta1, beta2 = (float(b) for b in group["betas"])
            t = float(state["step"])
            bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t  # as handgrad's Adam computes them
            m, v = state["exp_avg"], state["exp_avg_sq"]
            entry.update(
                rule="m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; "
                "w - lr * (m / bc1) / (sqrt(v / bc2) + eps)",
                step=t,
                betas=[beta1, beta2],
                eps=float(group["eps"]),
                m=_exact(m),
                v=_exact(v),
                bias_correction1=bc1,
                bias_correction2=bc2,
                m_hat=_exact(m.astype(np.float64) / bc1),
                v_hat=_exact(v.astype(np.float64) / bc2),
                update=_exact(p.data.astype(np.float64) - before.astype(np.float64)),
            )
        return entry

    def check_gradients(self) -> dict[str, Any]:
        """``handgrad.check.gradcheck`` on a float64 copy of the network (input: the features
        of up to :data:`GRADCHECK_POINTS` training points) and of the loss (input: their
        logits); the session does not change. Returns the ``gradcheck`` reply."""
        from handgrad.check import gradcheck

        n = min(len(self.train_X), GRADCHECK_POINTS)
        if n == 0:
            raise SettingsError("gradcheck: there are no training points")
        model = self._network(np.random.default_rng(0))
        model.load_state_dict(self.model.state_dict())
        model.to(np.float64)
        x = self.train_X[:n].astype(np.float64)
        try:
            net = gradcheck(model, x)
            loss = gradcheck(type(self.loss_fn)(), model(x), self._train_t[:n])
        except ValueError as e:  # non-finite weights, say
            raise SettingsError(f"gradcheck: {' '.join(str(e).split())}") from None
        rows = [*net.rows, *loss.rows]
        names = [r.name for r in net.rows] + ["loss (logits)"] * len(loss.rows)
        passed = net.passed and loss.passed
        return {
            "type": "gradcheck",
            "passed": passed,
            "status": "PASSED" if passed else "FAILED",
            "verdict": f"network: {net.verdict()}; loss: {loss.verdict()}",
            "points": n,
            "rows": [
                {
                    "tensor": name,
                    "shape": list(r.shape),
                    "checked": r.checked,
                    "kinks": r.kinks,
                    "max_abs_err": _number(r.max_abs_err),
                    "max_rel_err": _number(r.max_rel_err),
                    "status": "ok" if r.passed else "FAIL",
                }
                for name, r in zip(names, rows, strict=True)
            ],
        }

    # -- a way out -------------------------------------------------------------------------------
    def reproduce(self) -> dict[str, Any]:
        """The shell command that redoes this run with ``handgrad run boundary`` (the same
        data, network, initial weights, batches and updates, for as many epochs), every value
        quoted with ``shlex.quote``. Custom points are written to a CSV in :attr:`workdir`
        (named by its content's hash) that the command reads."""
        s = self.settings
        name, k = s["dataset"], s["classes"]
        sets: list[tuple[str, Any]] = [("seed", s["seed"])]
        csv_path = None
        if name == "custom":
            X, y = self._custom  # type: ignore[misc]
            if not len(X):
                raise SettingsError("reproduce: there are no points to train on")
            # labels as class numbers: the file reads back as the same classes
            text = points_csv(X, y)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
            csv_path = self._write(f"points-{digest}.csv", text)
            sets += [("data", str(csv_path)), ("classes", k)]
        else:
            base, scale = NOISE[name]
            sets += [("dataset", name), ("n", s["n_points"]), ("noise", base + scale * s["noise"])]
            if DATASETS[name][1] > 2:
                sets.append(("classes", k))
        optimizer, momentum = {"sgd": ("sgd", 0.0), "momentum": ("sgd", MOMENTUM)}.get(
            s["optimizer"], ("adam", 0.0)
        )
        epochs = max(1, self.epoch)
        sets += [
            ("train_ratio", s["train_ratio"]),
            ("features", ",".join(s["features"])),
            ("hidden", ",".join(map(str, s["hidden"]))),
            ("activation", s["activation"]),
            ("output", "sigmoid" if k == 2 else "softmax"),
            ("optimizer", optimizer),
            ("momentum", momentum),
            ("lr", s["lr"]),
            ("batch_size", s["batch_size"]),
            ("regularization", s["regularization"]),
            ("reg_rate", s["reg_rate"]),
            ("shuffle_stream", SHUFFLE_STREAM),
            ("epochs", epochs),
        ]
        argv = ["handgrad", "run", "boundary", "--set"]
        argv += [f"{key}={_text(value)}" for key, value in sets]
        note = None
        if self.error is not None:
            note = "the run diverged; the command runs the same epochs and diverges too"
        elif not self._replayable:
            note = (
                "settings or points changed during this run (or a step was explained): the "
                "command trains the current ones from epoch 0, so its numbers differ"
            )
        elif self.epoch == 0:
            note = "no epoch trained yet: the command trains 1 epoch"
        return {
            "type": "reproduce",
            "command": " ".join(shlex.quote(a) for a in argv),
            "argv": argv,
            "csv": None if csv_path is None else str(csv_path),
            "epochs": epochs,
            "train_loss": _number(self.train_loss),
            "test_loss": _number(self.test_loss),
            "exact": note is None,
            "note": note,
        }

    def _write(self, name: str, text: str) -> Path:
        """Write ``text`` to ``workdir/name`` (a name made here, never a client's)."""
        folder = self.workdir.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        if path.parent != folder:  # pragma: no cover - names are made above
            raise SettingsError(f"refusing to write outside {folder}")
        if not path.exists():
            tmp = folder / f".{name}.tmp{secrets.token_hex(4)}"
            tmp.write_text(text, encoding="utf-8", newline="")
            tmp.replace(path)
        return path

    def download(self, name: str) -> tuple[bytes, str] | None:
        """The file ``name`` of the downloads (its bytes and media type), or None when there
        is no such file: ``weights.npz`` (a handgrad checkpoint: ``model`` state dict,
        ``optimizer``, ``settings``, ``epoch``), ``points.csv``, and with PyTorch installed
        ``model.pt`` (the equivalent ``torch.nn.Sequential``'s state dict) and ``model.py``."""
        if name == "weights.npz":
            return self._checkpoint_bytes(), "application/octet-stream"
        if name == "points.csv":
            return self.points_csv().encode("utf-8"), "text/csv; charset=utf-8"
        if name in ("model.pt", "model.py"):
            torch = _torch()
            if torch is None:
                return None
            if name == "model.py":
                return self.torch_source().encode("utf-8"), "text/x-python; charset=utf-8"
            import io

            from handgrad.torch_ext import to_torch

            buf = io.BytesIO()
            torch.save(to_torch(self.model).state_dict(), buf)
            return buf.getvalue(), "application/octet-stream"
        return None

    def _checkpoint_bytes(self) -> bytes:
        """The checkpoint file's bytes (written in :attr:`workdir`, the one folder this
        session writes in, under a name of its own, and removed)."""
        from handgrad.train.checkpoint import save_checkpoint

        state = {
            "model": dict(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "settings": copy.deepcopy(self.settings),
            "epoch": self.epoch,
        }
        folder = self.workdir.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f".weights-{secrets.token_hex(8)}.npz"
        try:
            return save_checkpoint(path, state).read_bytes()
        finally:
            path.unlink(missing_ok=True)

    def torch_source(self) -> str:
        """A short Python file that builds the same network as a ``torch.nn.Sequential``
        and loads ``model.pt`` (needs PyTorch to write: the layers' torch arguments come
        from :func:`handgrad.torch_ext.bridge.torch_constructor`)."""
        from handgrad.torch_ext.bridge import torch_constructor

        s = self.settings
        layers = []
        for name, layer in self.model.named_modules():
            if not name:
                continue
            cls, kwargs = torch_constructor(layer, name)
            args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            layers.append(f"    torch.nn.{cls}({args}),")
        columns = "\n            ".join(f"{_TORCH_FEATURES[f]},  # {f}" for f in s["features"])
        if s["classes"] == 2:
            predict = "torch.sigmoid(logits)[:, 0]"  # P(class 1)
        else:
            predict = "torch.softmax(logits, dim=1)"  # P(class j), (N, k)
        return _TORCH_TEMPLATE.format(
            epoch=self.epoch,
            settings=settings_query(s) or "the defaults",
            n=len(s["features"]),
            columns=columns,
            layers="\n".join(layers),
            predict=predict,
            what="P(class 1) of each point" if s["classes"] == 2 else "P(class j) of each point",
        )

    # -- messages ------------------------------------------------------------------------------
    def handle(self, message: Any) -> dict[str, Any]:
        """Answer one socket message (a dict already parsed from JSON) with its last reply
        (see :meth:`replies`). Never raises for a bad message."""
        return self.replies(message)[-1]

    def replies(self, message: Any) -> list[dict[str, Any]]:
        """Every reply to one socket message, in the order to send them.

        ``set`` (with ``settings``), ``play``, ``pause``, ``step`` (one epoch, pauses),
        ``reset``, the point messages (``add_point``, ``remove_point``, ``clear_points``,
        ``load_csv``) reply with a frame; ``hello`` (optionally with ``settings`` or a URL
        ``query``) with a full one; ``explain_step`` with a frame then the ``explain`` table;
        ``gradcheck`` and ``reproduce`` with their own reply. Anything else, or a refused
        setting, replies ``{"type": "error", "message": one line}`` and changes nothing (a
        refused hello: the full frame, then the error). Never raises for a bad message.
        """
        try:
            return self._replies(message)
        except SettingsError as e:
            return [{"type": "error", "message": str(e)}]

    def _replies(self, message: Any) -> list[dict[str, Any]]:
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
        get = message.get
        if kind == "hello":
            if "settings" in message and "query" in message:
                raise SettingsError("hello: send settings or a query, not both")
            try:
                if "query" in message:
                    self.update(parse_query(message["query"]))
                elif "settings" in message:
                    self.update(message["settings"])
            except SettingsError as e:
                return [self.snapshot(full=True), {"type": "error", "message": str(e)}]
            return [self.snapshot(full=True)]
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
        elif kind == "add_point":
            _require(message, kind, ("x1", "x2", "label"))
            self.add_point(get("x1"), get("x2"), get("label"))
        elif kind == "remove_point":
            _require(message, kind, ("x1", "x2", "radius"))
            self.remove_point(get("x1"), get("x2"), get("radius"))
        elif kind == "clear_points":
            self.clear_points()
        elif kind == "load_csv":
            self.load_csv(*_csv_content(message))
        elif kind == "explain_step":
            table = self.explain_step(get("point"))
            return [self.snapshot(), table]
        elif kind == "gradcheck":
            return [self.check_gradients()]
        elif kind == "reproduce":
            return [self.reproduce()]
        return [self.snapshot()]

    # -- frames --------------------------------------------------------------------------------
    def snapshot(self, full: bool = False) -> dict[str, Any]:
        """A JSON-able frame of everything the page draws (see the playground spec and
        /tmp/playground2_protocol.md).

        ``history`` holds the points since the previous frame (all of them with ``full`` or
        after a reset/thinning, then ``history_reset`` is True); ``points`` (and
        ``class_names``) come only with ``full`` or when the points changed. Non-finite
        numbers (after a divergence) are None.

        Maps: ``grid.label``/``grid.confidence`` are G*G bytes (G = 50), row 0 the top
        (y = ymax), column 0 the left (x = xmin), sampled at cell centres. ``neurons.maps``
        has one list per layer: the input features (each divided by its largest |value| on
        the grid), each hidden layer's activations, and the output (2p - 1 for each output
        probability: sigmoid for two classes, softmax for k); each map is g*g bytes (g = 20)
        of the value mapped -1..1 -> 0..255 (clipped).

        ``monitors`` (every frame): per hidden layer the dead (ReLU) or saturated
        (Tanh/Sigmoid) fraction over the training points, per Linear the update/weight
        ratio of the last step. ``gradients`` (only with ``view='gradients'``): dL/dw and
        dL/db of the last step and each neuron's delta = dL/dz summed over its batch.
        ``nan_origin``: where a divergence began, or None.
        """
        s = self.settings
        k = s["classes"]
        reset = full or self._history_reset
        history = self.history if reset else self.history[self._history_sent :]
        self._history_sent, self._history_reset = len(self.history), False
        frame: dict[str, Any] = {
            "type": "frame",
            "session_id": self.session_id,
            "settings": copy.deepcopy(s),
            "query": settings_query(s),
            "epoch": self.epoch,
            "playing": self.playing,
            "error": self.error,
            "nan_origin": copy.deepcopy(self.nan_origin),
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
            frame["monitors"] = self._monitors()
            if s["view"] == "gradients":
                frame["gradients"] = self._gradients()
        if full or self._points_changed:
            self._points_changed = False
            frame["points"] = {
                "train": _points(self.train_points, self.train_y),
                "test": _points(self.test_points, self.test_y),
            }
            frame["class_names"] = list(self.class_names)
        return frame

    def _monitors(self) -> dict[str, Any]:
        n = len(self.train_X)
        layers = []
        for j, out in enumerate(self._acts):
            kind = type(self._layers[2 * j + 1]).__name__
            train = out[:n]
            dead = dead_fraction(train) if kind == "ReLU" and n else math.nan
            saturated = (
                saturated_fraction(train, kind) if kind in ("Tanh", "Sigmoid") and n else math.nan
            )
            layers.append(
                {
                    "column": j + 1,
                    "kind": kind,
                    "dead": _number(dead),
                    "saturated": _number(saturated),
                }
            )
        ratios = []
        params = list(self.model.parameters())
        for i in range(len(self.linears)):
            if self._before is None:
                ratios.append({"weight": None, "bias": None})
                continue
            w, b = (update_ratio(self._before[j], params[j].data) for j in (2 * i, 2 * i + 1))
            ratios.append({"weight": _number(w), "bias": _number(b)})
        return {"layers": layers, "update_ratio": ratios}

    def _gradients(self) -> dict[str, Any] | None:
        if not self._stepped:
            return None
        delta = [None if d is None else _significant(d.sum(axis=0)) for d in self._deltas]
        delta_abs = [
            None if d is None else _significant(np.abs(d).sum(axis=0)) for d in self._deltas
        ]
        first = self._deltas[0]
        return {
            "weights": [_significant(lin.weight.grad) for lin in self.linears],
            "biases": [_significant(lin.bias.grad) for lin in self.linears],  # type: ignore[union-attr]
            "delta": delta,
            "delta_abs": delta_abs,
            "batch": None if first is None else int(first.shape[0]),
        }

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


def _first_bad(a: np.ndarray) -> str:
    """The first non-finite value of ``a`` (C order) as text: 'nan', 'inf' or '-inf'."""
    flat = np.asarray(a).ravel()
    return str(flat[int(np.argmax(~np.isfinite(flat)))])


def _first_bad_param(params: list[tuple[str, nn.Parameter]], kind: str) -> dict[str, Any] | None:
    """Where the first parameter (``kind='parameter'``) or gradient (``'gradient'``) that is
    not finite is, as a NaN origin, or None."""
    for name, p in params:
        a = p.grad if kind == "gradient" else p.data
        if first_nonfinite(a):
            return _origin(kind, name, name.rsplit(".", 1)[0], a)
    return None


def _origin(kind: str, tensor: str, layer: str | None, a: np.ndarray) -> dict[str, Any]:
    """A NaN origin: what went non-finite, in which layer (and drawing column), and how."""
    return {
        "kind": kind,
        "tensor": tensor,
        "layer": layer,
        "column": None if layer is None else _column(layer),
        "value": _first_bad(a),
        "detail": first_nonfinite(a),
    }


def _origin_text(origin: dict[str, Any]) -> str:
    """The origin as the error message says it: ``0.weight is inf``, ``the gradient of
    2.bias is nan``, ``the output of layer 4 (Linear) is inf``, ``the loss is inf`` or ``the
    train loss is inf (logits up to 3.19e+37)``."""
    kind, tensor, value = origin["kind"], origin["tensor"], origin["value"]
    if kind == "parameter":
        return f"{tensor} is {value}"
    if kind == "gradient":
        return f"the gradient of {tensor} is {value}"
    text = f"the {tensor} is {value}"
    if "logits_max" in origin:
        text += f" (logits up to {origin['logits_max']:.3g})"
    return text


def _extent(points: np.ndarray) -> list[float]:
    """A square view [-h, h, -h, h] that holds every point with a margin, h >= 1, rounded
    up to 0.1."""
    half = float(np.abs(points).max()) * 1.1 if len(points) else 1.0
    half = max(1.0, math.ceil(half * 10.0) / 10.0)
    return [-half, half, -half, half]


def _require(message: Mapping[str, Any], kind: str, fields: tuple[str, ...]) -> None:
    for name in fields:
        if name not in message:
            raise SettingsError(f"{name}: a {kind!r} message needs it")


def _csv_content(message: Mapping[str, Any]) -> tuple[bytes | str, str]:
    """The file content and name of a ``load_csv`` message."""
    name = message.get("name", "CSV")
    if not isinstance(name, str):
        raise SettingsError(f"name: expected a file name, got {_quote(name)}")
    # only shown in messages: the last path component, printable, short
    name = "".join(c for c in name.replace("\\", "/").rsplit("/", 1)[-1] if c.isprintable())
    name = name[:60] or "CSV"
    if ("base64" in message) == ("text" in message):
        raise SettingsError("load_csv: send the file as base64 or as text (one of them)")
    if "text" in message:
        text = message["text"]
        if not isinstance(text, str):
            raise SettingsError(f"text: expected a string, got {_quote(text)}")
        return text, name
    encoded = message["base64"]
    if not isinstance(encoded, str):
        raise SettingsError(f"base64: expected a string, got {_quote(encoded)}")
    try:
        return base64.b64decode(encoded, validate=True), name
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name}: the upload is not valid base64") from None


def _torch() -> Any:
    """The torch module, or None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# the features of handgrad.data.points.FEATURES written for torch (model.py)
_TORCH_FEATURES = {
    "x1": "x1",
    "x2": "x2",
    "x1^2": "x1 * x1",
    "x2^2": "x2 * x2",
    "x1x2": "x1 * x2",
    "sin_x1": "torch.sin(math.pi * x1)",
    "sin_x2": "torch.sin(math.pi * x2)",
}

# model.py of the downloads ({braces} are filled in by Session.torch_source)
_TORCH_TEMPLATE = '''"""The handgrad playground's network as a torch.nn.Sequential (epoch {epoch}).

Settings: {settings}
Put model.pt next to this file, then: python model.py
"""

import math
from pathlib import Path

import torch


def features(points: torch.Tensor) -> torch.Tensor:
    """(N, 2) points (x1, x2) -> (N, {n}) the network's input columns."""
    x1, x2 = points[:, 0], points[:, 1]
    return torch.stack(
        [
            {columns}
        ],
        dim=1,
    )


model = torch.nn.Sequential(
{layers}
)
model.load_state_dict(torch.load(Path(__file__).with_name("model.pt")))

if __name__ == "__main__":
    points = torch.tensor([[0.0, 0.0], [0.5, -0.5]])
    with torch.no_grad():
        logits = model(features(points))
    print({predict})  # {what}
'''
