"""Checking data files by what they hold, remembering the result, and listing local copies.

A file verifies when a known digest of its *content* matches: the SHA-256 of the unpacked
bytes (so a ``.gz`` as published, a re-compressed ``.gz`` and the raw file all verify alike),
else the MD5 of the content (CIFAR-10's batches, whose MD5s are published). Where no content
digest is known (MNIST), a ``.gz`` verifies by the published MD5 of the ``.gz`` itself. A known
content digest that does not match is an error naming the file; a file to which no known digest
applies (an unpacked or re-compressed MNIST file) is *unverified*: it loads after the format
checks, with a ``DataWarning``.

The outcome is remembered in a stamp beside the file (``.<name>.verified``, a small JSON) keyed
by the file's size, its modification time and the digests expected, so the next load hashes
nothing. Where the file's folder cannot be written (a system package's folder) the stamp goes
to ``<data_dir>/.stamps/`` instead; where neither can, nothing is remembered.

Each downloaded data set also registers here how to list its files (``inventory``) and how to
download them all (``fetch_all``): ``handgrad data list`` and ``handgrad data fetch`` use these.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handgrad.data import download
from handgrad.data.download import DataError, Source, resolve_data_dir

__all__ = [
    "FAILED",
    "MISSING",
    "UNVERIFIED",
    "VERIFIED",
    "ChecksumError",
    "DataSetReport",
    "DataWarning",
    "Expected",
    "FileCheck",
    "FileReport",
    "check_content",
    "digest",
    "fetch_all",
    "inventory",
    "local_names",
    "register_local",
]

VERIFIED = "verified"
UNVERIFIED = "unverified"
MISSING = "missing"
FAILED = "failed"

STAMP_PREFIX = "."
STAMP_SUFFIX = ".verified"
STAMP_DIR = ".stamps"  # under the data directory, for files in read-only folders


class DataWarning(UserWarning):
    """A data file loaded without a digest to check it against."""


class ChecksumError(DataError):
    """A file's content does not have the known digest."""

    def __init__(self, message: str, algorithm: str, got: str, expected: str) -> None:
        super().__init__(message)
        self.algorithm, self.got, self.expected = algorithm, got, expected


def digest(algorithm: str, data: bytes) -> str:
    """Hex digest of ``data`` (``'sha256'`` or ``'md5'``). Every check hashes through here.

    MD5 is an identity check against corruption (the published lists use it), not a defence
    against an attacker; SHA-256 is used wherever its value is known.
    """
    if algorithm == "md5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    return hashlib.new(algorithm, data).hexdigest()


@dataclass(frozen=True)
class Expected:
    """The digests a file is checked against (None: not known).

    Attributes:
        sha256: of the content (the unpacked bytes).
        md5: of the content, where only an MD5 is published (CIFAR-10's batch files).
        wrapper_md5: of the file itself as published (the ``.gz``), used only when no content
            digest is known.
    """

    sha256: str | None = None
    md5: str | None = None
    wrapper_md5: str | None = None

    @classmethod
    def of(cls, source: Source, stem: str, path: Path) -> Expected:
        """The digests ``source`` knows for the content ``stem`` found at ``path``."""
        wrapper = source.md5.get(path.name) if path.name != stem else None
        return cls(source.sha256.get(stem), source.md5.get(stem), wrapper)

    @property
    def known(self) -> bool:
        return any((self.sha256, self.md5, self.wrapper_md5))

    def as_dict(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (("sha256", self.sha256), ("md5", self.md5), ("gz_md5", self.wrapper_md5))
            if v
        }


@dataclass(frozen=True)
class FileCheck:
    """The outcome of checking one file: ``status`` is VERIFIED or UNVERIFIED; ``how`` says
    which digest matched, or why none could be checked."""

    path: Path
    status: str
    how: str

    @property
    def verified(self) -> bool:
        return self.status == VERIFIED


