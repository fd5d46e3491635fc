"""``cifar10-mlp``: a fully connected network on CIFAR-10 colour photos.

Each 32x32x3 image is standardised per colour channel (statistics of the training set) and
flattened to 3072 features. The course configuration: hidden layers 1024 and 512 (ReLU), SGD
with momentum 0.9, lr 0.01 annealed to 0 by a cosine over the steps, weight decay 5e-4, batch
128, 15000 steps (about 38 epochs). Train and test loss and accuracy are recorded after every
epoch. The known target for a tuned MLP is above 52% test accuracy; convolutions do far
better (see the CNN experiments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from handgrad.experiments.classifier import MLP, Classifier, Target, run_classifier
from handgrad.experiments.registry import Config, check, register
from handgrad.train import Run

__all__ = ["CIFAR10_MLP", "Cifar10MLPConfig", "run_cifar10_mlp"]


@dataclass(frozen=True)
class Cifar10MLPConfig(Config):
    """The run is measured in ``steps`` (the last epoch may be partial), over which ``cosine``
    anneals lr to 0. ``dropout`` follows each hidden layer. With ``val_size=0`` the curves show
    the test set."""

    hidden: tuple[int, ...] = (1024, 512)
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu"] = "relu"
    steps: int = 15000
    batch_size: int = 128
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    dropout: float = 0.0
    val_size: int = 0
    max_train: int | None = None
    max_test: int | None = None
    download: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("steps", "batch_size"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "dropout", 0 <= self.dropout < 1, "in [0, 1)")


CIFAR10_MLP = Classifier(
    dataset="cifar10",
    network=MLP,
    title="cifar10: {net} {cfg.activation} MLP, {cfg.optimizer} lr {cfg.lr:g}",
    standardize=True,
    test_curves=True,
    target=Target(
        0.52,
        "Target: test accuracy above {target:.0%}: {met} ({test_accuracy:.2%} after {steps} "
        "steps).",
        above=True,
        full=lambda cfg, *_: (cfg.max_train, cfg.max_test) == (None, None),
        partial="Trained on {n_train} CIFAR-10 training images and tested on {n_test}; the "
        "{target:.0%} target applies to the full data.",
    ),
)


@register(
    "cifar10-mlp",
    Cifar10MLPConfig,
    "an MLP on CIFAR-10 (course config), > 52% test",
    order=22,
)
def run_cifar10_mlp(cfg: Cifar10MLPConfig, run: Run) -> dict[str, float]:
    return run_classifier(CIFAR10_MLP, cfg, run)
