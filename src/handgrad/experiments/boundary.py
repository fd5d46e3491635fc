"""``boundary``: any 2-D toy data set (or your own points), any MLP, and its decision regions.

``handgrad run boundary --set dataset=spiral hidden=16,16 activation=relu`` trains a network
with one logit per class (softmax cross-entropy) and draws the probability map: a heat map of
P(class 1) with its 0.5 contour for two classes, the decision regions for k classes, and the
map at a few epochs on the way.

``--set data=points.csv`` trains on your own points (``x1,x2,label`` rows, the CSV the
playground downloads; see :mod:`handgrad.data.points`). The other fields build exactly the
network the playground builds, so its "reproduce" command is a list of ``--set`` values:
``features`` (x1, x2, x1^2, x2^2, x1x2, sin_x1, sin_x2), ``output=sigmoid`` (one logit for
two classes), ``regularization``/``reg_rate`` (L1 or L2 on the weights, not the biases),
``train_ratio`` (one draw split in two, as the playground does) and ``shuffle_stream`` (the
batch order from a generator of its own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

import handgrad.nn as nn
from handgrad import viz
from handgrad.data import DataLoader, load
from handgrad.data.points import (
    FEATURES,
    head_split,
    interleaved_split,
    make_features,
    read_points_csv,
)
from handgrad.experiments.common import (
    ProbabilitySnapshots,
    make_activation,
    optimizer_for,
    predict_proba,
)
from handgrad.experiments.registry import Config, check, register
from handgrad.optim import Optimizer
from handgrad.train import Run, TrainState, evaluate
from handgrad.viz.maps import probability_grid

__all__ = ["BoundaryConfig", "run_boundary"]

Dataset2D = Literal["circle", "moons", "xor", "spiral", "gaussians", "rings", "synth"]


@dataclass(frozen=True)
class BoundaryConfig(Config):
    """``n`` points per split; ``noise`` and ``classes`` (for spiral, gaussians and rings)
    None keep the data set's default. ``hidden=`` (empty) is a linear model. The map is recorded
    after each epoch in ``snapshots`` and after the last, on ``resolution`` grid points per
    axis.

    ``data``: a CSV of your own points instead of ``dataset`` (``n`` and ``noise`` are then
    unused; ``classes``, if given, is the number of classes, at least the file's).
    ``train_ratio``: None draws the train and test splits apart (``n`` points each); a number
    makes ONE draw of ``n`` points and trains on the first ``round(n * train_ratio)`` (a
    CSV: every point trains with None, and a number splits its rows evenly interleaved, see
    ``handgrad.data.points.interleaved_split``). ``features``: the network's input columns
    computed from (x1, x2). ``output``: ``softmax`` (one logit per class, cross-entropy) or
    ``sigmoid`` (two classes only: one logit, BCE-with-logits). ``regularization``: ``l1``
    adds ``reg_rate * sign(w)``, ``l2`` adds ``reg_rate * w`` to each weight's gradient (not
    the biases') before each step. ``shuffle_stream``: None shuffles the batches with the
    generator that drew the weights; an int ``s`` with ``default_rng([seed, s])``.
    """

    dataset: Dataset2D = "spiral"
    n: int = 512
    noise: float | None = None
    classes: int | None = None
    hidden: tuple[int, ...] = (16, 16)
    activation: Literal[
        "relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus", "linear"
    ] = "relu"
    optimizer: Literal["adam", "sgd", "adamw", "rmsprop"] = "adam"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 300
    batch_size: int = 32
    snapshots: tuple[int, ...] = (1, 10, 50)
    resolution: int = 150
    data: str | None = None
    train_ratio: float | None = None
    features: tuple[str, ...] = ("x1", "x2")
    output: Literal["softmax", "sigmoid"] = "softmax"
    regularization: Literal["none", "l1", "l2"] = "none"
    reg_rate: float = 0.0
    shuffle_stream: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "n", self.n >= 1, ">= 1")
        check(self, "noise", self.noise is None or self.noise >= 0, ">= 0 or none")
        check(self, "classes", self.classes is None or self.classes >= 2, ">= 2 or none")
        check(self, "resolution", self.resolution >= 2, ">= 2")
        check(self, "snapshots", all(e >= 1 for e in self.snapshots), "epochs >= 1")
        check(self, "data", self.data is None or self.data.strip() != "", "a CSV file or none")
        top = 1.0 if self.data is not None else 1.0 - 1e-12  # a drawn set needs a test split
        check(
            self,
            "train_ratio",
            self.train_ratio is None or 0.0 < self.train_ratio <= top,
            "in (0, 1] (with data=), in (0, 1) otherwise, or none",
        )
        check(
            self,
            "features",
            bool(self.features) and all(f in FEATURES for f in self.features),
            f"one or more of {', '.join(FEATURES)}",
        )
        check(self, "reg_rate", self.reg_rate >= 0, ">= 0")
        check(
            self, "shuffle_stream", self.shuffle_stream is None or self.shuffle_stream >= 0, ">= 0"
        )


Split = tuple[np.ndarray, np.ndarray]  # raw points (N, 2) float32, labels (N,) int64


def _points(cfg: BoundaryConfig) -> tuple[Split, Split | None, tuple[str, ...]]:
    """The train and test points (test None: every point trains) and the class names."""
    if cfg.data is not None:
        points = read_points_csv(cfg.data)
        k = max(2, len(points.classes)) if cfg.classes is None else cfg.classes
        if k < len(points.classes):
            raise ValueError(
                f"BoundaryConfig: classes={k}, but {cfg.data} has {len(points.classes)} classes"
            )
        names = (*points.classes, *(str(c) for c in range(len(points.classes), k)))
        test = interleaved_split(len(points), 1.0 if cfg.train_ratio is None else cfg.train_ratio)
        X, y = points.X, points.y
        return (X[~test], y[~test]), ((X[test], y[test]) if test.any() else None), names
    options: dict[str, object] = {"n": cfg.n}
    if cfg.noise is not None:
        options["noise"] = cfg.noise
    if cfg.classes is not None:
        options["k"] = cfg.classes  # load() names the data sets that take no k
    train = load(cfg.dataset, "train", seed=cfg.seed, **options)
    if cfg.train_ratio is None:
        test = load(cfg.dataset, "test", seed=cfg.seed, **options)
        return (train.X, train.y), (test.X, test.y), train.classes
    if len(train) < 2:
        raise ValueError(f"BoundaryConfig: train_ratio needs n >= 2 points, got n={cfg.n}")
    cut = head_split(len(train), cfg.train_ratio)
    return (train.X[:cut], train.y[:cut]), (train.X[cut:], train.y[cut:]), train.classes


def _network(
    in_features: int, hidden: Sequence[int], out_features: int, activation: str, rng: Any
) -> nn.Sequential:
    """Linear -> activation per hidden width, then the output Linear; every Linear draws its
    weight then its bias from ``rng`` (as :func:`~handgrad.experiments.common.mlp`, plus
    ``linear``: no activation, nn.Identity in its place)."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        act = nn.Identity() if activation == "linear" else make_activation(activation)
        layers += [nn.Linear(width, h, rng=rng), act]
        width = h
    layers.append(nn.Linear(width, out_features, rng=rng))
    return nn.Sequential(*layers)


class Penalized:
    """An optimizer that first adds an L1 (``rate * sign(w)``) or L2 (``rate * w``) penalty's
    gradient to each of ``weights``' gradients, then steps ``optimizer``; everything else
    (``zero_grad``, ``param_groups``, ``state_dict``...) is the optimizer's own."""

    def __init__(
        self, optimizer: Optimizer, weights: Sequence[nn.Parameter], rate: float, l1: bool
    ) -> None:
        self.optimizer, self.weights, self.rate, self.l1 = optimizer, list(weights), rate, l1

    def step(self) -> None:
        for w in self.weights:
            w.grad += (np.sign(w.data) if self.l1 else w.data) * w.grad.dtype.type(self.rate)
        self.optimizer.step()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)