# -- stamps ----------------------------------------------------------------------------------
def _stamp_paths(path: Path, data_dir: Any) -> list[Path]:
    """Where the stamp of ``path`` may be: beside it, else under the data directory. Never
    in a system package's folder (``DEBIAN_DIRS``), even where it could be written (root):
    the package manager owns that folder."""
    # a name per absolute path (the same file name exists in several folders)
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    elsewhere = resolve_data_dir(data_dir) / STAMP_DIR / f"{key}-{path.name}.json"
    system = {d for dirs in download.DEBIAN_DIRS.values() for d in dirs}
    if path.parent in system:
        return [elsewhere]
    return [path.with_name(f"{STAMP_PREFIX}{path.name}{STAMP_SUFFIX}"), elsewhere]


def _stamp_key(stat: os.stat_result, expected: Expected) -> dict[str, Any]:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "expected": expected.as_dict()}


def _read_stamp(path: Path, stat: os.stat_result, expected: Expected, data_dir: Any):
    key = _stamp_key(stat, expected)
    for stamp in _stamp_paths(path, data_dir):
        try:
            saved = json.loads(stamp.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict) and all(saved.get(k) == v for k, v in key.items()):
            status, how = saved.get("status"), saved.get("how")
            if status in (VERIFIED, UNVERIFIED) and isinstance(how, str):
                return FileCheck(path, status, how)
    return None


def _write_stamp(
    path: Path, stat: os.stat_result, expected: Expected, check: FileCheck, data_dir: Any
) -> None:
    record = {"file": path.name, **_stamp_key(stat, expected), "status": check.status}
    record["how"] = check.how
    text = json.dumps(record, indent=1) + "\n"
    for stamp in _stamp_paths(path, data_dir):
        try:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=stamp.name, suffix=".part", dir=stamp.parent)
        except OSError:  # read-only folder: try the next place
            continue
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a stamp is no secret
            os.replace(tmp, stamp)
            return
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# -- checking ----------------------------------------------------------------------------------
def check_content(
    source: Source,
    stem: str,
    path: Path,
    read: Callable[[], bytes],
    *,
    data_dir: Any = None,
    origin: str | None = None,
    expected: Expected | None = None,
) -> FileCheck:
    """Check the file at ``path`` holding the content ``stem`` (its unpacked name).

    Args:
        source: the data set's Source (its ``sha256`` and ``md5`` tables).
        stem: the unpacked file name, the key of the content digests.
        path: the file found (``stem``, ``stem.gz``, ...).
        read: returns the content (the unpacked bytes); called only when a content digest
            must be computed (not when a stamp holds the answer).
        data_dir: the data directory (where stamps go when ``path``'s folder is read-only).
        origin: where the original may be downloaded, for the error message.
        expected: the digests to use instead of the source's tables.

    Returns:
        A FileCheck, VERIFIED or UNVERIFIED.

    Raises:
        ChecksumError: a known content digest does not match; the message names the file.
    """
    expected = expected or Expected.of(source, stem, path)
    if not expected.known:
        return FileCheck(path, UNVERIFIED, "no digest of it is known")
    stat = path.stat()
    remembered = _read_stamp(path, stat, expected, data_dir)
    if remembered is not None:
        return remembered
    if expected.sha256 or expected.md5:
        algorithm, want = ("sha256", expected.sha256) if expected.sha256 else ("md5", expected.md5)
        got = digest(algorithm, read())
        if got != want:
            where = origin or source.url(stem)
            raise ChecksumError(
                f"{source.name}: checksum mismatch for {path} ({algorithm} of its content "
                f"{got}, expected {want}): the file is corrupt or is not the published {stem}; "
                f"delete it and run again to download it afresh, or replace it with the "
                f"original from {where}",
                algorithm,
                got,
                want,
            )
        check = FileCheck(path, VERIFIED, f"{algorithm} of its content")
    else:  # only the published .gz's own MD5 is known
        got = digest("md5", path.read_bytes())
        if got == expected.wrapper_md5:
            check = FileCheck(path, VERIFIED, "md5 of the published file")
        else:
            check = FileCheck(
                path,
                UNVERIFIED,
                f"not the published file (md5 {got}, published {expected.wrapper_md5}; "
                f"re-compressed?) and no digest of its content is known",
            )
    _write_stamp(path, stat, expected, check, data_dir)
    return check


