"""Time to the accuracy target: handgrad against the same model and recipe in PyTorch (CPU).

    python bench/bench_to_target.py                          # fashion-cnn, its default config
    python bench/bench_to_target.py --experiment mnist-mlp   # needs the MNIST files on disk
    python bench/bench_to_target.py --experiment fashion-mlp --max-train 2048 --max-test 1000 \\
        --set val_size=256 --epochs 2 --threads 1            # a smoke run: seconds

Step time is not the whole story: what a user waits for is the time until the model is good
enough. This trains one classifier experiment (``mnist-mlp``, ``mnist-cnn``, ``fashion-mlp``
or ``fashion-cnn``) twice in one process, in handgrad and in PyTorch, and reports the training
time each needs to reach the experiment's target test accuracy (the ``Target`` of its
``Classifier`` spec: 98% for mnist-mlp, 99% for mnist-cnn, 89% for fashion-mlp, 92% for
fashion-cnn), and the ratio handgrad / PyTorch.

The same model and recipe on both sides:

- the experiment's config (``make_config(name, overrides)``: its defaults, ``--set``,
  ``--epochs``, ``--seed``, ``--max-train``, ``--max-test``), its data preparation
  (standardisation when the spec asks for it, flattening for MLPs, the dtype, the held-out
  ``val_size`` images) and its network, built by the spec's own builder from the seed, as
  ``run_classifier`` does;
- the PyTorch twin is ``to_torch(model)``: the same layers and the same initial weights;
- the same optimizer (torch.optim's class of the same name, with handgrad's hyper-parameters),
  the same learning-rate schedule (torch.optim.lr_scheduler's class of the same name, stepped
  at the same interval: every step for the cosine schedules), the same batch size and number
  of epochs;
- the same data order: each epoch's permutation is drawn once, with NumPy, from the
  generator the experiment shuffles with, and both libraries train on the same batches
  (augmentation, when the config turns it on, is applied once per epoch, untimed, to the
  batches both see).

Dropout masks differ: each library draws its own (handgrad from the experiment's generator,
PyTorch from ``torch.manual_seed(seed)``), so the two runs drift apart and can end at slightly
different accuracies; without dropout they agree step for step up to float32 rounding, which
also grows over the steps. (A bias right before a BatchNorm has an exact gradient of 0; Adam
turns each library's rounding noise in it into different steps, which do not change the
output.)

How it times: the libraries alternate epoch by epoch (handgrad epoch 1, PyTorch epoch 1,
handgrad epoch 2, ...) with a pause before each (idle BLAS and OpenMP workers of one library
would otherwise spin on a core the other needs). Only the training steps are timed (forward,
loss, backward, optimizer step, scheduler step; the first epoch includes each library's
warm-up); after every epoch each model is scored on the test set in eval mode, untimed.
"Time to target" is the cumulative training time at the end of the first epoch whose test
accuracy reaches the target. BLAS and OpenMP pools are pinned to ``--threads`` with
threadpoolctl, and PyTorch's with ``torch.set_num_threads``.

The table is printed and written as Markdown to ``--out`` (default
``bench/results/to-target-<experiment>.md``, or ``...-partial.md`` when the run does not use
the data the target is stated for) with the date, the machine, the versions, the thread count
and the exact command; the per-epoch numbers go to the ``.json`` file beside it. The data is
never downloaded: the MNIST experiments need MNIST's files on disk.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import handgrad.nn as nn
import handgrad.optim as optim
from bench_peers import (
    FULL,
    RESULTS,
    Progress,
    command_line,
    environment,
    environment_lines,
    format_ratio,
    pinned_threads,
)
from handgrad.data import DataError
from handgrad.experiments import config_fields, get, make_config, parse_set
from handgrad.experiments.classifier import (
    Classifier,
    Splits,
    Target,
    augmentation,
    prepare_splits,
    schedule_callbacks,
)
from handgrad.experiments.common import optimizer_for
from handgrad.experiments.fashion_cnn import FASHION_CNN
from handgrad.experiments.fashion_mlp import FASHION_MLP
from handgrad.experiments.mnist_cnn import MNIST_CNN
from handgrad.experiments.mnist_mlp import MNIST_MLP
from handgrad.torch_ext import to_torch
from handgrad.train import LRSchedulerCallback, evaluate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

EXPERIMENTS: dict[str, Classifier] = {
    "mnist-mlp": MNIST_MLP,
    "mnist-cnn": MNIST_CNN,
    "fashion-mlp": FASHION_MLP,
    "fashion-cnn": FASHION_CNN,
}

# handgrad optimizer -> (torch.optim class, handgrad settings that torch's class implies and
# does not take as an argument)
TORCH_OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "SGD": ("SGD", {}),
    "Adam": ("Adam", {}),
    "AdamW": ("AdamW", {"decoupled_weight_decay": True}),
    "RMSprop": ("RMSprop", {}),
}
# handgrad scheduler -> the attributes passed to torch.optim.lr_scheduler's class (same names)
TORCH_SCHEDULERS: dict[str, tuple[str, ...]] = {
    "CosineAnnealingLR": ("T_max", "eta_min"),
    "StepLR": ("step_size", "gamma"),
    "ExponentialLR": ("gamma",),
}
EVAL_BATCH = 1024  # as fit's evaluate: a CNN's im2col of the whole test set would be large


# ---------------------------------------------------------------------------------------------
# The data, as run_classifier prepares it
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# The twins: handgrad's model, optimizer and schedule, and PyTorch's copies
# ---------------------------------------------------------------------------------------------


def torch_optimizer(opt: optim.Optimizer, tmodel: torch.nn.Module) -> torch.optim.Optimizer:
    """torch.optim's optimizer of the same name over ``tmodel``'s parameters, with every
    hyper-parameter of handgrad's (one parameter group; the lr is the schedule's start)."""
    kind = type(opt).__name__
    if kind not in TORCH_OPTIMIZERS:
        raise ValueError(
            f"no torch.optim twin for {kind}; supported: {', '.join(TORCH_OPTIMIZERS)}"
        )
    if len(opt.param_groups) != 1:
        raise ValueError(f"{kind} has {len(opt.param_groups)} parameter groups; expected one")
    name, implied = TORCH_OPTIMIZERS[kind]
    cls = getattr(torch.optim, name)
    accepted = set(inspect.signature(cls).parameters)
    (group,) = opt.param_groups
    args: dict[str, Any] = {}
    for key, value in group.items():
        if key in ("params", "param_names", "initial_lr"):
            continue
        if key == "lr":
            args[key] = float(group.get("initial_lr", value))
        elif key in accepted:
            args[key] = tuple(float(b) for b in value) if key == "betas" else value
        elif implied.get(key, object()) != value:
            raise ValueError(f"{kind} has {key}={value!r}, which torch.optim.{name} does not take")
    return cls(tmodel.parameters(), **args)


def torch_scheduler(
    callback: LRSchedulerCallback, topt: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    """torch.optim.lr_scheduler's scheduler of the same name and settings as the callback's."""
    kind = type(callback.scheduler).__name__
    if kind not in TORCH_SCHEDULERS:
        raise ValueError(f"no torch scheduler twin for {kind}; supported: {list(TORCH_SCHEDULERS)}")
    args = {a: getattr(callback.scheduler, a) for a in TORCH_SCHEDULERS[kind]}
    return getattr(torch.optim.lr_scheduler, kind)(topt, **args)


@dataclass
class Twins:
    """A handgrad model and its PyTorch twin, each with its optimizer and schedule.

    ``rng`` is the experiment's generator (it built the model): the epochs' permutations are
    drawn from it, as handgrad's DataLoader does in ``run_classifier``.
    """

    model: nn.Sequential
    optimizer: optim.Optimizer
    schedules: list[LRSchedulerCallback]
    tmodel: torch.nn.Module
    toptimizer: torch.optim.Optimizer
    tschedulers: list[torch.optim.lr_scheduler.LRScheduler]
    rng: np.random.Generator
    loss_fn: nn.CrossEntropyLoss = field(default_factory=nn.CrossEntropyLoss)

    def handgrad_step(self, xb: np.ndarray, yb: np.ndarray) -> float:
        """One training step, as ``fit`` takes it; returns the batch's loss."""
        value = self.loss_fn(self.model(xb), yb)
        self.optimizer.zero_grad()
        # like torch, no gradient for the data itself: the first layer skips its dx
        self.model.backward(self.loss_fn.backward(), input_grad=False)
        self.optimizer.step()
        for cb in self.schedules:
            if cb.interval == "step":
                cb.scheduler.step()
        return value

    def torch_step(self, xb: torch.Tensor, yb: torch.Tensor) -> float:
        """The same step in PyTorch; returns the batch's loss."""
        self.toptimizer.zero_grad()
        loss = F.cross_entropy(self.tmodel(xb), yb)
        loss.backward()
        self.toptimizer.step()
        for cb, sched in zip(self.schedules, self.tschedulers, strict=True):
            if cb.interval == "step":
                sched.step()
        return loss.item()

    def handgrad_epoch(self, X: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[float, float]:
        """Train on the batches of (X, y) in order; (seconds, mean training loss)."""
        self.model.train()
        t0 = time.perf_counter()
        total = 0.0
        for s in range(0, len(X), batch_size):
            xb, yb = X[s : s + batch_size], y[s : s + batch_size]
            total += self.handgrad_step(xb, yb) * len(xb)
        for cb in self.schedules:
            if cb.interval == "epoch":
                cb.scheduler.step()
        return time.perf_counter() - t0, total / len(X)

    def torch_epoch(self, X: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
        """The same epoch in PyTorch; (seconds, mean training loss)."""
        self.tmodel.train()
        t0 = time.perf_counter()
        total = 0.0
        for s in range(0, len(X), batch_size):
            xb, yb = X[s : s + batch_size], y[s : s + batch_size]
            total += self.torch_step(xb, yb) * len(xb)
        for cb, sched in zip(self.schedules, self.tschedulers, strict=True):
            if cb.interval == "epoch":
                sched.step()
        return time.perf_counter() - t0, total / len(X)

    def handgrad_accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        """Test accuracy in eval mode (the model's mode is restored)."""
        return evaluate(self.model, self.loss_fn, (X, y), batch_size=EVAL_BATCH)["accuracy"]

    def torch_accuracy(self, X: torch.Tensor, y: torch.Tensor) -> float:
        """Test accuracy of the twin in eval mode (its mode is restored)."""
        was_training = self.tmodel.training
        self.tmodel.eval()
        correct = 0
        try:
            with torch.no_grad():
                for s in range(0, len(X), EVAL_BATCH):
                    out = self.tmodel(X[s : s + EVAL_BATCH])
                    correct += int((out.argmax(dim=1) == y[s : s + EVAL_BATCH]).sum())
        finally:
            self.tmodel.train(was_training)
        return correct / len(X)


def make_twins(
    spec: Classifier, cfg: Any, input_shape: tuple[int, ...], num_classes: int, total_steps: int
) -> Twins:
    """The experiment's model, optimizer and schedule (as ``run_classifier`` builds them from
    the config and its seed) and their PyTorch twins, with the same initial weights."""
    rng = np.random.default_rng(cfg.seed)
    model = spec.network.build(cfg, input_shape, num_classes, rng)
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"expected the network to be a Sequential, got {type(model).__name__}")
    opt = optimizer_for(cfg, model.parameters())
    tmodel = to_torch(model)  # before any step: the same initial weights
    topt = torch_optimizer(opt, tmodel)
    schedules = schedule_callbacks(opt, getattr(cfg, "schedule", "constant"), total_steps)
    tschedulers = [torch_scheduler(cb, topt) for cb in schedules]
    return Twins(model, opt, schedules, tmodel, topt, tschedulers, rng)


# ---------------------------------------------------------------------------------------------
# Time to target
# ---------------------------------------------------------------------------------------------


def reached(accuracy: float, target: Target) -> bool:
    """Whether a test accuracy meets the target (strictly above it for ``above`` targets), as
    ``Target.note`` judges it."""
    return accuracy > target.value if target.above else accuracy >= target.value


def time_to_target(
    epochs: Sequence[tuple[float, float]], target: Target
) -> tuple[int, float] | None:
    """The first epoch whose accuracy reaches ``target`` and the training time until its end.

    ``epochs`` holds, per epoch in order, (seconds of that epoch's training, test accuracy
    after it). Returns (epoch number from 1, cumulative seconds), or None if never reached.

    >>> time_to_target([(2.0, 0.5), (3.0, 0.93), (2.5, 0.95)], Target(0.92, ""))
    (2, 5.0)
    """
    total = 0.0
    for epoch, (seconds, accuracy) in enumerate(epochs, start=1):
        total += seconds
        if reached(accuracy, target):
            return epoch, total
    return None


@dataclass
class EpochRow:
    """One epoch of both libraries: seconds of training, mean training loss, test accuracy."""

    epoch: int
    handgrad_s: float
    handgrad_loss: float
    handgrad_acc: float
    torch_s: float
    torch_loss: float
    torch_acc: float


def epoch_batches(
    data: Splits, rng: np.random.Generator, batch_size: int, transform: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The epoch's training data in the order both libraries see it: one permutation drawn
    from ``rng`` (as handgrad's DataLoader draws it), then ``transform`` per batch if any."""
    order = rng.permutation(len(data.X_train))
    X, y = data.X_train[order], data.y_train[order]  # copies: contiguous batches, untimed
    if transform is not None:
        for s in range(0, len(X), batch_size):
            X[s : s + batch_size] = transform(X[s : s + batch_size], rng)
    return X, y


def train_both(
    twins: Twins,
    data: Splits,
    epochs: int,
    batch_size: int,
    transform: Any = None,
    pause: float = 0.15,
    say: Any = print,
) -> list[EpochRow]:
    """Train handgrad and PyTorch alternately, epoch by epoch, on the same batches; score each
    on the test set after every epoch (untimed)."""
    tX_test, ty_test = torch.from_numpy(data.X_test), torch.from_numpy(data.y_test)
    rows = []
    for epoch in range(1, epochs + 1):
        X, y = epoch_batches(data, twins.rng, batch_size, transform)
        tX, ty = torch.from_numpy(X), torch.from_numpy(y)  # the same memory, no copy
        time.sleep(pause)
        h_s, h_loss = twins.handgrad_epoch(X, y, batch_size)
        time.sleep(pause)
        t_s, t_loss = twins.torch_epoch(tX, ty, batch_size)
        h_acc = twins.handgrad_accuracy(data.X_test, data.y_test)
        t_acc = twins.torch_accuracy(tX_test, ty_test)
        row = EpochRow(epoch, h_s, h_loss, h_acc, t_s, t_loss, t_acc)
        rows.append(row)
        say(
            f"epoch {epoch}: handgrad {seconds(h_s)} s, test {h_acc:.2%}; "
            f"PyTorch {seconds(t_s)} s, test {t_acc:.2%}"
        )
    return rows


# ---------------------------------------------------------------------------------------------
# Tables and the report
# ---------------------------------------------------------------------------------------------

COLUMNS = (
    "epoch",
    "handgrad s",
    "handgrad total s",
    "handgrad train loss",
    "handgrad test acc",
    "PyTorch s",
    "PyTorch total s",
    "PyTorch train loss",
    "PyTorch test acc",
    "handgrad / PyTorch (epoch)",
)


def epoch_table(rows: Sequence[EpochRow], target: Target) -> str:
    """The per-epoch Markdown table; an accuracy that reaches the target is in bold."""

    def acc(value: float) -> str:
        return f"**{value:.2%}**" if reached(value, target) else f"{value:.2%}"

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    h_total = t_total = 0.0
    for r in rows:
        h_total += r.handgrad_s
        t_total += r.torch_s
        cells = [
            str(r.epoch),
            seconds(r.handgrad_s),
            seconds(h_total),
            f"{r.handgrad_loss:.4f}",
            acc(r.handgrad_acc),
            seconds(r.torch_s),
            seconds(t_total),
            f"{r.torch_loss:.4f}",
            acc(r.torch_acc),
            format_ratio(r.handgrad_s / r.torch_s),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def seconds(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def percent(value: float) -> str:
    return f"{100 * value:g}%"


def summary(rows: Sequence[EpochRow], target: Target) -> list[str]:
    """The summary lines: time to target of each library and their ratio, total time."""
    n = len(rows)
    ours = time_to_target([(r.handgrad_s, r.handgrad_acc) for r in rows], target)
    theirs = time_to_target([(r.torch_s, r.torch_acc) for r in rows], target)

    def when(hit: tuple[int, float] | None) -> str:
        return f"{seconds(hit[1])} s (epoch {hit[0]})" if hit else f"not reached in {n} epochs"

    ratio = format_ratio(ours[1] / theirs[1]) if ours and theirs else "-"
    h_total = sum(r.handgrad_s for r in rows)
    t_total = sum(r.torch_s for r in rows)
    last = rows[-1]
    return [
        f"time to {percent(target.value)} test accuracy: handgrad {when(ours)}, "
        f"PyTorch {when(theirs)}; handgrad / PyTorch {ratio}",
        f"total training time ({n} epochs): handgrad {seconds(h_total)} s, "
        f"PyTorch {seconds(t_total)} s; "
        f"handgrad / PyTorch {format_ratio(h_total / t_total)}",
        f"final test accuracy: handgrad {last.handgrad_acc:.2%}, PyTorch {last.torch_acc:.2%}",
    ]


def drift_note(model: nn.Module) -> str:
    """Why the two runs end at slightly different accuracies, for this network."""
    dropout = [name for name, m in model.named_modules() if isinstance(m, nn.Dropout)]
    same = "initial weights, optimizer, schedule, batches and their order"
    if dropout:
        return (
            f"Dropout masks differ between the libraries (layers {', '.join(dropout)}: each "
            "library draws its own), so the two runs drift apart and can end at slightly "
            f"different accuracies; everything else ({same}) is the same."
        )
    return (
        f"This network has no dropout: the two runs share everything ({same}) and differ only "
        "by float rounding, which grows over the steps, so they can still end at slightly "
        "different accuracies."
    )


def report_markdown(
    experiment: str,
    rows: Sequence[EpochRow],
    target: Target,
    env: dict[str, str],
    partial: str,
    note: str,
) -> str:
    """The whole report: what produced it, on what, the table and the summary."""
    parts = [
        f"# Time to the accuracy target: {experiment}, handgrad against PyTorch (CPU)\n",
        f"Produced by `{env['command']}` on {env['date']}.\n",
    ]
    if partial:
        parts.append(f"**Not the target's data**: {partial}\n")
    above = " (strictly above)" if target.above else ""
    more = [
        f"config: {env['sizes']}",
        f"data: {env['data']}",
        f"target: test accuracy >= {percent(target.value)}{above}",
    ]
    parts.append(environment_lines(env, more))
    parts.append(epoch_table(rows, target))
    parts.append("\n".join(f"- {line}" for line in summary(rows, target)) + "\n")
    parts.append(
        "Only the training steps are timed (forward, loss, backward, optimizer and scheduler "
        "step); the libraries alternate epoch by epoch in one process, with a pause before "
        "each, and each is scored on the test set after every epoch, untimed. Time to target: "
        "the cumulative training time at the end of the first epoch whose test accuracy "
        f"reaches the target (in bold). {note}\n"
    )
    return "\n".join(parts)


def write_report(
    path: Path,
    experiment: str,
    rows: Sequence[EpochRow],
    target: Target,
    env: dict[str, str],
    partial: str,
    note: str,
) -> tuple[Path, Path]:
    """Write the Markdown report to ``path`` and the per-epoch numbers beside it (``.json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_markdown(experiment, rows, target, env, partial, note), encoding="utf-8")
    raw = path.with_suffix(".json")
    data = {
        "experiment": experiment,
        "target": target.value,
        "environment": env,
        "partial": partial,
        "note": note,
        "epochs": [asdict(r) for r in rows],
    }
    raw.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path, raw


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--experiment", choices=list(EXPERIMENTS), default="fashion-cnn")
    ap.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="a config field, as `handgrad run NAME --set`; repeatable",
    )  # fmt: skip
    ap.add_argument("--epochs", type=int, default=None, help="the config's epochs")
    ap.add_argument("--seed", type=int, default=None, help="the config's seed (default: its own)")
    ap.add_argument("--max-train", type=int, default=None,
                    help="read only the first N training images (a smoke run; the held-out "
                    "val_size images come out of these)")  # fmt: skip
    ap.add_argument("--max-test", type=int, default=None, help="only the first N test images")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="BLAS and torch threads (default: the number of cores)")  # fmt: skip
    ap.add_argument("--pause", type=float, default=0.15, help="seconds before each timed epoch")
    ap.add_argument("--out", type=Path, default=None,
                    help="the Markdown report (default: bench/results/to-target-EXPERIMENT.md, "
                    "or ...-partial.md off the target's data); numbers in its .json")  # fmt: skip
    return ap


def config_for(args: argparse.Namespace) -> Any:
    """The experiment's config: its defaults, then ``--set``, then the named options."""
    overrides: dict[str, Any] = dict(parse_set(args.overrides))
    for key in ("epochs", "seed", "max_train", "max_test"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if "download" in config_fields(get(args.experiment).config_cls):
        overrides["download"] = False  # this bench reads only what is on disk
    cfg = make_config(args.experiment, overrides)
    if hasattr(cfg, "steps"):  # pragma: no cover - none of the four experiments has one
        raise ValueError(f"{args.experiment}: runs measured in steps are not supported here")
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    experiment, spec = args.experiment, EXPERIMENTS[args.experiment]
    if spec.target.metric != "test_accuracy":  # pragma: no cover - all four are
        raise SystemExit(f"{experiment}: its target is on {spec.target.metric}, not accuracy")
    try:
        cfg = config_for(args)
        data = prepare_splits(spec, cfg, download=False)
    except (DataError, ValueError) as err:
        print(f"{experiment}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    target = spec.target
    full = target.full is None or target.full(cfg, data.n_train, data.n_test)
    partial = (
        ""
        if full
        else target.partial.format(
            target=target.value, cfg=cfg, n_train=len(data.X_train), n_test=data.n_test
        )
    )
    per_epoch = -(-len(data.X_train) // cfg.batch_size)  # steps; the last batch may be smaller
    torch.manual_seed(cfg.seed)  # PyTorch's dropout masks
    # glibc's malloc is left at its defaults, as in the other benches: keep_freed_memory()
    # would act on both libraries in this one process (and helps PyTorch more)
    with pinned_threads(args.threads):
        twins = make_twins(
            spec, cfg, tuple(data.X_train.shape[1:]), len(data.classes), cfg.epochs * per_epoch
        )
        # bench_peers' record of the machine; its command and sizes entries are replaced
        env = environment(argv, args.threads, FULL)
        env["command"] = command_line(argv, __file__)
        shown = {k: v for k, v in asdict(cfg).items() if k not in ("quiet", "monitors")}
        env["sizes"] = ", ".join(f"{k}={v}" for k, v in shown.items())
        env["data"] = (
            f"{spec.dataset or cfg.dataset}: {len(data.X_train)} training images "
            f"({data.n_train} read, {cfg.val_size} of them held out as the experiment's "
            f"validation set, unused here), {len(data.X_test)} test images; "
            f"{per_epoch} steps per epoch"
        )
        say = Progress()
        print(f"{experiment}: threads: {env['threads']}\nBLAS: {env['blas']}")
        print(f"config: {env['sizes']}\ndata: {env['data']}")
        print(
            f"target: test accuracy >= {percent(target.value)}"
            + (f" ({partial})" if partial else "")
        )
        note = drift_note(twins.model)
        print(note, flush=True)
        rows = train_both(
            twins, data, cfg.epochs, cfg.batch_size, augmentation(cfg), args.pause, say
        )
    env["load"] += f", {os.getloadavg()[0]:.2f}"
    name = f"to-target-{experiment}" + ("" if full else "-partial")
    path, raw = write_report(
        args.out or RESULTS / f"{name}.md", experiment, rows, target, env, partial, note
    )
    print()
    print(epoch_table(rows, target))
    for line in summary(rows, target):
        print(line)
    print(f"written: {path} and {raw}")
    if not all(math.isfinite(r.handgrad_loss) and math.isfinite(r.torch_loss) for r in rows):
        print("warning: a training loss is not finite", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
