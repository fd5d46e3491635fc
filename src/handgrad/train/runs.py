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

What a run folder is promised (docs/reliability.md):

* Every file is written as a new file renamed into place (:mod:`handgrad._atomic`): a reader or
  a killed process never leaves half a file, and a symbolic link in the folder is never written
  through; a folder that holds links is refused when a run opens it (:class:`RunFolderError`).
* A run holds an exclusive lock on its folder (``flock`` on ``.handgrad.lock``, which holds its
  pid) from the moment it opens the folder until its report is written; a second run of the
  same folder fails at once, naming that pid. The kernel drops the lock of a process that dies,
  so a lock file left by a killed run is simply taken over.
* Opening a folder removes the temporary files (``.<name>.tmp<pid>``) of killed writers.
* config.json keeps its history: when a resume changes a setting, the previous entry (config,
  argv, time) moves into its ``history`` list.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from handgrad._atomic import append_text, atomic_path, remove_temp_files, write_text
from handgrad.train.callbacks import Callback, MetricsLogger, ModelCheckpoint
from handgrad.train.loop import DivergenceError, fit
from handgrad.train.monitors import TrainingMonitor

try:  # POSIX; elsewhere a run folder is not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Run",
    "RunFolderError",
    "RunLock",
    "open_run_folder",
    "read_run_config",
    "require_run_folder",
]

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.npz"
RESULTS = "results.json"
REPORT = "report.md"
MONITORS = "monitors"  # monitors.png, with `--set monitors=true`
LOCK = ".handgrad.lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class RunFolderError(RuntimeError):
    """A run folder that cannot be used now: another process runs in it, or it holds a link."""


def _config_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return dict(config)


def _write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


# -- the folder's lock ---------------------------------------------------------------------------
class RunLock:
    """An exclusive ``flock`` on ``<run folder>/.handgrad.lock``, which names its holder.

    ``acquire`` never waits: if another process holds the lock it raises RunFolderError naming
    that process's pid and command. ``flock`` belongs to the open file, and the kernel releases
    it when the holder exits in any way (kill -9 included), so a lock file left behind by a dead
    process is taken over. ``release`` removes the file while still holding the lock; a process
    that opened the old file meanwhile sees it is no longer the one at that name and retries.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, argv: Sequence[str] | None = None) -> RunLock:
        if self._fd is not None or fcntl is None:
            return self
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | os.O_CLOEXEC, 0o666)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise RunFolderError(_links_message(self.directory, [LOCK])) from None
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunFolderError(self._busy_message()) from None
            except BaseException:
                os.close(fd)
                raise
            if not self._still_named(fd):  # released and removed between our open and lock
                os.close(fd)
                continue
            holder = {
                "pid": os.getpid(),
                "argv": list(argv) if argv is not None else list(sys.argv),
                "since": datetime.now().isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(holder) + "\n").encode())
            self._fd = fd
            return self
        raise RunFolderError(f"could not lock the run folder {self.directory}; try again")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._still_named(fd):
                os.unlink(self.path)
        finally:
            os.close(fd)  # drops the lock

    def _still_named(self, fd: int) -> bool:
        try:
            here, there = os.fstat(fd), os.lstat(self.path)
        except FileNotFoundError:
            return False
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

    def _busy_message(self) -> str:
        holder: dict[str, Any] = {}
        for _ in range(20):  # the holder writes its pid right after taking the lock
            try:
                holder = json.loads(self.path.read_text(encoding="utf-8"))
                break
            except (OSError, ValueError):
                time.sleep(0.01)
        pid = holder.get("pid") if isinstance(holder, dict) else None
        argv = holder.get("argv") if isinstance(holder, dict) else None
        who = f"process {pid}" if isinstance(pid, int) else "another process"
        if isinstance(argv, list) and argv:
            who += f" ({shlex.join(str(a) for a in argv)})"
        return (
            f"the run folder {self.directory} is in use by {who}; two runs of one folder would "
            "mix their epochs. Wait for it to finish, or stop it and run again"
        )


def _links_message(directory: Path, names: list[str]) -> str:
    first = directory / names[0]
    try:
        target = f" -> {os.readlink(first)}"
    except OSError:
        target = ""
    return (
        f"the run folder {directory} holds symbolic links ({', '.join(names)}; "
        f"{names[0]}{target}); a run writes only regular files in its folder and never through "
        "a link. Remove the links (or copy the folder with `cp -rL`) and run again"
    )


def open_run_folder(directory: str | os.PathLike, argv: Sequence[str] | None = None) -> RunLock:
    """Lock ``directory`` for a run (see :class:`RunLock`), remove the temporary files killed
    writers left there, and refuse it if it holds symbolic links. Returns the held lock."""
    directory = Path(directory)
    lock = RunLock(directory).acquire(argv)
    try:
        remove_temp_files(directory)
        with os.scandir(directory) as entries:
            links = sorted(e.name for e in entries if e.is_symlink())
        if links:
            raise RunFolderError(_links_message(directory, links))
    except BaseException:
        lock.release()
        raise
    return lock


def require_run_folder(directory: str | os.PathLike) -> None:
    """FileNotFoundError unless ``directory`` is a folder holding a config.json (a file, or a
    link: :func:`open_run_folder` refuses that with its own message). Reads nothing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no run folder at {directory}")
    if not os.path.lexists(directory / CONFIG):
        raise FileNotFoundError(f"{directory} is not a run folder: it has no {CONFIG}")


