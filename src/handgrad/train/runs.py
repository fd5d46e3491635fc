"""A run: one experiment with one config, in its own folder.

::

    runs/<experiment>-<YYYYmmdd-HHMMSS>/
        config.json      the experiment's name and config (what `--resume` reloads)
        metrics.jsonl    one JSON line per epoch, flushed as it is written
        checkpoint.npz   model + optimizer + RNG + callback state + history (atomic)
        *.png            figures (monitors.png: layer statistics, with `monitors=true`)
        results.json     the final numbers
        report.md        the figures and the final numbers

An experiment receives a :class:`Run` and calls ``run.fit(...)`` (``fit`` plus the metrics log,
the checkpoint and resume), ``run.save_figure(name, fig)`` and returns its final numbers; the
caller then writes the report with ``run.write_report(results)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from handgrad.train.callbacks import Callback, MetricsLogger, ModelCheckpoint
from handgrad.train.loop import DivergenceError, fit
from handgrad.train.monitors import TrainingMonitor

__all__ = ["Run", "read_run_config"]

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.npz"
RESULTS = "results.json"
REPORT = "report.md"
MONITORS = "monitors"  # monitors.png, with `--set monitors=true`


def _config_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return dict(config)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_run_config(directory: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """The experiment name and config dict saved in a run folder's config.json.

    Raises FileNotFoundError if the folder or its config.json is missing, ValueError if the
    file is not a run config.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no run folder at {directory}")
    path = directory / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a run folder: it has no {CONFIG}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("experiment"), str)
        or not isinstance(data.get("config"), dict)
    ):
        raise ValueError(f"{path} is not a run config (needs 'experiment' and 'config')")
    return data["experiment"], data["config"]


