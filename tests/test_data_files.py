"""MNIST / Fashion-MNIST (IDX) and CIFAR-10 (pickle batches): reading, checks, downloads.

Every file here is a tiny one the test writes in the real formats. Nothing reaches the
internet: downloads go to a local http.server on 127.0.0.1 or to file:// URLs, "no network" is
a closed port on 127.0.0.1, and an autouse guard refuses any other connection.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import struct
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import handgrad.data as data
from handgrad.data import cifar as cifar_mod
from handgrad.data import download as download_mod
from handgrad.data import mnist as mnist_mod

# tiny files without a known digest load "unverified" with a DataWarning; the tests that are
# about that warning catch it with pytest.warns, the others need not show it
pytestmark = pytest.mark.filterwarnings("ignore::handgrad.data.DataWarning")

# ------------------------------------------------------------------------------------------------
# guards and servers
# ------------------------------------------------------------------------------------------------
_LOCAL = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Refuse any connection that is not to this machine, and keep the user's cache untouched."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        if address[0] not in _LOCAL:
            raise OSError(f"test guard: network access to {address[0]} is blocked")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    monkeypatch.setenv("HANDGRAD_DATA", str(tmp_path / "env-cache"))
    # nor the user's cache folder, Debian's data folders or an offline switch of the shell
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(download_mod, "DEBIAN_DIRS", {})
    monkeypatch.delenv("HANDGRAD_OFFLINE", raising=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over tmp_path/www; yields (base URL, folder). Stopped after the test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.timeout = 1.0
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True  # never keeps the test process alive
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens: connecting fails at once."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections (kernel backlog) but never answers: reads time out."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}/"
    finally:
        s.close()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------
# tiny IDX files
# ------------------------------------------------------------------------------------------------
def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file: magic (0, 0, type code, ndim), big-endian int32 dims, big-endian values."""
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}
    codes[np.float64] = 0x0E
    code = codes[arr.dtype.type]
    if magic is None:
        magic = (code << 8) | arr.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def read_content(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def write_file(path: Path, raw: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw, mtime=0)
    path.write_bytes(raw)
    return path


_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def write_mnist(folder: Path, gz: bool = True, sizes=(20, 10), seed: int = 0) -> dict:
    """The four MNIST files with random images and labels; returns the arrays per split."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in zip(("train", "test"), sizes, strict=True):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        img_stem, lbl_stem = _STEMS[split]
        write_file(folder / img_stem, idx_bytes(images), gz)
        write_file(folder / lbl_stem, idx_bytes(labels), gz)
        out[split] = (images, labels)
    return out


def patch_source(monkeypatch, module, attr: str, folder: Path | None = None, **changes):
    """Replace a module's Source; with ``folder``, its digest tables become those of the files
    there (md5 of each published file present, sha256 of the content of each IDX file)."""
    source = getattr(module, attr)
    if folder is not None:
        changes["md5"] = {
            name: _md5(folder / name) for name in source.md5 if (folder / name).exists()
        }
        changes["sha256"] = {}
        for name in source.md5:
            stem = name.removesuffix(".gz")
            for path in (folder / name, folder / stem):
                if stem != name and path.exists():
                    changes["sha256"][stem] = hashlib.sha256(read_content(path)).hexdigest()
    new = dataclasses.replace(source, **changes)
    monkeypatch.setattr(module, attr, new)
    return new


# -- read_idx -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_every_type(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = write_file(tmp_path / "a-idx", idx_bytes(arr), gz)
    out = data.read_idx(path)
    assert out.shape == (3, 4, 5) and out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, arr)


def test_read_idx_known_bytes(tmp_path):
    # a worked example: 2 labels (7, 3) in an IDX1 file written byte by byte
    raw = bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 3])
    (tmp_path / "l").write_bytes(raw)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "l", magic=2049), [7, 3])


def test_read_idx_wrong_magic(tmp_path):
    path = write_file(tmp_path / "x", idx_bytes(np.zeros(4, np.uint8)), gz=False)
    with pytest.raises(data.DataError, match=r"x: wrong magic number 2049 .*expected 2051"):
        data.read_idx(path, magic=2051)
    (tmp_path / "y").write_bytes(b"\x1f\x8b\x08\x00" + bytes(20))  # gzip bytes, not gzipped name
    with pytest.raises(data.DataError, match=r"y: wrong magic number .* not an IDX file"):
        data.read_idx(tmp_path / "y")


@pytest.mark.parametrize(
    "cut, match",
    [
        (3, r"truncated IDX file \(3 bytes, no complete header\)"),
        (10, r"truncated IDX file \(10 bytes, the header needs 16\)"),
        (16 + 50, r"truncated IDX file \(shape \(2, 5, 6\) needs 60 data bytes, found 50\)"),
    ],
)
def test_read_idx_truncated(tmp_path, cut, match):
    raw = idx_bytes(np.ones((2, 5, 6), np.uint8))
    path = write_file(tmp_path / "t", raw[:cut], gz=False)
    with pytest.raises(data.DataError, match=match):
        data.read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    raw = idx_bytes(np.ones((2, 3), np.uint8)) + b"junk"
    path = write_file(tmp_path / "t", raw, gz=False)
    with pytest.raises(data.DataError, match=r"t: corrupt IDX file \(4 bytes after"):
        data.read_idx(path)


def test_read_idx_truncated_and_corrupt_gzip(tmp_path):
    raw = gzip.compress(idx_bytes(np.arange(600, dtype=np.uint8).reshape(2, 300)))
    (tmp_path / "cut.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.DataError, match=r"cut\.gz: corrupt or truncated gzip file"):
        data.read_idx(tmp_path / "cut.gz")
    (tmp_path / "bad.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(data.DataError, match=r"bad\.gz: corrupt or truncated gzip file"):
        data.read_idx(tmp_path / "bad.gz")


# -- MNIST / Fashion-MNIST from files on disk ----------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize(
    "name, module_attr", [("mnist", "MNIST"), ("fashion-mnist", "FASHION_MNIST")]
)
def test_load_mnist_from_data_dir(tmp_path, monkeypatch, gz, name, module_attr):
    folder = tmp_path / name
    arrays = write_mnist(folder, gz=gz)
    # tiny stand-ins cannot match the published digests: use theirs
    patch_source(monkeypatch, mnist_mod, module_attr, folder=folder)
    for split in ("train", "test"):
        ds = data.load(name, split, data_dir=tmp_path, download=False)
        assert set(ds.meta["checks"].values()) == {"verified (sha256 of its content)"}
        images, labels = arrays[split]
        assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
        assert ds.X.shape == (len(images), 1, 28, 28) and ds.input_shape == (1, 28, 28)
        np.testing.assert_array_equal(np.rint(ds.X[:, 0] * 255).astype(np.uint8), images)
        np.testing.assert_array_equal(ds.y, labels)
        assert ds.X.min() >= 0.0 and ds.X.max() <= 1.0
        assert len(ds.classes) == 10 and ds.split == split and ds.name == name
    fashion = data.load(name, data_dir=tmp_path, download=False).classes
    assert fashion[9] == ("Ankle boot" if name == "fashion-mnist" else "9")


@pytest.mark.usefixtures("tiny_mnist")
def test_mnist_options_flatten_and_n(tmp_path, monkeypatch):
    arrays = write_mnist(tmp_path / "mnist", gz=False)
    ds = data.load("mnist", data_dir=tmp_path, download=False, flatten=True, n=7)
    assert ds.X.shape == (7, 784) and ds.input_shape == (784,)
    np.testing.assert_array_equal(np.rint(ds.X * 255), arrays["train"][0][:7].reshape(7, 784))
    with pytest.raises(ValueError, match=r"mnist: n=21 exceeds the 20 samples of the train split"):
        data.load("mnist", data_dir=tmp_path, download=False, n=21)
    with pytest.raises(ValueError, match=r"mnist: flatten must be True or False, got 'yes'"):
        data.load("mnist", data_dir=tmp_path, download=False, flatten="yes")


@pytest.mark.usefixtures("tiny_mnist")
def test_mnist_torchvision_layout_and_env_dir(tmp_path, monkeypatch):
    # files left by torchvision (root/MNIST/raw) are found; data_dir=None reads $HANDGRAD_DATA
    env_root = tmp_path / "env-cache"
    write_mnist(env_root / "MNIST" / "raw", gz=False, sizes=(5, 3))
    ds = data.load("mnist", "test", download=False)
    assert len(ds) == 3 and str(env_root / "MNIST" / "raw") in ds.meta["files"][0]


def test_mnist_gz_that_is_not_the_published_one_fails_its_content_check(tmp_path):
    # the real tables: the sha256 of MNIST's content is known, so other data under its name fails
    write_mnist(tmp_path / "mnist", gz=True)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    content = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    with pytest.raises(data.DataError) as err:
        data.load("mnist", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert msg.startswith(f"mnist: checksum mismatch for {path} (sha256 of its content {content}")
    assert "expected ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db" in msg


@pytest.mark.usefixtures("tiny_mnist")
def test_mnist_gz_without_a_content_digest_loads_unverified(tmp_path):
    # with no digest of the unpacked content, only the published .gz's MD5, a .gz that is not
    # the published file (re-compressed, or other data) cannot be judged
    write_mnist(tmp_path / "mnist", gz=True)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    with pytest.warns(data.DataWarning) as record:
        ds = data.load("mnist", data_dir=tmp_path, download=False)
    msg = str(record[0].message)
    assert msg.startswith(f"mnist: {path} is unverified (not the published file (md5 {_md5(path)}")
    assert "published f68b3c2dcbeaaa9fbdd348bbdeb94873" in msg and "format checks only" in msg
    assert ds.meta["checks"][str(path)].startswith("unverified (not the published file")


@pytest.mark.usefixtures("tiny_mnist")
def test_mnist_wrong_magic_and_mismatched_files(tmp_path):
    folder = tmp_path / "mnist"
    arrays = write_mnist(folder, gz=False)
    # a label file under the image file's name
    write_file(folder / "train-images-idx3-ubyte", idx_bytes(arrays["train"][1]), gz=False)
    with pytest.raises(
        data.DataError,
        match=r"mnist: .*train-images-idx3-ubyte: wrong magic number 2049 \(0x00000801\), "
        r"expected 2051; delete it",
    ):
        data.load("mnist", data_dir=tmp_path, download=False)
    write_file(folder / "train-images-idx3-ubyte", idx_bytes(arrays["train"][0][:4]), gz=False)
    with pytest.raises(data.DataError, match=r"holds 4 images but .* holds 20 labels"):
        data.load("mnist", data_dir=tmp_path, download=False)


def test_mnist_truncated_file(tmp_path):
    folder = tmp_path / "mnist"
    write_mnist(folder, gz=False)
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte: truncated IDX file"):
        data.load("mnist", "test", data_dir=tmp_path, download=False)


def test_mnist_missing_with_download_false_names_folder(tmp_path):
    with pytest.raises(data.DataError) as err:
        data.load("mnist", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert msg.startswith(
        "mnist: train-images-idx3-ubyte.gz (or train-images-idx3-ubyte), "
        "train-labels-idx1-ubyte.gz (or train-labels-idx1-ubyte) not found in "
        f"{tmp_path / 'mnist'}, {tmp_path / 'MNIST' / 'raw'}, {tmp_path}, "
    )
    assert "download=False, so nothing is downloaded" in msg
    assert (
        f"place the files (from http://yann.lecun.com/exdb/mnist/) in {tmp_path / 'mnist'}" in msg
    )


# -- downloads -----------------------------------------------------------------------------------
def test_download_falls_back_to_mirror_and_caches(tmp_path, monkeypatch, server, closed_url):
    base, www = server
    arrays = write_mnist(www, gz=True)
    patch_source(monkeypatch, mnist_mod, "MNIST", folder=www, mirrors=(closed_url, base))
    root = tmp_path / "cache"
    ds = data.load("mnist", "test", data_dir=root, timeout=5)
    np.testing.assert_array_equal(ds.y, arrays["test"][1])
    for stem in _STEMS["test"]:
        assert _md5(root / "mnist" / f"{stem}.gz") == _md5(www / f"{stem}.gz")
    assert not list((root / "mnist").glob("*.part"))
    # the second load needs no network: every mirror is now unreachable
    patch_source(monkeypatch, mnist_mod, "MNIST", mirrors=(closed_url,))
    np.testing.assert_array_equal(data.load("mnist", "test", data_dir=root).y, arrays["test"][1])


def test_download_skips_mirror_with_bad_checksum(tmp_path, monkeypatch, server):
    base, www = server
    write_mnist(www / "good", gz=True)
    write_mnist(www / "bad", gz=True, seed=1)  # same names, other content
    patch_source(
        monkeypatch,
        mnist_mod,
        "MNIST",
        folder=www / "good",
        mirrors=(base + "bad/", base + "good/"),
    )
    root = tmp_path / "cache"
    data.load("mnist", "test", data_dir=root)
    assert _md5(root / "mnist" / "t10k-images-idx3-ubyte.gz") == _md5(
        www / "good" / "t10k-images-idx3-ubyte.gz"
    )
    # with only the bad mirror, nothing is kept: no file under the final name, no temp file
    patch_source(monkeypatch, mnist_mod, "MNIST", mirrors=(base + "bad/",))
    with pytest.raises(data.DownloadError, match=r"bad/train-images-idx3-ubyte.gz: checksum "):
        data.load("mnist", "train", data_dir=root)
    assert sorted(p.name for p in (root / "mnist").iterdir()) == [
        ".t10k-images-idx3-ubyte.gz.verified",  # the stamps of the files checked
        ".t10k-labels-idx1-ubyte.gz.verified",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]


def test_download_from_file_url(tmp_path, monkeypatch):
    www = tmp_path / "mirror"
    arrays = write_mnist(www, gz=True)
    patch_source(monkeypatch, mnist_mod, "MNIST", folder=www, mirrors=(www.as_uri() + "/",))
    ds = data.load("mnist", data_dir=tmp_path / "cache")
    np.testing.assert_array_equal(ds.y, arrays["train"][1])


def test_no_network_names_url_and_folder(tmp_path, monkeypatch, closed_url):
    patch_source(monkeypatch, mnist_mod, "MNIST", mirrors=(closed_url,))
    with pytest.raises(data.DownloadError) as err:
        data.load("mnist", data_dir=tmp_path, timeout=5)
    msg = str(err.value)
    url = closed_url + "train-images-idx3-ubyte.gz"
    assert msg.startswith("mnist: could not download train-images-idx3-ubyte.gz")
    assert f"{url}: ConnectionRefusedError" in msg
    assert f"download {url} elsewhere and place it in {tmp_path / 'mnist'}" in msg
    assert "\n" not in msg
    assert isinstance(err.value, data.DataError)  # one except clause catches every data error


def test_http_error_and_timeout_are_reported(tmp_path, monkeypatch, server, silent_url):
    base, _ = server  # serves an empty folder: 404
    patch_source(monkeypatch, mnist_mod, "MNIST", mirrors=(base, silent_url))
    with pytest.raises(data.DownloadError) as err:
        data.load("mnist", data_dir=tmp_path, timeout=0.3)
    msg = str(err.value)
    assert f"{base}train-images-idx3-ubyte.gz: HTTP 404" in msg
    assert f"{silent_url}train-images-idx3-ubyte.gz: timed out after 0.3 s" in msg


def test_truncated_download_is_rejected(tmp_path, monkeypatch, server):
    # a server that announces more bytes than it sends
    base, www = server
    write_mnist(www, gz=True)
    good = www / "train-images-idx3-ubyte.gz"
    md5 = {"train-images-idx3-ubyte.gz": _md5(good)}
    good.write_bytes(good.read_bytes()[:-10])  # the server now sends a cut copy
    patch_source(monkeypatch, mnist_mod, "MNIST", mirrors=(base,), md5=md5)
    with pytest.raises(data.DownloadError, match=r"checksum mismatch"):
        data.load("mnist", data_dir=tmp_path)
    assert not (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_fetch_incomplete_body(tmp_path, monkeypatch):
    # Content-Length larger than the body: the download itself is an error, whatever the MD5
    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        source = download_mod.Source("demo", "demo", (url,), {"f.bin": None})
        with pytest.raises(
            data.DownloadError,
            match=r"demo: could not download f\.bin \(.*bin: incomplete download: got 10 of 1000 ",
        ):
            download_mod.fetch(source, "f.bin", tmp_path, timeout=5)
        assert list((tmp_path / "demo").iterdir()) == []
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# -- the cache folder ----------------------------------------------------------------------------
def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HANDGRAD_DATA", str(tmp_path / "h"))
    assert data.default_data_dir() == tmp_path / "h"
    monkeypatch.delenv("HANDGRAD_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_data_dir() == tmp_path / "xdg" / "handgrad"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_data_dir() == tmp_path / "home" / ".cache" / "handgrad"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.default_data_dir() == tmp_path / "home" / ".cache" / "handgrad"
    assert data.resolve_data_dir("~/d") == tmp_path / "home" / "d"


# ------------------------------------------------------------------------------------------------
# tiny CIFAR-10 files
# ------------------------------------------------------------------------------------------------
class _Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the CIFAR-10 batches: every str as an 8-bit string
    (so it loads as bytes with encoding='bytes') and NumPy's functions under numpy.core."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        name = name or obj.__qualname__
        self.write(pickle.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n")
        self.memoize(obj)


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


CLASSES = [
    *(b"airplane", b"automobile", b"bird", b"cat", b"deer"),
    *(b"dog", b"frog", b"horse", b"ship", b"truck"),
]


def write_cifar(folder: Path, per_batch: int = 4, seed: int = 0) -> dict:
    """cifar-10-batches-py/ with 5 train batches, a test batch and batches.meta."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in [*cifar_mod.TRAIN_BATCHES, "test_batch"]:
        images = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        batch = {
            b"batch_label": b"training batch",
            b"labels": labels,
            b"data": images.reshape(per_batch, 3072),  # rows: R plane, G plane, B plane
            b"filenames": [b"img_%d.png" % i for i in range(per_batch)],
        }
        (folder / name).write_bytes(py2_pickle(batch))
        out[name] = (images, np.array(labels))
    meta = {b"num_cases_per_batch": per_batch, b"label_names": CLASSES, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return out


def write_cifar_archive(archive: Path, **kwargs) -> dict:
    """cifar-10-python.tar.gz holding cifar-10-batches-py/ (and a readme, as the real one)."""
    staging = archive.parent / "staging"
    arrays = write_cifar(staging / "cifar-10-batches-py", **kwargs)
    (staging / "cifar-10-batches-py" / "readme.html").write_text("<html></html>")
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return arrays


def _expected(arrays: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = cifar_mod.TRAIN_BATCHES if split == "train" else ("test_batch",)
    return (
        np.concatenate([arrays[n][0] for n in names]),
        np.concatenate([arrays[n][1] for n in names]),
    )


def test_py2_pickle_is_what_cifar_files_look_like(tmp_path):
    # the helper must really produce 8-bit strings and numpy.core globals, else the tests
    # below would not exercise the Python 2 path
    blob = py2_pickle({b"data": np.zeros((1, 3), np.uint8)})
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in blob
    assert pickle.SHORT_BINSTRING + bytes([4]) + b"data" in blob


def test_read_batch_and_meta(tmp_path):
    arrays = write_cifar(tmp_path)
    images, labels = data.read_batch(tmp_path / "data_batch_3")
    assert images.dtype == np.uint8 and images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(images, arrays["data_batch_3"][0])
    np.testing.assert_array_equal(labels, arrays["data_batch_3"][1])
    names = cifar_mod.read_class_names(tmp_path / "batches.meta")
    assert names == tuple(c.decode() for c in CLASSES)


def test_load_cifar_from_extracted_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    arrays = write_cifar(folder)
    patch_source(monkeypatch, cifar_mod, "CIFAR10", folder=folder)
    for split, n in (("train", 20), ("test", 4)):
        ds = data.load("cifar10", split, data_dir=tmp_path, download=False)
        images, labels = _expected(arrays, split)
        assert ds.X.shape == (n, 3, 32, 32) and ds.X.dtype == np.float32
        assert ds.y.dtype == np.int64 and ds.input_shape == (3, 32, 32)
        np.testing.assert_array_equal(np.rint(ds.X * 255).astype(np.uint8), images)
        np.testing.assert_array_equal(ds.y, labels)
        assert ds.classes == cifar_mod.CIFAR10_CLASSES
    flat = data.load("cifar10", data_dir=tmp_path, download=False, flatten=True, n=3)
    assert flat.X.shape == (3, 3072) and flat.input_shape == (3072,)
    # red plane first, then green, then blue, as in the file
    np.testing.assert_array_equal(
        np.rint(flat.X[0, 1024:2048] * 255), arrays["data_batch_1"][0][0, 1].ravel()
    )


def test_load_cifar_torchvision_layout(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"  # torchvision keeps it right under its root
    arrays = write_cifar(folder)
    patch_source(monkeypatch, cifar_mod, "CIFAR10", folder=folder)
    ds = data.load("cifar10", "test", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(ds.y, arrays["test_batch"][1])


def test_load_cifar_from_archive_unpacks_once(tmp_path, monkeypatch):
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    arrays = write_cifar_archive(archive)
    md5 = {cifar_mod.ARCHIVE: _md5(archive)}
    staged = tmp_path / "cifar10" / "staging" / "cifar-10-batches-py"
    md5.update(
        {n: _md5(staged / n) for n in (*cifar_mod.TRAIN_BATCHES, "test_batch", "batches.meta")}
    )
    patch_source(monkeypatch, cifar_mod, "CIFAR10", md5=md5)
    ds = data.load("cifar10", "train", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(ds.y, _expected(arrays, "train")[1])
    unpacked = tmp_path / "cifar10" / "cifar-10-batches-py"
    members = [*cifar_mod.TRAIN_BATCHES, "test_batch", "batches.meta"]
    stamps = [f".{name}.verified" for name in members]  # each checked once, on unpacking
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(members + stamps)
    # only the known members, no readme, no temp files
    archive.unlink()  # the unpacked folder is enough from now on
    np.testing.assert_array_equal(
        data.load("cifar10", "test", data_dir=tmp_path, download=False).y,
        _expected(arrays, "test")[1],
    )


def test_download_cifar_from_local_server(tmp_path, monkeypatch, server, closed_url):
    base, www = server
    arrays = write_cifar_archive(www / "cifar-10-python.tar.gz")
    md5 = {cifar_mod.ARCHIVE: _md5(www / "cifar-10-python.tar.gz")}
    patch_source(monkeypatch, cifar_mod, "CIFAR10", md5=md5, mirrors=(closed_url, base))
    ds = data.load("cifar10", "test", data_dir=tmp_path / "cache", timeout=5)
    np.testing.assert_array_equal(ds.y, _expected(arrays, "test")[1])
    assert (tmp_path / "cache" / "cifar10" / "cifar-10-python.tar.gz").is_file()


def test_cifar_archive_with_other_batches_fails_and_unpacks_nothing(tmp_path):
    # an archive that is not the published one is unpacked all the same (it may be re-packed);
    # its batches then decide, by the MD5s of their content
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    write_cifar_archive(archive)  # real MD5 table
    with pytest.raises(
        data.DataError,
        match=rf"cifar10: {archive} is not the published CIFAR-10 archive: its data_batch_1 has "
        r"md5 [0-9a-f]{32}, expected c99cafc152244af753f735de768cd75f; delete it",
    ):
        data.load("cifar10", data_dir=tmp_path, download=False)
    assert list((tmp_path / "cifar10" / "cifar-10-batches-py").iterdir()) == []


def test_cifar_batch_checksum_mismatch(tmp_path):
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py")  # real MD5 table
    with pytest.raises(data.DataError, match=r"checksum mismatch for .*batches\.meta "):
        data.load("cifar10", data_dir=tmp_path, download=False)


def test_cifar_truncated_archive(tmp_path, monkeypatch):
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    write_cifar_archive(archive)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    patch_source(monkeypatch, cifar_mod, "CIFAR10", md5={})
    with pytest.raises(data.DataError, match=r"corrupt or truncated archive .*delete it"):
        data.load("cifar10", data_dir=tmp_path, download=False)
    assert not list((tmp_path / "cifar10" / "cifar-10-batches-py").glob("*.part"))


def test_cifar_archive_without_batches(tmp_path, monkeypatch):
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("other/file")
        tar.addfile(info, io.BytesIO(b""))
    patch_source(monkeypatch, cifar_mod, "CIFAR10", md5={})
    with pytest.raises(
        data.DataError,
        match=r"tar\.gz has no cifar-10-batches-py/batches\.meta, cifar-10-batches-py/data_batch_1,"
        r" .*cifar-10-batches-py/test_batch; it is not the CIFAR-10 python archive: delete it",
    ):
        data.load("cifar10", data_dir=tmp_path, download=False)


def test_cifar_truncated_batch(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder)
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes()[:-500])
    patch_source(monkeypatch, cifar_mod, "CIFAR10", md5={})
    with pytest.raises(
        data.DataError, match=r"cifar10: .*test_batch: not a readable CIFAR-10 pickle .*delete it"
    ):
        data.load("cifar10", "test", data_dir=tmp_path, download=False)


def test_cifar_wrong_content(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(data.DataError, match=r"b: 'data' must be a uint8 array \(N, 3072\), got"):
        data.read_batch(path)
    path.write_bytes(py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 11]}))
    with pytest.raises(data.DataError, match=r"b: 'labels' must be 2 ints in 0..9"):
        data.read_batch(path)
    path.write_bytes(py2_pickle([1, 2]))
    with pytest.raises(data.DataError, match=r"b: not a CIFAR-10 pickle \(holds list"):
        data.read_batch(path)


_CALLS: list[str] = []


def _side_effect(arg: str) -> str:
    _CALLS.append(arg)
    return arg


class _Evil:
    def __reduce__(self):
        return (_side_effect, ("ran",))


def test_cifar_unpickler_refuses_code(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=4))
    assert pickle.loads(path.read_bytes())[b"data"] == "ran"  # a plain unpickler runs it
    _CALLS.clear()
    with pytest.raises(data.DataError, match=r"refusing global test_data_files\._side_effect"):
        data.read_batch(path)
    assert _CALLS == []


def test_cifar_missing_with_download_false_names_folder(tmp_path):
    with pytest.raises(data.DataError) as err:
        data.load("cifar10", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "cifar-10-python.tar.gz (or an unpacked cifar-10-batches-py/) not found" in msg
    assert f"(from https://www.cs.toronto.edu/~kriz/) in {tmp_path / 'cifar10'}" in msg
