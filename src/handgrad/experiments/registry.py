"""The experiment registry: name -> (frozen config dataclass, run function, description).

An experiment is a config dataclass and a function ``run(cfg, run) -> dict[str, float]`` that
trains, saves its figures through ``run`` (a :class:`handgrad.train.Run`) and returns its final
numbers::

    @dataclass(frozen=True)
    class MyConfig(Config):            # Config brings seed, data_dir, quiet
        epochs: int = 10
        hidden: tuple[int, ...] = (32,)

    @register("my-exp", MyConfig, "one line that `handgrad list` shows", order=25)
    def run_my_exp(cfg: MyConfig, run: Run) -> dict[str, float]:
        ...
        return {"test_accuracy": acc}

``order`` places the experiment in ``handgrad list`` (ascending; the built-in ones go in tens
by topic: 2-D toys 10s, MLP classifiers 20s, scalar autograd 30s, probes of trained networks
40s, CNNs and BatchNorm 50s); without it an experiment comes after those.

The command line only fills configs: ``--set key=value`` is parsed by the field's type
(int, float, bool, str, ``X | None``, ``Literal[...]`` and tuples such as ``hidden=16,16``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from handgrad.train.checkpoint import checkpoint_epoch
from handgrad.train.runs import (
    CHECKPOINT,
    Run,
    open_run_folder,
    read_run_config,
    require_run_folder,
)

__all__ = [
    "Config",
    "Experiment",
    "check",
    "config_fields",
    "execute",
    "experiments",
    "get",
    "make_config",
    "names",
    "parse_set",
    "prepare",
    "prepare_resume",
    "register",
    "resume",
    "start",
]

RunFn = Callable[[Any, Run], dict[str, float]]


@dataclass(frozen=True)
class Config:
    """Fields every experiment has.

    Attributes:
        seed: seeds every random choice of the run (init, shuffling, data); same seed, same bits.
        data_dir: where downloaded data sets live (None: handgrad.data's default).
        quiet: no progress bar.
        monitors: record per-layer statistics while training (activation and gradient
            histograms, dead ReLU units, update/weight ratios; see handgrad.train.monitors)
            and draw them in the run folder's monitors.png.
    """

    seed: int = 0
    data_dir: str | None = None
    quiet: bool = False
    monitors: bool = False

    def __post_init__(self) -> None:
        check(self, "seed", self.seed >= 0, ">= 0")
        # no setting is NaN or infinite (`--set lr=1e400` parses as inf)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            finite = all(math.isfinite(v) for v in values if isinstance(v, float))
            check(self, f.name, finite, "a finite number")
        # the fields many experiments share are validated once, here, by the table below
        for name, (ok, must) in SHARED_FIELD_RULES.items():
            value = getattr(self, name, None)
            if value is not None:
                check(self, name, ok(value), must)


# Rules for fields that many configs have (a config without the field skips its rule; None is
# left to the config, where it means "all" or "default"). A config adds its own checks after
# ``super().__post_init__()``.
SHARED_FIELD_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: v >= 1, ">= 1"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "lr": (lambda v: v > 0, "> 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "hidden": (lambda v: all(h >= 1 for h in (v if isinstance(v, tuple) else (v,))), "widths >= 1"),
    "val_size": (lambda v: v >= 0, ">= 0"),
    "max_train": (lambda v: v >= 1, ">= 1 or none"),
    "max_test": (lambda v: v >= 1, ">= 1 or none"),
}


def check(cfg: Any, name: str, ok: bool, must: str) -> None:
    """Raise ``ValueError('<Config>: invalid <name> <value>, must be <must>')`` unless ok."""
    if not ok:
        value = getattr(cfg, name)
        raise ValueError(f"{type(cfg).__name__}: invalid {name} {value!r}, must be {must}")


@dataclass(frozen=True)
class Experiment:
    name: str
    config_cls: type
    run: RunFn
    description: str
    order: float = math.inf


_REGISTRY: dict[str, Experiment] = {}


def register(
    name: str, config_cls: type, description: str, *, order: float = math.inf
) -> Callable[[RunFn], RunFn]:
    """Decorator: register ``run(cfg, run)`` under ``name`` with its config class; ``order``
    is its place in :func:`names` (ties keep the order of registration)."""
    if not (dataclasses.is_dataclass(config_cls) and config_cls.__dataclass_params__.frozen):
        raise TypeError(f"register({name!r}): the config must be a frozen dataclass")
    missing = [
        f.name
        for f in dataclasses.fields(config_cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise TypeError(f"register({name!r}): config fields without defaults: {missing}")

    def deco(fn: RunFn) -> RunFn:
        if name in _REGISTRY:
            raise ValueError(f"register: an experiment named {name!r} is already registered")
        _REGISTRY[name] = Experiment(name, config_cls, fn, description, order)
        return fn

    return deco


def names() -> list[str]:
    """Registered experiment names, by ``order`` (the order of ``handgrad list``)."""
    return [exp.name for exp in experiments()]


def experiments() -> list[Experiment]:
    return sorted(_REGISTRY.values(), key=lambda exp: exp.order)  # stable: ties by registration


def get(name: str) -> Experiment:
    """The experiment ``name``; an unknown name is a ValueError listing the valid ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; valid experiments: {', '.join(names())}")
    return _REGISTRY[name]


# -- config values -------------------------------------------------------------------------
def config_fields(config_cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation, in declaration order."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner) + " or none"
    if origin is tuple:
        elem = typing.get_args(tp)[0]
        return f"a comma-separated list of {getattr(elem, '__name__', elem)}s"
    return {int: "an int", float: "a float", bool: "a bool (true/false)", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _coerce(value: Any, tp: Any) -> Any:
    """Convert ``value`` (a string from the command line, or a JSON value) to type ``tp``.

    Raises ValueError (the caller adds which key) if it does not fit.
    """
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        for c in choices:
            if value == c or (isinstance(value, str) and value == str(c)):
                return c
        raise ValueError
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        ):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except ValueError:
                continue
        raise ValueError
    if origin is tuple:
        (elem, *rest) = typing.get_args(tp)
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")] if value.strip() else []
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            raise ValueError
        if rest and rest[0] is not Ellipsis:  # a fixed-length tuple such as tuple[float, float]
            types_ = (elem, *rest)
            if len(parts) != len(types_):
                raise ValueError
            return tuple(_coerce(p, t) for p, t in zip(parts, types_, strict=True))
        return tuple(_coerce(p, elem) for p in parts)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError
    if tp is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return int(value.replace("_", ""))
        raise ValueError
    if tp is float:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return float(value)
        raise ValueError
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError
    raise TypeError(f"config fields of type {tp!r} cannot be set from the command line")


def parse_set(items: Sequence[str]) -> dict[str, str]:
    """``['lr=0.1', 'hidden=16,16']`` -> ``{'lr': '0.1', 'hidden': '16,16'}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.replace("-", "_")] = value.strip()
    return out


def make_config(experiment: str | Experiment, overrides: Mapping[str, Any] | None = None) -> Any:
    """The experiment's config with ``overrides`` (strings or typed values) applied.

    Raises ValueError for an unknown key (listing the valid ones), a value of the wrong type
    (naming the expected type) or a value the config rejects.
    """
    exp = get(experiment) if isinstance(experiment, str) else experiment
    fields = config_fields(exp.config_cls)
    values: dict[str, Any] = {}
    for key, raw in (overrides or {}).items():
        if key not in fields:
            raise ValueError(
                f"{exp.name}: unknown config key {key!r}; valid keys: {', '.join(fields)}"
            )
        try:
            values[key] = _coerce(raw, fields[key])
        except ValueError:
            shown = raw if isinstance(raw, str) else repr(raw)
            raise ValueError(
                f"{exp.name}: {key}={shown} is not {_type_name(fields[key])}"
            ) from None
    return exp.config_cls(**values)


# -- running -------------------------------------------------------------------------------
def execute(exp: Experiment, cfg: Any, run: Run) -> dict[str, float]:
    """Call the experiment's run function and write the run's report; returns its numbers.

    The run's folder lock (taken by :func:`prepare` / :func:`prepare_resume`) is released at
    the end, whether the run succeeds or fails."""
    try:
        results = exp.run(cfg, run)
        run.write_report(results, description=exp.description)
    finally:
        run.close()
    return results


def prepare(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    out: str | os.PathLike = "runs",
    argv: Sequence[str] | None = None,
) -> tuple[Experiment, Any, Run]:
    """The experiment, its config with ``overrides``, and a new run folder under ``out``."""
    exp = get(name)
    cfg = make_config(exp, overrides)
    run = Run.create(exp.name, cfg, out=out, quiet=cfg.quiet, argv=argv)
    return exp, cfg, run


def start(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    out: str | os.PathLike = "runs",
    argv: Sequence[str] | None = None,
    callbacks: Sequence[Any] = (),
) -> tuple[Run, dict[str, float]]:
    """Run experiment ``name`` in a new folder under ``out``; returns the run and its numbers.

    ``callbacks`` are added to every ``fit`` of the run (hooks, tests).
    """
    exp, cfg, run = prepare(name, overrides, out=out, argv=argv)
    run.callbacks.extend(callbacks)
    return run, execute(exp, cfg, run)


# settings that may change when a run is resumed: they do not change its numbers (epochs
# extends the run; the numbers of the epochs already done stay the same). A run cannot be
# shortened: fewer epochs than its checkpoint holds is refused (equal: the report is rewritten,
# nothing is trained).
RESUME_OVERRIDES = ("epochs", "quiet", "data_dir")


def prepare_resume(
    directory: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    *,
    argv: Sequence[str] | None = None,
) -> tuple[Experiment, Any, Run]:
    """The experiment, config and Run of the existing run folder ``directory``.

    Only the settings in RESUME_OVERRIDES may change; the rest comes from its config.json, and
    ``epochs`` may not be fewer than the epochs its checkpoint holds. The Run holds the folder's
    lock (released by :func:`execute`, or ``run.close()``); config.json is rewritten only when
    the config changes, the previous entry kept in its ``history``.
    """
    require_run_folder(directory)  # a run folder at all? (before a lock file is made in it)
    overrides = dict(overrides or {})
    bad = [k for k in overrides if k not in RESUME_OVERRIDES]
    if bad:
        raise ValueError(
            f"--resume: {bad[0]!r} cannot change when a run is resumed; "
            f"only {', '.join(RESUME_OVERRIDES)} can"
        )
    lock = open_run_folder(directory, argv)
    try:
        name, saved = read_run_config(directory)  # again, now that no one else can write it
        exp = get(name)
        fields = config_fields(exp.config_cls)
        unknown = [k for k in saved if k not in fields]
        if unknown:
            raise ValueError(
                f"{Path(directory) / 'config.json'}: unknown config key {unknown[0]!r}"
            )
        cfg = make_config(exp, {**saved, **overrides})
        _check_not_shortened(Path(directory), cfg)
        run = Run(directory, exp.name, cfg, resuming=True, quiet=cfg.quiet, lock=lock)
        if _config_changed(cfg, saved):
            run.write_config(argv=argv)
    except BaseException:
        lock.release()
        raise
    return exp, cfg, run


def _check_not_shortened(directory: Path, cfg: Any) -> None:
    epochs = getattr(cfg, "epochs", None)
    checkpoint = directory / CHECKPOINT
    if not isinstance(epochs, int) or not checkpoint.is_file():
        return
    done = checkpoint_epoch(checkpoint)
    if done is not None and epochs < done:
        raise ValueError(
            f"--resume: epochs {epochs} is fewer than the {done} epochs {directory} has already "
            f"trained, and a run cannot be shortened; give --epochs {done} or more "
            f"(--epochs {done} rewrites the report without training), or start a new run"
        )


def _config_changed(cfg: Any, saved: Mapping[str, Any]) -> bool:
    import json

    current = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples as the lists JSON holds
    return current != json.loads(json.dumps(dict(saved)))


def resume(
    directory: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    *,
    argv: Sequence[str] | None = None,
    callbacks: Sequence[Any] = (),
) -> tuple[Run, dict[str, float]]:
    """Continue the run in ``directory`` from its checkpoint; returns the run and its numbers.

    The result equals that of the uninterrupted run, bit for bit.
    """
    exp, cfg, run = prepare_resume(directory, overrides, argv=argv)
    run.callbacks.extend(callbacks)
    return run, execute(exp, cfg, run)
