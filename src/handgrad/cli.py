"""The ``handgrad`` command: fills experiment configs and calls experiments, nothing else.

::

    handgrad list
    handgrad run NAME [--set key=value ...] [--epochs N] [--seed S] [--out DIR]
                      [--data-dir DIR] [--quiet] [--offline]
    handgrad run --resume DIR [--epochs N] [--quiet] [--offline]
    handgrad check FILE.py:ClassName --input-shape 4,3 [--params W:dW,b:db] [--target-classes C]
                   [--eps E] [--seed S] [--timeout S]
    handgrad grade SPEC.toml SUBMISSIONS/ [--out DIR] [--json] [--jobs N] [--quiet]
    handgrad playground [--host H] [--port P] [--no-browser] [--workdir DIR]
    handgrad data list [--data-dir DIR] [--offline] [-v]
    handgrad data fetch NAME [--data-dir DIR] [--offline] [--quiet] [--timeout S]
    handgrad export RUN_DIR [--out DIR]
    handgrad report DIR
    handgrad --version

Every error is one line on stderr (``handgrad: error: ...``) that says what to do, with exit
status 2 when what was asked is wrong (an argument, a config value, a path) and 1 when the
command failed doing it (a failing check, a busy run folder, a full disk, no memory);
``--debug`` or ``HANDGRAD_DEBUG=1`` shows the traceback instead. A run that diverges exits with
1, an interrupted one with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but every error is the same one-line format and exit status."""

    def error(self, message: str) -> NoReturn:
        _fail(message)


def _fail(message: str, status: int = 2) -> NoReturn:
    first = str(message).strip().splitlines()[0] if str(message).strip() else "failed"
    print(f"handgrad: error: {first}", file=sys.stderr)
    raise SystemExit(status)


DEBUG_HINT = "run again with --debug (or HANDGRAD_DEBUG=1) to see the traceback"


def _debugging(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("HANDGRAD_DEBUG", "") not in (
        "",
        "0",
    )


def _error_line(e: BaseException) -> tuple[str, int]:
    """The one line and the exit status for an exception that ends a command.

    Status 2: what was asked is wrong (an argument, a config value, a file or folder that is
    not what it should be); 1: the command failed while doing it (the user's layer failed its
    check, the run folder is busy, the disk is full, memory ran out, anything unexpected).
    """
    from handgrad.check.loader import CheckFailed, UserCodeError
    from handgrad.data import DataError
    from handgrad.train.runs import RunFolderError

    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, (CheckFailed, RunFolderError)):
        return first, 1
    if isinstance(e, UserCodeError):  # the user's file failed to import: a failing check
        return first, 1
    if isinstance(e, KeyError):
        return str(e.args[0]) if e.args else "KeyError", 2
    if isinstance(e, (ValueError, TypeError, FileNotFoundError, NotADirectoryError)):
        return _os_line(e) if isinstance(e, OSError) else first or type(e).__name__, 2
    if isinstance(e, (ImportError, DataError)):
        return first or type(e).__name__, 2
    if isinstance(e, OSError):
        return _os_line(e), 1
    if isinstance(e, MemoryError):
        return (
            f"out of memory ({first or 'MemoryError'}); use a smaller configuration, e.g. a "
            "smaller batch_size or fewer samples (--set ...)",
            1,
        )
    if isinstance(e, RecursionError):
        return (
            f"{first or 'maximum recursion depth exceeded'}: something is nested too deeply or "
            f"calls itself without end; {DEBUG_HINT}",
            1,
        )
    return f"unexpected {type(e).__name__}: {first or '(no message)'}; {DEBUG_HINT}", 1


def _os_line(e: OSError) -> str:
    """An OSError as '<what happened>: <file>; <what to do>'."""
    import errno

    if e.errno is None:  # raised with a message of its own: it already says what to do
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    what = e.strerror or str(e) or type(e).__name__
    where = f": {e.filename}" if e.filename else ""
    todo = {
        errno.ENOSPC: "free some space and run again (a run keeps its last checkpoint: "
        "continue it with handgrad run --resume DIR)",
        errno.EDQUOT: "free some space and run again",
        errno.EACCES: "choose a folder you may write to (--out DIR) or change its permissions",
        errno.EPERM: "choose a folder you may write to (--out DIR) or change its permissions",
        errno.EROFS: "choose a folder on a writable disk (--out DIR)",
        errno.ENOTDIR: "give a folder, not a file",
        errno.EISDIR: "give a file, not a folder",
        errno.ELOOP: "remove the symbolic link and run again",
        errno.ENOENT: "check the path",
    }.get(e.errno or -1, DEBUG_HINT)
    return f"{what}{where}; {todo}"


