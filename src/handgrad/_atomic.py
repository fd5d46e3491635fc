"""Writing files so that a reader never sees half of one and a link is never written through.

Every file of a run folder and every checkpoint is written by :func:`atomic_write`: the bytes go
to a new temporary file next to the target (``.<name>.tmp<pid>``, created exclusively, never
through a link), which is then renamed over the target. ``os.replace`` is atomic and replaces a
symbolic link itself rather than the file it points to, so a process killed while writing
leaves the previous file intact (and at most a temporary file, which :func:`remove_temp_files`
cleans up), and a link planted in the folder cannot redirect the write elsewhere.

:func:`append_text` is the one exception, for logs written line by line (metrics.jsonl): it
opens the file with ``O_NOFOLLOW``, so it too refuses a link.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn

__all__ = [
    "LinkError",
    "append_text",
    "atomic_path",
    "atomic_write",
    "is_temp_file",
    "remove_temp_files",
    "temp_path",
    "write_text",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TEMP_NAME = re.compile(r"^\..+\.tmp\d+$")


class LinkError(OSError):
    """A file that handgrad would write is a symbolic link: it is not written through."""


def temp_path(path: Path) -> Path:
    """The temporary name of ``path`` for this process: ``.<name>.tmp<pid>`` beside it."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def is_temp_file(name: str) -> bool:
    """Whether ``name`` is a temporary file name of :func:`temp_path`."""
    return bool(_TEMP_NAME.match(name))


def _create_exclusive(tmp: Path) -> int:
    """Open a brand-new file at ``tmp`` for writing (a leftover of a killed process that had
    the same pid is removed first; a link there is removed, never followed)."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new, empty temporary file's path for a writer that wants a path (matplotlib);
    when the block ends without an error the file is renamed over ``path``, else removed."""
    path = Path(path)
    tmp = temp_path(path)
    os.close(_create_exclusive(tmp))
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        _reraise_naming(e, path)
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8", fsync: bool = False
) -> Iterator[IO[Any]]:
    """Yield a file object (``mode`` ``'w'`` or ``'wb'``) on a new temporary file; when the
    block ends without an error it is flushed (and with ``fsync`` forced to disk) and renamed
    over ``path``. On any error the temporary file is removed and ``path`` is untouched."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    tmp = temp_path(path)
    fd = _create_exclusive(tmp)
    try:
        with os.fdopen(fd, mode, encoding=None if mode == "wb" else encoding) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        _reraise_naming(e, path)
    except BaseException:
        _remove(tmp)
        raise


def _reraise_naming(e: OSError, path: Path) -> NoReturn:
    """Raise ``e``, naming the file it was writing if it names none (a full disk fails in
    ``write``, whose error carries no file name)."""
    if e.filename is not None or e.errno is None:
        raise e
    raise type(e)(e.errno, e.strerror or os.strerror(e.errno), str(path)) from e


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`); returns the path."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` (created if missing), refusing a symbolic link."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise LinkError(
                errno.ELOOP, f"{path} is a symbolic link; handgrad does not write through links"
            ) from None
        raise
    try:
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        _reraise_naming(e, path)


def remove_temp_files(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files (``.<name>.tmp<pid>``) that killed writers left in
    ``folder``; returns their names. Call it only while no other process writes there (a run
    folder: under its lock)."""
    removed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_temp_file(entry.name) and not entry.is_dir(follow_symlinks=False):
                _remove(Path(entry.path))
                removed.append(entry.name)
    return sorted(removed)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
