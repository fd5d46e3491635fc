"""The scalar-autograd worked examples as experiments: ``scalar-graph``, ``scalar-net`` and
``scalar-train`` (the computations live in :mod:`handgrad.scalar.examples`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handgrad.experiments.registry import Config, check, register
from handgrad.train import Run

__all__ = ["ScalarGraphConfig", "ScalarNetConfig", "ScalarTrainConfig"]


def add_fragment(run: Run, name: str) -> None:
    """Put the markdown fragment an example wrote (``<name>.md``) into the run's report."""
    path = Path(run.dir) / f"{name}.md"
    if path.exists():
        run.notes.append(path.read_text(encoding="utf-8"))


def numbers(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The flat numeric entries of a result (nested dicts become ``outer.inner``)."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out.update(numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = value
    return out


@dataclass(frozen=True)
class ScalarGraphConfig(Config):
    """Inputs of w = a*b with a = x*y + z, b = (x + x)*a."""

    x: float = 3.0
    y: float = -2.0
    z: float = 10.0
    gif: bool = True


@register("scalar-graph", ScalarGraphConfig, "a = x*y + z, b = (x+x)*a, w = a*b: graph and trace")
def run_scalar_graph(cfg: ScalarGraphConfig, run: Run) -> dict[str, float]:
    from handgrad.scalar.examples import scalar_graph

    result = scalar_graph(run.dir, x=cfg.x, y=cfg.y, z=cfg.z, gif=cfg.gif)
    add_fragment(run, "scalar-graph")
    return numbers(result)


@dataclass(frozen=True)
class ScalarNetConfig(Config):
    """The 2-3-2 worked example (its weights are fixed by the example)."""

    draw: bool = True


@register("scalar-net", ScalarNetConfig, "the 2-3-2 sigmoid/softmax network, three ways")
def run_scalar_net(cfg: ScalarNetConfig, run: Run) -> dict[str, float]:
    from handgrad.scalar.examples import scalar_net

    result = scalar_net(run.dir, draw=cfg.draw)
    add_fragment(run, "scalar-net")
    return {"loss": result["loss"], "max_abs_diff": result["max_abs_diff"]}


@dataclass(frozen=True)
class ScalarTrainConfig(Config):
    """Training the 2-3-2 network on ``synth`` with the engine, with loops and vectorised."""

    epochs: int = 300
    n: int = 200
    lr: float = 2.0
    hidden: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "n", self.n >= 1, ">= 1")


@register("scalar-train", ScalarTrainConfig, "synth with the scalar engine vs loops vs vectorised")
def run_scalar_train(cfg: ScalarTrainConfig, run: Run) -> dict[str, float]:
    from handgrad.scalar.examples import scalar_train

    result = scalar_train(
        run.dir, epochs=cfg.epochs, n=cfg.n, lr=cfg.lr, seed=cfg.seed, hidden=cfg.hidden
    )
    add_fragment(run, "scalar-train")
    out = numbers({k: v for k, v in result.items() if k != "loss"})
    return out
