"""The training loop: ``fit`` trains epoch by epoch and returns a history; ``evaluate`` scores.

The loop is plain on purpose: forward, loss, backward, step, and a few sums for the epoch's
numbers. Everything else (logging, checkpoints, schedules, early stopping) is a callback.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handgrad.nn.module import Sequential
from handgrad.train.callbacks import (
    Callback,
    ModelCheckpoint,
    TrainState,
    restore_training_state,
)
from handgrad.train.progress import ProgressBar

__all__ = ["DivergenceError", "accuracy_fn", "evaluate", "fit"]

# correct, counted = accuracy(output, target)
AccuracyFn = Callable[[np.ndarray, np.ndarray], tuple[int, int]]


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite; carries the epoch, step, history and checkpoint."""

    def __init__(
        self,
        message: str,
        *,
        epoch: int,
        step: int,
        history: list[dict[str, Any]],
        checkpoint: Path | None,
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.history = history
        self.checkpoint = checkpoint


# -- accuracy ------------------------------------------------------------------------------
def _targets_like(out: np.ndarray, y: np.ndarray) -> np.ndarray:
    return y.reshape(out.shape) if y.shape != out.shape and y.size == out.size else y


def binary_accuracy_logits(out: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """Logit > 0 predicts class 1; targets are 0/1 (or probabilities, rounded at 0.5)."""
    y = _targets_like(out, y)
    return int(np.count_nonzero((out > 0) == (y > 0.5))), int(y.size)


def binary_accuracy_probs(out: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """Probability > 0.5 predicts class 1."""
    y = _targets_like(out, y)
    return int(np.count_nonzero((out > 0.5) == (y > 0.5))), int(y.size)


def multiclass_accuracy(out: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """Argmax over classes (axis 1) against int targets (N,) or probabilities (N, C)."""
    pred = out.argmax(axis=1)
    target = y.argmax(axis=1) if y.ndim == out.ndim else y
    return int(np.count_nonzero(pred == target)), int(target.size)


_AUTO_ACCURACY: dict[str, AccuracyFn] = {
    "BCEWithLogitsLoss": binary_accuracy_logits,
    "BCELoss": binary_accuracy_probs,
    "CrossEntropyLoss": multiclass_accuracy,
    "NLLLoss": multiclass_accuracy,
}


def accuracy_fn(accuracy: str | AccuracyFn | None, loss_fn: Any) -> AccuracyFn | None:
    """Resolve ``accuracy``: ``'auto'`` picks by the loss (none for regression losses)."""
    if accuracy is None or callable(accuracy):
        return accuracy
    if accuracy == "auto":
        return _AUTO_ACCURACY.get(type(loss_fn).__name__)
    raise ValueError(f"fit: invalid accuracy {accuracy!r}, must be 'auto', None or a function")


# -- batches -------------------------------------------------------------------------------
def _batches(data: Any, batch_size: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """A DataLoader (anything with ``batch_size``) as is; ``(X, y)`` or a Dataset in slices."""
    if hasattr(data, "batch_size") or not (isinstance(data, (tuple, list)) or hasattr(data, "X")):
        return data
    X, y = (data.X, data.y) if hasattr(data, "X") else data
    if len(X) != len(y):
        raise ValueError(f"evaluate: X and y differ in length: {len(X)} vs {len(y)}")
    return ((X[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(X), batch_size))


def _loss_scale(loss_fn: Any, n: int) -> int:
    # a 'mean' loss is weighted by the batch size so that the epoch's loss is a per-sample mean
    return 1 if getattr(loss_fn, "reduction", "mean") == "sum" else n


def evaluate(
    model: Any,
    loss_fn: Any,
    data: Any,
    *,
    accuracy: str | AccuracyFn | None = "auto",
    batch_size: int = 1024,
) -> dict[str, float]:
    """Mean loss (and accuracy, when the loss has one) of ``model`` on ``data`` in eval mode.

    ``data`` is a DataLoader, an ``(X, y)`` pair or a Dataset. Returns ``{'loss': ...,
    'accuracy': ...}`` (accuracy in [0, 1], absent for regression). The model's train/eval
    mode is restored afterwards.
    """
    acc = accuracy_fn(accuracy, loss_fn)
    was_training = getattr(model, "training", False)
    model.eval()
    total, seen, correct, counted = 0.0, 0, 0, 0
    try:
        for xb, yb in _batches(data, batch_size):
            out = model(xb)
            n = len(xb)
            total += loss_fn(out, yb) * _loss_scale(loss_fn, n)
            seen += n
            if acc is not None:
                c, k = acc(out, yb)
                correct += c
                counted += k
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate: the data is empty")
    result = {"loss": total / seen}
    if acc is not None:
        result["accuracy"] = correct / counted
    return result


# -- fit -----------------------------------------------------------------------------------
def _check_count(name: str, value: Any, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"fit: invalid {name} {value!r}, must be an int >= 1")


def fit(
    model: Any,
    loss_fn: Any,
    optimizer: Any,
    train: Any,
    val: Any = None,
    *,
    epochs: int,
    callbacks: Sequence[Callback] = (),
    accuracy: str | AccuracyFn | None = "auto",
    max_steps: int | None = None,
    resume_from: str | os.PathLike | dict[str, Any] | None = None,
    progress: bool | None = None,
    desc: str = "train",
    eval_batch_size: int = 1024,
) -> list[dict[str, Any]]:
    """Train ``model`` for ``epochs`` epochs (or until ``max_steps`` steps) and return the history.

    Args:
        model: a Module (``forward``, ``backward``, ``train``/``eval``, ``state_dict``).
        loss_fn: ``value = loss_fn(out, yb)`` (a float) and ``loss_fn.backward()``.
        optimizer: ``zero_grad()``, ``step()``, ``param_groups``, ``state_dict()``.
        train: iterable of ``(xb, yb)`` batches, re-iterated every epoch (a DataLoader).
        val: optional DataLoader, ``(X, y)`` or Dataset scored after every epoch.
        epochs: total number of epochs (counting those of a resumed run).
        callbacks: see :mod:`handgrad.train.callbacks`.
        accuracy: ``'auto'`` (chosen by the loss), None, or ``f(out, y) -> (correct, count)``.
        max_steps: stop after this many optimizer steps in all (the last epoch may be partial).
        resume_from: a checkpoint path or loaded mapping to continue from (written by
            ModelCheckpoint with the same model, optimizer, data and callbacks).
        progress: show a progress bar; None: only when stderr is a terminal or in a Jupyter
            notebook.
        desc: the progress bar's label.

    Returns:
        The history, one dict per epoch: ``epoch`` (1-based), ``step`` (optimizer steps so far),
        ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy`` (those that apply),
        ``lr`` (of the first parameter group during the epoch) and ``time`` (seconds).

    Raises:
        DivergenceError: the loss became NaN/Inf; the message names the epoch and step, and the
            checkpoint on disk (if any) is the last good one, since it is only written after
            an epoch that finished. (NumPy's overflow warnings are silenced inside the loop:
            this error reports the divergence once instead.) A callback with a
            ``describe_divergence(state)`` method (:class:`TrainingMonitor`) adds a sentence
            naming the first layer whose output or gradient became non-finite.
    """
    _check_count("epochs", epochs)
    _check_count("max_steps", max_steps, allow_none=True)
    acc = accuracy_fn(accuracy, loss_fn)
    callbacks = list(callbacks)
    state = TrainState(
        model, loss_fn, optimizer, train, val, int(epochs), max_steps, callbacks=callbacks
    )
    if resume_from is not None:
        restore_training_state(state, resume_from)
    ordered = sorted(callbacks, key=lambda cb: cb.order)
    step_cbs = [cb for cb in ordered if _overrides(cb, "on_step_end")]
    begin_cbs = [cb for cb in ordered if _overrides(cb, "on_epoch_begin")]
    checkpoints = [cb for cb in ordered if isinstance(cb, ModelCheckpoint)]

    steps_per_epoch = len(train) if hasattr(train, "__len__") else None
    total = None if steps_per_epoch is None else epochs * steps_per_epoch
    if max_steps is not None:
        total = max_steps if total is None else min(total, max_steps)
    bar = ProgressBar(total, initial=state.step, desc=desc, enabled=progress)

    def done() -> bool:
        return (
            state.stop
            or state.epoch >= state.epochs
            or (max_steps is not None and state.step >= max_steps)
        )

    # overflow on the way to a NaN would print NumPy warnings from deep inside the layers; the
    # divergence guard reports it instead, once, naming the epoch and step
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for cb in ordered:
                cb.on_train_begin(state)
            while not done():
                for cb in begin_cbs:
                    cb.on_epoch_begin(state)
                logs = _train_epoch(state, acc, step_cbs, checkpoints, bar)
                if val is not None:
                    scores = evaluate(model, loss_fn, val, accuracy=acc, batch_size=eval_batch_size)
                    logs.update({f"val_{key}": value for key, value in scores.items()})
                    if not math.isfinite(scores["loss"]):
                        # the parameters overflowed in the epoch's last steps
                        raise _diverged(
                            state, scores["loss"], logs["epoch"], None, None, checkpoints
                        )
                logs["lr"] = logs.pop("lr")  # keep lr and time last, after the val numbers
                logs["time"] = time.perf_counter() - logs.pop("time")
                state.epoch = logs["epoch"]
                state.history.append(logs)
                state.final = done()
                for cb in ordered:
                    cb.on_epoch_end(state, logs)
                bar.update_to(state.step, **_postfix(logs))
            for cb in ordered:
                cb.on_train_end(state)
    finally:
        bar.close()
    return state.history


def _train_epoch(
    state: TrainState,
    acc: AccuracyFn | None,
    step_cbs: list[Callback],
    checkpoints: list[ModelCheckpoint],
    bar: ProgressBar,
) -> dict[str, Any]:
    """One pass over ``state.train``: forward, loss, backward, step. Returns the epoch's logs
    (``time`` holds the start time; the caller turns it into the duration)."""
    model, loss_fn, optimizer, train = state.model, state.loss_fn, state.optimizer, state.train
    epoch = state.epoch + 1
    steps_per_epoch = len(train) if hasattr(train, "__len__") else None
    reduction_sum = getattr(loss_fn, "reduction", "mean") == "sum"
    max_steps = state.max_steps
    model.train()
    backward_kw = {"input_grad": False} if isinstance(model, Sequential) else {}
    lr = _lr(optimizer)
    t0 = time.perf_counter()
    total_loss, seen, correct, counted = 0.0, 0, 0, 0
    for batch, (xb, yb) in enumerate(train):
        out = model(xb)
        value = loss_fn(out, yb)
        if not math.isfinite(value):
            raise _diverged(state, value, epoch, batch, steps_per_epoch, checkpoints)
        optimizer.zero_grad()
        # like torch, no gradient for the data itself: a Sequential skips its first layer's dx
        model.backward(loss_fn.backward(), **backward_kw)
        optimizer.step()
        state.step += 1
        n = xb.shape[0]
        # a 'mean' loss is weighted by the batch size, so the epoch's loss is a per-sample mean
        total_loss += value if reduction_sum else value * n
        seen += n
        if acc is not None:
            c, k = acc(out, yb)
            correct += c
            counted += k
        for cb in step_cbs:
            cb.on_step_end(state, batch, value)
        if bar.enabled and batch % 16 == 15:
            bar.update_to(state.step, epoch=epoch, loss=total_loss / seen)
        if max_steps is not None and state.step >= max_steps:
            break
    if seen == 0:
        raise ValueError(f"fit: the training data gave no batches in epoch {epoch}")
    logs: dict[str, Any] = {"epoch": epoch, "step": state.step, "train_loss": total_loss / seen}
    if acc is not None:
        logs["train_accuracy"] = correct / counted
    logs["lr"] = lr
    logs["time"] = t0
    return logs


def _overrides(cb: Callback, hook: str) -> bool:
    # a hook replaced on the instance (LambdaCallback) or overridden in a subclass
    return hook in vars(cb) or getattr(type(cb), hook) is not getattr(Callback, hook)


def _lr(optimizer: Any) -> float | None:
    groups = getattr(optimizer, "param_groups", None)
    return float(groups[0]["lr"]) if groups else None


def _postfix(logs: dict[str, Any]) -> dict[str, Any]:
    short = {
        "train_loss": "loss",
        "train_accuracy": "acc",
        "val_loss": "val",
        "val_accuracy": "vacc",
    }
    post: dict[str, Any] = {"epoch": logs["epoch"]}
    post.update({name: logs[key] for key, name in short.items() if key in logs})
    return post


def _diverged(
    state: TrainState,
    value: float,
    epoch: int,
    batch: int | None,
    steps_per_epoch: int | None,
    checkpoints: list[ModelCheckpoint],
) -> DivergenceError:
    """The error for a non-finite loss at ``batch`` of ``epoch`` (None: the validation loss
    after the epoch)."""
    saved = [cb for cb in checkpoints if cb.path.exists()]
    if saved:
        where = f"the last good checkpoint is kept at {saved[-1].path}"
    else:
        where = "no checkpoint was written"
    if batch is None:
        step = state.step
        at = f"the validation loss is {value} after epoch {epoch} (global step {step})"
    else:
        step = state.step + 1
        of = f" of {steps_per_epoch}" if steps_per_epoch is not None else ""
        at = f"the loss is {value} at epoch {epoch}, step {batch + 1}{of} (global step {step})"
    message = f"training diverged: {at}; {where}. Try a smaller learning rate."
    # a callback that watches the layers (TrainingMonitor) adds where the first NaN/Inf appeared
    for cb in state.callbacks:
        describe = getattr(cb, "describe_divergence", None)
        note = describe(state) if describe is not None else None
        if note:
            message += " " + note
    return DivergenceError(
        message,
        epoch=epoch,
        step=step,
        history=state.history,
        checkpoint=saved[-1].path if saved else None,
    )
