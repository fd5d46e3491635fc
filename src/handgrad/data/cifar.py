"""CIFAR-10: the python-pickle batches of ``cifar-10-python.tar.gz``.

The archive holds ``cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5`` (10000
images each), ``test_batch`` and ``batches.meta``. Each batch is a pickled dict (written by
Python 2) with ``data``, a uint8 array (10000, 3072) whose rows are the red, green and blue
32x32 planes one after the other, and ``labels``, a list of ints in 0..9.

Trust: unpickling can run arbitrary code named in the file. The batches are therefore read
with a restricted Unpickler that accepts only dicts, lists, strings, numbers and NumPy arrays
(it resolves just the three globals a pickled array needs and refuses any other), on top of
the MD5 check of the published files. A tampered file fails to load; it cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from handgrad.data.dataset import Dataset, register
from handgrad.data.download import (
    DEFAULT_TIMEOUT,
    DataError,
    Source,
    fetch,
    find,
    missing_error,
    resolve_data_dir,
    verify,
)
from handgrad.data.mnist import image_options, to_dataset

__all__ = ["CIFAR10", "CIFAR10_CLASSES", "read_batch"]

ARCHIVE = "cifar-10-python.tar.gz"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
META = "batches.meta"

# The published archive and the files inside it, with their MD5s (as in torchvision). There
# is no independent well-known mirror; plain http is the fallback for machines whose TLS
# setup fails (the MD5 still guards the content).
CIFAR10 = Source(
    name="cifar10",
    folder="cifar10",
    mirrors=("https://www.cs.toronto.edu/~kriz/", "http://www.cs.toronto.edu/~kriz/"),
    md5={
        ARCHIVE: "c58f30108f718f92721af3b95e74349a",
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        META: "5ff9c542aee3614f3951f8cda6e48888",
    },
)

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# The callables a pickled ndarray refers to, taken from NumPy itself rather than imported by
# module path (numpy.core became numpy._core in NumPy 2; old pickles name the former).
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_FROMBUFFER = np.empty(1).__reduce_ex__(5)[0]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    """Resolves only the globals needed to rebuild NumPy arrays; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name} (only NumPy arrays are allowed)"
            ) from None


def _unpickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        try:
            # encoding='bytes': the batches were pickled by Python 2, whose str becomes bytes
            obj = _BatchUnpickler(f, encoding="bytes").load()
        except Exception as err:  # whatever a malformed pickle raises, the file is bad
            raise DataError(f"{path}: not a readable CIFAR-10 pickle ({err})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR-10 pickle (holds {type(obj).__name__}, not dict)")
    return {k.decode("latin-1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch: uint8 images (N, 3, 32, 32) and int64 labels (N,).

    Raises:
        DataError: naming the file, when it is not a pickle, is cut short, or lacks the
            expected ``data`` (N, 3072) uint8 array and ``labels`` list of N ints in 0..9.
    """
    path = Path(path)
    batch = _unpickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data)
        raise DataError(f"{path}: 'data' must be a uint8 array (N, 3072), got {got}")
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must be a uint8 array (N, 3072), got {data.shape}")
    try:
        y = np.asarray(labels, dtype=np.int64)
        ok = y.shape == (len(data),) and (y.size == 0 or (y.min() >= 0 and y.max() <= 9))
    except (TypeError, ValueError):  # None, strings, ragged lists
        ok = False
    if not ok:
        raise DataError(f"{path}: 'labels' must be {len(data)} ints in 0..9")
    return data.reshape(-1, 3, 32, 32), y  # rows are R, G, B planes of 32x32


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """The ``label_names`` of ``batches.meta``."""
    meta = _unpickle(Path(path))
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"{path}: 'label_names' must be a list of 10 names")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def _extract(archive: Path, dest: Path, members: tuple[str, ...]) -> None:
    """Copy the named members of ``cifar-10-batches-py/`` out of ``archive`` into ``dest``.

    One sequential pass over the archive (a .tar.gz cannot seek back without decompressing
    again). Members are matched by exact name and written by us, never with ``extractall``,
    so a crafted archive cannot write outside ``dest``.
    """
    wanted = {f"{BATCH_DIR}/{name}": name for name in members}
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar:
                name = wanted.pop(info.name, None)
                src = tar.extractfile(info) if name is not None and info.isfile() else None
                if src is None:
                    continue
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest)
                try:
                    with os.fdopen(fd, "wb") as out, src:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                    os.replace(tmp, dest / name)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
    except (tarfile.TarError, EOFError, zlib.error, io.UnsupportedOperation) as err:
        raise DataError(
            f"cifar10: {archive}: corrupt or truncated archive ({err}); delete it and run "
            f"again to download it afresh, or replace it with the original from "
            f"{CIFAR10.url(ARCHIVE)}"
        ) from None
    if wanted:
        raise DataError(
            f"cifar10: {archive} has no {', '.join(sorted(wanted))}; it is not the CIFAR-10 "
            f"python archive: delete it and run again to download it afresh"
        )


def _batch_dir(root: Path, needed: tuple[str, ...], download: bool, timeout: float) -> Path:
    """A folder holding every file in ``needed``, verified; unpacked from the archive (and the
    archive downloaded) when no such folder exists yet."""
    source = CIFAR10
    for folder in (root / source.folder / BATCH_DIR, root / BATCH_DIR):
        if all((folder / name).is_file() for name in needed):
            for name in needed:
                verify(source, folder / name)
            return folder
    archive = find(source, root, [ARCHIVE])
    if archive is None:
        if not download:
            raise missing_error(source, root, ARCHIVE, detail=f" (or an unpacked {BATCH_DIR}/)")
        archive = fetch(source, ARCHIVE, root, timeout)
    verify(source, archive)
    dest = archive.parent / BATCH_DIR
    _extract(archive, dest, (*TRAIN_BATCHES, *TEST_BATCHES, META))
    return dest


def _read(path: Path, reader: Any) -> Any:
    try:
        return reader(path)
    except DataError as err:
        raise DataError(
            f"cifar10: {err}; delete it and run again to unpack or download it afresh"
        ) from None


@register(
    "cifar10",
    options={"flatten": False, "n": None, "timeout": DEFAULT_TIMEOUT},
    description="32x32 colour photos in 10 classes, 50000 train / 10000 test (downloaded)",
    kind="download",
)
def cifar10(
    *, split: str, seed: int, data_dir: Any, download: bool, flatten: Any, n: Any, timeout: Any
) -> Dataset:
    n, flatten, timeout = image_options("cifar10", n, flatten, timeout)
    root = resolve_data_dir(data_dir)
    batches = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    folder = _batch_dir(root, (*batches, META), download, timeout)
    classes = _read(folder / META, read_class_names)
    parts = [_read(folder / name, read_batch) for name in batches]
    images = np.concatenate([p[0] for p in parts])  # (N, 3, 32, 32) uint8
    labels = np.concatenate([p[1] for p in parts])
    meta = {"files": [str(folder / name) for name in batches]}
    return to_dataset("cifar10", images, labels, classes, split, n, flatten, meta)