class Run:
    """The folder of one run and the ways an experiment writes into it.

    Build one with :meth:`create` (a new folder) or ``Run(directory, ..., resuming=True)`` (an
    existing folder whose checkpoint ``fit`` continues from).

    Attributes:
        dir: the run folder.
        callbacks: extra callbacks added to every ``fit`` of this run (hooks, tests).
        history: the history of the last ``fit``.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        experiment: str,
        config: Any,
        *,
        resuming: bool = False,
        quiet: bool = False,
    ) -> None:
        self.dir = Path(directory)
        self.experiment = experiment
        self.config = config
        self.resuming = resuming
        self.quiet = quiet
        self.callbacks: list[Callback] = []
        self.history: list[dict[str, Any]] = []
        self.figures: list[tuple[str, str]] = []  # (file name, caption)
        self.notes: list[str] = []  # paragraphs an experiment adds to the report

    @classmethod
    def create(
        cls,
        experiment: str,
        config: Any,
        *,
        out: str | os.PathLike = "runs",
        quiet: bool = False,
        argv: Sequence[str] | None = None,
    ) -> Run:
        """Make ``<out>/<experiment>-<YYYYmmdd-HHMMSS>/`` (a suffix ``-2``, ``-3``... keeps it
        unique) and write config.json."""
        parent = Path(out)
        parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = f"{experiment}-{stamp}"
        for i in range(1, 10_000):
            directory = parent / (base if i == 1 else f"{base}-{i}")
            try:
                directory.mkdir()  # atomic: two runs started in one second get two folders
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover
            raise FileExistsError(f"could not make a unique run folder under {parent}")
        run = cls(directory, experiment, config, quiet=quiet)
        run.write_config(argv=argv)
        return run

    # -- paths ----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.dir / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.dir / METRICS

    @property
    def checkpoint_path(self) -> Path:
        return self.dir / CHECKPOINT

    @property
    def report_path(self) -> Path:
        return self.dir / REPORT

    # -- writing --------------------------------------------------------------------------
    def write_config(self, argv: Sequence[str] | None = None) -> None:
        from handgrad import __version__

        _write_json(
            self.config_path,
            {
                "experiment": self.experiment,
                "config": _config_dict(self.config),
                "handgrad_version": __version__,
                "created": datetime.now().isoformat(timespec="seconds"),
                "argv": list(argv) if argv is not None else list(sys.argv),
            },
        )

    def fit(
        self,
        model: Any,
        loss_fn: Any,
        optimizer: Any,
        train: Any,
        val: Any = None,
        *,
        epochs: int,
        callbacks: Sequence[Callback] = (),
        checkpoint_every: int = 1,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """:func:`handgrad.train.fit` that logs to metrics.jsonl, checkpoints every
        ``checkpoint_every`` epochs (and after the last) and, for a resumed run, continues from
        the checkpoint. Other keyword arguments go to ``fit``.

        With ``monitors=True`` in the config a :class:`TrainingMonitor` records about 64 epochs
        of the run; ``monitors.png`` and a summary join the report (also when training
        diverges, before the DivergenceError propagates)."""
        all_callbacks = [
            *callbacks,
            *self.callbacks,
            MetricsLogger(self.metrics_path),
            ModelCheckpoint(
                self.checkpoint_path, every=checkpoint_every, extra={"experiment": self.experiment}
            ),
        ]
        monitor = None
        if _config_dict(self.config).get("monitors", False):
            # about 64 monitored epochs however long the run (each costs a few histograms)
            monitor = TrainingMonitor(every=max(1, epochs // 64))
            all_callbacks.insert(len(all_callbacks) - 2, monitor)
        resume = self.checkpoint_path if self.resuming and self.checkpoint_path.exists() else None
        kwargs.setdefault("progress", False if self.quiet else None)
        kwargs.setdefault("desc", self.experiment)
        try:
            self.history = fit(
                model,
                loss_fn,
                optimizer,
                train,
                val,
                epochs=epochs,
                callbacks=all_callbacks,
                resume_from=resume,
                **kwargs,
            )
        except DivergenceError:
            self._save_monitors(monitor)  # the figure shows the way to the divergence
            raise
        finally:
            if monitor is not None:
                monitor.detach()  # after any error too: leave the model unwrapped
        self._save_monitors(monitor)
        return self.history

    def _save_monitors(self, monitor: TrainingMonitor | None) -> None:
        if monitor is None or not monitor.records:
            return
        self.save_figure(
            MONITORS,
            monitor.plot(title=f"{self.experiment}: training monitors"),
            "training monitors: output and gradient histograms per layer, dead ReLU units and "
            "saturation, update/weight ratios",
            dpi=90,  # a wide figure of many panels: still readable, a third of the bytes
        )
        self.notes = [n for n in self.notes if not n.startswith("Monitors")]
        self.notes.append(monitor.summary())

    def log(self, entry: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl (for numbers that do not come from ``fit``)."""
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def save_figure(self, name: str, fig: Any, caption: str = "", dpi: int = 110) -> Path:
        """Save a matplotlib Figure as ``<name>.png`` in the run folder; it joins the report."""
        from handgrad.viz import save_figure

        path = save_figure(fig, self.dir / f"{name}.png", dpi=dpi)
        self.figures = [(f, c) for f, c in self.figures if f != path.name]
        self.figures.append((path.name, caption or name.replace("_", " ")))
        return path

    def write_report(
        self, results: dict[str, float], *, description: str = "", notes: str = ""
    ) -> Path:
        """Write results.json and report.md (figures embedded by relative links, final numbers,
        config, and the commands that reproduce or resume the run)."""
        _write_json(self.dir / RESULTS, results)
        cfg = _config_dict(self.config)
        lines = [f"# {self.experiment}: run {self.dir.name}", ""]
        if description:
            lines += [description, ""]
        lines += ["## Final numbers", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in results.items()]
        if self.history:
            total = sum(h.get("time", 0.0) for h in self.history)
            last = self.history[-1]
            lines += [
                "",
                f"Trained {last['epoch']} epochs ({last['step']} steps) in {total:.1f} s of "
                "training time.",
            ]
            if "stopped" in last:
                lines += ["", f"Stopped early: {last['stopped']}."]
        for paragraph in [*self.notes, notes]:
            if paragraph:
                lines += ["", paragraph]
        if self.figures:
            lines += ["", "## Figures"]
            for file, caption in self.figures:
                lines += ["", f"### {caption}", "", f"![{caption}]({file})"]
        lines += ["", "## Config", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | `{v!r}` |" for k, v in cfg.items()]
        lines += [
            "",
            "## Reproduce",
            "",
            "```",
            f"handgrad run {self.experiment} " + " ".join(_set_args(self.config)),
            f"handgrad run --resume {self.dir}",
            "```",
            "",
        ]
        self.report_path.write_text("\n".join(lines), encoding="utf-8")
        return self.report_path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _set_args(config: Any) -> list[str]:
    """``--set`` arguments for the fields that differ from their defaults."""
    if dataclasses.is_dataclass(config):
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(config)
            if f.default is not dataclasses.MISSING
        }
    else:
        defaults = {}
    parts = []
    for k, v in _config_dict(config).items():
        if k == "quiet" or (k in defaults and defaults[k] == v):
            continue
        if isinstance(v, (list, tuple)):
            v = ",".join(str(x) for x in v)
        parts.append(f"{k}={v}")
    return ["--set", *parts] if parts else []
