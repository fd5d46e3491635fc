"""``torch-parity``: one network trained in handgrad and in PyTorch (on the hand-written
Functions and Adam of :mod:`handgrad.torch_ext`) with the same weights and batches.

torch is imported only when the experiment runs, so handgrad works without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from handgrad.experiments.common import add_fragment, numbers
from handgrad.experiments.registry import Config, check, register
from handgrad.train import Run

__all__ = ["TorchParityConfig"]


@dataclass(frozen=True)
class TorchParityConfig(Config):
    """Adam in both libraries; ``dataset`` is ``circle`` or ``digits``."""

    dataset: str = "circle"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self, "dataset", self.dataset in ("circle", "digits"), "'circle' or 'digits'")


@register(
    "torch-parity", TorchParityConfig, "handgrad vs PyTorch, same weights and batches", order=33
)
def run_torch_parity(cfg: TorchParityConfig, run: Run) -> dict[str, float]:
    try:
        from handgrad.torch_ext.parity import torch_parity
    except ImportError as err:
        raise ImportError(
            "torch-parity needs PyTorch: pip install 'handgrad[torch]' (torch==2.13.0, CPU)"
        ) from err
    result = torch_parity(
        run.dir,
        dataset=cfg.dataset,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        data_dir=cfg.data_dir,
    )
    add_fragment(run, f"torch_parity_{cfg.dataset}")
    return numbers(result)
