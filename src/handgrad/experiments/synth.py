"""``synth``: the 2 -> 3 sigmoid -> 2 softmax network of the worked example, on quadratic data.

Points x ~ N(0, I) are labelled 1 where x1^2 + 0.95 x1 x2 + 0.4 x2^2 > 0.6 (an ellipse). Three
sigmoid units can only cut the plane with three smooth lines, so the network approximates the
ellipse by a rounded triangle. Trained with plain SGD (no momentum, no weight decay) on the
softmax cross-entropy. Figures: the loss curve and the learned probability map with the true
boundary dashed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import handgrad.nn as nn
import handgrad.optim as optim
from handgrad import viz
from handgrad.data import DataLoader, load, synth_rule
from handgrad.experiments.common import predict_proba
from handgrad.experiments.registry import Config, check, register
from handgrad.train import Run, evaluate

__all__ = ["SynthConfig", "build_synth_model", "run_synth"]


@dataclass(frozen=True)
class SynthConfig(Config):
    """Plain SGD: no momentum, no weight decay."""

    epochs: int = 300
    batch_size: int = 16
    lr: float = 0.5
    n_train: int = 512
    n_test: int = 512

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_train", "n_test"):
            check(self, name, getattr(self, name) >= 1, ">= 1")


def build_synth_model(rng: np.random.Generator) -> nn.Sequential:
    """2 -> 3 sigmoid -> 2 logits (the softmax is in the loss)."""
    return nn.Sequential(nn.Linear(2, 3, rng=rng), nn.Sigmoid(), nn.Linear(3, 2, rng=rng))


@register(
    "synth", SynthConfig, "quadratic synth data, 2 -> 3 sigmoid -> 2 softmax, plain SGD", order=12
)
def run_synth(cfg: SynthConfig, run: Run) -> dict[str, float]:
    train = load("synth", "train", seed=cfg.seed, n=cfg.n_train)
    test = load("synth", "test", seed=cfg.seed, n=cfg.n_test)
    rng = np.random.default_rng(cfg.seed)
    model = build_synth_model(rng)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=cfg.lr)
    loader = DataLoader(train.X, train.y, batch_size=cfg.batch_size, shuffle=True, rng=rng)
    history = run.fit(model, loss_fn, opt, loader, val=test, epochs=cfg.epochs)
    final_train = evaluate(model, loss_fn, train)
    final_test = evaluate(model, loss_fn, test)

    run.save_figure(
        "loss",
        viz.plot_history(
            history, title="synth: 2 -> 3 sigmoid -> 2 softmax, SGD", val_label="test"
        ),
        "loss and accuracy per epoch",
    )
    extent = viz.data_extent(train.X, margin=0.02)
    grid = viz.probability_grid(lambda P: predict_proba(model, P), extent, 150)
    grid.probs = grid.probs[..., 1]  # P(class 1): a heat map with its 0.5 contour
    fig = viz.plot_probability_map(
        grid, train.X, train.y, classes=train.classes, title="P(q > 0.6); dashed: the true rule"
    )
    x0, x1, y0, y1 = extent
    xs, ys = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    truth = synth_rule(np.stack([xs.ravel(), ys.ravel()], axis=1)).reshape(xs.shape)
    fig.axes[0].contour(xs, ys, truth, levels=[0.5], colors="k", linestyles="--", linewidths=1)
    run.save_figure("probability_map", fig, "learned probability map and the true boundary")
    return {
        "train_loss": final_train["loss"],
        "train_accuracy": final_train["accuracy"],
        "test_loss": final_test["loss"],
        "test_accuracy": final_test["accuracy"],
        "epochs": history[-1]["epoch"],
    }
