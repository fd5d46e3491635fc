"""The Dataset record and the registry behind ``load(name, ...)``.

Every data set is a function registered under a name with its options and their defaults.
``load`` resolves the name, checks the split, the seed and the options, and calls it. An
unknown name, split or option is a ValueError that lists the valid ones.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SPLITS", "Dataset", "DatasetInfo", "info", "load", "names", "register", "split_rng"]

SPLITS = ("train", "test")

# other spellings users type, mapped to the registered name
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
}


@dataclass(eq=False)  # arrays have no single truth value; compare fields explicitly
class Dataset:
    """Arrays and metadata of one split of one data set.

    Attributes:
        X: float32 array ``(N, *input_shape)``; images are ``(N, C, H, W)`` scaled to [0, 1]
            (or ``(N, C*H*W)`` with ``flatten=True``).
        y: int64 class labels ``(N,)`` in ``[0, len(classes))``.
        classes: the class names, index ``i`` names label ``i``.
        input_shape: the shape of one sample, ``X.shape[1:]``.
        name: the registered name (``'mnist'``).
        split: ``'train'`` or ``'test'``.
        meta: what produced it (seed and options for generated sets, file paths otherwise).

    ``X, y = dataset`` unpacks the arrays; ``len(dataset)`` is N.
    """

    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]
    name: str
    split: str = "train"
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.X
        yield self.y

    def __len__(self) -> int:
        return len(self.X)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, X={self.X.shape} "
            f"{self.X.dtype}, y={self.y.shape} {self.y.dtype}, classes={len(self.classes)})"
        )


@dataclass(frozen=True)
class DatasetInfo:
    """A registered data set: its loader, its options with their defaults, a description.

    ``loader(split=..., seed=..., data_dir=..., download=..., **options)`` returns a Dataset.
    """

    name: str
    loader: Callable[..., Dataset]
    options: dict[str, Any]
    description: str
    kind: str  # "toy" (generated), "bundled" (ships with the package) or "download"


_REGISTRY: dict[str, DatasetInfo] = {}


def register(
    name: str, *, options: dict[str, Any], description: str, kind: str
) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Decorator: register ``loader`` under ``name`` with its option defaults."""

    def deco(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in _REGISTRY:
            raise ValueError(f"register: a data set named {name!r} is already registered")
        _REGISTRY[name] = DatasetInfo(name, loader, dict(options), description, kind)
        return loader

    return deco


_KIND_ORDER = ("toy", "bundled", "download")


def names() -> list[str]:
    """The registered data set names: generated, then bundled, then downloaded ones."""
    rank = {kind: i for i, kind in enumerate(_KIND_ORDER)}
    return sorted(_REGISTRY, key=lambda n: rank.get(_REGISTRY[n].kind, len(rank)))


def _resolve(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"load: name must be a string, got {name!r}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"load: unknown data set {name!r}; valid names: {', '.join(names())}")
    return key


def info(name: str) -> DatasetInfo:
    """The registry entry of ``name`` (options, defaults, description)."""
    return _REGISTRY[_resolve(name)]


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """Load one split of a registered data set.

    Args:
        name: one of ``names()`` (``'circle'``, ``'moons'``, ..., ``'mnist'``, ``'cifar10'``).
        split: ``'train'`` or ``'test'``. Generated sets draw the test split from a different
            random stream than the train split for the same seed.
        data_dir: where downloaded files live (default: ``$HANDGRAD_DATA``, else
            ``$XDG_CACHE_HOME/handgrad``, else ``~/.cache/handgrad``); files are also looked
            for in those and in Debian's package folder.
        download: fetch missing files from the network (only for downloaded sets; never
            while offline, see ``handgrad.data.offline_mode``).
        seed: a non-negative int; the same seed gives the same arrays, bit for bit.
        **options: per data set, see ``info(name).options`` (e.g. ``n``, ``noise``, ``k``,
            ``flatten``).

    Returns:
        A Dataset with float32 ``X`` and int64 ``y``.
    """
    key = _resolve(name)
    entry = _REGISTRY[key]
    if split not in SPLITS:
        raise ValueError(
            f"load({key!r}): unknown split {split!r}; valid splits: "
            + ", ".join(repr(s) for s in SPLITS)
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"load({key!r}): seed must be a non-negative int, got {seed!r}")
    unknown = [k for k in options if k not in entry.options]
    if unknown:
        valid = ", ".join(entry.options) or "(none)"
        raise ValueError(f"load({key!r}): unknown option {unknown[0]!r}; valid options: {valid}")
    opts = {**entry.options, **options}
    return entry.loader(split=split, seed=int(seed), data_dir=data_dir, download=download, **opts)


def split_rng(name: str, split: str, seed: int) -> np.random.Generator:
    """The generator of one split of a generated data set.

    Seeded from (seed, split, name) so that 'train' and 'test' are independent draws for the
    same seed, and different data sets do not share a stream. crc32 rather than ``hash``:
    Python salts string hashes per process, which would break reproducibility.
    """
    return np.random.default_rng([seed, SPLITS.index(split), zlib.crc32(name.encode())])


# -- option checks shared by the loaders ---------------------------------------------------------
def check_int(owner: str, option: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {option} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_float(owner: str, option: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{owner}: {option} must be a number >= {minimum}, got {value!r}")
    if not np.isfinite(value) or value < minimum:
        raise ValueError(f"{owner}: {option} must be a number >= {minimum}, got {value!r}")
    return float(value)


def check_bool(owner: str, option: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: {option} must be True or False, got {value!r}")
    return bool(value)
