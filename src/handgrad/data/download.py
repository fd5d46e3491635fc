"""The cache folder, checksums and downloads with mirror fallback.

Files are fetched with the standard library only (urllib), streamed into a temporary file in
the destination folder, checked against a known MD5 and only then renamed into place
(``os.replace`` is atomic on one file system), so an interrupted download never leaves a file
that looks complete. Every network call has a timeout.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ENV_VAR",
    "DataError",
    "DownloadError",
    "Source",
    "default_data_dir",
    "fetch",
    "md5sum",
    "resolve_data_dir",
]

ENV_VAR = "HANDGRAD_DATA"
DEFAULT_TIMEOUT = 30.0  # seconds per connect / read, not for the whole file
_CHUNK = 1 << 20


class DataError(RuntimeError):
    """A data file is missing, corrupt, of the wrong format or fails its checksum."""


class DownloadError(DataError):
    """No mirror could deliver a file (no network, HTTP error, timeout, bad checksum)."""


@dataclass(frozen=True)
class Source:
    """Where a downloaded data set comes from and where it is kept.

    Attributes:
        name: the data set name, used in messages (``'mnist'``).
        folder: its sub-folder of the data directory (``<data_dir>/mnist``).
        mirrors: base URLs tried in order, each ending in ``/``; the canonical one first.
        md5: known MD5 of each file as published (None: not checked).
        also_in: other sub-folders searched for files the user already has (e.g.
            torchvision's ``MNIST/raw``); the data directory itself is searched last.
    """

    name: str
    folder: str
    mirrors: tuple[str, ...]
    md5: dict[str, str | None]
    also_in: tuple[str, ...] = field(default=())

    def url(self, filename: str) -> str:
        return self.mirrors[0] + filename if self.mirrors else filename

    def search_dirs(self, root: Path) -> list[Path]:
        return [root / self.folder, *(root / d for d in self.also_in), root]


def default_data_dir() -> Path:
    """``$HANDGRAD_DATA`` if set, else ``$XDG_CACHE_HOME/handgrad``, else ``~/.cache/handgrad``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    # the XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "handgrad"
    return Path.home() / ".cache" / "handgrad"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data directory to use: ``data_dir`` if given, else ``default_data_dir()``."""
    if data_dir is None:
        return default_data_dir()
    return Path(data_dir).expanduser()


def md5sum(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file, read in chunks (an identity check, not a security measure)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(source: Source, path: Path, filename: str | None = None) -> None:
    """Raise DataError if ``path`` does not have the known MD5 of ``filename``."""
    filename = filename or path.name
    expected = source.md5.get(filename)
    if expected is None:
        return
    got = md5sum(path)
    if got != expected:
        raise DataError(
            f"{source.name}: checksum mismatch for {path} (md5 {got}, expected {expected}): "
            f"the file is corrupt or incomplete; delete it and run again to download it "
            f"afresh, or replace it with the original from {source.url(filename)}"
        )


def find(source: Source, root: Path, filenames: Sequence[str]) -> Path | None:
    """The first existing file among ``filenames`` in the source's search folders."""
    for folder in source.search_dirs(root):
        for filename in filenames:
            path = folder / filename
            if path.is_file():
                return path
    return None


def missing_error(source: Source, root: Path, filename: str, detail: str = "") -> DataError:
    """The error for a file that is absent and may not be downloaded."""
    folder = root / source.folder
    looked = ", ".join(str(d) for d in source.search_dirs(root)[1:])
    return DataError(
        f"{source.name}: {filename}{detail} not found in {folder} (also looked in {looked}) "
        f"and download=False; place the file (from {source.url(filename)}) in {folder}, "
        f"or allow the download"
    )


def _reason(err: BaseException, timeout: float) -> str:
    """A short description of why a URL failed, for the error message."""
    import urllib.error

    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        if not isinstance(err.reason, BaseException):
            return str(err.reason)
        err = err.reason
    if isinstance(err, TimeoutError):  # socket.timeout is an alias of TimeoutError
        return f"timed out after {timeout:g} s"
    if type(err) is OSError:  # raised by _download itself, already worded
        return str(err)
    return f"{type(err).__name__}: {err}"


def _download(url: str, folder: Path, filename: str, timeout: float) -> tuple[Path, str]:
    """Stream ``url`` into a temporary file in ``folder``; return (temp path, md5)."""
    import urllib.request  # imported when needed: it pulls in ssl and http (~30 ms)

    request = urllib.request.Request(url, headers={"User-Agent": "handgrad (python urllib)"})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as r:
            expected = r.headers.get("Content-Length") if hasattr(r, "headers") else None
            while chunk := r.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        if expected is not None and expected.isdigit() and int(expected) != size:
            raise OSError(f"incomplete download: got {size} of {int(expected)} bytes")
        return tmp, digest.hexdigest()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fetch(source: Source, filename: str, root: Path, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Download ``filename`` into ``root/source.folder`` from the first mirror that delivers it
    with the right checksum; return its path.

    Raises:
        DownloadError: every mirror failed; the message lists each URL with its reason and
            names the folder where the file may be placed by hand.
    """
    import http.client

    folder = root / source.folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(
            f"{source.name}: cannot create the data folder {folder} ({err}); "
            f"choose another with data_dir= or ${ENV_VAR}"
        ) from None
    expected = source.md5.get(filename)
    failures = []
    for base in source.mirrors:
        url = base + filename
        print(f"handgrad: downloading {url} -> {folder}", file=sys.stderr)
        try:
            tmp, got = _download(url, folder, filename, timeout)
        except (OSError, http.client.HTTPException, ValueError) as err:
            failures.append(f"{url}: {_reason(err, timeout)}")
            continue
        if expected is not None and got != expected:
            tmp.unlink(missing_ok=True)
            failures.append(f"{url}: checksum mismatch (md5 {got}, expected {expected})")
            continue
        target = folder / filename
        os.replace(tmp, target)
        return target
    tried = "; ".join(failures) or "no mirrors configured"
    raise DownloadError(
        f"{source.name}: could not download {filename} ({tried}); if this machine has no "
        f"network, download {source.url(filename)} elsewhere and place it in {folder}"
    )
