"""CIFAR-10: the python-pickle batches of ``cifar-10-python.tar.gz``.

The archive holds ``cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5`` (10000
images each), ``test_batch`` and ``batches.meta``. Each batch is a pickled dict (written by
Python 2) with ``data``, a uint8 array (10000, 3072) whose rows are the red, green and blue
32x32 planes one after the other, and ``labels``, a list of ints in 0..9.

Trust: unpickling can run arbitrary code named in the file. The batches are therefore read
with a restricted Unpickler that accepts only dicts, lists, strings, numbers and NumPy arrays
(it resolves just the three globals a pickled array needs and refuses any other), after the
check of each batch's content against its published MD5. A tampered file fails to load; it
cannot run code.

The archive's own MD5 is checked when it is downloaded. An archive found on disk whose MD5
differs (re-compressed, re-packed) is unpacked all the same: its batches are then checked by
their content, and if one fails, what was unpacked is removed and the error names the archive.
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
    data_roots,
    fetch,
    find,
    may_download,
    missing_error,
    search_dirs,
)
from handgrad.data.files import (
    FAILED,
    MISSING,
    ChecksumError,
    DataSetReport,
    Expected,
    FileReport,
    check_content,
    register_local,
    warn_unverified,
)
from handgrad.data.mnist import image_options, to_dataset

__all__ = ["CIFAR10", "CIFAR10_CLASSES", "read_batch"]

ARCHIVE = "cifar-10-python.tar.gz"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
META = "batches.meta"

# The published archive and the files inside it, with their MD5s (as in torchvision). The
# batches' MD5s are digests of the content itself (the batches are published unpacked inside
# the archive); no SHA-256 of them is known to handgrad (there is no copy here to compute one
# from), so sha256 stays empty. There is no independent well-known mirror; plain http is the
# fallback for machines whose TLS setup fails (the MD5 still guards the content).
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


def _unpickle(path: Path, data: bytes | None = None) -> dict[str, Any]:
    """The dict pickled in ``path`` (or in ``data``, read from ``path``)."""
    if data is None:
        data = path.read_bytes()
    try:
        # encoding='bytes': the batches were pickled by Python 2, whose str becomes bytes
        obj = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # whatever a malformed pickle raises, the file is bad
        raise DataError(f"{path}: not a readable CIFAR-10 pickle ({err})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR-10 pickle (holds {type(obj).__name__}, not dict)")
    return {k.decode("latin-1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def read_batch(path: str | Path, data: bytes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch: uint8 images (N, 3, 32, 32) and int64 labels (N,).

    ``data``: the file's bytes, if already read.

    Raises:
        DataError: naming the file, when it is not a pickle, is cut short, or lacks the
            expected ``data`` (N, 3072) uint8 array and ``labels`` list of N ints in 0..9.
    """
    path = Path(path)
    batch = _unpickle(path, data)
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


def read_class_names(path: str | Path, data: bytes | None = None) -> tuple[str, ...]:
    """The ``label_names`` of ``batches.meta``."""
    meta = _unpickle(Path(path), data)
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


_ALL = (*TRAIN_BATCHES, *TEST_BATCHES, META)


def _batch_dirs(data_dir: Any) -> list[Path]:
    """Where an unpacked ``cifar-10-batches-py/`` may be, in search order."""
    source = CIFAR10
    return [d for root in data_roots(data_dir) for d in (root / source.folder, root)]


def _find_batch_dir(data_dir: Any, needed: tuple[str, ...]) -> Path | None:
    for parent in _batch_dirs(data_dir):
        folder = parent / BATCH_DIR
        if all((folder / name).is_file() for name in needed):
            return folder
    return None


def _unpack_checked(archive: Path, data_dir: Any) -> Path:
    """Unpack the batches next to ``archive`` and check each by its content; if one fails,
    remove what was unpacked and name the archive."""
    dest = archive.parent / BATCH_DIR
    _extract(archive, dest, _ALL)
    for name in _ALL:
        path = dest / name
        try:
            check_content(CIFAR10, name, path, path.read_bytes, data_dir=data_dir)
        except ChecksumError as err:
            for other in _ALL:
                (dest / other).unlink(missing_ok=True)
            raise DataError(
                f"cifar10: {archive} is not the published CIFAR-10 archive: its {name} has "
                f"{err.algorithm} {err.got}, expected {err.expected}; delete it and run again "
                f"to download it afresh, or replace it with the original from "
                f"{CIFAR10.url(ARCHIVE)}"
            ) from None
    return dest


