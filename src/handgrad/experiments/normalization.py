"""``normalization``: softmax versus p_j = a_j / sum_k a_k as a classifier's output.

Two heads on the same network, trained from the same initial weights on the same batches:

- ``softmax``: ``Linear -> LogSoftmax -> NLLLoss`` (the usual cross-entropy on logits z);
- ``sum``: ``Linear -> Softplus (or Sigmoid) -> LogSumNormalize -> NLLLoss``, i.e. the
  cross-entropy of p_j = a_j / sum_k a_k with a_j = softplus(z_j) > 0.

Both losses are the negative log-likelihood of the head's own probabilities, so their values
and accuracies compare directly. Trained on the spiral (3 arms) and on the 8x8 digits, for
several seeds. Figures: loss and test accuracy per epoch, the gradient magnitudes over
training (at the logits and over all parameters), and the final test accuracies side by side;
the report states the measured differences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

import handgrad.nn as nn
from handgrad import viz
from handgrad.data import DataLoader, load
from handgrad.experiments.common import make_optimizer, mlp
from handgrad.experiments.registry import Config, check, register
from handgrad.nn.normalize import LogSumNormalize
from handgrad.train import Callback, Run, TrainState, evaluate, fit

__all__ = ["HEADS", "GradientNorms", "NormalizationConfig", "build_model", "run_normalization"]

DATASETS = ("spiral", "digits")
HEADS = ("softmax", "sum")


@dataclass(frozen=True)
class NormalizationConfig(Config):
    """Both heads share the network, the training and, for each of the ``seeds`` runs (seeds
    ``seed, seed + 1, ...``), the initial weights and batches. ``positive`` makes the outputs
    positive before ``/ sum``; ``datasets`` is any of ``spiral`` and ``digits``, ``spiral_n``
    the spiral's points per split."""

    datasets: tuple[str, ...] = DATASETS
    positive: Literal["softplus", "sigmoid"] = "softplus"
    seeds: int = 3
    hidden: tuple[int, ...] = (64, 64)
    activation: Literal["relu", "tanh", "gelu", "elu"] = "relu"
    optimizer: Literal["adam", "sgd", "adamw", "rmsprop"] = "adam"
    batch_size: int = 32
    spiral_epochs: int = 150
    spiral_lr: float = 0.01
    spiral_n: int = 600
    digits_epochs: int = 30
    digits_lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        ok = len(self.datasets) >= 1 and all(d in DATASETS for d in self.datasets)
        check(self, "datasets", ok, f"one or more of {', '.join(DATASETS)}")
        for name in ("seeds", "batch_size", "spiral_epochs", "digits_epochs"):
            check(self, name, getattr(self, name) >= 1, ">= 1")
        check(self, "spiral_n", self.spiral_n >= 3, ">= 3")
        for name in ("spiral_lr", "digits_lr"):
            check(self, name, getattr(self, name) > 0, "> 0")


class _Probe(nn.Module):
    """Identity that records the mean per-sample norm of the gradient flowing through it."""

    def __init__(self) -> None:
        super().__init__()
        self.norms: list[float] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        # the loss is a batch mean: N * grad is each sample's own d loss_n / d z_n
        per_sample = np.linalg.norm(grad_out.astype(np.float64), axis=1) * len(grad_out)
        self.norms.append(float(per_sample.mean()))
        return grad_out


def build_model(
    in_features: int,
    classes: int,
    head: str,
    cfg: NormalizationConfig,
    rng: np.random.Generator,
) -> tuple[nn.Sequential, _Probe]:
    """The MLP up to the logits, a probe of d loss / d logits, then the head's log-probabilities.

    ``head='softmax'``: LogSoftmax; ``head='sum'``: positive activation then LogSumNormalize.
    """
    body = mlp(in_features, cfg.hidden, classes, cfg.activation, rng=rng)
    probe = _Probe()
    if head == "softmax":
        tail: list[nn.Module] = [nn.LogSoftmax(dim=1)]
    elif head == "sum":
        positive = nn.Softplus() if cfg.positive == "softplus" else nn.Sigmoid()
        tail = [positive, LogSumNormalize(dim=1)]
    else:
        raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
    return nn.Sequential(*body, probe, *tail), probe


