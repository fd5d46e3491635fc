"""The classifier pipeline: a classifier experiment is a config, a network and a target.

:func:`run_classifier` does what every image-classification experiment does: load the train and
test splits, standardise them per channel (``standardize``), hold out ``val_size`` training
images, build the network and the optimizer the config names, train with cross-entropy
(:func:`train_classifier`: curves, predictions, misclassified examples and the test set's
confusion matrix, with a table of the most-confused pairs in the report), and say in the
report whether the :class:`Target` was reached. An experiment module adds its config dataclass, a
:class:`Classifier` and a three-line run function (``digits_mlp.py`` is the shortest).

The config's fields decide the rest. Every classifier config has ``epochs`` (or ``steps``: a
run of that many steps, whose last epoch may be partial), ``batch_size``, ``val_size``, the
optimizer's fields (``optimizer``, ``lr``, ``momentum``, ``weight_decay``) and those of its
network (``hidden``, ``activation`` for :data:`MLP`; ``layers``, ``hidden``, ``batchnorm`` for
:data:`CNN`). Optional ones: ``dataset`` (when the spec leaves it open), ``max_train`` /
``max_test`` / ``download`` (downloaded data sets), ``schedule`` (``cosine`` anneals lr to 0
over the run), ``dropout``, ``conv_dropout`` and ``dtype`` (``float32`` or ``float64``: the
images and the network; float64 makes a run comparable with PyTorch to ~1e-12).

This module also holds the CNN builder the CNN experiments share: :func:`conv_net` builds a
VGG-style ``Sequential`` from a layer spec such as ``("32", "M", "64", "M")``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import handgrad.nn as nn
import handgrad.optim as optim
from handgrad import viz
from handgrad.data import (
    Compose,
    DataLoader,
    Dataset,
    RandomHorizontalFlip,
    RandomShift,
    Standardizer,
    load,
)
from handgrad.experiments.common import mlp, optimizer_for, predict_proba, split_validation
from handgrad.experiments.registry import check
from handgrad.train import Callback, LRSchedulerCallback, Run, evaluate

__all__ = [
    "CNN",
    "MLP",
    "Classifier",
    "Network",
    "Splits",
    "Target",
    "augmentation",
    "check_layer_spec",
    "confused_pairs",
    "confusion_matrix",
    "confusion_table",
    "conv_net",
    "describe",
    "prepare_splits",
    "run_classifier",
    "schedule_callbacks",
    "train_classifier",
]


# -- what a classifier experiment declares -------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A number the run should reach, and the sentence the report states it in.

    ``text`` is formatted with ``target`` (the value), ``met`` (``reached`` or ``NOT reached``),
    the run's results (``test_accuracy``, ``epochs``, ``steps``, ``train_time_s``, ...) and the
    fields the caller passes (:func:`run_classifier` passes ``cfg``, ``n_train``, ``n_test``).
    ``full(cfg, n_train_read, n_test_read)`` says whether the run's data is the data the target
    is stated for (None: always); where it is not, the report says ``partial`` instead.
    """

    value: float
    text: str
    metric: str = "test_accuracy"
    above: bool = False  # met only strictly above the value, not at it
    full: Callable[[Any, int, int], bool] | None = None
    partial: str = ""

    def note(self, results: Mapping[str, Any], *, full: bool = True, **fields: Any) -> str:
        if not full:
            return self.partial.format(target=self.value, **fields)
        value = results[self.metric]
        met = value > self.value if self.above else value >= self.value
        verdict = "reached" if met else "NOT reached"
        return self.text.format(target=self.value, met=verdict, **results, **fields)


@dataclass(frozen=True)
class Network:
    """How a classifier experiment builds its network from its config.

    ``build(cfg, input_shape, num_classes, rng)`` returns the model (logits out);
    ``describe(cfg, input_shape, num_classes)`` a one-line summary for the figures' titles.
    A ``flat`` network takes vectors (N, C*H*W): the images are flattened for it.
    """

    build: Callable[[Any, tuple[int, ...], int, np.random.Generator], nn.Module]
    describe: Callable[[Any, tuple[int, ...], int], str]
    flat: bool = False


