"""handgrad.data: data sets and the data loader.

``load(name, split='train', *, data_dir=None, download=True, seed=0, **options)`` returns a
``Dataset`` (float32 ``X``, int64 ``y``, ``classes``, ``input_shape``); ``X, y = load(...)``
unpacks it. ``names()`` lists the registered data sets: generated 2-D sets (circle, moons,
xor, spiral, gaussians, rings, synth), the bundled 8x8 digits, and MNIST, Fashion-MNIST and
CIFAR-10, downloaded on first use into the data directory (see ``default_data_dir``).
``DataLoader`` yields mini-batches; ``Standardizer`` / ``standardize`` rescale features.
"""

# importing the loader modules registers their data sets (names() orders them by kind)
from handgrad.data import cifar, digits, mnist, toy  # noqa: F401
from handgrad.data.cifar import read_batch
from handgrad.data.dataset import SPLITS, Dataset, DatasetInfo, info, load, names, register
from handgrad.data.download import (
    ENV_VAR,
    DataError,
    DownloadError,
    default_data_dir,
    resolve_data_dir,
)
from handgrad.data.loader import DataLoader
from handgrad.data.mnist import read_idx
from handgrad.data.toy import synth_rule
from handgrad.data.transforms import Standardizer, standardize

__all__ = [
    "ENV_VAR",
    "SPLITS",
    "DataError",
    "DataLoader",
    "Dataset",
    "DatasetInfo",
    "DownloadError",
    "Standardizer",
    "default_data_dir",
    "info",
    "load",
    "names",
    "read_batch",
    "read_idx",
    "register",
    "resolve_data_dir",
    "standardize",
    "synth_rule",
]