class GradientNorms(Callback):
    """Per epoch: the mean per-sample norm of d loss / d logits (from the probe) and the mean
    global norm of the parameter gradient over the epoch's steps."""

    def __init__(self, probe: _Probe) -> None:
        self.probe = probe
        self.step_param_norms: list[float] = []
        self.logit: list[float] = []
        self.params: list[float] = []

    def on_step_end(self, state: TrainState, batch: int, loss: float) -> None:
        sq = sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in state.model.parameters())
        self.step_param_norms.append(float(np.sqrt(sq)))

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        self.logit.append(float(np.mean(self.probe.norms)))
        self.params.append(float(np.mean(self.step_param_norms)))
        self.probe.norms.clear()
        self.step_param_norms.clear()


def _data(name: str, cfg: NormalizationConfig, seed: int) -> tuple[Any, Any, int, int]:
    if name == "spiral":
        train = load("spiral", "train", seed=seed, n=cfg.spiral_n, k=3)
        test = load("spiral", "test", seed=seed, n=cfg.spiral_n, k=3)
    else:
        train, test = load("digits", "train", seed=seed), load("digits", "test", seed=seed)
    X, X_test = train.X.reshape(len(train), -1), test.X.reshape(len(test), -1)
    return (X, train.y), (X_test, test.y), X.shape[1], len(train.classes)


def _train_one(
    name: str, head: str, seed: int, cfg: NormalizationConfig, run: Run
) -> dict[str, Any]:
    (X, y), test, d, k = _data(name, cfg, seed)
    # the same generator state for both heads: the same initial weights and the same batches
    rng = np.random.default_rng([seed, DATASETS.index(name)])
    model, probe = build_model(d, k, head, cfg, rng)
    lr = cfg.spiral_lr if name == "spiral" else cfg.digits_lr
    epochs = cfg.spiral_epochs if name == "spiral" else cfg.digits_epochs
    opt = make_optimizer(cfg.optimizer, model.parameters(), lr=lr)
    norms = GradientNorms(probe)
    loss_fn = nn.NLLLoss()
    loader = DataLoader(X, y, batch_size=cfg.batch_size, shuffle=True, rng=rng)
    history = fit(
        model, loss_fn, opt, loader, val=test, epochs=epochs, callbacks=[norms], progress=False
    )
    for h, g_logit, g_params in zip(history, norms.logit, norms.params, strict=True):
        run.log(
            {"dataset": name, "head": head, "seed": seed, **h}
            | {"grad_norm_logits": g_logit, "grad_norm_params": g_params}
        )
    final_train = evaluate(model, loss_fn, (X, y))
    final_test = evaluate(model, loss_fn, test)
    return {
        "history": history,
        "grad_logits": norms.logit,
        "grad_params": norms.params,
        "train_loss": final_train["loss"],
        "train_accuracy": final_train["accuracy"],
        "test_loss": final_test["loss"],
        "test_accuracy": final_test["accuracy"],
    }


def _label(head: str, cfg: NormalizationConfig) -> str:
    return "softmax" if head == "softmax" else f"{cfg.positive}(z) / sum"


_COLORS = {"softmax": "tab:blue", "sum": "tab:red"}


def _band(ax: Any, curves: list[list[float]], color: str, label: str) -> None:
    """Mean over seeds as a line, min..max over seeds as a shaded band."""
    ys = np.array(curves, dtype=float)  # (seeds, epochs)
    x = np.arange(1, ys.shape[1] + 1)
    ax.plot(x, ys.mean(axis=0), color=color, label=label)
    if len(ys) > 1:
        ax.fill_between(x, ys.min(axis=0), ys.max(axis=0), color=color, alpha=0.2, lw=0)


def _plot_curves(out: dict, cfg: NormalizationConfig, rows: list[tuple[str, str, bool]]) -> Any:
    """One column per data set, one row per (key, ylabel, log scale) in ``rows``."""
    names = list(out)
    fig, axes = viz.figure(
        len(rows), len(names), figsize=(5.2 * len(names), 3.4 * len(rows)), layout="constrained"
    )
    axes = np.array(axes, dtype=object).reshape(len(rows), len(names))
    for j, name in enumerate(names):
        for i, (key, ylabel, log) in enumerate(rows):
            ax = axes[i, j]
            for head in HEADS:
                runs = out[name][head]
                if key in ("grad_logits", "grad_params"):
                    curves = [r[key] for r in runs]
                else:
                    scale = 100.0 if "accuracy" in key else 1.0
                    curves = [[h[key] * scale for h in r["history"]] for r in runs]
                _band(ax, curves, _COLORS[head], _label(head, cfg))
            if log:
                ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{name}: {ylabel}", fontsize="medium")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
    return fig