def warn_unverified(source: Source, check: FileCheck) -> None:
    """A DataWarning for a file loaded without a digest to check it against."""
    if not check.verified:
        warnings.warn(
            f"{source.name}: {check.path} is unverified ({check.how}); it passed the format "
            f"checks only",
            DataWarning,
            stacklevel=3,
        )


# -- the inventory of downloaded data sets -------------------------------------------------------
@dataclass(frozen=True)
class FileReport:
    """One file of a data set on this machine.

    Attributes:
        name: the file wanted (``train-images-idx3-ubyte``, ``cifar-10-python.tar.gz``).
        path: where it was found (None: missing).
        size: its size in bytes (0 when missing).
        status: VERIFIED, UNVERIFIED, MISSING or FAILED.
        detail: how it verified, why it could not be, or what failed.
    """

    name: str
    path: Path | None
    size: int
    status: str
    detail: str = ""


@dataclass(frozen=True)
class DataSetReport:
    """The files of one data set: ``status`` sums them up (FAILED if any failed, MISSING if
    none is there, ``incomplete`` if some are missing, UNVERIFIED if any is, else VERIFIED)."""

    name: str
    files: tuple[FileReport, ...]
    searched: tuple[Path, ...]

    @property
    def status(self) -> str:
        states = [f.status for f in self.files]
        if FAILED in states:
            return FAILED
        if all(s == MISSING for s in states):
            return MISSING
        if MISSING in states:
            return "incomplete"
        return UNVERIFIED if UNVERIFIED in states else VERIFIED

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def folders(self) -> list[Path]:
        """The folders holding the files found, in order."""
        return list(dict.fromkeys(f.path.parent for f in self.files if f.path is not None))


@dataclass(frozen=True)
class _Local:
    inventory: Callable[[Any], DataSetReport]
    fetch_all: Callable[..., DataSetReport]


_LOCAL: dict[str, _Local] = {}


def register_local(
    name: str,
    inventory: Callable[[Any], DataSetReport],
    fetch_all: Callable[..., DataSetReport],
) -> None:
    """Register how to list (``inventory(data_dir)``) and download
    (``fetch_all(data_dir, timeout=..., progress=...)``) the files of data set ``name``."""
    _LOCAL[name] = _Local(inventory, fetch_all)


def local_names() -> list[str]:
    """The data sets made of files (downloaded, or found on disk)."""
    return list(_LOCAL)


def _entry(name: str) -> _Local:
    from handgrad.data.dataset import info

    key = info(name).name  # resolves aliases; an unknown name lists the valid ones
    if key not in _LOCAL:
        raise ValueError(
            f"{key}: {info(key).description}; it has no files to list or download (data sets "
            f"with files: {', '.join(local_names())})"
        )
    return _LOCAL[key]


def inventory(name: str, data_dir: Any = None) -> DataSetReport:
    """Where each file of data set ``name`` is on this machine, and whether it verifies.

    Never downloads. A file that fails its check is reported (status FAILED), not raised.
    """
    return _entry(name).inventory(data_dir)


def fetch_all(
    name: str, data_dir: Any = None, *, timeout: float = 30.0, progress: bool | None = None
) -> DataSetReport:
    """Download every missing file of data set ``name`` (both splits), check every file, and
    return the inventory. Files already present are kept.

    Raises:
        OfflineError: a file is missing and the network is switched off.
        DownloadError: no mirror delivered a missing file.
        DataError: a file present fails its check.
    """
    return _entry(name).fetch_all(data_dir, timeout=timeout, progress=progress)
