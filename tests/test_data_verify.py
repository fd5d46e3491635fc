"""Content checks, stamps, the search for local copies, the offline switch, `handgrad data`.

The files are tiny IDX files written here. Their expected digests are injected into the
Sources' tables (``sha256``: of the content; ``md5``: of the published ``.gz``), never the
production digests. No test reaches the network: the function that opens URLs is replaced by
one that fails the test if called.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest

import handgrad.data as data
from handgrad import cli
from handgrad.data import download as download_mod
from handgrad.data import files as files_mod
from handgrad.data import mnist as mnist_mod
from test_data_files import idx_bytes

STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# tests that expect a DataWarning catch it with pytest.warns; the rest need not show it
pytestmark = pytest.mark.filterwarnings("ignore::handgrad.data.DataWarning")
_NETWORK_CALLS: list[str] = []
_REAL_DOWNLOAD = download_mod._download  # the one function that opens URLs


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, no user cache, no real Debian folder, no offline switch from the shell."""

    def no_network(url, *args, **kwargs):
        _NETWORK_CALLS.append(url)
        raise AssertionError(f"test: a network attempt was started: {url}")

    _NETWORK_CALLS.clear()
    monkeypatch.setattr(download_mod, "_download", no_network)
    monkeypatch.setenv("HANDGRAD_DATA", str(tmp_path / "env-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HANDGRAD_OFFLINE", raising=False)
    monkeypatch.setattr(download_mod, "DEBIAN_DIRS", {})


# -- tiny IDX files and their digests ------------------------------------------------------------
def idx_contents(seed: int = 0, sizes=(12, 6)) -> dict[str, bytes]:
    """The unpacked bytes of the four files (random images and labels)."""
    rng = np.random.default_rng(seed)
    out = {}
    for (images, labels), n in zip((STEMS[:2], STEMS[2:]), sizes, strict=True):
        out[images] = idx_bytes(rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        out[labels] = idx_bytes(rng.integers(0, 10, size=n, dtype=np.uint8))
    return out


def gzip_bytes(raw: bytes, level: int, mtime: int, name: str = "") -> bytes:
    """A gzip stream of ``raw`` with the given level, header mtime and stored file name."""
    buf = io.BytesIO()
    with gzip.GzipFile(
        filename=name, mode="wb", compresslevel=level, fileobj=buf, mtime=mtime
    ) as f:
        f.write(raw)
    return buf.getvalue()


# the "published" form and a re-compression of the same content, as Debian's package ships
FORMS = {
    "published-gz": lambda raw, stem: gzip_bytes(raw, 9, 1504176606, stem),
    "recompressed-gz": lambda raw, stem: gzip_bytes(raw, 1, 1591347949),
    "raw": lambda raw, stem: raw,
}


def write_form(folder: Path, contents: dict[str, bytes], form: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, raw in contents.items():
        path = folder / (stem if form == "raw" else stem + ".gz")
        path.write_bytes(FORMS[form](raw, stem))
        paths[stem] = path
    return paths


def inject(monkeypatch, attr: str, contents: dict[str, bytes], *, content=True, wrapper=True):
    """Replace ``mnist_mod.<attr>``'s digest tables by those of ``contents``: sha256 of the
    content (``content``) and md5 of the published .gz (``wrapper``)."""
    source = getattr(mnist_mod, attr)
    sha256 = {s: hashlib.sha256(raw).hexdigest() for s, raw in contents.items()} if content else {}
    md5 = {}
    if wrapper:
        for stem, raw in contents.items():
            published = FORMS["published-gz"](raw, stem)
            md5[stem + ".gz"] = hashlib.md5(published).hexdigest()
    new = dataclasses.replace(source, sha256=sha256, md5=md5)
    monkeypatch.setattr(mnist_mod, attr, new)
    return new


def flip_content_byte(raw: bytes) -> bytes:
    """The same IDX bytes with one pixel changed: the format stays valid."""
    i = len(raw) - 7  # inside the data, past the header
    return raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]


# -- content checks --------------------------------------------------------------------------------
def test_the_two_compressions_really_differ():
    raw = idx_contents()[STEMS[0]]
    a, b = FORMS["published-gz"](raw, STEMS[0]), FORMS["recompressed-gz"](raw, STEMS[0])
    assert a != b and gzip.decompress(a) == gzip.decompress(b) == raw


@pytest.mark.parametrize("form", list(FORMS))
def test_every_honest_copy_loads_and_verifies(tmp_path, monkeypatch, form):
    contents = idx_contents()
    write_form(tmp_path / "fashion-mnist", contents, form)
    inject(monkeypatch, "FASHION_MNIST", contents)
    ds = data.load("fashion-mnist", "test", data_dir=tmp_path, download=False)
    assert ds.X.shape == (6, 1, 28, 28) and ds.classes[0] == "T-shirt/top"
    expected = np.frombuffer(contents["t10k-labels-idx1-ubyte"], np.uint8, offset=8)
    np.testing.assert_array_equal(ds.y, expected)
    assert set(ds.meta["checks"].values()) == {"verified (sha256 of its content)"}


@pytest.mark.parametrize("form", list(FORMS))
def test_a_flipped_content_byte_fails_naming_the_file(tmp_path, monkeypatch, form):
    contents = idx_contents()
    inject(monkeypatch, "FASHION_MNIST", contents)  # the digests of the right content
    bad = dict(contents, **{STEMS[2]: flip_content_byte(contents[STEMS[2]])})
    paths = write_form(tmp_path / "fashion-mnist", bad, form)
    want = hashlib.sha256(contents[STEMS[2]]).hexdigest()
    with pytest.raises(data.DataError) as err:
        data.load("fashion-mnist", "test", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert msg.startswith(f"fashion-mnist: checksum mismatch for {paths[STEMS[2]]} (sha256 of")
    assert f"expected {want}" in msg and "delete it" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("holder", "wanted"), [("MNIST", "fashion-mnist"), ("FASHION_MNIST", "mnist")]
)
def test_the_other_data_sets_file_is_named_as_such(tmp_path, monkeypatch, holder, wanted):
    # MNIST's files where Fashion-MNIST's are looked for (the same names), and the other way
    contents = idx_contents()
    inject(monkeypatch, holder, contents)  # the files written are the holder's
    wanted_attr = "FASHION_MNIST" if holder == "MNIST" else "MNIST"
    other_digests = {stem: "0" * 64 for stem in contents}
    source = dataclasses.replace(getattr(mnist_mod, wanted_attr), sha256=other_digests)
    monkeypatch.setattr(mnist_mod, wanted_attr, source)
    paths = write_form(tmp_path / wanted, contents, "raw")
    with pytest.raises(data.DataError) as err:
        data.load(wanted, "test", data_dir=tmp_path, download=False)
    msg = str(err.value)
    other = "mnist" if holder == "MNIST" else "fashion-mnist"
    got = hashlib.sha256(contents[STEMS[2]]).hexdigest()
    assert msg.startswith(
        f"{wanted}: {paths[STEMS[2]]} is {other}'s {STEMS[2]} (sha256 of its content {got}), "
        f"not {wanted}'s: the two data sets use the same file names"
    )
    assert "delete it" not in msg and "\n" not in msg


def test_a_flipped_byte_in_the_gzip_stream_fails_naming_the_file(tmp_path, monkeypatch):
    contents = idx_contents()
    inject(monkeypatch, "FASHION_MNIST", contents)
    paths = write_form(tmp_path / "fashion-mnist", contents, "recompressed-gz")
    blob = bytearray(paths[STEMS[2]].read_bytes())
    blob[len(blob) // 2] ^= 0x10
    paths[STEMS[2]].write_bytes(bytes(blob))
    with pytest.raises(data.DataError, match=rf"{paths[STEMS[2]]}: corrupt or truncated gzip"):
        data.load("fashion-mnist", "test", data_dir=tmp_path, download=False)


def test_without_a_content_digest_the_published_gz_verifies_by_its_md5(tmp_path, monkeypatch):
    # MNIST's case: only the MD5s of the published .gz files are known
    contents = idx_contents()
    inject(monkeypatch, "MNIST", contents, content=False)
    paths = write_form(tmp_path / "mnist", contents, "published-gz")
    ds = data.load("mnist", "test", data_dir=tmp_path, download=False)
    assert ds.meta["checks"][str(paths[STEMS[2]])] == "verified (md5 of the published file)"
    # re-compressed or unpacked: nothing to check it against, so it loads with a warning
    for form in ("recompressed-gz", "raw"):
        for path in paths.values():
            path.unlink()
        paths = write_form(tmp_path / "mnist", contents, form)
        with pytest.warns(data.DataWarning, match=rf"mnist: {paths[STEMS[2]]} is unverified"):
            ds = data.load("mnist", "test", data_dir=tmp_path, download=False)
        assert all(v.startswith("unverified") for v in ds.meta["checks"].values())


# -- stamps ----------------------------------------------------------------------------------------
def _count_hashing(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = files_mod.digest

    def counting(algorithm, payload):
        calls.append(algorithm)
        return real(algorithm, payload)

    monkeypatch.setattr(files_mod, "digest", counting)
    return calls


def _no_hashing(monkeypatch) -> None:
    def refuse(algorithm, payload):
        raise AssertionError("test: hashed although a stamp holds the answer")

    monkeypatch.setattr(files_mod, "digest", refuse)


def test_a_second_load_hashes_nothing(tmp_path, monkeypatch):
    contents = idx_contents()
    inject(monkeypatch, "FASHION_MNIST", contents)
    paths = write_form(tmp_path / "fashion-mnist", contents, "recompressed-gz")
    calls = _count_hashing(monkeypatch)
    data.load("fashion-mnist", "test", data_dir=tmp_path, download=False)
    assert calls == ["sha256", "sha256"]  # images and labels, once each
    stamp = paths[STEMS[2]].with_name(f".{STEMS[2]}.gz.verified")
    assert stamp.is_file() and '"status": "verified"' in stamp.read_text()

    _no_hashing(monkeypatch)
    ds = data.load("fashion-mnist", "test", data_dir=tmp_path, download=False)
    assert set(ds.meta["checks"].values()) == {"verified (sha256 of its content)"}


def test_a_stamp_is_void_when_the_file_or_the_expected_digest_changes(tmp_path, monkeypatch):
    contents = idx_contents()
    inject(monkeypatch, "FASHION_MNIST", contents)
    paths = write_form(tmp_path / "fashion-mnist", contents, "raw")
    data.load("fashion-mnist", "test", data_dir=tmp_path, download=False)
    # same size, one byte changed, a new mtime: hashed again, and caught
    path = paths[STEMS[2]]
    path.write_bytes(flip_content_byte(contents[STEMS[2]]))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(data.DataError, match=rf"checksum mismatch for {path} "):
        data.load("fashion-mnist", "test", data_dir=tmp_path, download=False)
    # the right file back, but another expected digest: the old stamp does not count
    path.write_bytes(contents[STEMS[2]])
    data.load("fashion-mnist", "test", data_dir=tmp_path, download=False)
    other = dict(contents, **{STEMS[3]: b"other content"})
    inject(monkeypatch, "FASHION_MNIST", other)
    with pytest.raises(data.DataError, match=rf"checksum mismatch for .*{STEMS[3]} "):
        data.load("fashion-mnist", "test", data_dir=tmp_path, download=False)


def test_stamps_of_files_in_a_system_folder_go_to_the_data_dir(tmp_path, monkeypatch):
    contents = idx_contents()
    inject(monkeypatch, "FASHION_MNIST", contents)
    debian = tmp_path / "usr-share-datasets" / "fashion-mnist"
    write_form(debian, contents, "recompressed-gz")
    monkeypatch.setattr(download_mod, "DEBIAN_DIRS", {"fashion-mnist": (debian,)})
    data_dir = tmp_path / "data"
    ds = data.load("fashion-mnist", "test", data_dir=data_dir, download=False)
    assert ds.meta["files"][0] == str(debian / "t10k-images-idx3-ubyte.gz")
    assert sorted(p.name for p in debian.iterdir()) == sorted(s + ".gz" for s in STEMS)
    assert len(list((data_dir / ".stamps").glob("*-t10k-*.json"))) == 2
    _no_hashing(monkeypatch)
    data.load("fashion-mnist", "test", data_dir=data_dir, download=False)


# -- where files are found -------------------------------------------------------------------------
def test_search_order_data_dir_env_cache_then_debian(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    monkeypatch.setattr(download_mod, "DEBIAN_DIRS", {"fashion-mnist": (debian,)})
    dirs = download_mod.search_dirs(mnist_mod.FASHION_MNIST, tmp_path / "given")
    roots = [tmp_path / "given", tmp_path / "env-data", tmp_path / "cache" / "handgrad"]
    expected = [p for r in roots for p in (r / "fashion-mnist", r / "FashionMNIST" / "raw", r)]
    assert dirs == [*expected, debian]

    contents = {seed: idx_contents(seed) for seed in range(4)}
    inject(monkeypatch, "FASHION_MNIST", {}, content=False, wrapper=False)
    for seed, folder in enumerate([debian, roots[2] / "fashion-mnist", roots[1], roots[0]]):
        write_form(folder, contents[seed], "raw")
        with pytest.warns(data.DataWarning):  # no digests injected: unverified
            ds = data.load("fashion-mnist", "test", data_dir=tmp_path / "given", download=False)
        want = np.frombuffer(contents[seed]["t10k-labels-idx1-ubyte"], np.uint8, offset=8)
        np.testing.assert_array_equal(ds.y, want)  # the copy found first is the newest folder


# -- offline ---------------------------------------------------------------------------------------
def test_offline_env_var_fails_at_once_naming_files_and_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDGRAD_OFFLINE", "1")
    assert data.is_offline()
    with pytest.raises(data.DataError) as err:
        data.load("mnist", "test", data_dir=tmp_path)  # download=True, but offline
    msg = str(err.value)
    assert msg.startswith(
        "mnist: t10k-images-idx3-ubyte.gz (or t10k-images-idx3-ubyte), "
        "t10k-labels-idx1-ubyte.gz (or t10k-labels-idx1-ubyte) not found in "
        f"{tmp_path / 'mnist'}, {tmp_path / 'MNIST' / 'raw'}, {tmp_path}, "
        f"{tmp_path / 'env-data' / 'mnist'}"
    )
    assert "handgrad is offline ($HANDGRAD_OFFLINE=1), so nothing is downloaded" in msg
    assert _NETWORK_CALLS == []


@pytest.mark.parametrize(
    "value, offline", [("0", False), ("", False), ("no", False), ("yes", True)]
)
def test_offline_env_values(monkeypatch, value, offline):
    monkeypatch.setenv("HANDGRAD_OFFLINE", value)
    assert data.is_offline() is offline
    with data.offline_mode():
        assert data.is_offline()
    with data.offline_mode(False):
        assert not data.is_offline()


def test_fetch_refuses_before_any_network_attempt(tmp_path):
    with data.offline_mode(), pytest.raises(data.OfflineError, match=r"handgrad is offline"):
        download_mod.fetch(mnist_mod.MNIST, "t10k-labels-idx1-ubyte.gz", tmp_path)
    assert _NETWORK_CALLS == [] and not (tmp_path / "mnist").exists()


def test_the_network_function_itself_refuses_while_offline(tmp_path, monkeypatch):
    # the guard sits in the one function that opens URLs, whoever calls it
    monkeypatch.setenv("HANDGRAD_OFFLINE", "true")
    import urllib.request

    def urlopen(*args, **kwargs):
        raise AssertionError("test: urlopen called while offline")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(data.OfflineError):
        _REAL_DOWNLOAD("http://example.invalid/f", tmp_path, "f", timeout=1.0)
    assert list(tmp_path.iterdir()) == []


def test_cli_offline_with_no_files_fails_at_once(tmp_path, capsys):
    argv = ["data", "fetch", "fashion-mnist", "--offline", "--data-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("handgrad: error: fashion-mnist: ")
    assert "train-images-idx3-ubyte.gz (or train-images-idx3-ubyte)" in err
    assert f"not found in {tmp_path / 'fashion-mnist'}" in err
    assert "handgrad is offline (--offline)" in err
    assert _NETWORK_CALLS == []


def test_cli_run_offline_fails_at_once(tmp_path, capsys):
    argv = ["run", "mnist-mlp", "--offline", "--quiet", "--data-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--out", str(tmp_path / "runs")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("handgrad: error: mnist: train-images-idx3-ubyte.gz")
    assert "handgrad is offline (--offline)" in err and err.count("\n") == 1
    assert _NETWORK_CALLS == []


# -- handgrad data list / fetch --------------------------------------------------------------------
def test_data_list_shows_found_verified_and_missing(tmp_path, monkeypatch, capsys):
    mnist_contents, fashion_contents = idx_contents(1), idx_contents(2)
    inject(monkeypatch, "MNIST", mnist_contents, content=False)  # MNIST: md5 of the .gz only
    inject(monkeypatch, "FASHION_MNIST", fashion_contents)
    data_dir = tmp_path / "data"
    mnist_paths = write_form(data_dir / "mnist", mnist_contents, "published-gz")
    debian = tmp_path / "debian" / "fashion-mnist"
    write_form(debian, fashion_contents, "recompressed-gz")
    monkeypatch.setattr(download_mod, "DEBIAN_DIRS", {"fashion-mnist": (debian,)})

    assert cli.main(["data", "list", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"data directory: {data_dir} (downloads go here)"
    rows = {line.split()[0]: line.split() for line in out[2:5]}
    mnist_size = sum(p.stat().st_size for p in mnist_paths.values())
    fashion_size = sum(p.stat().st_size for p in debian.iterdir())
    assert rows["mnist"] == [
        "mnist",
        "verified",
        *cli._size(mnist_size).split(),
        str(data_dir / "mnist"),
    ]
    assert rows["fashion-mnist"][1] == "verified" and rows["fashion-mnist"][-1] == str(debian)
    assert cli._size(fashion_size) in out[3]
    assert rows["cifar10"] == ["cifar10", "missing", "-", "-"]
    assert "  cifar10: missing; `handgrad data fetch cifar10` downloads it" in out

    # one file missing, one changed: incomplete, failed (exit status 1) with the reason
    mnist_paths[STEMS[3]].unlink()
    bad = debian / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(gzip_bytes(flip_content_byte(fashion_contents[STEMS[2]]), 6, 0))
    assert cli.main(["data", "list", "--data-dir", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert "\nmnist          incomplete" in out
    assert "\nfashion-mnist  failed" in out
    assert f"fashion-mnist: checksum mismatch for {bad} (sha256 of its content" in out


def test_data_list_verbose_and_unverified(tmp_path, monkeypatch, capsys):
    contents = idx_contents()
    inject(monkeypatch, "MNIST", contents, content=False)
    write_form(tmp_path / "mnist", contents, "raw")
    assert cli.main(["data", "list", "-v", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\nmnist          unverified" in out
    assert f"mnist: t10k-images-idx3-ubyte  unverified  4.7 kB  {tmp_path / 'mnist'}" in out
    assert "(no digest of it is known)" in out
    assert f"mnist: searched {tmp_path / 'mnist'}, {tmp_path / 'MNIST' / 'raw'}" in out


def test_data_list_never_downloads(tmp_path, capsys):
    assert cli.main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    assert "mnist          missing" in capsys.readouterr().out and _NETWORK_CALLS == []


def test_data_fetch_downloads_missing_files_with_a_progress_bar(tmp_path, monkeypatch, capsys):
    # the real network function, fed from a file:// mirror
    monkeypatch.setattr(download_mod, "_download", _REAL_DOWNLOAD)
    contents = idx_contents()
    mirror = tmp_path / "mirror"
    write_form(mirror, contents, "published-gz")
    source = inject(monkeypatch, "FASHION_MNIST", contents)
    monkeypatch.setattr(
        mnist_mod, "FASHION_MNIST", dataclasses.replace(source, mirrors=(mirror.as_uri() + "/",))
    )
    data_dir = tmp_path / "data"
    write_form(data_dir / "fashion-mnist", {STEMS[0]: contents[STEMS[0]]}, "raw")  # kept

    monkeypatch.setattr(download_mod.sys.stderr, "isatty", lambda: True, raising=False)
    assert cli.main(["data", "fetch", "fashion_mnist", "--data-dir", str(data_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("fashion-mnist: verified, ") and str(data_dir) in captured.out
    assert "t10k-labels-idx1-ubyte.gz: 100%" in captured.err  # tqdm's bar, per file
    got = sorted(p.name for p in (data_dir / "fashion-mnist").iterdir() if p.name[0] != ".")
    assert got == sorted([STEMS[0], *(s + ".gz" for s in STEMS[1:])])

    # everything there: nothing to download, and --quiet shows no bar
    assert cli.main(["data", "fetch", "fashion-mnist", "--quiet", "--data-dir", str(data_dir)]) == 0
    assert "100%" not in capsys.readouterr().err


def test_data_fetch_rejects_names_without_files(capsys):
    with pytest.raises(SystemExit):
        cli.main(["data", "fetch", "moons"])
    err = capsys.readouterr().err
    assert "moons: " in err and "data sets with files: mnist, fashion-mnist, cifar10" in err
    with pytest.raises(SystemExit):
        cli.main(["data", "fetch", "imagenet"])
    assert "unknown data set 'imagenet'" in capsys.readouterr().err


def test_data_list_cifar_archive_then_unpacked_batches(tmp_path, monkeypatch, capsys):
    from handgrad.data import cifar as cifar_mod
    from test_data_files import write_cifar_archive

    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    write_cifar_archive(archive)
    staged = tmp_path / "cifar10" / "staging" / "cifar-10-batches-py"
    md5 = {n: hashlib.md5((staged / n).read_bytes()).hexdigest() for n in cifar_mod._ALL}
    md5[cifar_mod.ARCHIVE] = "0" * 32  # not the published archive: packed again
    monkeypatch.setattr(cifar_mod, "CIFAR10", dataclasses.replace(cifar_mod.CIFAR10, md5=md5))

    report = data.inventory("cifar10", tmp_path)
    assert report.status == "unverified" and report.folders == [archive.parent]
    assert report.files[0].detail.endswith("unpacked and checked batch by batch on first use")
    data.load("cifar10", "test", data_dir=tmp_path, download=False)  # unpacks, checks
    assert cli.main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("cifar10 "))
    assert row.split()[1] == "verified"
    assert row.endswith(str(tmp_path / "cifar10" / "cifar-10-batches-py"))
