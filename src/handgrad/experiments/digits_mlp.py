"""``digits-mlp``: an MLP on the bundled 8x8 digits (1438 train / 359 test images).

The images (values in [0, 1]) are flattened to 64 features; a ReLU MLP with a softmax output
(cross-entropy on logits) is trained with Adam. It reaches 97% test accuracy in a few
seconds, which makes it the quick check that the whole stack learns real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from handgrad.data import load
from handgrad.experiments.common import mlp, optimizer_for, split_validation, train_classifier
from handgrad.experiments.registry import Config, register
from handgrad.train import Run

__all__ = ["DigitsMLPConfig", "run_digits_mlp"]

TARGET_ACCURACY = 0.97


@dataclass(frozen=True)
class DigitsMLPConfig(Config):
    """Settings of ``digits-mlp``.

    Attributes:
        epochs, batch_size: passes over the training set and samples per step.
        hidden: widths of the hidden layers, e.g. ``hidden=128`` or ``hidden=64,64``.
        activation: the hidden layers' nonlinearity.
        optimizer, lr, momentum, weight_decay: the optimizer (momentum only for sgd/rmsprop).
        val_size: training images held out for validation after every epoch.
    """

    epochs: int = 40
    batch_size: int = 32
    hidden: tuple[int, ...] = (128,)
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu"] = "relu"
    optimizer: Literal["adam", "sgd", "adamw", "rmsprop"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    val_size: int = 200


@register("digits-mlp", DigitsMLPConfig, "an MLP on the bundled 8x8 digits, >= 97% test accuracy")
def run_digits_mlp(cfg: DigitsMLPConfig, run: Run) -> dict[str, float]:
    train = load("digits", "train", seed=cfg.seed)
    test = load("digits", "test", seed=cfg.seed)
    X, y = train.X.reshape(len(train), -1), train.y  # (N, 64)
    X_test = test.X.reshape(len(test), -1)
    X_tr, y_tr, X_val, y_val = split_validation(X, y, cfg.val_size, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = mlp(X.shape[1], cfg.hidden, len(train.classes), cfg.activation, rng=rng)
    opt = optimizer_for(cfg, model.parameters())
    results = train_classifier(
        run,
        model,
        opt,
        train=(X_tr, y_tr),
        val=(X_val, y_val) if cfg.val_size else None,
        test=(X_test, test.y),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        rng=rng,
        classes=train.classes,
        title=f"digits-mlp: 64 -> {' -> '.join(map(str, cfg.hidden))} -> 10, {cfg.optimizer}",
        test_images=test.X,
    )
    met = "reached" if results["test_accuracy"] >= TARGET_ACCURACY else "NOT reached"
    run.notes.append(
        f"Target: test accuracy >= {TARGET_ACCURACY:.0%}: {met} "
        f"({results['test_accuracy']:.2%} on {len(test)} test images)."
    )
    return results