class _Snapshots(ProbabilitySnapshots):
    """ProbabilitySnapshots through ``predict`` (raw points -> probabilities), for a network
    whose input is features of the points."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.predict = predict

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        if state.epoch in self.epochs:
            grid = probability_grid(self.predict, self.extent, self.resolution)
            self.snapshots.append((state.epoch, grid))
            self.losses.append(float(logs["train_loss"]))


@register(
    "boundary",
    BoundaryConfig,
    "any 2-D data set x any MLP: decision regions for k classes",
    order=11,
)
def run_boundary(cfg: BoundaryConfig, run: Run) -> dict[str, float]:
    (train_pts, train_y), test, classes = _points(cfg)
    k = len(classes)
    if cfg.output == "sigmoid" and k != 2:
        raise ValueError(f"BoundaryConfig: output='sigmoid' needs 2 classes, the data has {k}")
    sigmoid = cfg.output == "sigmoid"

    def inputs(points: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = make_features(points, cfg.features)
        # one logit: BCE-with-logits targets are (N, 1) floats; k logits: int labels
        return X, (labels.astype(np.float32).reshape(-1, 1) if sigmoid else labels)

    train = inputs(train_pts, train_y)
    val = None if test is None else inputs(*test)
    rng = np.random.default_rng(cfg.seed)
    model = _network(len(cfg.features), cfg.hidden, 1 if sigmoid else k, cfg.activation, rng)
    loss_fn: nn.Loss = nn.BCEWithLogitsLoss() if sigmoid else nn.CrossEntropyLoss()
    opt: Any = optimizer_for(cfg, model.parameters())
    if cfg.regularization != "none" and cfg.reg_rate > 0:
        weights = [m.weight for m in model if isinstance(m, nn.Linear)]
        opt = Penalized(opt, weights, cfg.reg_rate, cfg.regularization == "l1")
    shuffle = (
        rng if cfg.shuffle_stream is None else np.random.default_rng([cfg.seed, cfg.shuffle_stream])
    )
    loader = DataLoader(*train, batch_size=cfg.batch_size, shuffle=True, rng=shuffle)
    all_points = train_pts if test is None else np.concatenate([train_pts, test[0]])
    extent = viz.data_extent(all_points)

    def predict(P: np.ndarray) -> np.ndarray:
        return predict_proba(model, make_features(P, cfg.features))

    wanted = [e for e in cfg.snapshots if e < cfg.epochs] + [cfg.epochs]
    snaps = _Snapshots(predict, wanted, extent, resolution=min(cfg.resolution, 100))
    history = run.fit(model, loss_fn, opt, loader, val=val, epochs=cfg.epochs, callbacks=[snaps])
    # one forward over each whole split with train_ratio or data= (the playground's numbers)
    whole = cfg.train_ratio is not None or cfg.data is not None
    size = (lambda split: max(1, len(split[0]))) if whole else (lambda split: 1024)
    final_train = evaluate(model, loss_fn, train, batch_size=size(train))
    final_test = None if val is None else evaluate(model, loss_fn, val, batch_size=size(val))

    source = cfg.dataset if cfg.data is None else "your points"
    net = " -> ".join(map(str, (len(cfg.features), *cfg.hidden, 1 if sigmoid else k)))
    title = f"{source}: {net} {cfg.activation}, {cfg.optimizer} lr {cfg.lr:g}"
    run.save_figure(
        "loss", viz.plot_history(history, title=title, val_label="test"), "loss and accuracy"
    )

    def binary(grid: viz.ProbabilityGrid) -> viz.ProbabilityGrid:
        # two classes: show P(class 1) as a heat map with its 0.5 contour
        if k == 2 and grid.probs.ndim == 3:
            return viz.ProbabilityGrid(grid.probs[..., 1], grid.extent)
        return grid

    grid = binary(viz.probability_grid(predict, extent, cfg.resolution))
    accuracy = final_train if final_test is None else final_test
    which = "train" if final_test is None else "test"
    run.save_figure(
        "probability_map",
        viz.plot_probability_map(
            grid,
            train_pts,
            train_y,
            classes=classes,
            title=f"{title}, {which} acc {accuracy['accuracy']:.1%}",
        ),
        "final probability map / decision regions",
    )
    run.save_figure(
        "snapshots",
        viz.plot_snapshots(
            [(e, binary(g)) for e, g in snaps.snapshots],
            train_pts,
            train_y,
            classes=classes,
            losses=snaps.losses,
            title="during training",
        ),
        "the map at several epochs",
    )
    results = {
        "train_loss": final_train["loss"],
        "train_accuracy": final_train["accuracy"],
    }
    if final_test is not None:
        results |= {"test_loss": final_test["loss"], "test_accuracy": final_test["accuracy"]}
    return {**results, "classes": k, "epochs": history[-1]["epoch"]}
