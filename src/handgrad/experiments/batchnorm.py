"""``batchnorm``: the same MLP with and without BatchNorm1d, and BatchNorm's two backward forms.

Three networks are trained one after the other from the same initial weights on the same
batches (digits or MNIST):

- ``plain``: Linear -> activation for each hidden width, then the output Linear;
- ``bn-compact``: Linear -> BatchNorm1d -> activation, BatchNorm's backward in the compact
  closed form ``dx = invstd / m * (m g - sum(g) - xhat * sum(g xhat))``;
- ``bn-staged``: the same network, BatchNorm's backward by the chain rule one node at a time
  (``xc = x - mean``, ``var``, ``invstd``, ``xhat``), the form a student derives first.

On the first batch of every epoch, :class:`BackwardFormCheck` runs each BatchNorm layer's
backward in both forms on the gradient that actually reaches it and records the largest
difference, which must be at the level of rounding: the two forms are the same function.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

import handgrad.nn as nn
from handgrad import viz
from handgrad.data import DataLoader, load
from handgrad.experiments.common import make_activation, make_optimizer, split_validation
from handgrad.experiments.registry import Config, check, register
from handgrad.nn.module import RemovableHandle
from handgrad.train import Callback, LambdaCallback, ModelCheckpoint, Run, TrainState, evaluate, fit

__all__ = [
    "VARIANTS",
    "BackwardFormCheck",
    "BatchNormConfig",
    "bn_mlp",
    "compare_backward_forms",
    "run_batchnorm",
]

VARIANTS = ("plain", "bn-compact", "bn-staged")
_LABELS = {
    "plain": "without BN",
    "bn-compact": "BN, compact backward",
    "bn-staged": "BN, staged backward",
}
_COLORS = {"plain": "tab:blue", "bn-compact": "tab:red", "bn-staged": "tab:orange"}
# the largest relative difference between the two backward forms accepted as rounding
FORM_TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
# the default epochs and validation sizes per data set (None in the config)
DEFAULT_EPOCHS = {"digits": 30, "mnist": 5, "fashion-mnist": 5}
DEFAULT_VAL_SIZE = {"digits": 200, "mnist": 5000, "fashion-mnist": 5000}


def bn_mlp(
    in_features: int,
    hidden: tuple[int, ...],
    out_features: int,
    activation: str,
    *,
    batchnorm: str | None,
    rng: np.random.Generator,
    dtype: Any = np.float32,
) -> nn.Sequential:
    """Linear (-> BatchNorm1d) -> activation per hidden width, then a Linear output layer.

    ``batchnorm`` is None (no BatchNorm) or the BatchNorm backward form, ``'compact'`` or
    ``'staged'``. BatchNorm has no random initialisation, so with the same ``rng`` state the
    Linear weights are the same with and without it.
    """
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers.append(nn.Linear(width, h, rng=rng, dtype=dtype))
        if batchnorm is not None:
            layers.append(nn.BatchNorm1d(h, backward_form=batchnorm, dtype=dtype))
        layers.append(make_activation(activation))
        width = h
    layers.append(nn.Linear(width, out_features, rng=rng, dtype=dtype))
    return nn.Sequential(*layers)


BatchNorm = nn.BatchNorm1d | nn.BatchNorm2d


def compare_backward_forms(layer: BatchNorm, grad_out: np.ndarray) -> tuple[float, float]:
    """Both backward forms of a BatchNorm layer on its last forward and ``grad_out``.

    Returns ``(max_abs, max_rel)``: the largest absolute difference between the two input
    gradients, and that difference over the largest absolute entry of the compact one. The
    parameters' ``.grad`` and the layer's ``backward_form`` are left as they were.
    """
    saved = [(p, p.grad.copy()) for p in layer.parameters()]
    form = layer.backward_form
    grads = {}
    try:
        for f in ("compact", "staged"):
            layer.backward_form = f
            grads[f] = type(layer).backward(layer, grad_out)  # the class's, not a wrapper
    finally:
        layer.backward_form = form
        for p, g in saved:
            p.grad[...] = g
    a, b = grads["compact"].astype(np.float64), grads["staged"].astype(np.float64)
    max_abs = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(a)))
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


class BackwardFormCheck(Callback):
    """On the first batch of every epoch, compares BatchNorm's two backward forms.

    At the start of an epoch it puts a backward pre-hook on every BatchNorm layer of the model
    (removed after one call): the hook calls :func:`compare_backward_forms` on the gradient
    that reaches the layer, then the layer's own backward runs as usual. ``epochs``,
    ``max_abs`` and ``max_rel`` hold, per checked epoch, the largest difference over the
    layers; they go into checkpoints.
    """

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.max_abs: list[float] = []
        self.max_rel: list[float] = []
        self._handles: dict[int, RemovableHandle] = {}

    def on_epoch_begin(self, state: TrainState) -> None:
        epoch = state.epoch + 1
        layers = [m for m in state.model.modules() if isinstance(m, BatchNorm)]
        if not layers:
            return
        self.epochs.append(epoch)
        self.max_abs.append(0.0)
        self.max_rel.append(0.0)
        self._remove_hooks()
        for layer in layers:
            self._handles[id(layer)] = layer.register_full_backward_pre_hook(self._compare)

    def _compare(self, layer: BatchNorm, grad_output: tuple[np.ndarray]) -> None:
        self._handles.pop(id(layer)).remove()  # once per epoch
        max_abs, max_rel = compare_backward_forms(layer, grad_output[0])
        self.max_abs[-1] = max(self.max_abs[-1], max_abs)
        self.max_rel[-1] = max(self.max_rel[-1], max_rel)

    def _remove_hooks(self) -> None:
        for handle in self._handles.values():
            handle.remove()
        self._handles.clear()

    def on_train_end(self, state: TrainState) -> None:
        self._remove_hooks()  # a run stopped before the first backward

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "max_abs": self.max_abs, "max_rel": self.max_rel}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = [int(e) for e in state["epochs"]]
        self.max_abs = [float(v) for v in state["max_abs"]]
        self.max_rel = [float(v) for v in state["max_rel"]]


@dataclass(frozen=True)
class BatchNormConfig(Config):
    """The same settings for every network; BatchNorm1d goes between each Linear and its
    activation, with statistics over the batch. ``epochs`` and ``val_size`` None: 30 and 200
    for digits, 5 and 5000 for MNIST. With ``float64`` the form check sees float64
    rounding."""

    dataset: Literal["digits", "mnist", "fashion-mnist"] = "digits"
    hidden: tuple[int, ...] = (128, 128, 128)
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu"] = "relu"
    epochs: int | None = None
    batch_size: int = 64
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = "sgd"
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 0.0
    dtype: Literal["float32", "float64"] = "float32"
    val_size: int | None = None
    max_train: int | None = None
    max_test: int | None = None
    download: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "hidden", bool(self.hidden) and all(h >= 1 for h in self.hidden), "widths >= 1")
        check(self, "epochs", self.epochs is None or self.epochs >= 1, ">= 1 or none")
        # BatchNorm needs more than one sample per batch to normalise with
        check(self, "batch_size", self.batch_size >= 2, ">= 2")
        check(self, "val_size", self.val_size is None or self.val_size >= 1, ">= 1 or none")


def _load(cfg: BatchNormConfig) -> tuple[Any, Any, Any, tuple[str, ...]]:
    if cfg.dataset == "digits":
        train, test = load("digits", "train"), load("digits", "test")
    else:
        common = {"data_dir": cfg.data_dir, "download": cfg.download, "seed": cfg.seed}
        train = load(cfg.dataset, "train", n=cfg.max_train, **common)
        test = load(cfg.dataset, "test", n=cfg.max_test, **common)
    dtype = np.dtype(cfg.dtype)
    # the first max_train / max_test images (the loaders of MNIST do this already)
    X = train.X[: cfg.max_train].reshape(-1, np.prod(train.input_shape)).astype(dtype)  # (N, D)
    X_test = test.X[: cfg.max_test].reshape(-1, X.shape[1]).astype(dtype)
    y, y_test = train.y[: cfg.max_train], test.y[: cfg.max_test]
    val_size = DEFAULT_VAL_SIZE[cfg.dataset] if cfg.val_size is None else cfg.val_size
    X_tr, y_tr, X_val, y_val = split_validation(X, y, val_size, cfg.seed)
    return (X_tr, y_tr), (X_val, y_val), (X_test, y_test), train.classes


def _train_variant(
    variant: str,
    cfg: BatchNormConfig,
    run: Run,
    data: tuple[Any, Any, Any, tuple[str, ...]],
    epochs: int,
) -> dict[str, Any]:
    (X_tr, y_tr), val, test, classes = data
    # the same generator state for every variant: the same initial weights, the same batches
    rng = np.random.default_rng(cfg.seed)
    form = None if variant == "plain" else variant.removeprefix("bn-")
    model = bn_mlp(
        X_tr.shape[1], cfg.hidden, len(classes), cfg.activation, batchnorm=form, rng=rng,
        dtype=cfg.dtype,
    )  # fmt: skip
    opt = make_optimizer(
        cfg.optimizer, model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )  # fmt: skip
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(X_tr, y_tr, batch_size=cfg.batch_size, shuffle=True, rng=rng)
    forms = BackwardFormCheck()
    # one checkpoint per network, so that --resume continues where the run stopped
    path = Path(run.dir) / f"checkpoint-{variant}.npz"
    callbacks = [
        forms,
        LambdaCallback(on_epoch_end=lambda s, logs: run.log({"model": variant, **logs})),
        ModelCheckpoint(path, extra={"experiment": run.experiment, "model": variant}),
    ]
    resume = path if run.resuming and path.exists() else None
    history = fit(
        model, loss_fn, opt, loader, val=val, epochs=epochs, callbacks=callbacks,
        resume_from=resume, progress=False if cfg.quiet else None, desc=f"batchnorm {variant}",
    )  # fmt: skip
    return {
        "model": model,
        "history": history,
        "test": evaluate(model, loss_fn, test),
        "forms": forms,
    }


@register(
    "batchnorm",
    BatchNormConfig,
    "the same MLP with and without BatchNorm1d; the compact and staged BN backward agree",
    order=53,
)
def run_batchnorm(cfg: BatchNormConfig, run: Run) -> dict[str, float]:
    data = _load(cfg)
    epochs = DEFAULT_EPOCHS[cfg.dataset] if cfg.epochs is None else cfg.epochs
    t0 = time.perf_counter()
    out = {v: _train_variant(v, cfg, run, data, epochs) for v in VARIANTS}
    elapsed = time.perf_counter() - t0

    results: dict[str, float] = {}
    for v in VARIANTS:
        key = v.replace("-", "_")
        last = out[v]["history"][-1]
        results[f"{key}_test_accuracy"] = out[v]["test"]["accuracy"]
        results[f"{key}_test_loss"] = out[v]["test"]["loss"]
        results[f"{key}_val_accuracy"] = last["val_accuracy"]
        results[f"{key}_train_loss"] = last["train_loss"]
    checks = [out[v]["forms"] for v in VARIANTS if v != "plain"]
    max_abs = max(max(c.max_abs) for c in checks)
    max_rel = max(max(c.max_rel) for c in checks)
    results["form_max_abs_diff"] = max_abs
    results["form_max_rel_diff"] = max_rel
    # how far apart the two BN networks drifted: the same function, rounded differently
    pa = dict(out["bn-compact"]["model"].named_parameters())
    pb = dict(out["bn-staged"]["model"].named_parameters())
    results["form_param_max_diff"] = max(
        float(np.max(np.abs(pa[k].data.astype(np.float64) - pb[k].data))) for k in pa
    )
    results["epochs"] = epochs
    results["time_s"] = elapsed

    name = {"digits": "digits", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}[cfg.dataset]
    widths = " -> ".join(map(str, (data[0][0].shape[1], *cfg.hidden, len(data[3]))))
    title = f"{name}: {widths} {cfg.activation} MLP, {cfg.optimizer} lr {cfg.lr:g}"
    run.save_figure(
        "curves",
        plot_variants({v: out[v]["history"] for v in VARIANTS}, title=title),
        "train (solid) and validation (dashed) loss and accuracy per epoch, with and without "
        "BatchNorm1d (the two BN backward forms give curves on top of each other)",
    )
    run.save_figure(
        "backward_forms",
        plot_form_check(checks[0], checks[1], cfg.dtype),
        "largest difference between BatchNorm's compact and staged backward, first batch of "
        "each epoch",
    )
    tol = FORM_TOLERANCE[cfg.dtype]
    verdict = "agree" if max_rel < tol else "DISAGREE"
    run.notes.append(
        f"Backward forms: on the first batch of each of the {epochs} epochs, the compact and "
        f"the staged BatchNorm backward {verdict}: largest difference {max_abs:.3g} absolute, "
        f"{max_rel:.3g} relative to the largest gradient entry ({cfg.dtype}; tolerance "
        f"{tol:g}). After training, the two BN networks' parameters differ by at most "
        f"{results['form_param_max_diff']:.3g}."
    )
    plain, bn = results["plain_test_accuracy"], results["bn_compact_test_accuracy"]
    run.notes.append(
        f"Test accuracy after {epochs} epochs: {plain:.2%} without BatchNorm, {bn:.2%} with it "
        f"({results['bn_staged_test_accuracy']:.2%} with the staged backward)."
    )
    return results


def plot_variants(histories: dict[str, list[dict[str, Any]]], *, title: str = "") -> Any:
    """Loss and accuracy per epoch side by side, one colour per network; train solid,
    validation dashed."""
    fig, (ax_loss, ax_acc) = viz.figure(1, 2, figsize=(11, 4.2))
    for v, history in histories.items():
        epochs = [h["epoch"] for h in history]
        # the staged network overlaps the compact one: draw it thinner, on top
        width = 1.2 if v == "bn-staged" else 2.2
        for ax, key, scale in ((ax_loss, "loss", 1.0), (ax_acc, "accuracy", 100.0)):
            for split, style in (("train", "-"), ("val", "--")):
                ys = [h[f"{split}_{key}"] * scale for h in history]
                label = f"{_LABELS[v]}, {'train' if split == 'train' else 'validation'}"
                ax.plot(epochs, ys, style, color=_COLORS[v], lw=width, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy loss (log scale)")
    ax_loss.set_title("loss")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    ax_acc.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    return fig


def plot_form_check(compact: BackwardFormCheck, staged: BackwardFormCheck, dtype: str) -> Any:
    """The largest relative difference between the backward forms per epoch (log scale), in
    the network trained with each form, against the dtype's machine epsilon."""
    fig, ax = viz.figure(figsize=(6.5, 4))
    for check_, v in ((compact, "bn-compact"), (staged, "bn-staged")):
        rel = np.maximum(np.array(check_.max_rel), 1e-300)  # identical bits: no log of 0
        ax.semilogy(
            check_.epochs,
            rel,
            "o-",
            color=_COLORS[v],
            label=f"network trained with the {v[3:]} form",
        )
    eps = float(np.finfo(np.dtype(dtype)).eps)
    ax.axhline(eps, color="gray", ls=":", label=f"{dtype} machine epsilon {eps:.1e}")
    ax.axhline(FORM_TOLERANCE[dtype], color="black", ls="--", label="tolerance")
    ax.set_xlabel("epoch (first batch)")
    ax.set_ylabel("max |compact - staged| / max |compact|")
    ax.set_title(f"BatchNorm backward: compact vs staged ({dtype})")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
