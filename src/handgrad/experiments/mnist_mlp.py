"""``mnist-mlp``: the 784 -> 512 -> 512 -> 10 ReLU MLP on MNIST (or Fashion-MNIST).

Cross-entropy on logits, Adam (or SGD with momentum) with the learning rate annealed to 0 by a
cosine over the steps, batch 128, 10 epochs. 5000 training images are held out for validation
(the schedule was chosen on it, never on the test set); the curves show train and validation
loss and accuracy per epoch, the final test accuracy is measured once at the end. The known
target: at least 98% test accuracy within 10 epochs on the full data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from handgrad.experiments.classifier import MLP, Classifier, Target, run_classifier
from handgrad.experiments.registry import Config, check, register
from handgrad.train import Run

__all__ = ["MNIST_MLP", "MnistMLPConfig", "run_mnist_mlp"]


@dataclass(frozen=True)
class MnistMLPConfig(Config):
    """``fashion-mnist`` has the same format and sizes as ``mnist``; ``max_train`` and
    ``max_test`` keep the first N images of each split; ``schedule="cosine"`` anneals the
    learning rate to 0 over the steps; ``dropout`` follows each hidden layer."""

    dataset: Literal["mnist", "fashion-mnist"] = "mnist"
    epochs: int = 10
    batch_size: int = 128
    hidden: tuple[int, ...] = (512, 512)
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu"] = "relu"
    optimizer: Literal["adam", "sgd", "adamw", "rmsprop"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"
    dropout: float = 0.0
    val_size: int = 5000
    max_train: int | None = None
    max_test: int | None = None
    download: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "dropout", 0 <= self.dropout < 1, "in [0, 1)")


MNIST_MLP = Classifier(
    dataset=None,
    network=MLP,
    title="{cfg.dataset}: {net} {cfg.activation} MLP, {cfg.optimizer} lr {cfg.lr:g}",
    target=Target(
        0.98,
        "Target: test accuracy >= {target:.0%} within 10 epochs: {met} "
        "({test_accuracy:.2%} after {epochs} epochs).",
        full=lambda cfg, *_: (cfg.max_train, cfg.max_test, cfg.dataset) == (None, None, "mnist"),
        partial="Trained on {n_train} of the {cfg.dataset} training images and tested on "
        "{n_test}; the {target:.0%} target applies to the full MNIST data.",
    ),
)


@register(
    "mnist-mlp",
    MnistMLPConfig,
    "784 -> 512 -> 512 -> 10 ReLU MLP on MNIST, >= 98% test",
    order=21,
)
def run_mnist_mlp(cfg: MnistMLPConfig, run: Run) -> dict[str, float]:
    return run_classifier(MNIST_MLP, cfg, run)