def _plot_accuracy(out: dict, cfg: NormalizationConfig) -> Any:
    names = list(out)
    fig, ax = viz.figure(figsize=(2.6 + 2.2 * len(names), 3.8))
    width = 0.38
    for j, name in enumerate(names):
        for i, head in enumerate(HEADS):
            accs = np.array([r["test_accuracy"] for r in out[name][head]]) * 100
            x = j + (i - 0.5) * width
            label = _label(head, cfg) if j == 0 else None
            ax.bar(x, accs.mean(), width * 0.9, color=_COLORS[head], alpha=0.75, label=label)
            ax.plot(np.full(len(accs), x), accs, "k.", ms=6)
            ax.annotate(
                f"{accs.mean():.1f}",
                (x, accs.max()),
                ha="center",
                va="bottom",
                fontsize="small",
                xytext=(0, 2),
                textcoords="offset points",
            )
    ax.set_xticks(range(len(names)), names)
    lo = min(r["test_accuracy"] for v in out.values() for rs in v.values() for r in rs) * 100
    ax.set_ylim(max(0.0, lo - 10), 101)
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(f"test accuracy, mean of {cfg.seeds} seed(s) (dots: each seed)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


@register(
    "normalization",
    NormalizationConfig,
    "softmax vs a_j / sum_k a_k (a = softplus(z)) as the output: spiral and digits",
    order=40,
)
def run_normalization(cfg: NormalizationConfig, run: Run) -> dict[str, float]:
    run.metrics_path.write_text("")  # a re-run (or resume) starts the per-epoch log afresh
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in cfg.datasets:
        out[name] = {head: [] for head in HEADS}
        for s in range(cfg.seeds):
            for head in HEADS:
                out[name][head].append(_train_one(name, head, cfg.seed + s, cfg, run))

    run.save_figure(
        "curves",
        _plot_curves(
            out,
            cfg,
            [
                ("train_loss", "train loss (NLL)", True),
                ("val_accuracy", "test accuracy (%)", False),
            ],
        ),
        "training loss (log scale) and test accuracy per epoch: mean over seeds, band min..max",
    )
    run.save_figure(
        "grad_norms",
        _plot_curves(
            out,
            cfg,
            [
                ("grad_logits", "|d loss / d logits| per sample", True),
                ("grad_params", "|d loss / d parameters|", True),
            ],
        ),
        "gradient magnitudes over training (means over each epoch's steps)",
    )
    run.save_figure("accuracy", _plot_accuracy(out, cfg), "final test accuracy side by side")

    results: dict[str, float] = {}
    for name in cfg.datasets:
        for head in HEADS:
            runs = out[name][head]
            for key in ("test_accuracy", "test_loss", "train_loss"):
                results[f"{name}_{head}_{key}"] = float(np.mean([r[key] for r in runs]))
            results[f"{name}_{head}_final_grad_logits"] = float(
                np.mean([r["grad_logits"][-1] for r in runs])
            )
        diffs = [
            b["test_accuracy"] - a["test_accuracy"]
            for a, b in zip(out[name]["softmax"], out[name]["sum"], strict=True)
        ]
        results[f"{name}_accuracy_difference"] = float(np.mean(diffs))
        sm, su = (results[f"{name}_{h}_test_accuracy"] for h in HEADS)
        ratio = results[f"{name}_sum_train_loss"] / max(
            results[f"{name}_softmax_train_loss"], 1e-12
        )
        run.notes.append(
            f"**{name}** ({cfg.seeds} seed(s)): test accuracy softmax {sm:.2%}, "
            f"{_label('sum', cfg)} {su:.2%}; difference (sum - softmax) "
            f"{np.mean(diffs) * 100:+.2f} points (per seed: "
            + ", ".join(f"{d * 100:+.2f}" for d in diffs)
            + f"). Final training loss: sum / softmax = {ratio:.2f}x."
        )
    return results
