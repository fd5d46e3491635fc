"""Where data files are looked for, the offline switch, and downloads with mirror fallback.

Files a user already has are found in, in order: the ``data_dir`` argument (the CLI's
``--data-dir``), ``$HANDGRAD_DATA``, the cache folder (``$XDG_CACHE_HOME/handgrad`` or
``~/.cache/handgrad``) and the folders of system packages (``DEBIAN_DIRS``). Downloads go to
the first of the first three that applies (``resolve_data_dir``).

Files are fetched with the standard library only (urllib), streamed into a temporary file in
the destination folder, checked against a known MD5 and only then renamed into place
(``os.replace`` is atomic on one file system), so an interrupted download never leaves a file
that looks complete. Every network call has a timeout.

Offline: ``--offline``, ``offline_mode()`` or ``$HANDGRAD_OFFLINE=1`` switch the network off.
The switch is read by the one function that opens URLs (``_download``) and by ``fetch`` before
it does anything, so no code path can start a network attempt while it is on; loaders consult
``may_download`` and fail at once with the files and folders they searched.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEBIAN_DIRS",
    "ENV_VAR",
    "OFFLINE_ENV",
    "DataError",
    "DownloadError",
    "OfflineError",
    "Source",
    "cache_dir",
    "data_roots",
    "default_data_dir",
    "fetch",
    "find",
    "is_offline",
    "may_download",
    "md5sum",
    "missing_error",
    "offline_mode",
    "resolve_data_dir",
    "search_dirs",
]

ENV_VAR = "HANDGRAD_DATA"
OFFLINE_ENV = "HANDGRAD_OFFLINE"

# Folders where system packages install data sets, searched after the data directories.
# Debian's (and Ubuntu's) package dataset-fashion-mnist installs the four published files,
# re-compressed, into this folder (`dpkg -L dataset-fashion-mnist`, version
# 0.0~git20200523.55506a9-1). Keyed by Source.name; tests point it elsewhere.
DEBIAN_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
DEFAULT_TIMEOUT = 30.0  # seconds per connect / read, not for the whole file
_CHUNK = 1 << 20


class DataError(RuntimeError):
    """A data file is missing, corrupt, of the wrong format or fails its checksum."""


class DownloadError(DataError):
    """No mirror could deliver a file (no network, HTTP error, timeout, bad checksum)."""


class OfflineError(DownloadError):
    """A download was about to start while the network is switched off."""


# offline_mode() pushes (offline, how) onto this stack; the innermost wins over $HANDGRAD_OFFLINE
_OFFLINE_STACK: list[tuple[bool, str]] = []
_FALSE_WORDS = ("", "0", "false", "no", "off")


def is_offline() -> bool:
    """True when downloads are switched off: by ``offline_mode()`` or ``$HANDGRAD_OFFLINE``
    (any value but empty, 0, false, no, off)."""
    if _OFFLINE_STACK:
        return _OFFLINE_STACK[-1][0]
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in _FALSE_WORDS


@contextmanager
def offline_mode(offline: bool = True, how: str = "offline_mode()") -> Iterator[None]:
    """Switch the network off (or, with ``offline=False``, on) inside the ``with`` block;
    ``how`` names the switch in messages (the CLI passes ``'--offline'``).

    Example::

        with offline_mode():
            load("mnist")  # reads files on disk or fails at once, never downloads
    """
    _OFFLINE_STACK.append((bool(offline), how))
    try:
        yield
    finally:
        _OFFLINE_STACK.pop()


def offline_reason() -> str:
    """How the network was switched off, for messages."""
    if _OFFLINE_STACK:
        return f"handgrad is offline ({_OFFLINE_STACK[-1][1]})"
    return f"handgrad is offline (${OFFLINE_ENV}={os.environ.get(OFFLINE_ENV, '').strip()})"


def may_download(download: bool) -> bool:
    """Whether a loader asked to ``download`` may do so now (never while offline)."""
    return bool(download) and not is_offline()


@dataclass(frozen=True)
class Source:
    """Where a downloaded data set comes from and where it is kept.

    Attributes:
        name: the data set name, used in messages (``'mnist'``).
        folder: its sub-folder of the data directory (``<data_dir>/mnist``).
        mirrors: base URLs tried in order, each ending in ``/``; the canonical one first.
        md5: known MD5 of each file as published (None: not checked): of the ``.gz`` or
            archive that is downloaded, and, where a file is published unpacked (CIFAR-10's
            batches, as listed by torchvision), of that file's content.
        also_in: other sub-folders searched for files the user already has (e.g.
            torchvision's ``MNIST/raw``); the data directory itself is searched last.
        sha256: known SHA-256 of each file's *content* (the unpacked IDX bytes), keyed by
            the unpacked name; it decides whether a file verifies however it is compressed.
    """

    name: str
    folder: str
    mirrors: tuple[str, ...]
    md5: dict[str, str | None]
    also_in: tuple[str, ...] = field(default=())
    sha256: dict[str, str] = field(default_factory=dict)

    def url(self, filename: str) -> str:
        return self.mirrors[0] + filename if self.mirrors else filename

    def search_dirs(self, root: Path) -> list[Path]:
        """The folders of one data directory ``root`` where this source's files may be."""
        return [root / self.folder, *(root / d for d in self.also_in), root]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/handgrad``, else ``~/.cache/handgrad``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    # the XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "handgrad"
    return Path.home() / ".cache" / "handgrad"


def default_data_dir() -> Path:
    """``$HANDGRAD_DATA`` if set, else ``$XDG_CACHE_HOME/handgrad``, else ``~/.cache/handgrad``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return cache_dir()


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data directory to use: ``data_dir`` if given, else ``default_data_dir()``."""
    if data_dir is None:
        return default_data_dir()
    return Path(data_dir).expanduser()


def data_roots(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The data directories searched, in order, without repeats: ``data_dir`` (if given),
    ``$HANDGRAD_DATA`` (if set), the cache folder. The first is where downloads go."""
    roots = [resolve_data_dir(data_dir), default_data_dir(), cache_dir()]
    return list(dict.fromkeys(roots))


def search_dirs(source: Source, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Every folder searched for the source's files: each data directory's folders
    (``<root>/<folder>``, the ``also_in`` layouts, ``<root>``), then ``DEBIAN_DIRS``."""
    dirs = [d for root in data_roots(data_dir) for d in source.search_dirs(root)]
    dirs += DEBIAN_DIRS.get(source.name, ())
    return list(dict.fromkeys(dirs))


def md5sum(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file, read in chunks (an identity check, not a security measure)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def find(
    source: Source, data_dir: str | os.PathLike[str] | None, filenames: Sequence[str]
) -> Path | None:
    """The first existing file among ``filenames`` in the source's search folders (folders
    first: a raw file in an earlier folder wins over a ``.gz`` in a later one)."""
    for folder in search_dirs(source, data_dir):
        for filename in filenames:
            path = folder / filename
            if path.is_file():
                return path
    return None


def missing_error(
    source: Source,
    data_dir: str | os.PathLike[str] | None,
    missing: Sequence[str],
) -> DataError:
    """The error for files that are absent and may not be downloaded: names the files, every
    folder searched, why nothing was downloaded, and where to put the files."""
    folder = resolve_data_dir(data_dir) / source.folder
    looked = ", ".join(str(d) for d in search_dirs(source, data_dir))
    why = offline_reason() if is_offline() else "download=False"
    files = ", ".join(missing)
    base = source.mirrors[0] if source.mirrors else "the data set's home page"
    return DataError(
        f"{source.name}: {files} not found in {looked}; {why}, so nothing is downloaded: "
        f"place the file{'s' if len(missing) > 1 else ''} (from {base}) in {folder}"
        + ("" if is_offline() else ", or allow the download")
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


def _refuse_if_offline(what: str, folder: Path) -> None:
    if is_offline():
        raise OfflineError(
            f"{what}: not downloaded because {offline_reason()}; place the file in {folder}, "
            f"or allow downloads (drop --offline, unset ${OFFLINE_ENV})"
        )


def _progress_bar(total: int | None, desc: str, enabled: bool | None) -> Any:
    """A tqdm bar over bytes, or None when disabled (None: shown only on a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm.auto import tqdm  # lazy: loading data from disk never needs it

    return tqdm(
        total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, mininterval=0.2
    )


def _download(
    url: str, folder: Path, filename: str, timeout: float, progress: bool | None = None
) -> tuple[Path, str]:
    """Stream ``url`` into a temporary file in ``folder``; return (temp path, md5).

    The only function that opens a URL: it refuses while offline, before anything else.
    """
    _refuse_if_offline(url, folder)
    import urllib.request  # imported when needed: it pulls in ssl and http (~30 ms)

    request = urllib.request.Request(url, headers={"User-Agent": "handgrad (python urllib)"})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    bar: Any = None
    try:
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as r:
            expected = r.headers.get("Content-Length") if hasattr(r, "headers") else None
            total = int(expected) if expected is not None and expected.isdigit() else None
            bar = _progress_bar(total, filename, progress)
            while chunk := r.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        if total is not None and total != size:
            raise OSError(f"incomplete download: got {size} of {total} bytes")
        return tmp, digest.hexdigest()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()


def fetch(
    source: Source,
    filename: str,
    root: Path,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool | None = None,
) -> Path:
    """Download ``filename`` into ``root/source.folder`` from the first mirror that delivers it
    with the right checksum; return its path.

    ``progress``: show a progress bar (None: only when stderr is a terminal).

    Raises:
        OfflineError: the network is switched off (``is_offline()``); nothing was attempted.
        DownloadError: every mirror failed; the message lists each URL with its reason and
            names the folder where the file may be placed by hand.
    """
    import http.client

    folder = root / source.folder
    _refuse_if_offline(f"{source.name}: {filename}", folder)
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
            tmp, got = _download(url, folder, filename, timeout, progress)
        except OfflineError:
            raise
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
