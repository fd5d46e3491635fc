"""Shared by the adversarial tests: a tiny experiment, a CLI runner, folder snapshots, children.

``adv-tiny`` is a real experiment (a config dataclass and a run function that trains through
``run.fit`` and saves one small figure) that runs in a few milliseconds, so the run-folder cases
do not pay for the toy experiment's figures. Tests register it with :func:`register_tiny`
(``monkeypatch``); child processes import this module and call ``register_tiny()`` themselves.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handgrad.experiments.registry import Config

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
TINY = "adv-tiny"


def register_tiny(registry_dict: dict[str, Any] | None = None) -> None:
    """Put ``adv-tiny`` in the experiment registry (``registry_dict``: the registry's dict, or
    a monkeypatched view of it)."""
    from handgrad.experiments import registry

    target = registry._REGISTRY if registry_dict is None else registry_dict
    target[TINY] = registry.Experiment(TINY, TinyConfig, run_tiny, "adversarial tests", 1e9)


@dataclass(frozen=True)
class TinyConfig(Config):
    epochs: int = 2
    batch_size: int = 8
    lr: float = 0.1
    n: int = 32
    checkpoint_every: int = 1
    label: str = "tiny"  # free text: the quoting of the report's Reproduce line
    figure: bool = True


def run_tiny(cfg: TinyConfig, run: Any) -> dict[str, float]:
    import handgrad.nn as nn
    import handgrad.optim as optim
    from handgrad.data import DataLoader

    rng = np.random.default_rng(cfg.seed)
    X = rng.standard_normal((cfg.n, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(2, 4, rng=rng), nn.Tanh(), nn.Linear(4, 2, rng=rng))
    opt = optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    history = run.fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        DataLoader(X, y, cfg.batch_size, rng=cfg.seed),
        epochs=cfg.epochs,
        checkpoint_every=cfg.checkpoint_every,
    )
    if cfg.figure:
        from handgrad import viz

        fig, ax = viz.figure(figsize=(1.5, 1.5), layout=None)
        ax.plot([h["train_loss"] for h in history])
        run.save_figure("loss", fig, "loss", dpi=30)
    return {"train_loss": history[-1]["train_loss"], "epochs": history[-1]["epoch"]}


# -- the command line, in this process ------------------------------------------------------------
@dataclass
class Outcome:
    code: int
    out: str
    err: list[str]  # stderr lines


def cli(capsys: Any, argv: list[str]) -> Outcome:
    """``handgrad ARGV`` in this process: its exit status, stdout and stderr lines."""
    from handgrad.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err.strip().splitlines())


def tiny_args(**settings: Any) -> list[str]:
    """``--set`` arguments of a quiet adv-tiny run (``figure=False`` by default: fast)."""
    values = {"figure": "false", **{k: v for k, v in settings.items()}}
    return ["--set", *(f"{k}={v}" for k, v in values.items()), "--quiet"]


# -- what is on disk -------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict[str, str]:
    """Every entry of ``folder`` (not following links): a hash of a file's bytes, a link's
    target, or 'dir'. Equal snapshots: nothing was added, removed or changed."""
    out = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_symlink():
            out[entry.name] = "link -> " + os.readlink(entry.path)
        elif entry.is_dir():
            out[entry.name] = "dir"
        else:
            out[entry.name] = hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
    return out


# -- child processes -------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SRC), str(HERE), env.get("PYTHONPATH", "")) if p
    )
    env.pop("HANDGRAD_DEBUG", None)
    return env


# a child that runs `handgrad ARGV` with adv-tiny registered
CLI_CHILD = textwrap.dedent(
    """
    import sys
    import advkit
    advkit.register_tiny()
    from handgrad.cli import main
    raise SystemExit(main(sys.argv[1:]))
    """
)


def start_cli(argv: list[str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLI_CHILD, *map(str, argv)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def run_cli(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI_CHILD, *map(str, argv)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