def _batch_dir(
    data_dir: Any,
    needed: tuple[str, ...],
    download: bool,
    timeout: float,
    progress: bool | None = None,
) -> Path:
    """A folder holding every file in ``needed``; unpacked from the archive (and the archive
    downloaded) when no such folder exists yet."""
    folder = _find_batch_dir(data_dir, needed)
    if folder is not None:
        return folder
    archive = find(CIFAR10, data_dir, [ARCHIVE])
    if archive is None:
        if not may_download(download):
            missing = [f"{ARCHIVE} (or an unpacked {BATCH_DIR}/)"]
            raise missing_error(CIFAR10, data_dir, missing)
        archive = fetch(CIFAR10, ARCHIVE, _root(data_dir), timeout, progress)
    return _unpack_checked(archive, data_dir)


def _root(data_dir: Any) -> Path:
    return data_roots(data_dir)[0]


def _read(path: Path, reader: Any, data_dir: Any) -> Any:
    """Check ``path`` by its content, then read it (never unpickle what fails its check)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cifar10: cannot read {path} ({err})") from None
    check = check_content(
        CIFAR10, path.name, path, lambda: data, data_dir=data_dir, origin=CIFAR10.url(ARCHIVE)
    )
    try:
        value = reader(path, data)
    except DataError as err:
        raise DataError(
            f"cifar10: {err}; delete it and run again to unpack or download it afresh"
        ) from None
    warn_unverified(CIFAR10, check)
    return value, check


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
    batches = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    folder = _batch_dir(data_dir, (*batches, META), download, timeout)
    classes, _ = _read(folder / META, read_class_names, data_dir)
    read = [_read(folder / name, read_batch, data_dir) for name in batches]
    checks = [check for _, check in read]
    images = np.concatenate([batch[0] for batch, _ in read])  # (N, 3, 32, 32) uint8
    labels = np.concatenate([batch[1] for batch, _ in read])
    verified = {
        str(c.path): (f"verified ({c.how})" if c.verified else f"unverified ({c.how})")
        for c in checks
    }
    meta = {"files": [str(folder / name) for name in batches], "checks": verified}
    return to_dataset("cifar10", images, labels, classes, split, n, flatten, meta)


# -- the files on this machine (handgrad data list / fetch) ---------------------------------------
def _report(path: Path, data_dir: Any) -> FileReport:
    if not path.is_file():
        return FileReport(path.name, None, 0, MISSING, "not found")
    size = path.stat().st_size
    try:
        check = check_content(CIFAR10, path.name, path, path.read_bytes, data_dir=data_dir)
    except DataError as err:
        return FileReport(path.name, path, size, FAILED, str(err))
    return FileReport(path.name, path, size, check.status, check.how)


def inventory(data_dir: Any = None) -> DataSetReport:
    """The unpacked batches if all are somewhere, else the archive, else what is there."""
    searched = tuple(search_dirs(CIFAR10, data_dir)) + tuple(
        d / BATCH_DIR for d in _batch_dirs(data_dir)
    )
    folder = _find_batch_dir(data_dir, _ALL)
    if folder is not None:
        files = tuple(_report(folder / name, data_dir) for name in _ALL)
        return DataSetReport("cifar10", files, searched)
    archive = find(CIFAR10, data_dir, [ARCHIVE])
    if archive is not None:
        # the archive's own MD5 decides only whether it is the published file; a different
        # one (re-packed) is not an error here: its batches are checked when it is unpacked
        expected = Expected(wrapper_md5=CIFAR10.md5.get(ARCHIVE))
        check = check_content(
            CIFAR10, BATCH_DIR, archive, archive.read_bytes, data_dir=data_dir, expected=expected
        )
        detail = check.how + "; unpacked and checked batch by batch on first use"
        size = archive.stat().st_size
        return DataSetReport(
            "cifar10", (FileReport(ARCHIVE, archive, size, check.status, detail),), searched
        )
    partial = next((d / BATCH_DIR for d in _batch_dirs(data_dir) if (d / BATCH_DIR).is_dir()), None)
    if partial is not None:
        files = tuple(_report(partial / name, data_dir) for name in _ALL)
    else:
        files = (FileReport(f"{ARCHIVE} (or {BATCH_DIR}/)", None, 0, MISSING, "not found"),)
    return DataSetReport("cifar10", files, searched)


def fetch_all(
    data_dir: Any = None, *, timeout: float = DEFAULT_TIMEOUT, progress: bool | None = None
) -> DataSetReport:
    """Download (and unpack) the archive unless the batches are here; check every batch."""
    _batch_dir(data_dir, _ALL, True, timeout, progress)
    report = inventory(data_dir)
    for file in report.files:
        if file.status == FAILED:
            raise DataError(file.detail)
    return report


register_local("cifar10", inventory, fetch_all)
