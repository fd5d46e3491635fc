"""Bad data files: MNIST's IDX files that are empty, cut short, mislabelled or of another kind.

Each case writes the four files of a tiny MNIST into a data folder, spoils one, and states the
exception and the words of its message (which names the file and what to do about it).
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from handgrad import data
from handgrad.data import download as download_mod

pytestmark = pytest.mark.filterwarnings("ignore::handgrad.data.DataWarning")

IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"


@pytest.fixture(autouse=True)
def _only_this_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No download, no user cache, no Debian folder: only the files the case writes."""
    monkeypatch.setenv("HANDGRAD_DATA", str(tmp_path / "env-cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HANDGRAD_OFFLINE", "1")
    monkeypatch.setattr(download_mod, "DEBIAN_DIRS", {})


def idx(arr: np.ndarray, magic: int | None = None) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C}[arr.dtype.type]
    magic = (code << 8) | arr.ndim if magic is None else magic
    header = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder: Path, n: int = 6) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for img, lbl in ((IMAGES, LABELS), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        (folder / img).write_bytes(idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        (folder / lbl).write_bytes(idx(rng.integers(0, 10, n, dtype=np.uint8)))


SPOILS: list[tuple[str, Callable[[Path], None], tuple[str, ...]]] = [
    (
        "images: a valid header and no images",
        lambda f: (f / IMAGES).write_bytes(idx(np.zeros((0, 28, 28), np.uint8))),
        (IMAGES, "holds no images", "(0, 28, 28)", "delete it and run again"),
    ),
    (
        "labels: a valid header and no labels",
        lambda f: (f / LABELS).write_bytes(idx(np.zeros(0, np.uint8))),
        (LABELS, "holds no labels", "delete it"),
    ),
    (
        "images: an empty file",
        lambda f: (f / IMAGES).write_bytes(b""),
        ("truncated IDX file (0 bytes",),
    ),
    (
        "images: the header cut short",
        lambda f: (f / IMAGES).write_bytes(idx(np.zeros((2, 28, 28), np.uint8))[:10]),
        ("truncated IDX file (10 bytes, the header needs 16)",),
    ),
    (
        "images: a header promising more than is there",
        lambda f: (f / IMAGES).write_bytes(idx(np.zeros((2, 28, 28), np.uint8))[:-5]),
        ("truncated IDX file (shape (2, 28, 28) needs 1568 data bytes, found 1563)",),
    ),
    (
        "images: bytes after the data",
        lambda f: (f / IMAGES).write_bytes(idx(np.zeros((6, 28, 28), np.uint8)) + b"x"),
        ("corrupt IDX file (1 bytes after",),
    ),
    (
        "images: the labels' magic number",
        lambda f: (f / IMAGES).write_bytes(idx(np.zeros(6, np.uint8))),
        ("wrong magic number 2049", "expected 2051"),
    ),
    (
        "images: not an IDX file at all",
        lambda f: (f / IMAGES).write_bytes(b"PK\x03\x04 a zip file"),
        ("wrong magic number 1347093252 (0x504B0304), expected 2051",),
    ),
    (
        "labels: a class 10",
        lambda f: (f / LABELS).write_bytes(idx(np.full(6, 10, np.uint8))),
        (LABELS, "holds label 10, expected 0..9"),
    ),
    (
        "labels: fewer than the images",
        lambda f: (f / LABELS).write_bytes(idx(np.zeros(4, np.uint8))),
        ("holds 6 images but", "holds 4 labels", "do not belong together"),
    ),
    (
        "images: a broken gzip stream",
        lambda f: ((f / IMAGES).unlink(), (f / (IMAGES + ".gz")).write_bytes(b"\x1f\x8b garbage")),
        ("corrupt or truncated gzip file",),
    ),
    (
        "images: a gzip stream cut short",
        lambda f: (
            (f / IMAGES).unlink(),
            (f / (IMAGES + ".gz")).write_bytes(
                gzip.compress(idx(np.zeros((6, 28, 28), np.uint8)))[:-20]
            ),
        ),
        ("corrupt or truncated gzip file",),
    ),
]


@pytest.mark.parametrize(("what", "spoil", "words"), SPOILS, ids=[s[0] for s in SPOILS])
@pytest.mark.usefixtures("tiny_mnist")  # the format checks, not the content digest
@pytest.mark.parametrize("flatten", [False, True], ids=["images", "flat"])
def test_spoiled_mnist_files_name_the_file_and_the_fix(tmp_path, what, spoil, words, flatten):
    folder = tmp_path / "mnist"
    write_mnist(folder)
    spoil(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(data.DataError) as info:
        data.load("mnist", data_dir=tmp_path, download=False, flatten=flatten)
    message = str(info.value)
    assert message.startswith("mnist: "), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing is touched