def read_run_config(directory: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """The experiment name and config dict saved in a run folder's config.json.

    Raises FileNotFoundError if the folder or its config.json is missing, ValueError if the
    file is not a run config.
    """
    directory = Path(directory)
    require_run_folder(directory)
    path = directory / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a run folder: it has no {CONFIG}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise ValueError(f"{path} is not a run config: its JSON is nested too deeply") from None
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
        lock: RunLock | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.lock = lock  # held from open_run_folder until close()
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
        unique), lock it and write config.json. :meth:`close` releases the lock."""
        parent = Path(out)
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR, f"{parent} is not a folder, so runs cannot be made in it"
            )
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
        run = cls(directory, experiment, config, quiet=quiet, lock=open_run_folder(directory, argv))
        try:
            run.write_config(argv=argv)
        except BaseException:
            run.close()
            raise
        return run

    def close(self) -> None:
        """Release the folder's lock (if this Run holds it); the Run stays readable."""
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        """Write config.json; an entry already there moves into its ``history`` list."""
        from handgrad import __version__

        entry: dict[str, Any] = {
            "experiment": self.experiment,
            "config": _config_dict(self.config),
            "handgrad_version": __version__,
            "created": datetime.now().isoformat(timespec="seconds"),
            "argv": list(argv) if argv is not None else list(sys.argv),
        }
        previous = _read_json(self.config_path)
        if isinstance(previous, dict):
            history = previous.pop("history", None)
            entry["history"] = [*(history if isinstance(history, list) else []), previous]
        _write_json(self.config_path, entry)

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
        append_text(self.metrics_path, json.dumps(entry) + "\n")

    def save_figure(self, name: str, fig: Any, caption: str = "", dpi: int = 110) -> Path:
        """Save a matplotlib Figure as ``<name>.png`` in the run folder; it joins the report."""
        from handgrad.viz import save_figure

        path = self.dir / f"{name}.png"
        with atomic_path(path) as tmp:
            save_figure(fig, tmp, dpi=dpi)
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
        # every word shell-quoted: a value with a space, a quote, `;` or `$(...)` pastes as itself
        reproduce = ["handgrad", "run", self.experiment, *_set_args(self.config)]
        lines += [
            "",
            "## Reproduce",
            "",
            "```",
            shlex.join(reproduce),
            shlex.join(["handgrad", "run", "--resume", str(self.dir)]),
            "```",
            "",
        ]
        write_text(self.report_path, "\n".join(lines))
        return self.report_path


def _read_json(path: Path) -> Any:
    """The JSON document in ``path``, or None if there is none or it does not parse."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


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
