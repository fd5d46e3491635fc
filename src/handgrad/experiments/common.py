"""Pieces the experiments share: the MLP builder, optimizers by name, predictions, probability
snapshots, the validation split, and report fragments. (The classifier pipeline is in
:mod:`handgrad.experiments.classifier`.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import handgrad.nn as nn
import handgrad.optim as optim
from handgrad.train import Callback, Run, TrainState
from handgrad.viz.maps import ProbabilityGrid, probability_grid

__all__ = [
    "ACTIVATIONS",
    "OPTIMIZERS",
    "ProbabilitySnapshots",
    "add_fragment",
    "make_activation",
    "make_optimizer",
    "mlp",
    "numbers",
    "optimizer_for",
    "predict_proba",
    "split_validation",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
}

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


def make_activation(name: str) -> nn.Module:
    """An activation layer by name (``relu``, ``tanh``, ...); unknown names list the valid ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    activation: str | Sequence[str] = "relu",
    *,
    rng: np.random.Generator,
    dtype: Any = np.float32,
    dropout: float = 0.0,
) -> nn.Sequential:
    """Linear -> activation (-> Dropout) for each hidden width, then a Linear output layer.

    ``activation`` is one name for every hidden layer or one name per hidden layer. The
    output is raw (logits): the loss applies the sigmoid/softmax.
    """
    acts = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
    if len(acts) != len(hidden):
        raise ValueError(
            f"mlp: {len(acts)} activations for {len(hidden)} hidden layers; give one or one each"
        )
    layers: list[nn.Module] = []
    width = in_features
    for h, act in zip(hidden, acts, strict=True):
        layers += [nn.Linear(width, h, rng=rng, dtype=dtype), make_activation(act)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout, rng=rng))
        width = h
    layers.append(nn.Linear(width, out_features, rng=rng, dtype=dtype))
    return nn.Sequential(*layers)


def make_optimizer(
    name: str, params: Any, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0
) -> optim.Optimizer:
    """``sgd`` (with ``momentum``), ``adam``, ``adamw`` or ``rmsprop`` by name."""
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


def optimizer_for(cfg: Any, params: Any) -> optim.Optimizer:
    """The optimizer a config names: its ``optimizer``, ``lr``, ``momentum`` and
    ``weight_decay`` fields passed to :func:`make_optimizer`."""
    return make_optimizer(
        cfg.optimizer, params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def predict_proba(model: nn.Module, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Class probabilities in eval mode: (N,) P(class 1) for one logit, (N, K) for K logits."""
    was_training = model.training
    model.eval()
    try:
        outs = [model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
    finally:
        model.train(was_training)
    z = np.concatenate(outs).astype(np.float64)
    if z.shape[1] == 1:
        return 0.5 * (1.0 + np.tanh(0.5 * z[:, 0]))  # sigmoid, without overflow in exp
    z -= z.max(axis=1, keepdims=True)  # softmax is shift-invariant; this keeps exp finite
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class ProbabilitySnapshots(Callback):
    """Records the probability map over ``extent`` after each epoch in ``epochs``.

    Its state (the maps so far) goes into checkpoints, so a resumed run has them all.
    """

    def __init__(
        self,
        epochs: Sequence[int],
        extent: tuple[float, float, float, float],
        resolution: int = 100,
    ) -> None:
        self.epochs = sorted(set(int(e) for e in epochs))
        self.extent = extent
        self.resolution = resolution
        self.snapshots: list[tuple[int, ProbabilityGrid]] = []
        self.losses: list[float] = []

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        if state.epoch in self.epochs:
            model = state.model
            grid = probability_grid(lambda P: predict_proba(model, P), self.extent, self.resolution)
            self.snapshots.append((state.epoch, grid))
            self.losses.append(float(logs["train_loss"]))

    def state_dict(self) -> dict[str, Any]:
        return {
            "epochs": [e for e, _ in self.snapshots],
            "grids": [g.probs for _, g in self.snapshots],
            "losses": list(self.losses),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshots = [
            (int(e), ProbabilityGrid(np.asarray(p), self.extent))
            for e, p in zip(state["epochs"], state["grids"], strict=True)
        ]
        self.losses = [float(v) for v in state["losses"]]


def split_validation(
    X: np.ndarray, y: np.ndarray, val_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random ``val_size`` samples held out of (X, y): ``X_train, y_train, X_val, y_val``.

    The split has a generator of its own (from ``seed``), so it does not move when other
    random choices change.
    """
    if not 0 <= val_size < len(X):
        raise ValueError(
            f"val_size must be in [0, {len(X)}) for {len(X)} training samples, got {val_size}"
        )
    order = np.random.default_rng([seed, 0xDA7A]).permutation(len(X))
    val, train = np.sort(order[:val_size]), np.sort(order[val_size:])
    return X[train], y[train], X[val], y[val]


def add_fragment(run: Run, name: str) -> None:
    """Put the markdown fragment a worked example wrote (``<name>.md``) into the run's report."""
    path = Path(run.dir) / f"{name}.md"
    if path.exists():
        run.notes.append(path.read_text(encoding="utf-8"))


def numbers(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The flat numeric entries of a result (nested dicts become ``outer.inner``)."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out.update(numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = value
    return out
