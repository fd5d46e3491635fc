"""The ``handgrad`` command: fills experiment configs and calls experiments, nothing else.

::

    handgrad list
    handgrad run NAME [--set key=value ...] [--epochs N] [--seed S] [--out DIR]
                      [--data-dir DIR] [--quiet] [--offline]
    handgrad run --resume DIR [--epochs N] [--quiet] [--offline]
    handgrad check FILE.py:ClassName --input-shape 4,3 [--params W:dW,b:db] [--target-classes C]
                   [--eps E] [--seed S]
    handgrad playground [--host H] [--port P] [--no-browser]
    handgrad data list [--data-dir DIR] [--offline] [-v]
    handgrad data fetch NAME [--data-dir DIR] [--offline] [--quiet] [--timeout S]
    handgrad --version

Errors are one line on stderr (``handgrad: error: ...``) with exit status 2; ``--debug``
shows the traceback instead. A run that diverges exits with 1, an interrupted one with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
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
    from handgrad.train import DivergenceError

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
    from handgrad.check import check_file

    report = check_file(
        args.spec,
        args.input_shape,
        target_shape=args.target_shape,
        target_classes=args.target_classes,
        seed=args.seed,
        eps=args.eps,
        **({"params": parse_params(args.params)} if args.params else {}),
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
    serve(host=args.host, port=args.port, open_browser=not args.no_browser)
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
    from handgrad.data import DataError, offline_mode

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
            return _check(args)
    except KeyboardInterrupt:
        print("handgrad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`handgrad list | head`): not an error worth a traceback
        sys.stdout = open(os.devnull, "w")
        return 0
    except (ValueError, TypeError, KeyError, FileNotFoundError, ImportError, DataError) as e:
        if args.debug:
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        _fail(str(message) or type(e).__name__)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
