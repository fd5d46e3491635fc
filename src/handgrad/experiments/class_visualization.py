"""``class-visualization``: the input that a trained network finds most typical of each class.

A classifier (an MLP or a small CNN, Flatten first so that it takes images) is trained on the
8x8 digits (default), MNIST, Fashion-MNIST or CIFAR-10. Then, for every class c, gradient
ascent with Adam on the *input* maximises the class logit z_c (``score=log_softmax`` takes
log p_c instead), starting from grey or noise, with switchable regularisers: L2 decay towards
grey, total variation, a blur penalty, and random jitter. The input gradient is
``model.backward`` of a one-hot ``grad_out`` at the logits; the regularisers' gradients are
written by hand in :mod:`handgrad.inputspace`.

Figures: the training curves, one image per class with the model's probability for it (target:
at least 0.99 each), the same classes under each regulariser alone, and saliency maps
(|d logit / d pixel|) of real test images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

import handgrad.nn as nn
from handgrad.data import load
from handgrad.experiments.classifier import Target, train_classifier
from handgrad.experiments.common import make_optimizer, mlp
from handgrad.experiments.registry import Config, check, register
from handgrad.inputspace import saliency, visualize_classes
from handgrad.train import Run
from handgrad.viz.visualize import plot_class_images, plot_regularizer_grid, plot_saliency

__all__ = ["ClassVisualizationConfig", "build_classifier", "run_class_visualization"]

TARGET = Target(
    0.99,
    "Target: the model's probability for each visualised class >= {target}: {met} (smallest "
    "{min_target_probability:.4f}, mean {mean_target_probability:.4f} over {classes} classes).",
    metric="min_target_probability",
)


@dataclass(frozen=True)
class ClassVisualizationConfig(Config):
    """The classifier (trained with Adam at ``lr``) and the ascent on its input.

    Attributes:
        model: ``mlp`` (Flatten, hidden ReLU layers) or ``cnn`` (two conv-ReLU-maxpool blocks
            with ``channels``, then a hidden ReLU layer of ``hidden[0]`` and the output).
        score: the maximised score, ``logit`` (z_c) or ``log_softmax`` (log p_c).
        init: start from ``grey`` (the mean pixel value) or ``noise`` (grey + N(0, 0.1^2)).
        steps, vis_lr: Adam on the input.
        l2, tv, blur: weights of the regularisers (0 switches one off); ``blur_sigma`` the
            Gaussian's width in pixels; ``jitter`` the largest random shift in pixels.
        compare: also draw each regulariser alone (a row each) for comparison; one switched
            off in the config is shown at its demonstration value (``DEMO``).
    """

    dataset: Literal["digits", "mnist", "fashion-mnist", "cifar10"] = "digits"
    model: Literal["mlp", "cnn"] = "mlp"
    hidden: tuple[int, ...] = (128,)
    channels: tuple[int, int] = (16, 32)
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    max_train: int | None = None
    max_test: int | None = None
    download: bool = True
    score: Literal["logit", "log_softmax"] = "logit"
    init: Literal["grey", "noise"] = "grey"
    steps: int = 200
    vis_lr: float = 0.05
    l2: float = 0.3
    tv: float = 0.1
    blur: float = 1.0
    blur_sigma: float = 0.7
    jitter: int = 0
    compare: bool = True
    saliency_images: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("steps", "saliency_images"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "hidden", len(self.hidden) >= 1 and min(self.hidden) >= 1, "widths >= 1")
        check(self, "channels", min(self.channels) >= 1, "widths >= 1")
        for name in ("lr", "vis_lr", "blur_sigma"):
            check(self, name, getattr(self, name) > 0, "> 0")
        for name in ("l2", "tv", "blur", "jitter"):
            check(self, name, getattr(self, name) >= 0, ">= 0")


def build_classifier(
    kind: str,
    image_shape: tuple[int, int, int],
    classes: int,
    *,
    hidden: tuple[int, ...] = (128,),
    channels: tuple[int, int] = (16, 32),
    rng: np.random.Generator,
) -> nn.Sequential:
    """An MLP or CNN taking images (N, C, H, W) to logits (N, classes).

    ``cnn``: [Conv2d 3x3 pad 1 -> ReLU -> MaxPool2d 2] for each of ``channels``, Flatten,
    Linear -> ReLU (``hidden[0]``), Linear. H and W must be divisible by 4.
    """
    C, H, W = image_shape
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), *mlp(C * H * W, hidden, classes, "relu", rng=rng))
    if kind != "cnn":
        raise ValueError(f"build_classifier: unknown model {kind!r}; valid: mlp, cnn")
    if H % 4 or W % 4:
        raise ValueError(f"build_classifier: cnn needs H and W divisible by 4, got {(H, W)}")
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(C, c1, 3, padding=1, rng=rng),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, rng=rng),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * (H // 4) * (W // 4), hidden[0], rng=rng),
        nn.ReLU(),
        nn.Linear(hidden[0], classes, rng=rng),
    )


# the weight each regulariser is shown at in the comparison when the config switches it off
DEMO = {"l2": 0.3, "tv": 0.1, "blur": 1.0, "jitter": 1}


def _regularizer_settings(cfg: ClassVisualizationConfig) -> list[tuple[str, dict[str, Any]]]:
    """(label, keyword arguments) for: no regulariser, then each one alone."""
    rows: list[tuple[str, dict[str, Any]]] = [("none", {})]
    for name, demo in DEMO.items():
        weight = getattr(cfg, name) or demo
        kw: dict[str, Any] = {name: weight}
        if name == "blur":
            kw["blur_sigma"] = cfg.blur_sigma
        rows.append((f"{name} {weight:g} only", kw))
    return rows


@register(
    "class-visualization",
    ClassVisualizationConfig,
    "gradient ascent on the input: one image per class (p >= 0.99), saliency maps",
    order=41,
)
def run_class_visualization(cfg: ClassVisualizationConfig, run: Run) -> dict[str, float]:
    common: dict[str, Any] = {"seed": cfg.seed}
    if cfg.dataset != "digits":
        common |= {"data_dir": cfg.data_dir, "download": cfg.download}
    if cfg.dataset in ("mnist", "fashion-mnist"):
        train = load(cfg.dataset, "train", n=cfg.max_train, **common)
        test = load(cfg.dataset, "test", n=cfg.max_test, **common)
    else:
        train, test = load(cfg.dataset, "train", **common), load(cfg.dataset, "test", **common)
    X, y = train.X[: cfg.max_train], train.y[: cfg.max_train]  # (N, C, H, W), values in [0, 1]
    X_test, y_test = test.X[: cfg.max_test], test.y[: cfg.max_test]
    image_shape: tuple[int, int, int] = tuple(X.shape[1:])  # type: ignore[assignment]
    K = len(train.classes)

    rng = np.random.default_rng(cfg.seed)
    model = build_classifier(
        cfg.model, image_shape, K, hidden=cfg.hidden, channels=cfg.channels, rng=rng
    )
    opt = make_optimizer("adam", model.parameters(), lr=cfg.lr)
    results = train_classifier(
        run,
        model,
        opt,
        train=(X, y),
        val=(X_test, y_test),
        test=(X_test, y_test),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        rng=rng,
        classes=train.classes,
        title=f"{cfg.dataset}: {cfg.model}, Adam lr {cfg.lr:g}",
        val_label="test",
    )

    # -- class visualisation: a generator of its own, so training settings do not move it --
    center = X.mean(axis=(0, 2, 3)).reshape(-1, 1, 1).astype(np.float64)  # grey per channel
    targets = np.arange(K)
    common_vis: dict[str, Any] = {
        "steps": cfg.steps,
        "lr": cfg.vis_lr,
        "init": cfg.init,
        "score": cfg.score,
        "center": center,
        "value_range": (float(X.min()), float(X.max())),
    }
    chosen = {"l2": cfg.l2, "tv": cfg.tv, "blur": cfg.blur, "jitter": cfg.jitter}
    vis = visualize_classes(
        model,
        targets,
        image_shape,
        blur_sigma=cfg.blur_sigma,
        rng=np.random.default_rng([cfg.seed, 0xC1A55]),
        **chosen,
        **common_vis,
    )
    regs = ", ".join(f"{k} {v:g}" for k, v in chosen.items() if v) or "no regulariser"
    run.save_figure(
        "class_images",
        plot_class_images(
            vis.images,
            targets,
            vis.probs,
            train.classes,
            title=f"maximise the {cfg.score} of each class ({cfg.init} start, {regs})",
        ),
        f"one input per class after {cfg.steps} Adam steps; p = the model's probability",
    )
    if cfg.compare:
        rows = []
        for label, kw in _regularizer_settings(cfg):
            r = visualize_classes(
                model,
                targets,
                image_shape,
                rng=np.random.default_rng([cfg.seed, 0xC1A55]),
                **kw,
                **common_vis,
            )
            rows.append((label, r.images, r.probs))
        rows.append((f"all: {regs}", vis.images, vis.probs))
        run.save_figure(
            "regularizers",
            plot_regularizer_grid(rows, targets, train.classes),
            "the same optimisation under no regulariser, each one alone, and all together",
        )

    # -- saliency maps of real test images --------------------------------------------------
    k = min(cfg.saliency_images, len(X_test))
    maps, predicted = saliency(model, X_test[:k], score=cfg.score)
    run.save_figure(
        "saliency",
        plot_saliency(X_test[:k], maps, predicted, y_test[:k], train.classes),
        f"saliency maps: |d {cfg.score} of the predicted class / d pixel| (max over channels)",
    )

    results |= {
        "min_target_probability": float(vis.probs.min()),
        "mean_target_probability": float(vis.probs.mean()),
        "final_mean_score": vis.history[-1]["score"],
    }
    run.notes.append(TARGET.note(results, classes=K))
    return results
