"""The training monitors' records: one per monitored step, and their checkpoint form.

A :class:`MonitorRecord` holds what :class:`handgrad.train.TrainingMonitor` saw on one step.
:func:`pack_records` turns a list of them into a few stacked arrays (NaN where a record lacks a
value), so a checkpoint stays a handful of arrays however long the run; :func:`unpack_records`
gives the list back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handgrad.train.monitor_stats import Histogram

__all__ = ["SERIES", "MonitorRecord", "pack_records", "record_names", "unpack_records"]


@dataclass
class MonitorRecord:
    """What the monitor saw on one training step.

    Attributes:
        step: the global step (1-based optimizer step count after the step).
        epoch: the epoch the step belongs to (1-based).
        activations: layer name -> Histogram of the layer's output.
        gradients: layer name -> Histogram of d loss / d (layer output).
        dead: ReLU layer name -> fraction of its units that were 0 for every sample.
        saturated: Tanh/Sigmoid layer name -> fraction of its outputs in saturation.
        update_ratio: parameter name -> ||update|| / ||weight before the update|| (NaN for a
            parameter that was all zeros).
    """

    step: int
    epoch: int
    activations: dict[str, Histogram] = field(default_factory=dict)
    gradients: dict[str, Histogram] = field(default_factory=dict)
    dead: dict[str, float] = field(default_factory=dict)
    saturated: dict[str, float] = field(default_factory=dict)
    update_ratio: dict[str, float] = field(default_factory=dict)


def _stat(attr: str, name: str) -> Callable[[MonitorRecord, str], float | None]:
    def get(r: MonitorRecord, layer: str) -> float | None:
        h = getattr(r, attr).get(layer)
        return None if h is None else getattr(h, name)

    return get


# metric -> the number a record holds for a layer or parameter name (None: it has none)
SERIES: dict[str, Callable[[MonitorRecord, str], float | None]] = {
    "dead": lambda r, name: r.dead.get(name),
    "saturated": lambda r, name: r.saturated.get(name),
    "update_ratio": lambda r, name: r.update_ratio.get(name),
    "activation_mean": _stat("activations", "mean"),
    "activation_std": _stat("activations", "std"),
    "gradient_mean": _stat("gradients", "mean"),
    "gradient_std": _stat("gradients", "std"),
}


def record_names(records: Iterable[MonitorRecord], attr: str) -> list[str]:
    """The names in ``record.<attr>`` over all ``records``, in order of first appearance."""
    seen: dict[str, None] = {}
    for r in records:
        seen.update(dict.fromkeys(getattr(r, attr)))
    return list(seen)


# -- checkpoint form -----------------------------------------------------------------------
_HIST_FIELDS = ("mean", "std", "nonfinite", "under", "over")
_HISTOGRAMS = ("activations", "gradients")
_FRACTIONS = ("dead", "saturated", "update_ratio")


def pack_records(records: list[MonitorRecord], bins: int) -> dict[str, Any]:
    """Records as stacked arrays: per histogram kind, ``counts`` (records, layers, bins),
    ``edges`` (records, layers, bins + 1; NaN where a record has no histogram) and ``stats``
    (the fields of ``_HIST_FIELDS``); per number kind, ``values`` and ``present``."""
    R = len(records)
    out: dict[str, Any] = {
        "bins": bins,
        "step": np.array([r.step for r in records], dtype=np.int64),
        "epoch": np.array([r.epoch for r in records], dtype=np.int64),
    }
    for attr in _HISTOGRAMS:
        names = record_names(records, attr)
        counts = np.zeros((R, len(names), bins), np.int64)
        edges = np.full((R, len(names), bins + 1), np.nan)
        stats = np.full((R, len(names), len(_HIST_FIELDS)), np.nan)
        for i, r in enumerate(records):
            for j, n in enumerate(names):
                h = getattr(r, attr).get(n)
                if h is not None:
                    counts[i, j], edges[i, j] = h.counts, h.edges
                    stats[i, j] = [getattr(h, f) for f in _HIST_FIELDS]
        out[attr] = {"names": names, "counts": counts, "edges": edges, "stats": stats}
    for attr in _FRACTIONS:
        names = record_names(records, attr)
        values = np.full((R, len(names)), np.nan)
        present = np.zeros((R, len(names)), dtype=bool)
        for i, r in enumerate(records):
            for j, n in enumerate(names):
                values[i, j] = getattr(r, attr).get(n, np.nan)
                present[i, j] = n in getattr(r, attr)
        out[attr] = {"names": names, "values": values, "present": present}
    return out


def unpack_records(state: dict[str, Any]) -> list[MonitorRecord]:
    """The records :func:`pack_records` packed (from a checkpoint: lists may be arrays)."""
    steps, epochs = np.asarray(state["step"]), np.asarray(state["epoch"])
    records = [MonitorRecord(int(s), int(e)) for s, e in zip(steps, epochs, strict=True)]
    for attr in _HISTOGRAMS:
        part = state[attr]
        counts, edges, stats = (np.asarray(part[k]) for k in ("counts", "edges", "stats"))
        for i, r in enumerate(records):
            for j, n in enumerate(part["names"]):
                if np.isnan(edges[i, j, 0]):
                    continue
                mean, std, nonfinite, under, over = stats[i, j]
                getattr(r, attr)[n] = Histogram(
                    counts[i, j].copy(),
                    edges[i, j].copy(),
                    int(nonfinite),
                    float(mean),
                    float(std),
                    int(under),
                    int(over),
                )
    for attr in _FRACTIONS:
        part = state[attr]
        values, present = np.asarray(part["values"]), np.asarray(part["present"])
        for i, r in enumerate(records):
            for j, n in enumerate(part["names"]):
                if present[i, j]:
                    getattr(r, attr)[n] = float(values[i, j])
    return records