def build_parser() -> argparse.ArgumentParser:
    from handgrad import __version__

    parser = _Parser(
        prog="handgrad",
        description="Deep learning with every gradient written by hand: run the lab's "
        "experiments and check your own layers.",
    )
    parser.add_argument("--version", action="version", version=f"handgrad {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sub.add_parser("list", help="list the experiments")

    run = sub.add_parser(
        "run",
        help="run an experiment (or resume one)",
        description="Run experiment NAME in a new folder <out>/<NAME>-<time>/, or continue "
        "the run in DIR with --resume.",
    )
    run.add_argument("name", nargs="?", metavar="NAME", help="experiment name (handgrad list)")
    run.add_argument(
        "--set",
        dest="sets",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config fields, e.g. --set lr=0.05 hidden=16,16",
    )
    run.add_argument("--epochs", type=int, help="number of epochs (config field 'epochs')")
    run.add_argument("--seed", type=int, help="random seed (config field 'seed')")
    run.add_argument("--out", default="runs", help="parent folder of the run (default: runs)")
    run.add_argument("--data-dir", help="where data sets are stored / downloaded")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    run.add_argument("--offline", action="store_true", help=OFFLINE_HELP)

    check = sub.add_parser(
        "check",
        help="gradient-check a layer in your own file",
        description="Check the backward pass of FILE.py:ClassName against finite differences "
        "(exit status 1 if a gradient is wrong).",
    )
    check.add_argument("spec", metavar="FILE.py:ClassName")
    check.add_argument("--input-shape", required=True, help="input shape, e.g. 4,3 or 2,3,8,8")
    check.add_argument(
        "--target-classes",
        type=int,
        help="for a loss: draw integer targets in [0, C) (shape (N,) unless --target-shape)",
    )
    check.add_argument("--target-shape", help="for a loss: the target's shape (floats in [0, 1))")
    check.add_argument(
        "--params",
        metavar="W:dW,b:db",
        help="plain-array parameters and their gradient attributes, e.g. W:dW,b:db "
        "(default: the parameters found by named_parameters())",
    )
    check.add_argument("--eps", type=float, default=1e-6, help="finite-difference step")
    check.add_argument("--seed", type=int, default=0, help="random seed of input and weights")
    check.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds the whole check may take; the file runs in a child process that is "
        "stopped after that (default 300)",
    )

    play = sub.add_parser(
        "playground",
        help="watch a network learn, live in the browser",
        description="Start the playground's local server and open it in the browser "
        '(needs the extra: pip install -e ".[playground]").',
    )
    play.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine)"
    )
    play.add_argument(
        "--port", type=int, default=8000, help="port (default: 8000; a free one if taken)"
    )
    play.add_argument("--no-browser", action="store_true", help="do not open a browser")
    play.add_argument(
        "--workdir",
        help="the one folder the playground writes in (reproduce CSVs; default ./playground-runs)",
    )

    data = sub.add_parser(
        "data",
        help="list or download the data sets' files",
        description="Show where the files of MNIST, Fashion-MNIST and CIFAR-10 are on this "
        "machine and whether they verify (list), or download them (fetch).",
    )
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        help="data directory searched first and downloaded into (default: "
        "$HANDGRAD_DATA, else the cache folder)",
    )
    common.add_argument("--offline", action="store_true", help=OFFLINE_HELP)
    data_list = data_sub.add_parser(
        "list",
        parents=[common],
        help="where each data set's files are, their size, whether they verify",
    )
    data_list.add_argument(
        "-v", "--verbose", action="store_true", help="one line per file, and the folders searched"
    )
    data_fetch = data_sub.add_parser(
        "fetch", parents=[common], help="download a data set's missing files and check them all"
    )
    data_fetch.add_argument("name", metavar="NAME", help="mnist, fashion-mnist or cifar10")
    data_fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    data_fetch.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per connect or read (default 30)"
    )

    export = sub.add_parser(
        "export",
        help="write a run as a PyTorch training folder (one GPU, or many with DDP)",
        description="Write the run in RUN_DIR as a self-contained PyTorch folder: model.py, "
        "state.pt, data.npz, train.py (python train.py, --device cuda, torchrun) and README.md; "
        'it continues the run with the same numbers. Needs PyTorch: pip install "handgrad[torch]".',
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, runs/<name>-<time>")
    export.add_argument("--out", help="the folder to write (default: RUN_DIR-torch)")

    report = sub.add_parser(
        "report",
        help="redraw a folder's curves and report.md from its metrics",
        description="Redraw curves.png and report.md of DIR (a folder an exported train.py "
        "trained, or a run folder) from its config.json and metrics.jsonl; other figures and the "
        "numbers in results.json stay, an experiment's own notes in report.md do not.",
    )
    report.add_argument("dir", metavar="DIR")

    grade = sub.add_parser(
        "grade",
        help="grade a folder of students' layers against a spec",
        description="Gradient-check every submission in SUBMISSIONS/ (a folder or a .py file "
        "per student) as SPEC.toml says, each in a subprocess of its own with time, memory and "
        "output limits; print a Markdown report (exit status 0 once graded, 2 for a bad spec "
        "or folder). See docs/grading.md.",
    )
    grade.add_argument("spec", metavar="SPEC.toml")
    grade.add_argument("submissions", metavar="SUBMISSIONS/")
    grade.add_argument(
        "--out",
        metavar="DIR",
        help="also write grades.md, grades.csv (a row per submission and check), totals.csv "
        "(a row per submission) and grades.json into DIR",
    )
    grade.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    grade.add_argument(
        "-j", "--jobs", type=int, help="submissions graded at once (default: one per core)"
    )
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


OFFLINE_HELP = (
    "never download: use files already on disk, fail at once if one is missing "
    "(as $HANDGRAD_OFFLINE=1)"
)


def parse_params(text: str) -> dict[str, str]:
    """'W:dW,b:db' -> {'W': 'dW', 'b': 'db'}, with a one-line error for anything else."""
    pairs = {}
    for item in text.split(","):
        name, sep, grad = (part.strip() for part in item.partition(":"))
        if not sep or not name or not grad:
            raise ValueError(
                f"check: --params expects NAME:GRAD pairs like W:dW,b:db, got {text!r}"
            )
        pairs[name] = grad
    return pairs


def _list() -> int:
    from handgrad.experiments import experiments

    exps = experiments()
    width = max((len(e.name) for e in exps), default=0)
    for exp in exps:
        print(f"{exp.name:<{width}}  {exp.description}")
    return 0


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from handgrad.experiments import registry
    from handgrad.train import DivergenceError, keep_freed_memory

    # this command owns its process: let each step's large arrays reuse freed memory
    keep_freed_memory()
    overrides: dict[str, Any] = registry.parse_set(args.sets)
    flags = {"epochs": args.epochs, "seed": args.seed, "data_dir": args.data_dir}
    if args.quiet:
        flags["quiet"] = True
    if args.resume is not None:
        if args.name is not None:
            # NAME is optional with --resume; if given it must match the run's experiment
            name, _ = registry.read_run_config(args.resume)
            if name != args.name:
                raise ValueError(f"--resume {args.resume} is a run of {name!r}, not {args.name!r}")
        if args.out != "runs":
            raise ValueError("--out cannot be used with --resume (the run stays in its folder)")
        overrides.update({k: v for k, v in flags.items() if v is not None})
        start = None
    else:
        if args.name is None:
            raise ValueError(
                "run needs an experiment NAME (or --resume DIR); valid experiments: "
                + ", ".join(registry.names())
            )
        exp = registry.get(args.name)
        fields = registry.config_fields(exp.config_cls)
        for key, value in flags.items():
            if value is None:
                continue
            if key not in fields:
                option = "--" + key.replace("_", "-")
                raise ValueError(f"{exp.name}: has no {key!r} setting, so {option} does not apply")
            overrides[key] = value
        start = exp.name

    if start is None:
        exp, cfg, run = registry.prepare_resume(args.resume, overrides, argv=argv)
    else:
        exp, cfg, run = registry.prepare(start, overrides, out=args.out, argv=argv)
    try:
        results = registry.execute(exp, cfg, run)
    except DivergenceError as e:
        print(f"handgrad: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = (
            "the last checkpoint and metrics are kept"
            if run.checkpoint_path.exists()
            else ("no epoch had finished, so there is no checkpoint yet")
        )
        print(
            f"handgrad: interrupted; {kept} (continue with: handgrad run --resume {run.dir})",
            file=sys.stderr,
        )
        return 130
    numbers = ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in results.items()
    )
    print(numbers)
    print(f"report: {run.report_path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from handgrad.check.loader import check_file_isolated

    # the user's file runs in a child process with a time limit: an exit, a crash or a hang
    # there is a failing check (exit status 1), not a silent success or a stuck terminal
    report = check_file_isolated(
        args.spec,
        args.input_shape,
        target_shape=args.target_shape,
        target_classes=args.target_classes,
        seed=args.seed,
        eps=args.eps,
        params=parse_params(args.params) if args.params else None,
        timeout=args.timeout,
    )
    print(str(report))
    return 0 if report.passed else 1


PLAYGROUND_EXTRA = 'the playground needs its extra: pip install -e ".[playground]"'


def _playground(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ValueError(f"playground: --port must be in 0..65535, got {args.port}")
    try:
        from handgrad.playground.server import serve
    except ImportError as e:  # starlette / uvicorn are an optional extra
        raise ImportError(f"{PLAYGROUND_EXTRA} ({e})") from e
    serve(host=args.host, port=args.port, open_browser=not args.no_browser, workdir=args.workdir)
    return 0


def _size(n: int) -> str:
    """Bytes in decimal units, as file managers show them."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _data_list(args: argparse.Namespace) -> int:
    from handgrad.data import inventory, local_names, resolve_data_dir

    reports = [inventory(name, args.data_dir) for name in local_names()]
    print(f"data directory: {resolve_data_dir(args.data_dir)} (downloads go here)")
    rows = [("DATA SET", "STATUS", "SIZE", "WHERE")]
    for r in reports:
        where = ", ".join(str(f) for f in r.folders) or "-"
        rows.append((r.name, r.status, _size(r.size) if r.size else "-", where))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]))
    for r in reports:
        details = [f for f in r.files if args.verbose or f.status == "failed"]
        for f in details:
            size = _size(f.size) if f.path is not None else "-"
            print(f"  {r.name}: {f.name}  {f.status}  {size}  {f.path or '-'}  ({f.detail})")
        if args.verbose:
            print(f"  {r.name}: searched {', '.join(str(d) for d in r.searched)}")
        if r.status in ("missing", "incomplete"):
            print(f"  {r.name}: {r.status}; `handgrad data fetch {r.name}` downloads it")
    return 1 if any(r.status == "failed" for r in reports) else 0


def _data_fetch(args: argparse.Namespace) -> int:
    from handgrad.data import fetch_all

    if not args.timeout > 0:
        raise ValueError(f"data fetch: --timeout must be > 0, got {args.timeout}")
    progress = False if args.quiet else None
    report = fetch_all(args.name, args.data_dir, timeout=args.timeout, progress=progress)
    where = ", ".join(str(f) for f in report.folders)
    print(f"{report.name}: {report.status}, {_size(report.size)} in {where}")
    return 0


def _export(args: argparse.Namespace) -> int:
    try:
        from handgrad.torch_ext.export import export_run
    except ImportError as e:  # torch is an optional extra
        raise ImportError(f"export: {e}") from None
    done = export_run(args.run_dir, args.out)
    print(
        f"exported {done.experiment} after epoch {done.epoch} (step {done.step}) to {done.out}: "
        f"model.py, state.pt, data.npz ({_size(done.data_bytes)}), train.py, README.md"
    )
    print(
        f"continue in PyTorch: cd {shlex.quote(str(done.out))} && python train.py --epochs "
        f"{done.next_epochs}  (GPU, torchrun: see README.md)"
    )
    for note in done.notes:
        print(f"note: {note}")
    return 0


def _read_metrics(directory: Path) -> list[dict[str, Any]]:
    """The epochs of ``directory/metrics.jsonl`` (lines with an ``epoch``)."""
    path = directory / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"report: {directory} has no metrics.jsonl")
    history = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise ValueError(f"report: {path}, line {number}, is not JSON") from None
        if isinstance(entry, dict) and "epoch" in entry:
            history.append(entry)
    if not history:
        raise ValueError(f"report: {path} holds no epochs")
    return history


def _report(args: argparse.Namespace) -> int:
    from handgrad import viz
    from handgrad.experiments import registry
    from handgrad.train import Run, read_run_config

    directory = Path(args.dir)
    name, config = read_run_config(directory)
    history = _read_metrics(directory)
    try:  # a dataclass config: the report's `--set` line lists only what differs from defaults
        config = registry.make_config(name, config)
        description = registry.get(name).description
    except (ValueError, TypeError):
        description = ""
    run = Run(directory, name, config, quiet=True)
    run.history = history
    run.save_figure(
        "curves",
        viz.plot_history(history, title=f"{name}: {directory.resolve().name}"),
        "loss and accuracy per epoch (train: running mean over the epoch)",
    )
    for png in sorted(directory.glob("*.png")):  # the run's other figures stay in the report
        if png.name != "curves.png":
            run.figures.append((png.name, png.stem.replace("_", " ")))
    last = history[-1]
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    try:  # numbers only the experiment knows (test accuracy) stay; the rest is redrawn
        results = json.loads((directory / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        results = {}
    results = results if isinstance(results, dict) else {}
    results.update({k: last[k] for k in keys if last.get(k) is not None})
    results.update(
        epochs=last["epoch"],
        steps=last.get("step", 0),
        train_time_s=sum(h.get("time", 0.0) for h in history),
    )
    exported = json.loads(run.config_path.read_text(encoding="utf-8")).get("exported")
    notes = ""
    if isinstance(exported, dict):
        notes = (
            f"Trained in handgrad up to epoch {exported.get('epoch')} (run "
            f"`{exported.get('from')}`), after it in PyTorch by this folder's train.py."
        )
    path = run.write_report(results, description=description, notes=notes)
    if isinstance(exported, dict):
        # this folder has no handgrad checkpoint: the way on is train.py, not `run --resume`
        resume = shlex.join(["handgrad", "run", "--resume", str(run.dir)])
        further = f"python train.py --epochs {last['epoch'] + 1}  # in {run.dir}"
        path.write_text(path.read_text(encoding="utf-8").replace(resume, further), "utf-8")
    print(f"report: {path}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from handgrad.check.grade import grade_folder, load_spec

    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"grade: --jobs must be >= 1, got {args.jobs}")
    spec = load_spec(args.spec)  # a bad spec fails before anything runs
    report = grade_folder(
        spec, args.submissions, jobs=args.jobs, progress=False if args.quiet else None
    )
    if args.out:
        out = Path(args.out)
        files = {
            "grades.md": report.to_markdown(),
            "grades.csv": report.to_csv(),
            "totals.csv": report.totals_csv(),
            "grades.json": report.to_json(),
        }
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (out / name).write_text(text, encoding="utf-8")
        except OSError as e:
            raise ValueError(f"grade: cannot write to {out}: {e.strerror or e}") from e
    print(report.to_json() if args.json else report.to_markdown().rstrip("\n"))
    return 0


def _data(args: argparse.Namespace) -> int:
    if args.data_command == "list":
        return _data_list(args)
    if args.data_command == "fetch":
        return _data_fetch(args)
    raise ValueError("data needs an action: list or fetch (handgrad data --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``handgrad`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from handgrad.data import offline_mode

    # --offline switches the network off for everything the command does (one switch, read
    # by the download layer); without it $HANDGRAD_OFFLINE decides
    offline = (
        offline_mode(how="--offline")
        if getattr(args, "offline", False)
        else contextlib.nullcontext()
    )
    try:
        with offline:
            if args.command == "list":
                return _list()
            if args.command == "run":
                return _run(args, ["handgrad", *argv])
            if args.command == "playground":
                return _playground(args)
            if args.command == "data":
                return _data(args)
            if args.command == "export":
                return _export(args)
            if args.command == "report":
                return _report(args)
            if args.command == "grade":
                return _grade(args)
            return _check(args)
    except KeyboardInterrupt:
        print("handgrad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`handgrad list | head`): not an error worth a traceback
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as e:  # MemoryError and RecursionError too: every error is one line
        if _debugging(args):
            raise
        message, status = _error_line(e)
        _fail(message, status)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
