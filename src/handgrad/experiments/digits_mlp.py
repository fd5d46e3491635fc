"""``digits-mlp``: an MLP on the bundled 8x8 digits (1438 train / 359 test images).

The images (values in [0, 1]) are flattened to 64 features; a ReLU MLP with a softmax output
(cross-entropy on logits) is trained with Adam. It reaches 97% test accuracy in a few
seconds, which makes it the quick check that the whole stack learns real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from handgrad.experiments.classifier import MLP, Classifier, Target, run_classifier
from handgrad.experiments.registry import Config, register
from handgrad.train import Run

__all__ = ["DIGITS_MLP", "DigitsMLPConfig", "run_digits_mlp"]


@dataclass(frozen=True)
class DigitsMLPConfig(Config):
    """``hidden=64,64`` gives two hidden layers; ``momentum`` only acts on sgd and rmsprop;
    ``dtype=float64`` trains in double precision (to compare with PyTorch, ``handgrad export``)."""

    epochs: int = 40
    batch_size: int = 32
    hidden: tuple[int, ...] = (128,)
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu"] = "relu"
    optimizer: Literal["adam", "sgd", "adamw", "rmsprop"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    val_size: int = 200
    dtype: Literal["float32", "float64"] = "float32"


DIGITS_MLP = Classifier(
    dataset="digits",
    network=MLP,
    title="digits-mlp: {net}, {cfg.optimizer}",
    target=Target(
        0.97,
        "Target: test accuracy >= {target:.0%}: {met} ({test_accuracy:.2%} on {n_test} test "
        "images).",
    ),
)


@register(
    "digits-mlp",
    DigitsMLPConfig,
    "an MLP on the bundled 8x8 digits, >= 97% test accuracy",
    order=20,
)
def run_digits_mlp(cfg: DigitsMLPConfig, run: Run) -> dict[str, float]:
    return run_classifier(DIGITS_MLP, cfg, run)
