"""handgrad.data: data sets and the data loader.

``load(name, split='train', *, data_dir=None, download=True, seed=0, **options)`` returns a
``Dataset`` (float32 ``X``, int64 ``y``, ``classes``, ``input_shape``); ``X, y = load(...)``
unpacks it. ``names()`` lists the registered data sets: generated 2-D sets (circle, moons,
xor, spiral, gaussians, rings, synth), the bundled 8x8 digits, and MNIST, Fashion-MNIST and
CIFAR-10, found on disk (``--data-dir``, ``$HANDGRAD_DATA``, the cache folder, Debian's
package folder) or downloaded on first use into the data directory (see ``default_data_dir``),
and checked by the digest of their content (see ``handgrad.data.files``). ``offline_mode()``
or ``$HANDGRAD_OFFLINE=1`` forbid every download.
``DataLoader`` yields mini-batches; ``Standardizer`` / ``standardize`` rescale features.
``read_points_csv`` / ``write_points_csv`` read and write your own 2-D points (``x1,x2,label``;
see ``handgrad.data.points``).
"""

# importing the loader modules registers their data sets (names() orders them by kind)
from handgrad.data import cifar, digits, mnist, toy  # noqa: F401
from handgrad.data.cifar import read_batch
from handgrad.data.dataset import SPLITS, Dataset, DatasetInfo, info, load, names, register
from handgrad.data.download import (
    ENV_VAR,
    OFFLINE_ENV,
    DataError,
    DownloadError,
    OfflineError,
    default_data_dir,
    is_offline,
    offline_mode,
    resolve_data_dir,
)
from handgrad.data.files import DataWarning, fetch_all, inventory, local_names
from handgrad.data.loader import DataLoader
from handgrad.data.mnist import read_idx
from handgrad.data.points import PointsError, parse_points_csv, read_points_csv, write_points_csv
from handgrad.data.toy import synth_rule
from handgrad.data.transforms import (
    Compose,
    RandomHorizontalFlip,
    RandomShift,
    Standardizer,
    standardize,
)

__all__ = [
    "ENV_VAR",
    "OFFLINE_ENV",
    "SPLITS",
    "Compose",
    "DataError",
    "DataLoader",
    "DataWarning",
    "Dataset",
    "DatasetInfo",
    "DownloadError",
    "OfflineError",
    "PointsError",
    "RandomHorizontalFlip",
    "RandomShift",
    "Standardizer",
    "default_data_dir",
    "fetch_all",
    "info",
    "inventory",
    "is_offline",
    "load",
    "local_names",
    "names",
    "offline_mode",
    "parse_points_csv",
    "read_batch",
    "read_idx",
    "read_points_csv",
    "register",
    "resolve_data_dir",
    "standardize",
    "synth_rule",
    "write_points_csv",
]
