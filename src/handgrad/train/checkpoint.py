"""Checkpoints: nested training state in one ``.npz`` file, written atomically, read without pickle.

A checkpoint holds any nesting of dicts (any hashable JSON-able keys, e.g. the ``int`` keys of an
optimizer's ``state``), lists, tuples, ``None``, bools, ints, floats, strings, NumPy scalars and
NumPy arrays. Arrays are stored as ``.npy`` members named after their place in the state
(``model/0.weight``, ``optimizer/state/0/momentum_buffer``); everything else is one JSON document
in the string member ``__meta__`` that points at the arrays. ``np.load(path, allow_pickle=False)``
reads the file, so loading a checkpoint never runs code.

The file is written to a new temporary file in the same folder (``.checkpoint.npz.tmp<pid>``,
never through a link), flushed to disk, and renamed over the old one (``os.replace`` is atomic),
so a process killed while saving leaves the previous checkpoint intact; a run removes such
leftover temporary files when it next opens its folder.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from handgrad._atomic import atomic_write

__all__ = [
    "CheckpointError",
    "checkpoint_epoch",
    "load_checkpoint",
    "non_finite_arrays",
    "save_checkpoint",
]

FORMAT = "handgrad-checkpoint"
VERSION = 1
_META = "__meta__"
# markers of encoded values in the JSON document; a plain dict never uses these keys
_ARRAY, _SCALAR, _TUPLE, _DICT = "__array__", "__scalar__", "__tuple__", "__dict__"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: not a handgrad checkpoint, truncated or corrupt."""


# -- encoding ------------------------------------------------------------------------------
def _encode(obj: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"checkpoint: cannot store an object array at '{path}'")
        return {_ARRAY: _add_array(arrays, path, obj)}
    if isinstance(obj, np.generic):
        # a NumPy scalar keeps its dtype (a float32 step size stays float32 after resume)
        return {_SCALAR: _add_array(arrays, path, np.asarray(obj))}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        keys = list(obj.keys())
        if all(isinstance(k, str) and not k.startswith("__") for k in keys):
            return {k: _encode(obj[k], f"{path}/{k}" if path else k, arrays) for k in keys}
        # int keys (optimizer state) or reserved names: a list of [key, value] pairs
        return {
            _DICT: [
                [_encode(k, f"{path}/key", arrays), _encode(v, f"{path}/{k}", arrays)]
                for k, v in obj.items()
            ]
        }
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, f"{path}/{i}", arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}/{i}", arrays) for i, v in enumerate(obj)]
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} at '{path}'")


def _add_array(arrays: dict[str, np.ndarray], path: str, value: np.ndarray) -> str:
    key = path or "root"
    if key in arrays or key == _META:
        key = f"{key}#{len(arrays)}"
    arrays[key] = value
    return key


def _decode(obj: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        ((marker, value),) = obj.items()
        if marker in (_ARRAY, _SCALAR):
            if value not in arrays:
                raise CheckpointError(f"the array '{value}' is missing")
            arr = arrays[value]
            return arr[()] if marker == _SCALAR else arr
        if marker == _TUPLE:
            return tuple(_decode(v, arrays) for v in value)
        if marker == _DICT:
            return {_decode(k, arrays): _decode(v, arrays) for k, v in value}
    return {k: _decode(v, arrays) for k, v in obj.items()}


# -- files ---------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (a nested mapping, see the module docstring) to ``path`` atomically.

    Returns the path written. Raises TypeError naming the place of a value that cannot be
    stored (e.g. an arbitrary Python object).
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "version": VERSION, "state": _encode(dict(state), "", arrays)}
    payload = {_META: np.array(json.dumps(meta))}
    payload.update(arrays)
    with atomic_write(path, "wb", fsync=True) as f:
        np.savez(f, **payload)
    return path


def _read(path: Path, what: Any) -> Any:
    """``what(npz)`` on the opened checkpoint file, with every failure as a CheckpointError."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _META not in npz.files:
                raise CheckpointError("no __meta__ member")
            meta = json.loads(str(npz[_META]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise CheckpointError("the __meta__ member is not a handgrad header")
            if meta.get("version") != VERSION:
                raise CheckpointError(f"format version {meta.get('version')!r} is not {VERSION}")
            return what(npz, meta)
    except CheckpointError as e:
        raise CheckpointError(f"{path} is not a valid handgrad checkpoint: {e}") from None
    except (OSError, ValueError, KeyError, EOFError, RecursionError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{path} is not a valid handgrad checkpoint (corrupt or truncated): {reason}"
        ) from None


def checkpoint_epoch(path: str | os.PathLike) -> int | None:
    """The ``epoch`` a training checkpoint holds (None if it has none), read from its header
    alone: no array is loaded. Raises as :func:`load_checkpoint`."""

    def epoch(npz: Any, meta: dict[str, Any]) -> int | None:
        state = meta.get("state")
        value = state.get("epoch") if isinstance(state, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return _read(Path(path), epoch)


def non_finite_arrays(state: Any, prefix: str = "") -> Iterator[tuple[str, int, int]]:
    """``(name, NaN count, inf count)`` for each floating array in ``state`` (nested dicts,
    lists, tuples) that holds NaN or inf; names are the dotted/slashed places in ``state``."""
    if isinstance(state, np.ndarray) or isinstance(state, np.floating):
        arr = np.asarray(state)
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            nan = int(np.isnan(arr).sum())
            yield prefix, nan, int(arr.size - np.isfinite(arr).sum() - nan)
    elif isinstance(state, Mapping):
        for k, v in state.items():
            yield from non_finite_arrays(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            yield from non_finite_arrays(v, f"{prefix}/{i}" if prefix else str(i))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns the state mapping.

    Raises FileNotFoundError if there is no file, and CheckpointError (a ValueError) with a
    one-line reason if the file is not a readable handgrad checkpoint.
    """
    path = Path(path)

    def state_of(npz: Any, meta: dict[str, Any]) -> Any:
        arrays = {k: npz[k] for k in npz.files if k != _META}
        return _decode(meta["state"], arrays)

    state = _read(path, state_of)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a valid handgrad checkpoint: state is not a dict")
    return state
