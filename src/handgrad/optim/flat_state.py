"""Nested state dicts <-> flat ``{key: ndarray}`` for ``np.savez`` (no pickle).

An optimizer's or scheduler's ``state_dict()`` holds arrays and plain Python values in nested
dicts and lists; ``flatten_state`` writes each leaf under a dotted key with a type tag, and
``unflatten_state`` rebuilds the same structure with the same Python types.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from handgrad._util import from_torch

__all__ = ["flatten_state", "unflatten_state"]

_LIST_ITEM = re.compile(r"(.+)\[(\d+)\]")
_BAD_KEY_CHARS = re.compile(r"[.:\[\]]")


def flatten_state(state: Mapping[Any, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten a nested state dict into ``{key: ndarray}`` for ``np.savez`` (no pickle needed).

    Keys are dotted paths; a list of dicts is indexed ``name[i]``; a value that is not an array
    gets a type tag, so ``unflatten_state`` restores the exact Python type::

        {'state': {0: {'step': 3.0, 'exp_avg': a}}, 'param_groups': [{'lr': 0.1,
         'betas': (0.9, 0.999), 'params': [0]}]}
        -> {'state.0.step:float': array(3.), 'state.0.exp_avg': a,
            'param_groups[0].lr:float': array(0.1),
            'param_groups[0].betas:tuple': array([0.9, 0.999]),
            'param_groups[0].params:list': array([0])}

    Tags: ``float``, ``int``, ``bool``, ``str``, ``none``, ``list``, ``tuple`` (of numbers,
    bools or strings) and ``dict`` (an empty dict). Dict keys must be str or int and must
    not contain ``. : [ ]``. ``prefix`` (e.g. ``'optimizer.'``) is put before every key.

    Examples:
        >>> flat = optim.flatten_state({"step": 3, "betas": (0.9, 0.999), "exp_avg": np.zeros(2)})
        >>> sorted(flat)
        ['betas:tuple', 'exp_avg', 'step:int']
        >>> flat["betas:tuple"].tolist()
        [0.9, 0.999]
    """
    out: dict[str, np.ndarray] = {}
    _flatten_into(out, state, "", top=True)
    return {prefix + key: value for key, value in out.items()}


def _join(path: str, key: Any) -> str:
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, (str, int, np.integer)):
        raise TypeError(f"flatten_state: keys must be str or int, got {key!r} at {path!r}")
    key = str(key)
    if not key or _BAD_KEY_CHARS.search(key):
        raise ValueError(f"flatten_state: key {key!r} at {path!r} contains one of . : [ ]")
    return f"{path}.{key}" if path else key


def _flatten_into(out: dict[str, np.ndarray], value: Any, path: str, top: bool = False) -> None:
    if isinstance(value, Mapping):
        if not value and not top:
            out[path + ":dict"] = np.zeros(0)
        for key, item in value.items():
            _flatten_into(out, item, _join(path, key))
        return
    value = from_torch(value)
    if isinstance(value, np.ndarray):
        out[path] = value
    elif isinstance(value, (bool, np.bool_)):
        out[path + ":bool"] = np.array(bool(value))
    elif isinstance(value, (int, np.integer)):
        out[path + ":int"] = np.array(int(value), dtype=np.int64)
    elif isinstance(value, (float, np.floating)):
        out[path + ":float"] = np.array(float(value), dtype=np.float64)
    elif isinstance(value, str):
        out[path + ":str"] = np.array(value)
    elif value is None:
        out[path + ":none"] = np.zeros(0)
    elif isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Mapping) for v in value) and isinstance(value, list):
            for i, item in enumerate(value):
                _flatten_into(out, item, f"{path}[{i}]")
            return
        if not all(isinstance(v, (bool, numbers.Real, str, np.generic)) for v in value):
            raise TypeError(
                f"flatten_state: {path!r} must hold numbers, bools or strings, got {value!r}"
            )
        tag = "list" if isinstance(value, list) else "tuple"
        out[f"{path}:{tag}"] = np.array(value)
    else:
        raise TypeError(f"flatten_state: cannot store {type(value).__name__} at {path!r}")


def unflatten_state(flat: Mapping[str, Any], prefix: str = "") -> dict[Any, Any]:
    """Inverse of ``flatten_state``: rebuild the nested dict from ``{key: ndarray}`` (e.g. an
    ``np.load`` result). Only keys starting with ``prefix`` are read (and it is stripped).
    Path parts made of digits become int keys, as in ``'state.0.exp_avg'``.

    Examples:
        >>> state = {"state": {0: {"step": 3.0}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
        >>> flat = optim.flatten_state(state, prefix="optimizer.")
        >>> for key in sorted(flat):
        ...     print(key)
        optimizer.param_groups[0].lr:float
        optimizer.param_groups[0].params:list
        optimizer.state.0.step:float
        >>> optim.unflatten_state(flat, prefix="optimizer.") == state
        True
    """
    root: dict[Any, Any] = {}
    for full_key in flat:
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        path, _, tag = key.partition(":")
        value = np.asarray(flat[full_key])
        node = root
        parts = path.split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            m = _LIST_ITEM.fullmatch(part)
            if m is not None:
                items = node.setdefault(_key(m.group(1)), _ListItems())
                if not last:
                    node = items.setdefault(int(m.group(2)), {})
                    continue
                node, part = items, m.group(2)
            if last:
                node[_key(part)] = _decode(value, tag, full_key)
            else:
                node = node.setdefault(_key(part), {})
    return _finish(root)


class _ListItems(dict):
    """Items of a list of dicts while it is being rebuilt, keyed by index."""


def _key(part: str) -> Any:
    return int(part) if part.isdigit() else part


def _decode(value: np.ndarray, tag: str, key: str) -> Any:
    if tag == "":
        return np.array(value, copy=True)
    if tag == "float":
        return float(value)
    if tag == "int":
        return int(value)
    if tag == "bool":
        return bool(value)
    if tag == "str":
        return str(value)
    if tag == "none":
        return None
    if tag == "dict":
        return {}
    if tag == "list":
        return value.tolist()
    if tag == "tuple":
        return tuple(value.tolist())
    raise ValueError(f"unflatten_state: unknown type tag {tag!r} in key {key!r}")


def _finish(node: Any) -> Any:
    if isinstance(node, _ListItems):
        if sorted(node) != list(range(len(node))):
            raise ValueError(f"unflatten_state: list indices {sorted(node)} are not 0..n-1")
        return [_finish(node[i]) for i in range(len(node))]
    if isinstance(node, dict):
        return {k: _finish(v) for k, v in node.items()}
    return node