@dataclass(frozen=True)
class Classifier:
    """One classifier experiment: its data, network, title and target.

    ``dataset`` None takes the config's ``dataset`` field. ``title`` is formatted with ``cfg``
    and ``net`` (the network's one-line summary). With ``val_size=0`` the curves show nothing
    held out, or the test set if ``test_curves``.
    """

    dataset: str | None
    network: Network
    title: str
    target: Target
    standardize: bool = False  # per channel, with the training images' statistics
    test_curves: bool = False


# -- scoring: the confusion matrix ---------------------------------------------------------
def confusion_matrix(labels: Any, predicted: Any, num_classes: int) -> np.ndarray:
    """Counts (K, K): ``[i, j]`` is how many examples of true class i were predicted as j.

    >>> confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 1], 3).tolist()
    [[1, 1, 0], [0, 1, 0], [0, 1, 1]]
    """
    y = np.asarray(labels).astype(np.intp, copy=False).ravel()
    p = np.asarray(predicted).astype(np.intp, copy=False).ravel()
    if y.shape != p.shape:
        raise ValueError(f"confusion_matrix: {len(y)} labels but {len(p)} predictions")
    for name, v in (("label", y), ("prediction", p)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"confusion_matrix: a {name} outside 0..{num_classes - 1}")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y, p), 1)
    return counts


