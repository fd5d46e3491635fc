"""``toy``: the circle, learned by a 2 -> 16 tanh -> 16 sigmoid -> 1 network.

Points uniform in the square [-1, 1]^2 are labelled by whether they lie outside the circle
that covers half the square. A logit output with BCE-with-logits loss, SGD with momentum and
weight decay, batch 32. The figures show the loss per epoch, the final probability map (the
decision boundary is its 0.5 contour) and the map at a few epochs on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

import handgrad.nn as nn
import handgrad.optim as optim
from handgrad import viz
from handgrad.data import DataLoader, load
from handgrad.experiments.common import ProbabilitySnapshots, predict_proba
from handgrad.experiments.registry import Config, check, register
from handgrad.train import LRSchedulerCallback, Run, evaluate

__all__ = ["ToyConfig", "build_toy_model", "run_toy"]


@dataclass(frozen=True)
class ToyConfig(Config):
    """SGD with torch.optim.SGD's semantics; ``cosine`` anneals lr to 0 over the epochs (a
    smooth, low final loss). ``noise`` is the std of Gaussian jitter on the points (0: a clean
    boundary). The probability map is recorded after each epoch in ``snapshots`` and after the
    last, on ``resolution`` grid points per axis."""

    epochs: int = 1024
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    n_train: int = 512
    n_test: int = 512
    noise: float = 0.0
    snapshots: tuple[int, ...] = (1, 16, 64, 256)
    checkpoint_every: int = 32
    resolution: int = 150

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_train", "n_test", "checkpoint_every"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "resolution", self.resolution >= 2, ">= 2")
        check(self, "noise", self.noise >= 0, ">= 0")
        check(self, "snapshots", all(e >= 1 for e in self.snapshots), "epochs >= 1")


def build_toy_model(rng: np.random.Generator) -> nn.Sequential:
    """2 -> 16 tanh -> 16 sigmoid -> 1 logit."""
    return nn.Sequential(
        nn.Linear(2, 16, rng=rng),
        nn.Tanh(),
        nn.Linear(16, 16, rng=rng),
        nn.Sigmoid(),
        nn.Linear(16, 1, rng=rng),
    )


@register(
    "toy",
    ToyConfig,
    "the circle: 2 -> 16 tanh -> 16 sigmoid -> 1 logit, SGD momentum, probability maps",
    order=10,
)
def run_toy(cfg: ToyConfig, run: Run) -> dict[str, float]:
    train = load("circle", "train", seed=cfg.seed, n=cfg.n_train, noise=cfg.noise)
    test = load("circle", "test", seed=cfg.seed, n=cfg.n_test, noise=cfg.noise)
    # BCE-with-logits wants targets shaped like the (N, 1) logits, as floats
    y_train = train.y.astype(np.float32)[:, None]  # (N, 1)
    y_test = test.y.astype(np.float32)[:, None]

    rng = np.random.default_rng(cfg.seed)
    model = build_toy_model(rng)
    loss_fn = nn.BCEWithLogitsLoss()
    opt = optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    loader = DataLoader(train.X, y_train, batch_size=cfg.batch_size, shuffle=True, rng=rng)
    extent = (-1.1, 1.1, -1.1, 1.1)
    wanted = [e for e in cfg.snapshots if e < cfg.epochs] + [cfg.epochs]
    snaps = ProbabilitySnapshots(wanted, extent, resolution=cfg.resolution)
    callbacks = [snaps]
    if cfg.schedule == "cosine":
        callbacks.append(LRSchedulerCallback(optim.CosineAnnealingLR(opt, T_max=cfg.epochs)))

    history = run.fit(
        model,
        loss_fn,
        opt,
        loader,
        val=(test.X, y_test),
        epochs=cfg.epochs,
        callbacks=callbacks,
        checkpoint_every=cfg.checkpoint_every,
    )

    final_train = evaluate(model, loss_fn, (train.X, y_train))
    final_test = evaluate(model, loss_fn, (test.X, y_test))
    run.save_figure(
        "loss",
        viz.plot_history(history, title="toy: circle, BCE with logits", val_label="test"),
        "loss and accuracy per epoch",
    )
    grid = viz.probability_grid(lambda P: predict_proba(model, P), extent, cfg.resolution)
    run.save_figure(
        "probability_map",
        viz.plot_probability_map(
            grid,
            train.X,
            train.y,
            classes=train.classes,
            title=f"P(outside) after {history[-1]['epoch']} epochs; black line: P = 0.5",
        ),
        "final probability map",
    )
    run.save_figure(
        "snapshots",
        viz.plot_snapshots(
            snaps.snapshots,
            train.X,
            train.y,
            classes=train.classes,
            losses=snaps.losses,
            title="probability map during training",
        ),
        "probability map at several epochs",
    )
    return {
        "train_loss": final_train["loss"],
        "train_accuracy": final_train["accuracy"],
        "test_loss": final_test["loss"],
        "test_accuracy": final_test["accuracy"],
        "epochs": history[-1]["epoch"],
    }
