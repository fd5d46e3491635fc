"""A run folder -> a self-contained PyTorch training folder (``handgrad export RUN_DIR``).

::

    <out>/
        model.py       the network as plain torch.nn (``build_model()``), no handgrad import
        state.pt       weights and buffers, the torch.optim state dict (SGD momentum buffers,
                       Adam moments and step, ...), the LR scheduler's state dict, the state of
                       the generator that orders the batches, epoch, step and history
        data.npz       the training and validation arrays exactly as handgrad fed them
        train.py       continues the run: python / --device cuda / torchrun (see its docstring)
        config.json    the run's config (what ``handgrad report`` reads)
        metrics.jsonl  the history so far, in handgrad's format
        README.md      the commands, and what is and is not the same as in handgrad

How the run is read: the experiment is run again on a copy of the checkpoint, up to the moment
its :meth:`Run.fit` has restored the checkpoint and is about to train. There the model, loss,
optimizer, data loader, validation data and callbacks are taken as handgrad holds them, so the
exported folder continues the very run, whichever experiment made it, as long as it trains
through ``Run.fit`` with a :class:`~handgrad.data.DataLoader` and its layers, loss, optimizer
and schedule have PyTorch counterparts (rules below). Anything else fails with one line naming
what cannot be exported.

The data is written as arrays rather than re-loaded by train.py: the exported folder needs
neither handgrad nor the data set's files, and the batches are the same arrays, bit for bit
(after standardisation, flattening and the validation split). For MNIST that is 60000 x 784
values (about 190 MB in float32, less compressed); the bundled digits take about 0.2 MB.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

import handgrad.nn as hnn
from handgrad.data import DataLoader
from handgrad.torch_ext.bridge import to_torch, torch_constructor
from handgrad.train import Callback, load_checkpoint
from handgrad.train.runs import CHECKPOINT, CONFIG, METRICS, Run, read_run_config

__all__ = ["FORMAT", "ExportError", "Exported", "export_run", "model_source"]

FORMAT = "handgrad-export"
TEMPLATE = "_train_template.py"

# -- rules: what crosses, with its PyTorch name --------------------------------------------
# optimizers: handgrad class -> torch.optim class; handgrad param-group keys torch does not
# take, with the only value that means the same there
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "SGD": ("SGD", {}),
    "Adam": ("Adam", {}),
    "AdamW": ("AdamW", {"decoupled_weight_decay": True}),
    "RMSprop": ("RMSprop", {}),
}
# learning-rate schedulers: handgrad class -> constructor arguments (torch's, same names)
SCHEDULERS: dict[str, tuple[str, ...]] = {
    "StepLR": ("step_size", "gamma"),
    "ExponentialLR": ("gamma",),
    "CosineAnnealingLR": ("T_max", "eta_min"),
}
LOSSES = ("CrossEntropyLoss", "NLLLoss", "MSELoss", "BCELoss", "BCEWithLogitsLoss")
# callbacks that only record (figures, logs, checkpoints): train.py does without them
RECORDERS = ("MetricsLogger", "ModelCheckpoint", "TrainingMonitor", "ProbabilitySnapshots")
# torch.optim switches that are not hyperparameters
_TORCH_SWITCHES = ("params", "foreach", "fused", "capturable", "differentiable")


class ExportError(ValueError):
    """The run cannot be exported; the message says what (one line)."""


@dataclasses.dataclass(frozen=True)
class Exported:
    """What :func:`export_run` wrote: the folder, the run's experiment, epoch and step, the
    ``--epochs`` to continue with (the run's planned epochs, or one more), the data file's
    size in bytes, and notes on what differs from handgrad (Dropout, BatchNorm)."""

    out: Path
    experiment: str
    epoch: int
    step: int
    next_epochs: int
    data_bytes: int
    notes: tuple[str, ...]


# -- capturing the run at the start of training --------------------------------------------
class _Captured(Exception):
    def __init__(self, state: Any) -> None:
        super().__init__("captured")
        self.state = state


class _Capture(Callback):
    """Stops ``fit`` right after it restored the checkpoint, handing over its TrainState."""

    order = -(10**9)  # before every other callback's on_train_begin

    def on_train_begin(self, state: Any) -> None:
        raise _Captured(state)


def _capture(run_dir: Path) -> tuple[str, dict[str, Any], Any]:
    """(experiment, config dict, TrainState restored from the checkpoint) of the run."""
    from handgrad.experiments import registry

    name, saved = read_run_config(run_dir)
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.is_file():
        raise ExportError(
            f"export: {run_dir} has no {CHECKPOINT}: only runs that train through Run.fit "
            "(and finished an epoch) can be exported"
        )
    load_checkpoint(checkpoint)  # a corrupt file fails here, with one line
    exp = registry.get(name)
    cfg = registry.make_config(exp, {**saved, "quiet": True})
    with tempfile.TemporaryDirectory(prefix="handgrad-export-") as tmp:
        # the experiment runs in a scratch folder: nothing in the run folder is touched
        shutil.copyfile(checkpoint, Path(tmp) / CHECKPOINT)
        run = Run(tmp, name, cfg, resuming=True, quiet=True)
        run.callbacks.append(_Capture())
        try:
            exp.run(cfg, run)
        except _Captured as captured:
            return name, dataclasses.asdict(cfg), captured.state
    raise ExportError(f"export: experiment {name!r} does not train through Run.fit")


# -- pieces --------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A hyperparameter as a plain Python value (tuples of equal ints as one int)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        if items and all(isinstance(v, int) and v == items[0] for v in items):
            return items[0]
        return tuple(items)
    return value


def model_source(model: Any, *, origin: str, input_shape: tuple[int, ...]) -> str:
    """Python source of ``model.py``: ``build_model()`` returning the ``torch.nn`` network of
    the handgrad ``model`` (a layer or nested ``Sequential``), children named as in handgrad.

    Raises:
        TypeError: ``"export: unsupported layer <Name> at '<path>'; supported: ..."``.
    """

    def expr(layer: Any, path: str, indent: str) -> str:
        if isinstance(layer, hnn.Sequential):
            inner = indent + "    "
            lines = []
            for key, child in layer._modules.items():
                where = f"{path}.{key}" if path else key
                lines.append(f"{inner}{expr(child, where, inner)},  # {where}")
            return "nn.Sequential(\n" + "\n".join(lines) + f"\n{indent})"
        name, kwargs = torch_constructor(layer, path, "export")
        defaults = {
            k: p.default
            for k, p in inspect.signature(getattr(torch.nn, name)).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        shown = {k: _plain(v) for k, v in kwargs.items()}
        args = ", ".join(
            f"{k}={v!r}" for k, v in shown.items() if k not in defaults or defaults[k] != v
        )
        return f"nn.{name}({args})"

    shape = ", ".join(map(str, input_shape))
    body = expr(model, "", "    ")
    return f'''"""The network of the handgrad run {origin}, as plain torch.nn.

Written by ``handgrad export``. The children are numbered as in handgrad, so the parameter and
buffer names (``0.weight``, ...) are those of handgrad's state dict and state.pt loads by name.
Input: (N, {shape}).
"""

from torch import nn


def build_model() -> nn.Module:
    """The network in float32, on the CPU (``.to(dtype)``, ``.to(device)`` as any module)."""
    return {body}
'''


def _optimizer(optimizer: Any, hmodel: Any, tmodel: torch.nn.Module) -> tuple[dict, dict]:
    """(settings entry, torch state dict) of the handgrad optimizer."""
    kind = type(optimizer).__name__
    if kind not in OPTIMIZERS:
        raise ExportError(
            f"export: optimizer {kind} has no torch.optim counterpart here; "
            f"supported: {', '.join(OPTIMIZERS)}"
        )
    if len(optimizer.param_groups) != 1:
        raise ExportError(
            f"export: the optimizer has {len(optimizer.param_groups)} parameter groups; "
            "export supports one (all of the model's parameters)"
        )
    (group,) = optimizer.param_groups
    names = [name for name, _ in hmodel.named_parameters()]
    if [id(p) for p in group["params"]] != [id(p) for p in hmodel.parameters()]:
        raise ExportError("export: the optimizer does not hold the model's parameters in order")
    if names != [name for name, _ in tmodel.named_parameters()]:  # pragma: no cover - bridge
        raise ExportError("export: the torch model's parameters are not named as handgrad's")
    torch_name, implied = OPTIMIZERS[kind]
    cls = getattr(torch.optim, torch_name)
    accepted = set(inspect.signature(cls).parameters) - set(_TORCH_SWITCHES)
    args = {}
    for key, value in group.items():
        if key in ("params", "param_names", "initial_lr"):
            continue
        if key == "lr":  # the schedule's starting lr; the current one comes with the state
            args[key] = float(group.get("initial_lr", value))
        elif key in accepted:
            args[key] = _plain(value) if key != "betas" else tuple(float(b) for b in value)
        elif implied.get(key, object()) != value:
            raise ExportError(
                f"export: {kind} has {key}={value!r}, which torch.optim.{torch_name} does not take"
            )
    topt = cls(tmodel.parameters(), **args)
    saved = optimizer.state_dict()
    torch_groups = topt.state_dict()["param_groups"]
    groups = []
    for tg, g in zip(torch_groups, saved["param_groups"], strict=True):
        shared = {k: v for k, v in g.items() if k in tg or k == "initial_lr"}
        groups.append({**tg, **shared, "params": tg["params"]})
    state = {}
    for index, entries in saved["state"].items():
        state[int(index)] = {
            key: torch.tensor(float(v)) if key == "step" else torch.from_numpy(np.array(v))
            for key, v in entries.items()
        }
    # loading into torch's own optimizer checks the layout and gives torch's exact state dict
    topt.load_state_dict({"state": state, "param_groups": groups})
    return {"name": torch_name, "args": args}, topt.state_dict()


def _scheduler(callbacks: list[Any], optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
    """(settings entry, torch state dict) of the run's LR schedule, (None, None) without."""
    found: list[Any] = []
    for cb in callbacks:
        kind = type(cb).__name__
        if isinstance(cb, _Capture) or any(c.__name__ in RECORDERS for c in type(cb).__mro__):
            continue  # a recorder, or a subclass of one
        if kind != "LRSchedulerCallback":
            raise ExportError(
                f"export: callback {kind} changes the training and train.py has no counterpart; "
                f"exportable callbacks: LRSchedulerCallback, {', '.join(RECORDERS)}"
            )
        found.append(cb)
    if not found:
        return None, None
    if len(found) > 1:
        raise ExportError(f"export: the run has {len(found)} LR schedules; export supports one")
    (cb,) = found
    kind = type(cb.scheduler).__name__
    if kind not in SCHEDULERS:
        raise ExportError(
            f"export: scheduler {kind} has no counterpart here; supported: {', '.join(SCHEDULERS)}"
        )
    args = {a: _plain(getattr(cb.scheduler, a)) for a in SCHEDULERS[kind]}
    tsched = getattr(torch.optim.lr_scheduler, kind)(optimizer, **args)
    state = tsched.state_dict()
    saved = cb.scheduler.state_dict()  # torch's keys: last_epoch, base_lrs, _last_lr, ...
    missing = [k for k in state if k not in saved]
    if missing:
        raise ExportError(f"export: {kind}'s state lacks {missing}, which torch's has")
    state = {k: list(saved[k]) if isinstance(saved[k], (list, tuple)) else saved[k] for k in state}
    return {"name": kind, "args": args, "interval": cb.interval}, state


def _arrays(data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return np.asarray(data[0]), np.asarray(data[1])
    if hasattr(data, "X") and hasattr(data, "y"):  # a Dataset or a DataLoader
        return np.asarray(data.X), np.asarray(data.y)
    raise ExportError(f"export: the {what} data is a {type(data).__name__}, not arrays (X, y)")


def _literal(value: Any, indent: str = "", used: int = 0) -> str:
    """A Python literal of plain values laid out as ruff format would (line length 100): a dict
    on one line if it fits after the ``used`` columns, else one item per line, trailing comma."""
    if isinstance(value, dict):
        one = "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
        if used + len(one) + 1 <= 100 or not value:
            return one
        inner = indent + "    "
        lines = []
        for k, v in value.items():
            head = f"{inner}{_literal(k)}: "
            lines.append(f"{head}{_literal(v, inner, len(head))},\n")
        return "{\n" + "".join(lines) + indent + "}"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


# -- the export ----------------------------------------------------------------------------
def export_run(run_dir: str | Path, out: str | Path | None = None) -> Exported:
    """Write the PyTorch training folder of the run in ``run_dir`` to ``out`` (default:
    ``<run_dir>-torch`` next to it); see the module docstring for what it holds.

    Raises:
        FileNotFoundError: no run folder or config.json.
        CheckpointError: the checkpoint is corrupt or does not fit the run (one line).
        TypeError: a layer has no torch.nn counterpart (the message names it and its path).
        ExportError: anything else that cannot be exported (loss, optimizer, callback, data),
            or ``out`` is a folder that is not empty.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir.with_name(run_dir.name + "-torch")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"export: {out} exists and is not empty; choose another --out")
    name, config, state = _capture(run_dir)
    hmodel, loader = state.model, state.train

    # data: the arrays the loader draws batches from, and the validation arrays
    if not isinstance(loader, DataLoader):
        raise ExportError(
            f"export: the training data is a {type(loader).__name__}, not a handgrad DataLoader"
        )
    arrays = {"train_X": loader.X, "train_y": loader.y}
    if state.val is not None:
        arrays["val_X"], arrays["val_y"] = _arrays(state.val, "validation")
    gen_state = loader.rng.bit_generator.state

    # model
    tmodel = to_torch(_renamed_errors(hmodel))
    dtypes = {p.data.dtype for p in hmodel.parameters()}
    if len(dtypes) != 1:
        raise ExportError(f"export: the model mixes dtypes {sorted(map(str, dtypes))}")
    dtype = str(dtypes.pop())
    source = model_source(hmodel, origin=run_dir.name, input_shape=tuple(loader.X.shape[1:]))

    # loss, optimizer, schedule
    loss_name = type(state.loss_fn).__name__
    if loss_name not in LOSSES:
        raise ExportError(f"export: loss {loss_name} has no torch.nn counterpart here")
    opt_settings, opt_state = _optimizer(state.optimizer, hmodel, tmodel)
    topt = getattr(torch.optim, opt_settings["name"])(tmodel.parameters(), **opt_settings["args"])
    sched_settings, sched_state = _scheduler(state.callbacks, topt)

    notes = []
    dropouts = [n for n, m in hmodel.named_modules() if isinstance(m, hnn.Dropout) and m.p > 0]
    if dropouts:
        notes.append(
            f"Dropout ({', '.join(dropouts)}): its masks are drawn by torch's generator, and "
            "handgrad drew them from the generator that also orders the batches, so only the "
            "first epoch's batches are the same as in handgrad and no weights match exactly"
        )
    norms = [n for n, m in hmodel.named_modules() if type(m).__name__.startswith("BatchNorm")]
    if norms:
        notes.append(
            f"BatchNorm ({', '.join(norms)}): the bias of a layer in front of it has a gradient "
            "of rounding noise only (the batch mean takes the bias out), which Adam scales up, so "
            "that bias and the running mean agree with handgrad to about 1e-9, not 1e-15; and "
            "under DDP each process normalises its part of a batch with that part's statistics "
            "(DDP's default), so N processes come close to one process, not to the last bit"
        )
    settings = {
        "experiment": name,
        "seed": int(config.get("seed", 0)),
        "epochs": int(state.epochs),
        "max_steps": state.max_steps,
        "dtype": dtype,
        "batch_size": loader.batch_size,
        "shuffle": loader.shuffle,
        "drop_last": loader.drop_last,
        "eval_batch_size": 1024,  # fit's default, which Run.fit keeps
        "loss": {"name": loss_name, "reduction": getattr(state.loss_fn, "reduction", "mean")},
        "optimizer": opt_settings,
        "scheduler": sched_settings,
    }

    out.mkdir(parents=True, exist_ok=True)
    (out / "model.py").write_text(source, encoding="utf-8")
    template = resources.files("handgrad.torch_ext").joinpath(TEMPLATE).read_text("utf-8")
    marker = "SETTINGS: dict[str, Any] = {}\n"
    if template.count(marker) != 1:  # pragma: no cover - the template is part of the package
        raise RuntimeError(f"export: {TEMPLATE} has no SETTINGS line")
    head = "SETTINGS: dict[str, Any] = "
    settings_line = f"{head}{_literal(settings, '', len(head))}\n"
    (out / "train.py").write_text(template.replace(marker, settings_line), encoding="utf-8")
    torch.save(
        {
            "format": FORMAT,
            "experiment": name,
            "epoch": int(state.epoch),
            "step": int(state.step),
            "dtype": dtype,
            "model": {k: v.detach().clone() for k, v in tmodel.state_dict().items()},
            "optimizer": opt_state,
            "scheduler": sched_state,
            "rng": gen_state,
            "history": [dict(h) for h in state.history],
        },
        out / "state.pt",
    )
    np.savez_compressed(out / "data.npz", **arrays)
    run_config = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
    run_config["config"] = config | {"quiet": False}
    run_config["exported"] = {
        "from": str(run_dir.resolve()),
        "epoch": int(state.epoch),
        "step": int(state.step),
        "torch": torch.__version__,
    }
    (out / CONFIG).write_text(json.dumps(run_config, indent=2) + "\n", encoding="utf-8")
    with open(out / METRICS, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(h) + "\n" for h in state.history)
    more = max(int(state.epochs), int(state.epoch) + 1)
    info = {
        "name": name,
        "run": run_dir.name,
        "epoch": int(state.epoch),
        "step": int(state.step),
        "more": more,
        "dtype": dtype,
        "batch_size": loader.batch_size,
        "optimizer": opt_settings["name"],
        "scheduler": sched_settings["name"] if sched_settings else "none",
        "loss": loss_name,
        "n_train": len(loader.X),
        "n_val": len(arrays["val_X"]) if "val_X" in arrays else 0,
        "notes": "".join(f"\n- {n}." for n in notes) or "\nnowhere, for this run.",
    }
    (out / "README.md").write_text(README.format(**info), encoding="utf-8")
    return Exported(
        out=out,
        experiment=name,
        epoch=int(state.epoch),
        step=int(state.step),
        next_epochs=more,
        data_bytes=(out / "data.npz").stat().st_size,
        notes=tuple(notes),
    )


def _renamed_errors(model: Any) -> Any:
    """``model``, after checking every layer crosses (errors say ``export:``, not ``to_torch:``)."""

    def walk(layer: Any, path: str) -> None:
        if isinstance(layer, hnn.Sequential):
            for key, child in layer._modules.items():
                walk(child, f"{path}.{key}" if path else key)
        else:
            torch_constructor(layer, path, "export")

    walk(model, "")
    return model


README = """# {name}, continued in PyTorch

Exported by `handgrad export` from the run `{run}`
after epoch {epoch} (step {step}). This folder needs torch and numpy, not handgrad.

| file | what |
|---|---|
| `model.py` | the network as plain `torch.nn` (`build_model()`) |
| `state.pt` | weights and buffers, the `torch.optim.{optimizer}` state dict, the LR schedule \
({scheduler}), the generator that orders the batches, epoch, step, history |
| `data.npz` | the {n_train} training and {n_val} validation samples, as handgrad fed them |
| `train.py` | the training loop: {loss}, {optimizer}, batch {batch_size}, {dtype} |
| `config.json`, `metrics.jsonl` | the run's config and history, in handgrad's format |

## Commands

```
python train.py --epochs {more}                          # CPU, one process
python train.py --epochs {more} --device cuda            # one GPU
torchrun --nproc_per_node=2 train.py --epochs {more}     # DDP on 2 processes (gloo on CPU)
torchrun --nproc_per_node=8 train.py --epochs {more} --device cuda   # 8 GPUs (nccl)
handgrad report .                                        # redraw curves.png and report.md
```

`--epochs` counts all epochs, those done in handgrad included (as `handgrad run --resume DIR
--epochs N`). Each epoch writes `checkpoint.pt` (the format of `state.pt`) and a line of
`metrics.jsonl`; the next call continues from `checkpoint.pt`. `--out DIR` writes them
elsewhere, `--dtype float32|float64` changes the precision, `--max-steps N` stops early.

## Same numbers

Every epoch draws one permutation of the training samples from the NumPy generator saved in
`state.pt`, the generator handgrad's DataLoader drew from, so the batches and their order are
handgrad's. The optimizer's state (moments, momentum buffers, step counts) and the schedule's
position continue where handgrad left them. In float64 one more epoch here and one more epoch of
`handgrad run --resume` give the same weights to about 1e-15 relative (tested to 1e-10).

With `torchrun --nproc_per_node=N`, `batch_size` ({batch_size}) stays the global batch: each
global batch is split into N contiguous parts (about {batch_size}/N samples each), each process
sums the losses of its part and scales the sum by N / {batch_size}, and DDP's average of the N
gradients is the gradient of the whole batch's mean loss. So the learning rate stays as it is
and N processes take the same steps as one, to rounding (tested: the first step on 2 processes
is within 1e-6 of one process's).
Raising the per-process batch instead (global batch N x {batch_size}) is a different run: the
usual rule of thumb scales the learning rate by N, and the numbers are no longer handgrad's.

Where it differs from handgrad:
{notes}
"""
