"""Callbacks: how the training loop reports, saves and stops, without growing itself.

A callback sees a :class:`TrainState` at fixed points of :func:`handgrad.train.fit`. Callbacks
run in ascending ``order`` (ties keep the order given): ordinary ones first (0), then the
metrics logger (50), then checkpoints (100), so a checkpoint holds the state *after* the
learning-rate schedule and early stopping have updated for the epoch.

A callback with state (an early-stopping counter, a schedule) returns it from ``state_dict()``
and takes it back in ``load_state_dict()``; checkpoints store it, so a resumed run is exact.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from handgrad._atomic import append_text, write_text
from handgrad.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    non_finite_arrays,
    save_checkpoint,
)

__all__ = [
    "Callback",
    "EarlyStopping",
    "LRSchedulerCallback",
    "LambdaCallback",
    "MetricsLogger",
    "ModelCheckpoint",
    "TrainState",
    "restore_training_state",
    "training_state",
]


@dataclass
class TrainState:
    """What the loop knows; callbacks read it and may set ``stop``/``stop_reason``."""

    model: Any
    loss_fn: Any
    optimizer: Any
    train: Any
    val: Any
    epochs: int
    max_steps: int | None = None
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps done
    history: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    stop: bool = False
    stop_reason: str | None = None
    final: bool = False  # True while the last epoch's callbacks run


class Callback:
    """Base class: override the hooks you need (all default to doing nothing)."""

    order: int = 0

    def on_train_begin(self, state: TrainState) -> None:
        """Called once, after a resume has restored the state."""

    def on_epoch_begin(self, state: TrainState) -> None:
        """Called before the first step of each epoch (``state.epoch`` epochs are done)."""

    def on_step_end(self, state: TrainState, batch: int, loss: float) -> None:
        """Called after every optimizer step; ``batch`` counts from 0 within the epoch.

        Only callbacks that override this hook are called per step (the loop stays lean).
        """

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        """Called after each epoch with its history entry; may add keys to ``logs``."""

    def on_train_end(self, state: TrainState) -> None:
        """Called once when training ends normally (not on errors or interrupts)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` returned."""


class LambdaCallback(Callback):
    """A callback made of plain functions: ``LambdaCallback(on_epoch_end=fn)``."""

    def __init__(self, *, on_epoch_end: Any = None, on_step_end: Any = None) -> None:
        if on_epoch_end is not None:
            self.on_epoch_end = on_epoch_end  # type: ignore[method-assign]
        if on_step_end is not None:
            self.on_step_end = on_step_end  # type: ignore[method-assign]


class LRSchedulerCallback(Callback):
    """Steps a learning-rate scheduler after every epoch (``interval='epoch'``) or step."""

    def __init__(self, scheduler: Any, interval: str = "epoch") -> None:
        if interval not in ("epoch", "step"):
            raise ValueError(
                f"LRSchedulerCallback: invalid interval {interval!r}, must be 'epoch' or 'step'"
            )
        self.scheduler = scheduler
        self.interval = interval
        if interval == "step":
            self.on_step_end = self._step  # type: ignore[method-assign]

    def _step(self, state: TrainState, batch: int, loss: float) -> None:
        self.scheduler.step()

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        if self.interval == "epoch":
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return dict(self.scheduler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode='min'`` for losses, ``'max'`` for accuracies. The reason is added to the last
    history entry under ``"stopped"``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 10,
        min_delta: float = 0.0,
        mode: str = "min",
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: invalid mode {mode!r}, must be 'min' or 'max'")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStopping: invalid patience {patience!r}, must be an int >= 1")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: invalid min_delta {min_delta!r}, must be >= 0")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = 0
        self.wait = 0

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping: monitor {self.monitor!r} is not in the epoch's logs; "
                f"available: {', '.join(sorted(logs))}"
            )
        value = float(logs[self.monitor])
        if self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop = True
            state.stop_reason = (
                f"early stopping: {self.monitor} has not improved on {self.best:.6g} "
                f"(epoch {self.best_epoch}) for {self.patience} epochs"
            )
            logs["stopped"] = state.stop_reason

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])


class MetricsLogger(Callback):
    """Appends each epoch's history entry to a JSON-lines file, flushed line by line.

    At the start of training the file is rewritten from the history so far, so after a resume
    it holds exactly the epochs the checkpoint holds (lines written after the checkpoint by a
    killed process are dropped). That rewrite makes a new file and renames it into place; the
    lines after it are appended to that file, never through a symbolic link.
    """

    order = 50

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_train_begin(self, state: TrainState) -> None:
        write_text(self.path, "".join(json.dumps(entry) + "\n" for entry in state.history))

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        append_text(self.path, json.dumps(logs) + "\n")


class ModelCheckpoint(Callback):
    """Saves the full training state to ``path`` every ``every`` epochs and after the last one.

    The file (see :mod:`handgrad.train.checkpoint`) holds the model's state_dict, the
    optimizer's state_dict, every random generator of the model and the data loader, each
    callback's state, the history and ``extra``. It is replaced atomically, so it always holds
    the last completed save.
    """

    order = 100

    def __init__(
        self, path: str | os.PathLike, every: int = 1, extra: dict[str, Any] | None = None
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"ModelCheckpoint: invalid every {every!r}, must be an int >= 1")
        self.path = Path(path)
        self.every = every
        self.extra = dict(extra or {})
        self.last_epoch: int | None = None  # epoch of the last save by this process

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        if state.epoch % self.every == 0 or state.final or state.stop:
            self.save(state)

    def on_train_end(self, state: TrainState) -> None:
        # a resumed run that had already finished still leaves a checkpoint of its end state
        if self.last_epoch != state.epoch and not self.path.exists():
            self.save(state)

    def save(self, state: TrainState) -> None:
        save_checkpoint(self.path, training_state(state, self.extra))
        self.last_epoch = state.epoch


# -- the whole training state ---------------------------------------------------------------
def _generators(obj: Any) -> dict[str, np.random.Generator]:
    attrs = getattr(obj, "__dict__", {})
    return {k: v for k, v in attrs.items() if isinstance(v, np.random.Generator)}


def random_generators(state: TrainState) -> dict[str, np.random.Generator]:
    """Every Generator the run draws from: in model modules and in the data loaders."""
    gens: dict[str, np.random.Generator] = {}
    for name, module in state.model.named_modules():
        for attr, gen in _generators(module).items():
            gens[f"model.{name}.{attr}" if name else f"model.{attr}"] = gen
    for which in ("train", "val"):
        for attr, gen in _generators(getattr(state, which)).items():
            gens[f"{which}.{attr}"] = gen
    return gens


def _callback_keys(callbacks: list[Callback]) -> list[str]:
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        name = type(cb).__name__
        keys.append(f"{name}[{seen.get(name, 0)}]")
        seen[name] = seen.get(name, 0) + 1
    return keys


def training_state(state: TrainState, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A snapshot of everything needed to continue training exactly (see ModelCheckpoint)."""
    opt_state = state.optimizer.state_dict() if hasattr(state.optimizer, "state_dict") else {}
    return {
        "epoch": state.epoch,
        "step": state.step,
        "stop": state.stop,
        "stop_reason": state.stop_reason,
        "model": dict(state.model.state_dict()),
        "optimizer": opt_state,
        "rng": {k: g.bit_generator.state for k, g in random_generators(state).items()},
        "callbacks": {
            key: cb.state_dict()
            for key, cb in zip(_callback_keys(state.callbacks), state.callbacks, strict=True)
        },
        "history": list(state.history),
        "extra": dict(extra or {}),
    }


def restore_training_state(state: TrainState, source: str | os.PathLike | dict[str, Any]) -> None:
    """Load a checkpoint (a path or a loaded mapping) into the model, optimizer, generators,
    callbacks and ``state``. Raises CheckpointError if it does not fit them."""
    ckpt = load_checkpoint(source) if not isinstance(source, dict) else source
    where = source if not isinstance(source, dict) else "the checkpoint"
    # NaN or inf in the weights or the optimizer's state would only resume into "training
    # diverged": refuse the checkpoint instead, naming the tensor, before anything is loaded
    for part in ("model", "optimizer"):
        for name, nan, inf in non_finite_arrays(ckpt.get(part, {})):
            raise CheckpointError(
                f"{where}: {part} tensor '{name}' holds non-finite values ({nan} NaN, {inf} inf); "
                "training cannot continue from it. Resume from an earlier copy of the "
                "checkpoint, or start a new run"
            )
    try:
        state.model.load_state_dict(ckpt["model"])
        if hasattr(state.optimizer, "load_state_dict"):
            state.optimizer.load_state_dict(ckpt["optimizer"])
        gens = random_generators(state)
        saved = ckpt["rng"]
        if set(gens) != set(saved):
            raise CheckpointError(
                f"random generators differ: checkpoint has {sorted(saved)}, run has {sorted(gens)}"
            )
        for key, gen in gens.items():
            gen.bit_generator.state = saved[key]
        cb_states = ckpt["callbacks"]
        for key, cb in zip(_callback_keys(state.callbacks), state.callbacks, strict=True):
            if key in cb_states:
                cb.load_state_dict(cb_states[key])
        state.history = [dict(h) for h in ckpt["history"]]
        state.epoch = int(ckpt["epoch"])
        state.step = int(ckpt["step"])
        state.stop = bool(ckpt["stop"])
        state.stop_reason = ckpt["stop_reason"]
    except CheckpointError as e:
        raise CheckpointError(f"{where} does not fit this run: {e}") from None
    except (KeyError, ValueError, TypeError) as e:
        msg = str(e).strip("'\"").splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{where} does not fit this run: {msg}") from None