def confused_pairs(counts: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The ``k`` largest off-diagonal cells as ``(true, predicted, count)``, largest first
    (ties by true class, then predicted); cells with no examples are left out."""
    off = np.array(counts, dtype=np.int64)
    np.fill_diagonal(off, 0)
    i, j = np.nonzero(off)
    order = np.lexsort((j, i, -off[i, j]))[:k]
    return [(int(i[o]), int(j[o]), int(off[i[o], j[o]])) for o in order]


def confusion_table(counts: np.ndarray, classes: Sequence[str], k: int = 5) -> str:
    """The report's paragraph: the most-confused pairs as a Markdown table."""
    counts = np.asarray(counts)
    wrong = int(counts.sum() - np.trace(counts))
    head = f"Most-confused pairs on the test set ({wrong} of {int(counts.sum())} wrong):"
    pairs = confused_pairs(counts, k)
    if not pairs:
        return f"{head} none."
    totals = counts.sum(axis=1)
    lines = [
        head,
        "",
        "| true | predicted as | count | share of the true class |",
        "|---|---|---|---|",
    ]
    for i, j, n in pairs:
        lines.append(f"| {classes[i]} | {classes[j]} | {n} | {n / totals[i]:.1%} |")
    return "\n".join(lines)


# -- training and scoring ------------------------------------------------------------------
def train_classifier(
    run: Run,
    model: nn.Module,
    optimizer: optim.Optimizer,
    *,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    test: tuple[np.ndarray, np.ndarray],
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    classes: tuple[str, ...],
    title: str,
    max_steps: int | None = None,
    callbacks: Sequence[Callback] = (),
    test_images: np.ndarray | None = None,
    val_label: str = "validation",
    transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
) -> dict[str, float]:
    """Train a classifier with cross-entropy on ``train``, score it on ``val`` after every epoch
    and on ``test`` at the end; save the curves (and predictions on test images).
    ``transform`` (random augmentation) is applied to every training batch, never to val/test.

    Returns the final numbers: train/val (of the last epoch) and test loss and accuracy, the
    epochs and steps done, and the training time in seconds.
    """
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(
        train[0], train[1], batch_size=batch_size, shuffle=True, rng=rng, transform=transform
    )
    history = run.fit(
        model,
        loss_fn,
        optimizer,
        loader,
        val=val,
        epochs=epochs,
        callbacks=callbacks,
        max_steps=max_steps,
    )
    scores = evaluate(model, loss_fn, test)
    last = history[-1]
    run.save_figure(
        "curves",
        viz.plot_history(history, title=title, val_label=val_label),
        "loss and accuracy per epoch (train: running mean over the epoch)",
    )
    # every test prediction (batches of 1024: a CNN's im2col of 8192 images is large)
    predicted = predict_proba(model, test[0], batch_size=1024).argmax(axis=1)
    counts = confusion_matrix(test[1], predicted, len(classes))
    run.save_figure(
        "confusion",
        viz.plot_confusion(counts, classes, title=f"test set: {title}"),
        "confusion matrix on the test set: rows the true class, columns the predicted one",
    )
    run.notes.append(confusion_table(counts, classes))
    if test_images is not None:
        k = min(16, len(test_images))
        run.save_figure(
            "predictions",
            viz.plot_image_predictions(test_images[:k], test[1][:k], predicted[:k], classes),
            f"the first {k} test images: predicted (true), wrong in red",
        )
        wrong = np.flatnonzero(predicted != np.asarray(test[1]))[:16]
        if len(wrong):
            run.save_figure(
                "mistakes",
                viz.plot_image_predictions(
                    test_images[wrong],
                    np.asarray(test[1])[wrong],
                    predicted[wrong],
                    classes,
                    title="misclassified: predicted (true)",
                ),
                f"the first {len(wrong)} misclassified test images: predicted (true class)",
            )
    results: dict[str, float] = {
        "test_accuracy": scores["accuracy"],
        "test_loss": scores["loss"],
        "train_accuracy": last["train_accuracy"],
        "train_loss": last["train_loss"],
    }
    if val is not None and val_label == "validation":
        results["val_accuracy"] = last["val_accuracy"]
        results["val_loss"] = last["val_loss"]
    results["epochs"] = last["epoch"]
    results["steps"] = last["step"]
    results["train_time_s"] = sum(h["time"] for h in history)
    return results


# -- the pipeline --------------------------------------------------------------------------
def _load(dataset: str, split: str, cfg: Any, download: bool) -> Dataset:
    options: dict[str, int] = {}
    limit = getattr(cfg, f"max_{split}", None)
    if limit is not None:
        options["n"] = limit
    return load(dataset, split, data_dir=cfg.data_dir, download=download, seed=cfg.seed, **options)


@dataclass(frozen=True)
class Splits:
    """A classifier experiment's data, ready to train on: the training images without the
    ``val_size`` held out for validation, those held out, and the test set, in the config's
    dtype (flattened for a flat network); the raw test images for the figures; how many images
    each split's files gave."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    test_images: np.ndarray  # (N, C, H, W) as loaded: for pictures, not for the network
    classes: tuple[str, ...]
    n_train: int  # images read from the training files (before the validation split)
    n_test: int


def prepare_splits(spec: Classifier, cfg: Any, *, download: bool | None = None) -> Splits:
    """Load the data ``spec`` names (or ``cfg.dataset``), standardise it per channel with the
    training images' statistics when the spec asks, flatten it for a flat network, cast it to
    the config's dtype and hold out ``cfg.val_size`` training images (drawn by ``cfg.seed``).
    ``download`` (default: the config's ``download`` field, else True) may fetch missing files.
    """
    dataset = spec.dataset or cfg.dataset
    if download is None:
        download = getattr(cfg, "download", True)
    train = _load(dataset, "train", cfg, download)
    test = _load(dataset, "test", cfg, download)
    X, X_test = train.X, test.X  # (N, C, H, W)
    if spec.standardize:
        # per-channel statistics of the training images only: the test set stays unseen
        scaler = Standardizer(per="channel").fit(X)
        X, X_test = scaler.transform(X), scaler.transform(X_test)
    if spec.network.flat:
        X, X_test = X.reshape(len(X), -1), X_test.reshape(len(X_test), -1)  # (N, C*H*W)
    dtype = _dtype(cfg)
    X, X_test = X.astype(dtype, copy=False), X_test.astype(dtype, copy=False)
    X_tr, y_tr, X_val, y_val = split_validation(X, train.y, cfg.val_size, cfg.seed)
    return Splits(
        X_train=X_tr,
        y_train=y_tr,
        X_val=X_val,
        y_val=y_val,
        X_test=X_test,
        y_test=test.y,
        test_images=test.X,
        classes=tuple(train.classes),
        n_train=len(train),
        n_test=len(test),
    )


def run_classifier(spec: Classifier, cfg: Any, run: Run) -> dict[str, float]:
    """Train and score the classifier ``spec`` describes with the settings ``cfg``; returns the
    numbers of :func:`train_classifier`. See the module's docstring for the config's fields."""
    data = prepare_splits(spec, cfg)
    X_tr, y_tr, X_test, y_test = data.X_train, data.y_train, data.X_test, data.y_test
    rng = np.random.default_rng(cfg.seed)
    shape, K = tuple(X_tr.shape[1:]), len(data.classes)
    model = spec.network.build(cfg, shape, K, rng)
    opt = optimizer_for(cfg, model.parameters())

    per_epoch = -(-len(X_tr) // cfg.batch_size)  # steps; the last batch may be smaller
    if hasattr(cfg, "steps"):  # a run measured in steps: its last epoch may be partial
        epochs, max_steps, total_steps = -(-cfg.steps // per_epoch), cfg.steps, cfg.steps
    else:
        epochs, max_steps, total_steps = cfg.epochs, None, cfg.epochs * per_epoch
    val: tuple[np.ndarray, np.ndarray] | None
    if cfg.val_size:
        val, val_label = (data.X_val, data.y_val), "validation"
    elif spec.test_curves:
        val, val_label = (X_test, y_test), "test"
    else:
        val, val_label = None, "validation"
    results = train_classifier(
        run,
        model,
        opt,
        train=(X_tr, y_tr),
        val=val,
        val_label=val_label,
        test=(X_test, y_test),
        epochs=epochs,
        max_steps=max_steps,
        batch_size=cfg.batch_size,
        rng=rng,
        classes=data.classes,
        callbacks=schedule_callbacks(opt, getattr(cfg, "schedule", "constant"), total_steps),
        title=spec.title.format(cfg=cfg, net=spec.network.describe(cfg, shape, K)),
        test_images=data.test_images,
        transform=augmentation(cfg),
    )
    target = spec.target
    full = target.full is None or target.full(cfg, data.n_train, data.n_test)
    note = target.note(results, full=full, cfg=cfg, n_train=len(X_tr), n_test=data.n_test)
    run.notes.append(note)
    return results


def augmentation(cfg: Any) -> Compose | None:
    """The training batches' random augmentation from the optional config fields ``shift``
    (max pixels of a random translation) and ``flip`` (mirror left-right with probability 1/2);
    None when both are off."""
    steps: list[Any] = []
    if getattr(cfg, "shift", 0):
        steps.append(RandomShift(cfg.shift))
    if getattr(cfg, "flip", False):
        steps.append(RandomHorizontalFlip())
    return Compose(*steps) if steps else None


# -- networks ------------------------------------------------------------------------------
def _dtype(cfg: Any) -> np.dtype:
    # an optional config field: float32 unless the config has dtype=float64
    return np.dtype(getattr(cfg, "dtype", "float32"))


def _build_mlp(
    cfg: Any, in_shape: tuple[int, ...], num_classes: int, rng: np.random.Generator
) -> nn.Sequential:
    dropout = getattr(cfg, "dropout", 0.0)
    return mlp(
        in_shape[0],
        cfg.hidden,
        num_classes,
        cfg.activation,
        rng=rng,
        dropout=dropout,
        dtype=_dtype(cfg),
    )


def _describe_mlp(cfg: Any, in_shape: tuple[int, ...], num_classes: int) -> str:
    return " -> ".join(map(str, (in_shape[0], *cfg.hidden, num_classes)))


def _build_cnn(
    cfg: Any, in_shape: tuple[int, ...], num_classes: int, rng: np.random.Generator
) -> nn.Sequential:
    C, H, W = in_shape
    return conv_net(
        (C, H, W),
        cfg.layers,
        cfg.hidden,
        num_classes,
        rng=rng,
        batchnorm=cfg.batchnorm,
        conv_dropout=getattr(cfg, "conv_dropout", 0.0),
        dropout=getattr(cfg, "dropout", 0.0),
        dtype=_dtype(cfg),
    )


def _describe_cnn(cfg: Any, in_shape: tuple[int, ...], num_classes: int) -> str:
    C, H, W = in_shape
    return f"{describe((C, H, W), cfg.layers, cfg.hidden)} -> {num_classes}"


MLP = Network(_build_mlp, _describe_mlp, flat=True)
"""Linear -> activation (-> Dropout) per width of ``hidden``, then the output Linear."""

CNN = Network(_build_cnn, _describe_cnn)
""":func:`conv_net` from ``layers``, ``hidden``, ``batchnorm`` (``conv_dropout``, ``dropout``)."""


def check_layer_spec(cfg: Any, name: str = "layers") -> None:
    """Validate a layer spec field: positive ints (conv widths) and ``M`` (max pooling)."""
    spec = getattr(cfg, name)
    ok = bool(spec) and all(t == "M" or (t.isdigit() and int(t) >= 1) for t in spec)
    check(cfg, name, ok, "conv widths (ints >= 1) and M (2x2 max pooling), e.g. 32,M,64,M")


def conv_net(
    in_shape: tuple[int, int, int],
    layers: Sequence[str],
    hidden: Sequence[int],
    num_classes: int,
    *,
    rng: np.random.Generator,
    batchnorm: bool = False,
    conv_dropout: float = 0.0,
    dropout: float = 0.0,
    dtype: Any = np.float32,
) -> nn.Sequential:
    """A VGG-style network from a spec: ``"32"`` is Conv2d(., 32, 3, padding=1) (+ BatchNorm2d)
    + ReLU, ``"M"`` is MaxPool2d(2) (+ Dropout(conv_dropout)); then Flatten, for each width in
    ``hidden`` Linear + ReLU (+ Dropout(dropout)), and a Linear output layer (logits).

    A convolution followed by ``"M"`` is built as Conv2d (+ BatchNorm2d) -> MaxPool2d -> ReLU:
    max-pooling commutes with ReLU (``max(relu(a), relu(b)) == relu(max(a, b))``), so this is
    the same function with the same gradients, bit for bit (where the window's maximum is
    positive both route the gradient to its first position; where it is not, both give 0),
    and the ReLU runs on a quarter of the values. The parameter layers keep their indices, so
    a checkpoint of either order loads into the other.

    ``in_shape`` is (C, H, W); every ``M`` halves H and W (rounding down), which must stay >= 1.
    """
    C, H, W = in_shape
    out: list[nn.Module] = []
    relu_due = False  # a convolution's ReLU, not yet placed (it goes after a pooling)
    for token in layers:
        if token == "M":
            if H < 2 or W < 2:
                raise ValueError(f"conv_net: cannot max-pool a {H}x{W} map (spec {list(layers)})")
            out.append(nn.MaxPool2d(2))
            if relu_due:
                out.append(nn.ReLU())
                relu_due = False
            H, W = H // 2, W // 2
            if conv_dropout > 0:
                out.append(nn.Dropout(conv_dropout, rng=rng))
            continue
        if relu_due:
            out.append(nn.ReLU())
        width = int(token)
        out.append(nn.Conv2d(C, width, 3, padding=1, rng=rng, dtype=dtype))
        if batchnorm:
            out.append(nn.BatchNorm2d(width, dtype=dtype))
        relu_due = True
        C = width
    if relu_due:
        out.append(nn.ReLU())
    out.append(nn.Flatten())
    features = C * H * W
    for h in hidden:
        out += [nn.Linear(features, h, rng=rng, dtype=dtype), nn.ReLU()]
        if dropout > 0:
            out.append(nn.Dropout(dropout, rng=rng))
        features = h
    out.append(nn.Linear(features, num_classes, rng=rng, dtype=dtype))
    return nn.Sequential(*out)


def describe(in_shape: tuple[int, int, int], layers: Sequence[str], hidden: Sequence[int]) -> str:
    """A one-line summary such as ``8x8: conv16 conv32 pool fc64``."""
    parts = ["pool" if t == "M" else f"conv{t}" for t in layers]
    return " ".join([f"{in_shape[1]}x{in_shape[2]}:", *parts, *(f"fc{h}" for h in hidden)])


def schedule_callbacks(
    opt: optim.Optimizer, schedule: str, total_steps: int
) -> list[LRSchedulerCallback]:
    """``cosine``: lr annealed to 0 over ``total_steps`` steps; ``constant``: nothing."""
    if schedule == "cosine":
        return [LRSchedulerCallback(optim.CosineAnnealingLR(opt, T_max=total_steps), "step")]
    return []
