"""Training: the fit/evaluate loop, callbacks, checkpoints and run folders.

``fit(model, loss_fn, optimizer, train, val, epochs=...)`` returns a history (a list of dicts,
one per epoch); callbacks checkpoint, stop early and step learning-rate schedules; a
:class:`Run` gives an experiment its folder (config, metrics, checkpoint, figures, report).
"""

from handgrad.train.callbacks import (
    Callback,
    EarlyStopping,
    LambdaCallback,
    LRSchedulerCallback,
    MetricsLogger,
    ModelCheckpoint,
    TrainState,
)
from handgrad.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from handgrad.train.loop import DivergenceError, evaluate, fit
from handgrad.train.memory import keep_freed_memory
from handgrad.train.monitors import TrainingMonitor
from handgrad.train.runs import Run, read_run_config

__all__ = [
    "Callback",
    "CheckpointError",
    "DivergenceError",
    "EarlyStopping",
    "LRSchedulerCallback",
    "LambdaCallback",
    "MetricsLogger",
    "ModelCheckpoint",
    "Run",
    "TrainState",
    "TrainingMonitor",
    "evaluate",
    "fit",
    "keep_freed_memory",
    "load_checkpoint",
    "read_run_config",
    "save_checkpoint",
]
