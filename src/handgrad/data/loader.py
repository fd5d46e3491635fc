"""DataLoader: mini-batches of (X, y), shuffled by a generator of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from handgrad._util import RNGLike
from handgrad._validate import check_rng
from handgrad.data.dataset import Dataset

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over ``(xb, yb)`` mini-batches of arrays ``X`` and ``y``.

    Args:
        X: array (N, ...), or a Dataset (then ``y`` is taken from it and must be omitted).
        y: array (N, ...) of targets.
        batch_size: samples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: draw a fresh order every epoch from ``self.rng``; otherwise keep the order.
        drop_last: skip a final batch smaller than ``batch_size``.
        rng: Generator, seed or None, used for shuffling and by ``transform``.
        transform: None, or a callable ``transform(xb, rng) -> xb`` applied to every batch
            of X (random augmentation, e.g. ``Compose(RandomShift(2),
            RandomHorizontalFlip())`` from :mod:`handgrad.data.transforms`); it draws from
            ``self.rng``, so a checkpoint of the loader's generator replays it too.

    Each ``iter(loader)`` is one epoch: with ``shuffle`` it draws exactly one permutation of
    N from ``self.rng`` at that moment, so saving ``loader.rng.bit_generator.state`` (or
    ``state_dict()``) before an epoch and restoring it later replays that epoch's order.
    Shuffled batches are copies (fancy indexing); unshuffled ones are views into X and y.
    ``len(loader)`` is the number of batches per epoch.

    Examples:
        >>> X, y = np.arange(10.0).reshape(5, 2), np.arange(5)
        >>> [yb.tolist() for _, yb in DataLoader(X, y, batch_size=2, shuffle=False)]
        [[0, 1], [2, 3], [4]]
        >>> len(DataLoader(X, y, batch_size=2, drop_last=True))
        2
    """

    def __init__(
        self,
        X: np.ndarray | Dataset,
        y: np.ndarray | None = None,
        batch_size: int = 32,
        shuffle: bool = True,
        drop_last: bool = False,
        rng: RNGLike = None,
        transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ) -> None:
        if isinstance(X, Dataset):
            if y is not None:
                raise ValueError("DataLoader: pass either a Dataset or arrays X and y, not both")
            X, y = X.X, X.y
        if y is None:
            raise ValueError("DataLoader: y is required (or pass a Dataset as the first argument)")
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim == 0 or y.ndim == 0:
            raise ValueError(
                f"DataLoader: X and y must have a leading sample axis, got X {X.shape}, y {y.shape}"
            )
        if len(X) != len(y):
            raise ValueError(
                f"DataLoader: X and y must have the same number of samples, got X {X.shape} "
                f"and y {y.shape}"
            )
        if len(X) == 0:
            raise ValueError(f"DataLoader: the data set is empty (X {X.shape})")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(f"DataLoader: {name} must be True or False, got {flag!r}")
        self.X = X
        self.y = y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rng = check_rng("DataLoader", rng)
        if transform is not None and not callable(transform):
            raise ValueError(f"DataLoader: transform must be callable or None, got {transform!r}")
        self.transform = transform

    def __len__(self) -> int:
        n = len(self.X)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # the permutation is drawn here, not lazily at the first next(), so the generator's
        # state after iter() does not depend on whether a batch was consumed
        order = self.rng.permutation(len(self.X)) if self.shuffle else None
        return self._batches(order)

    def _batches(self, order: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n, bs = len(self.X), self.batch_size
        stop = n - n % bs if self.drop_last else n
        for start in range(0, stop, bs):
            if order is None:
                xb, yb = self.X[start : start + bs], self.y[start : start + bs]
            else:
                idx = order[start : start + bs]
                xb, yb = self.X[idx], self.y[idx]
            yield (xb if self.transform is None else self.transform(xb, self.rng)), yb

    def state_dict(self) -> dict[str, Any]:
        """The generator state, to resume shuffling exactly (``load_state_dict``)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "rng" not in state:
            raise KeyError(f"DataLoader.load_state_dict: expected key 'rng', got {list(state)}")
        self.rng.bit_generator.state = state["rng"]

    def __repr__(self) -> str:
        return (
            f"DataLoader(N={len(self.X)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}"
            + ("" if self.transform is None else f", transform={self.transform!r}")
            + ")"
        )
