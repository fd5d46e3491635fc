"""``boundary``: any 2-D toy data set, any MLP, and its decision regions.

``handgrad run boundary --set dataset=spiral hidden=16,16 activation=relu`` trains a network
with one logit per class (softmax cross-entropy) and draws the probability map: a heat map of
P(class 1) with its 0.5 contour for two classes, the decision regions for k classes, and the
map at a few epochs on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

import handgrad.nn as nn
from handgrad import viz
from handgrad.data import DataLoader, load
from handgrad.experiments.common import (
    ProbabilitySnapshots,
    mlp,
    optimizer_for,
    predict_proba,
)
from handgrad.experiments.registry import Config, check, register
from handgrad.train import Run, evaluate

__all__ = ["BoundaryConfig", "run_boundary"]

Dataset2D = Literal["circle", "moons", "xor", "spiral", "gaussians", "rings", "synth"]


@dataclass(frozen=True)
class BoundaryConfig(Config):
    """``n`` points per split; ``noise`` and ``classes`` (for spiral, gaussians and rings)
    None keep the data set's default. ``hidden=`` (empty) is a linear model. The map is recorded
    after each epoch in ``snapshots`` and after the last, on ``resolution`` grid points per
    axis."""

    dataset: Dataset2D = "spiral"
    n: int = 512
    noise: float | None = None
    classes: int | None = None
    hidden: tuple[int, ...] = (16, 16)
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus"] = "relu"
    optimizer: Literal["adam", "sgd", "adamw", "rmsprop"] = "adam"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 300
    batch_size: int = 32
    snapshots: tuple[int, ...] = (1, 10, 50)
    resolution: int = 150

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "n", self.n >= 1, ">= 1")
        check(self, "noise", self.noise is None or self.noise >= 0, ">= 0 or none")
        check(self, "classes", self.classes is None or self.classes >= 2, ">= 2 or none")
        check(self, "resolution", self.resolution >= 2, ">= 2")
        check(self, "snapshots", all(e >= 1 for e in self.snapshots), "epochs >= 1")


@register(
    "boundary",
    BoundaryConfig,
    "any 2-D data set x any MLP: decision regions for k classes",
    order=11,
)
def run_boundary(cfg: BoundaryConfig, run: Run) -> dict[str, float]:
    options: dict[str, object] = {"n": cfg.n}
    if cfg.noise is not None:
        options["noise"] = cfg.noise
    if cfg.classes is not None:
        options["k"] = cfg.classes  # load() names the data sets that take no k
    train = load(cfg.dataset, "train", seed=cfg.seed, **options)
    test = load(cfg.dataset, "test", seed=cfg.seed, **options)
    k = len(train.classes)
    rng = np.random.default_rng(cfg.seed)
    model = mlp(2, cfg.hidden, k, cfg.activation, rng=rng)
    loss_fn = nn.CrossEntropyLoss()
    opt = optimizer_for(cfg, model.parameters())
    loader = DataLoader(train.X, train.y, batch_size=cfg.batch_size, shuffle=True, rng=rng)
    extent = viz.data_extent(np.concatenate([train.X, test.X]))
    wanted = [e for e in cfg.snapshots if e < cfg.epochs] + [cfg.epochs]
    snaps = ProbabilitySnapshots(wanted, extent, resolution=min(cfg.resolution, 100))
    history = run.fit(model, loss_fn, opt, loader, val=test, epochs=cfg.epochs, callbacks=[snaps])
    final_train = evaluate(model, loss_fn, train)
    final_test = evaluate(model, loss_fn, test)

    net = " -> ".join(map(str, (2, *cfg.hidden, k)))
    title = f"{cfg.dataset}: {net} {cfg.activation}, {cfg.optimizer} lr {cfg.lr:g}"
    run.save_figure(
        "loss", viz.plot_history(history, title=title, val_label="test"), "loss and accuracy"
    )

    def binary(grid: viz.ProbabilityGrid) -> viz.ProbabilityGrid:
        # two classes: show P(class 1) as a heat map with its 0.5 contour
        return viz.ProbabilityGrid(grid.probs[..., 1], grid.extent) if k == 2 else grid

    grid = binary(viz.probability_grid(lambda P: predict_proba(model, P), extent, cfg.resolution))
    run.save_figure(
        "probability_map",
        viz.plot_probability_map(
            grid,
            train.X,
            train.y,
            classes=train.classes,
            title=f"{title}, test acc {final_test['accuracy']:.1%}",
        ),
        "final probability map / decision regions",
    )
    run.save_figure(
        "snapshots",
        viz.plot_snapshots(
            [(e, binary(g)) for e, g in snaps.snapshots],
            train.X,
            train.y,
            classes=train.classes,
            losses=snaps.losses,
            title="during training",
        ),
        "the map at several epochs",
    )
    return {
        "train_loss": final_train["loss"],
        "train_accuracy": final_train["accuracy"],
        "test_loss": final_test["loss"],
        "test_accuracy": final_test["accuracy"],
        "classes": k,
        "epochs": history[-1]["epoch"],
    }
