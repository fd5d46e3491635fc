"""Training monitors: looking inside a network while it trains.

:class:`TrainingMonitor` is a callback for :func:`handgrad.train.fit` that records, on the
steps it monitors, for every layer (by the model's dotted module names, ``0``, ``1.2``, ...):

- a histogram of the layer's output (its activations) and of the gradient flowing back into it
  (d loss / d output), counting every element of the batch;
- for ReLU layers, the fraction of *dead* units: units whose output was 0 for every sample of
  the batch; for Tanh and Sigmoid layers, the fraction of *saturated* outputs;
- for every parameter, the update-to-weight ratio ``||w_after - w_before|| / ||w_before||``
  across the optimizer step (about 1e-3 is the classic rule of thumb for a healthy rate).

When the loss becomes NaN or infinite it names the first layer whose output or gradient became
non-finite; :func:`handgrad.train.fit` adds that sentence to the ``DivergenceError`` message.

The Module API has no hooks, so the monitor wraps each module's ``forward`` and ``backward``
by instance attributes while it is attached (from ``on_train_begin`` to ``on_train_end`` or a
divergence) and removes them afterwards: a model without a monitor runs untouched code. On the
steps it does not monitor, a wrapper only keeps a reference to the arrays that pass through
(no copy, no arithmetic), which is what the divergence report reads.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handgrad.nn.module import Sequential
from handgrad.train.callbacks import Callback, TrainState

__all__ = ["Histogram", "MonitorRecord", "TrainingMonitor", "first_nonfinite"]

# |tanh| above this counts as saturated (its derivative 1 - t^2 is below 6% of its maximum);
# a sigmoid s = (1 + tanh(x / 2)) / 2 uses the same threshold on |2s - 1|
SATURATION = 0.97
_MISSING = object()


@dataclass
class Histogram:
    """Counts of the finite elements of an array in ``len(counts)`` equal bins.

    ``edges`` has one more entry than ``counts``. The bins span the array's finite values
    but for a fraction ``tail`` at each end (so that a few outliers do not squeeze the rest
    into one bin): ``under`` and ``over`` count the elements below and above them and
    ``nonfinite`` the NaN and infinite ones, so ``counts.sum() + under + over + nonfinite`` is
    the array's size. ``mean`` and ``std`` are over every finite element (NaN if none).
    """

    counts: np.ndarray
    edges: np.ndarray
    nonfinite: int
    mean: float
    std: float
    under: int = 0
    over: int = 0

    @property
    def size(self) -> int:
        return int(self.counts.sum()) + self.under + self.over + self.nonfinite

    @classmethod
    def of(cls, x: np.ndarray, bins: int, tail: float = 0.0) -> Histogram:
        """The histogram of ``x`` in ``bins`` bins from its ``tail`` to its ``1 - tail``
        quantile (order statistics of the finite elements; ``tail=0``: min to max)."""
        x = np.asarray(x).ravel()
        finite = np.isfinite(x)
        nonfinite = x.size - int(np.count_nonzero(finite))
        if nonfinite:
            x = x[finite]
        n = x.size
        if n == 0:
            edges = np.linspace(-1.0, 1.0, bins + 1)
            return cls(np.zeros(bins, np.int64), edges, nonfinite, math.nan, math.nan)
        x = x.astype(np.float64, copy=False)
        k = int(tail * (n - 1))
        if k > 0:
            part = np.partition(x, (k, n - 1 - k))
            lo, hi = float(part[k]), float(part[n - 1 - k])
        else:
            lo, hi = float(x.min()), float(x.max())
        if lo == hi:  # a constant array (a ReLU that is all zeros): a unit range around it
            half = 0.5 * max(1.0, abs(lo))  # (at 1e30, +- 0.5 would round back to 1e30)
            lo, hi = lo - half, hi + half
        under = over = 0
        if k > 0:
            below, above = x < lo, x > hi
            under, over = int(np.count_nonzero(below)), int(np.count_nonzero(above))
            inside = x if under + over == 0 else x[~(below | above)]
        else:
            inside = x
        counts, edges = _uniform_counts(inside, lo, hi, bins)
        mean = float(x.mean())
        std = float(np.sqrt(np.mean((x - mean) ** 2)))
        return cls(counts, edges, nonfinite, mean, std, under, over)


def _uniform_counts(
    x: np.ndarray, lo: float, hi: float, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram(x, bins, range=(lo, hi))`` for float64 ``x`` within the range, the same
    bins to the last element, at half the cost (no sorting, no checks)."""
    scale = 1.0 if math.isfinite(hi - lo) else 0.5  # a range wider than the largest float
    if scale != 1.0:
        x, lo, hi = x * scale, lo * scale, hi * scale
    edges = np.linspace(lo, hi, bins + 1)
    idx = ((x - lo) * (bins / (hi - lo))).astype(np.intp)
    np.minimum(idx, bins - 1, out=idx)  # x == hi goes into the last bin, closed on the right
    # rounding can put x one bin off: bin i holds edges[i] <= x < edges[i + 1]
    idx -= x < edges[idx]
    idx += (x >= edges[idx + 1]) & (idx < bins - 1)
    return np.bincount(idx, minlength=bins).astype(np.int64, copy=False), edges / scale


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


def dead_fraction(out: np.ndarray) -> float:
    """Fraction of units (all positions but the batch axis 0) that are 0 for every sample."""
    out = np.asarray(out)
    if out.ndim == 0 or out.shape[0] == 0:
        return math.nan
    alive = np.any(out.reshape(out.shape[0], -1) != 0, axis=0)
    return 1.0 - float(np.count_nonzero(alive)) / alive.size


def _saturated_fraction(out: np.ndarray, kind: str) -> float:
    t = np.abs(out) if kind == "Tanh" else np.abs(2.0 * out - 1.0)
    return float(np.count_nonzero(t > SATURATION)) / max(t.size, 1)


def _norm(x: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(x, dtype=np.float64).ravel()))


# -- non-finite values ---------------------------------------------------------------------
def first_nonfinite(x: Any) -> str | None:
    """None if every element of ``x`` is finite, else ``'k of n values, first at index (i, j):
    nan'`` (the first in C order)."""
    if x is None:
        return None
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.inexact):
        return None
    bad = ~np.isfinite(a)
    k = int(np.count_nonzero(bad))
    if k == 0:
        return None
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad.ravel())), a.shape))
    value = a[idx] if a.ndim else a.item()
    where = f"first at index {idx}" if a.ndim else "a scalar"
    return f"{k} of {a.size} values, {where}: {value}"


def _label(name: str, module: Any) -> str:
    kind = type(module).__name__
    return f"layer '{name}' ({kind})" if name else f"the model ({kind})"


class _Slot:
    """One wrapped module: the arrays that last passed through it and what to restore."""

    __slots__ = (
        "bcall",
        "bseq",
        "busy",
        "fseq",
        "grad_in",
        "grad_out",
        "kind",
        "module",
        "name",
        "out",
        "saved",
        "stats",
    )  # fmt: skip

    def __init__(self, name: str, module: Any, stats: bool) -> None:
        self.name = name
        self.module = module
        self.kind = type(module).__name__
        self.stats = stats  # record histograms for it (a leaf among the monitored layers)
        self.out: Any = None
        self.fseq = 0  # completion order of the last forward
        self.grad_out: Any = None
        self.grad_in: Any = None
        self.bcall = 0  # call order and completion order of the last backward
        self.bseq = 0
        self.busy = False  # inside this module's backward
        self.saved: dict[str, Any] = {}  # attribute -> the instance attribute it replaced


# -- the monitor ---------------------------------------------------------------------------
class TrainingMonitor(Callback):
    """Records activation and gradient histograms, dead ReLU units, saturation and update
    ratios per layer on the steps it monitors, and names the first non-finite layer.

    Args:
        every: monitor every ``every``-th epoch (``interval='epoch'``: the last step of epochs
            1, every, 2 * every, ... and of the last epoch) or every ``every``-th step
            (``interval='step'``: steps every, 2 * every, ...). The first step (the network
            as initialised) and the last step of training are always monitored.
        interval: ``'epoch'`` or ``'step'``.
        bins: bins per histogram.
        tail: the histograms' bins span the values from the ``tail`` to the ``1 - tail``
            quantile; the elements outside are counted apart (``Histogram.under``/``over``).
        layers: dotted names of the modules to record (None: every leaf module). Every module
            is watched for non-finite values either way.

    Attributes:
        records: one :class:`MonitorRecord` per monitored step, in order.
        layer_names: the recorded layers, in the model's order (set when attached).
        kinds: layer name -> the layer's class name (``'ReLU'``), kept in checkpoints.
        param_names: the parameters whose update ratio is recorded.

    Use it as any callback, ``fit(..., callbacks=[TrainingMonitor()])``; then
    ``monitor.plot()`` draws the figure. It attaches to ``state.model`` when training begins and
    detaches when training ends or diverges; call :meth:`detach` yourself after an interrupt.
    Its records go into checkpoints, so a resumed run keeps the earlier ones.
    """

    def __init__(
        self,
        every: int = 1,
        interval: str = "epoch",
        bins: int = 40,
        layers: Sequence[str] | None = None,
        tail: float = 0.005,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"TrainingMonitor: invalid every {every!r}, must be an int >= 1")
        if interval not in ("epoch", "step"):
            raise ValueError(
                f"TrainingMonitor: invalid interval {interval!r}, must be 'epoch' or 'step'"
            )
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValueError(f"TrainingMonitor: invalid bins {bins!r}, must be an int >= 1")
        if not 0.0 <= tail < 0.5:
            raise ValueError(f"TrainingMonitor: invalid tail {tail!r}, must be in [0, 0.5)")
        if isinstance(layers, str):
            raise TypeError(
                f"TrainingMonitor: layers must be a list of names, got the string {layers!r}"
            )
        self.every = int(every)
        self.interval = interval
        self.bins = int(bins)
        self.tail = float(tail)
        self.layers = None if layers is None else [str(n) for n in layers]
        self.records: list[MonitorRecord] = []
        self.layer_names: list[str] = []
        self.param_names: list[str] = []
        self.kinds: dict[str, str] = {}  # layer name -> class name, for labels
        self.model: Any = None
        self._slots: list[_Slot] = []
        self._seq = itertools.count(1)
        self._armed = False
        self._pending: MonitorRecord | None = None
        self._before: dict[str, np.ndarray] = {}
        self._params: dict[str, Any] = {}

    # -- attaching ------------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self.model is not None

    def attach(self, model: Any) -> TrainingMonitor:
        """Wrap the forward and backward of every module of ``model``; returns self."""
        if not hasattr(model, "named_modules"):
            raise TypeError(
                "TrainingMonitor: the model must be a handgrad Module (with named_modules()), "
                f"got {type(model).__name__}"
            )
        if self.model is model:
            return self
        self.detach()
        modules = list(model.named_modules())
        leaves = [name for name, m in modules if not m._modules]
        if self.layers is None:
            wanted = set(leaves)
        else:
            known = {name for name, _ in modules}
            unknown = [n for n in self.layers if n not in known]
            if unknown:
                raise ValueError(
                    f"TrainingMonitor: unknown layer {unknown[0]!r}; the model's modules are "
                    + ", ".join(repr(n) for n, _ in modules if n)
                )
            wanted = set(self.layers)
        self.model = model
        self._slots = [_Slot(name, m, name in wanted) for name, m in modules]
        self.layer_names = [s.name for s in self._slots if s.stats]
        self.kinds.update({s.name: s.kind for s in self._slots if s.stats})
        self._params = dict(model.named_parameters())
        self.param_names = list(self._params)
        for slot in self._slots:
            # a Sequential only passes arrays between its layers: its layers are watched
            if slot.stats or not isinstance(slot.module, Sequential):
                self._wrap(slot)
        return self

    def detach(self) -> None:
        """Put back every module's own forward and backward (safe to call twice)."""
        for slot in reversed(self._slots):
            for attr, previous in slot.saved.items():
                if previous is _MISSING:
                    slot.module.__dict__.pop(attr, None)
                else:
                    slot.module.__dict__[attr] = previous
            slot.saved = {}
        self._armed = False
        self._pending = None
        self._before = {}
        self.model = None

    def _wrap(self, slot: _Slot) -> None:
        # instance attributes shadow the class's methods: `module(x)`, `module.forward(x)` and
        # Sequential's calls of `layer.backward(g)` all go through the wrappers
        module = slot.module
        for attr, make in (
            ("forward", self._forward_wrapper),
            ("backward", self._backward_wrapper),
            ("backward_params", self._backward_wrapper),
        ):
            inner = getattr(module, attr, None)
            if inner is None:
                continue
            slot.saved[attr] = module.__dict__.get(attr, _MISSING)
            module.__dict__[attr] = make(slot, inner, attr == "backward")

    def _forward_wrapper(self, slot: _Slot, inner: Callable[..., Any], _: bool) -> Callable:
        seq, mon = self._seq, self

        def forward(*args: Any, **kwargs: Any) -> Any:
            out = inner(*args, **kwargs)
            slot.out = out  # a reference, no copy: read only if training diverges
            slot.fseq = next(seq)
            if mon._armed and slot.stats and slot.module.training:
                mon._record_forward(slot, out)
            return out

        return forward

    def _backward_wrapper(self, slot: _Slot, inner: Callable[..., Any], returns: bool) -> Callable:
        seq, mon = self._seq, self

        def backward(grad_out: Any, *args: Any, **kwargs: Any) -> Any:
            if slot.busy:  # Linear.backward calls its own backward_params: seen once
                return inner(grad_out, *args, **kwargs)
            slot.bcall = next(seq)
            if mon._armed and slot.stats:
                # before the layer runs: a layer may reuse grad_out's memory
                mon._record_backward(slot, grad_out)
            slot.busy = True
            try:
                grad_in = inner(grad_out, *args, **kwargs)
            finally:
                slot.busy = False
            slot.grad_out = grad_out
            slot.grad_in = grad_in if returns else None
            slot.bseq = next(seq)
            return grad_in

        return backward

    # -- recording ------------------------------------------------------------------------
    def _record_forward(self, slot: _Slot, out: Any) -> None:
        rec = self._pending
        if rec is None or not isinstance(out, np.ndarray):
            return
        rec.activations[slot.name] = Histogram.of(out, self.bins, self.tail)
        if slot.kind == "ReLU":
            rec.dead[slot.name] = dead_fraction(out)
        elif slot.kind in ("Tanh", "Sigmoid"):
            rec.saturated[slot.name] = _saturated_fraction(out, slot.kind)

    def _record_backward(self, slot: _Slot, grad_out: Any) -> None:
        rec = self._pending
        if rec is not None and isinstance(grad_out, np.ndarray):
            rec.gradients[slot.name] = Histogram.of(grad_out, self.bins, self.tail)

    def _arm(self, state: TrainState, batch: int) -> None:
        """Decide whether the coming step (``batch`` of epoch ``state.epoch + 1``) is
        monitored; if so, remember the parameters before it."""
        self._armed = self._wanted(state, batch)
        if self._armed:
            self._pending = MonitorRecord(step=state.step + 1, epoch=state.epoch + 1)
            self._before = {name: p.data.copy() for name, p in self._params.items()}
        else:
            self._pending, self._before = None, {}

    def _wanted(self, state: TrainState, batch: int) -> bool:
        step, epoch = state.step + 1, state.epoch + 1
        n = len(state.train) if hasattr(state.train, "__len__") else None
        last_step = state.epochs * n if n is not None else None
        if state.max_steps is not None:
            last_step = min(last_step or state.max_steps, state.max_steps)
        if step == 1 or step == last_step:  # the state at initialisation, and at the end
            return True
        if self.interval == "step":
            return step % self.every == 0
        if not (epoch == 1 or epoch % self.every == 0 or epoch == state.epochs):
            return False
        # the last step of the epoch (the first, for data of unknown length)
        return batch == (n - 1 if n is not None else 0)

    # -- callback hooks -------------------------------------------------------------------
    def on_train_begin(self, state: TrainState) -> None:
        self.attach(state.model)

    def on_epoch_begin(self, state: TrainState) -> None:
        self._arm(state, 0)

    def on_step_end(self, state: TrainState, batch: int, loss: float) -> None:
        rec = self._pending
        if self._armed and rec is not None:
            for name, before in self._before.items():
                w = _norm(before)
                delta = _norm(self._params[name].data - before)
                rec.update_ratio[name] = delta / w if w > 0 else math.nan
            # backward met the layers in reverse: keep the model's order
            rec.gradients = {n: rec.gradients[n] for n in self.layer_names if n in rec.gradients}
            self.records.append(rec)
        self._arm(state, batch + 1)

    def on_train_end(self, state: TrainState) -> None:
        self.detach()

    def state_dict(self) -> dict[str, Any]:
        return {**_pack(self.records, self.bins), "kinds": dict(self.kinds)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = _unpack(state)
        self.kinds.update(state.get("kinds", {}))

    # -- divergence -----------------------------------------------------------------------
    def describe_divergence(self, state: TrainState) -> str | None:
        """The sentence :func:`fit` adds to its DivergenceError; detaches the monitor (the run
        is over)."""
        try:
            return self.diagnose(step=state.step)
        finally:
            self.detach()

    def diagnose(self, step: int | None = None) -> str | None:
        """Where the first non-finite value appeared, as one sentence (None if not attached).

        Checked in the order things happened: the last backward pass (the loss gradient,
        then each layer's input and parameter gradients in the order they were computed), the
        parameters the following update wrote, then the last forward pass (each module's
        output in the order it finished). ``step`` is the number of steps done (for the text).
        """
        if not self.attached:
            return None
        back = f" in the backward pass of global step {step}" if step else " in the last backward"
        called = sorted((s for s in self._slots if s.bcall), key=lambda s: s.bcall)
        if called:
            what = first_nonfinite(called[0].grad_out)
            if what:
                return (
                    f"First non-finite value: the loss gradient fed to "
                    f"{_label(called[0].name, called[0].module)}{back} ({what})."
                )
        for slot in sorted((s for s in self._slots if s.bseq), key=lambda s: s.bseq):
            for pname, p in slot.module._parameters.items():
                what = first_nonfinite(None if p is None else p.grad)
                if what:
                    full = f"{slot.name}.{pname}" if slot.name else pname
                    return (
                        f"First non-finite value: the gradient of '{full}' computed by "
                        f"{_label(slot.name, slot.module)}{back} ({what})."
                    )
            what = first_nonfinite(slot.grad_in)
            if what:
                return (
                    f"First non-finite value: the input gradient computed by "
                    f"{_label(slot.name, slot.module)}{back} ({what})."
                )
        for pname, p in self._params.items():
            what = first_nonfinite(p.data)
            if what:
                how = f"after the update of global step {step}" if step else "before this step"
                return (
                    f"First non-finite value: parameter '{pname}' {how}, though every "
                    f"gradient was finite ({what}); the update overflowed or the parameter "
                    "was changed outside the optimizer."
                )
        for slot in sorted((s for s in self._slots if s.fseq), key=lambda s: s.fseq):
            what = first_nonfinite(slot.out)
            if what:
                return (
                    f"First non-finite value: the output of {_label(slot.name, slot.module)} "
                    f"in the forward pass ({what})."
                )
        return (
            "Every layer's output and gradient was finite: the loss function itself produced "
            "the non-finite value."
        )

    # -- reading --------------------------------------------------------------------------
    def series(self, metric: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one number per record: ``metric`` is ``'dead'``,
        ``'saturated'``, ``'update_ratio'`` (by parameter name), or ``'activation_mean'``,
        ``'activation_std'``, ``'gradient_mean'``, ``'gradient_std'`` (by layer name).
        Records without it are left out."""
        getters: dict[str, Callable[[MonitorRecord], Any]] = {
            "dead": lambda r: r.dead.get(name),
            "saturated": lambda r: r.saturated.get(name),
            "update_ratio": lambda r: r.update_ratio.get(name),
            "activation_mean": lambda r: _attr(r.activations.get(name), "mean"),
            "activation_std": lambda r: _attr(r.activations.get(name), "std"),
            "gradient_mean": lambda r: _attr(r.gradients.get(name), "mean"),
            "gradient_std": lambda r: _attr(r.gradients.get(name), "std"),
        }
        if metric not in getters:
            raise ValueError(
                f"TrainingMonitor.series: unknown metric {metric!r}; valid: {', '.join(getters)}"
            )
        pairs = [(r.step, v) for r in self.records if (v := getters[metric](r)) is not None]
        steps = np.array([s for s, _ in pairs], dtype=np.int64)
        return steps, np.array([v for _, v in pairs], dtype=np.float64)

    def summary(self) -> str:
        """One paragraph on the last record (for a report)."""
        if not self.records:
            return "Monitors: no step was monitored."
        r = self.records[-1]
        parts = [f"Monitors at global step {r.step} (epoch {r.epoch})"]
        if r.dead:
            parts.append(
                "dead ReLU units " + ", ".join(f"'{n}' {100 * v:.1f}%" for n, v in r.dead.items())
            )
        if r.saturated:
            parts.append(
                "saturated outputs "
                + ", ".join(f"'{n}' {100 * v:.1f}%" for n, v in r.saturated.items())
            )
        ratios = {n: v for n, v in r.update_ratio.items() if math.isfinite(v)}
        if ratios:
            lo, hi = min(ratios, key=ratios.get), max(ratios, key=ratios.get)  # type: ignore[arg-type]
            parts.append(
                f"update/weight ratio from {ratios[lo]:.2g} ('{lo}') to {ratios[hi]:.2g} ('{hi}')"
            )
        bad = [n for n, h in [*r.activations.items(), *r.gradients.items()] if h.nonfinite]
        parts.append(
            "non-finite values in " + ", ".join(sorted(set(bad))) if bad else "all values finite"
        )
        return parts[0] + ": " + "; ".join(parts[1:]) + "."

    def plot(self, title: str = "", max_layers: int = 6, max_lines: int = 5) -> Any:
        """A matplotlib Figure of the records (see :func:`plot_monitors`)."""
        return plot_monitors(self, title=title, max_layers=max_layers, max_lines=max_lines)


def _attr(h: Histogram | None, name: str) -> float | None:
    return None if h is None else getattr(h, name)


# -- checkpoint state ----------------------------------------------------------------------
_HIST_FIELDS = ("mean", "std", "nonfinite", "under", "over")


def _names(records: Iterable[MonitorRecord], attr: str) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        seen.update(dict.fromkeys(getattr(r, attr)))
    return list(seen)


def _pack(records: list[MonitorRecord], bins: int) -> dict[str, Any]:
    """Records as a few stacked arrays (NaN where a record lacks a value): a checkpoint stays
    a handful of arrays however long the run."""
    R = len(records)
    out: dict[str, Any] = {
        "bins": bins,
        "step": np.array([r.step for r in records], dtype=np.int64),
        "epoch": np.array([r.epoch for r in records], dtype=np.int64),
    }
    for attr in ("activations", "gradients"):
        names = _names(records, attr)
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
    for attr in ("dead", "saturated", "update_ratio"):
        names = _names(records, attr)
        values = np.full((R, len(names)), np.nan)
        for i, r in enumerate(records):
            for j, n in enumerate(names):
                values[i, j] = getattr(r, attr).get(n, np.nan)
        present = np.zeros((R, len(names)), dtype=bool)
        for i, r in enumerate(records):
            for j, n in enumerate(names):
                present[i, j] = n in getattr(r, attr)
        out[attr] = {"names": names, "values": values, "present": present}
    return out


def _unpack(state: dict[str, Any]) -> list[MonitorRecord]:
    steps, epochs = np.asarray(state["step"]), np.asarray(state["epoch"])
    records = [MonitorRecord(int(s), int(e)) for s, e in zip(steps, epochs, strict=True)]
    for attr in ("activations", "gradients"):
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
    for attr in ("dead", "saturated", "update_ratio"):
        part = state[attr]
        values, present = np.asarray(part["values"]), np.asarray(part["present"])
        for i, r in enumerate(records):
            for j, n in enumerate(part["names"]):
                if present[i, j]:
                    getattr(r, attr)[n] = float(values[i, j])
    return records


# -- the figure ----------------------------------------------------------------------------
def _spread(items: Sequence[Any], k: int) -> list[Any]:
    """At most ``k`` items, evenly spaced, keeping the first and the last."""
    if len(items) <= k:
        return list(items)
    idx = np.unique(np.round(np.linspace(0, len(items) - 1, k)).astype(int))
    return [items[i] for i in idx]


def plot_monitors(
    monitor: TrainingMonitor, *, title: str = "", max_layers: int = 6, max_lines: int = 5
) -> Any:
    """Three rows: the output histograms of up to ``max_layers`` layers, their gradient
    histograms (each panel with up to ``max_lines`` monitored steps, coloured from early to
    late), and four panels over the steps: output std, gradient std, dead ReLU units and
    saturated outputs, update-to-weight ratios."""
    from matplotlib import colormaps

    from handgrad.viz import figure

    records = monitor.records
    if not records:
        raise ValueError("plot_monitors: the monitor has no records (no step was monitored)")
    layers = _names(records, "activations") or _names(records, "gradients")
    shown = _spread(layers, max_layers)
    chosen = _spread(records, max_lines)
    cmap = colormaps["viridis"]
    colors = [cmap(x) for x in np.linspace(0.0, 0.9, len(chosen))]
    ncols = max(len(shown), 4)
    # no layout engine: constrained layout takes seconds on a grid of 15 panels
    fig, grid = figure(3, ncols, figsize=(2.7 * ncols, 9.0), layout=None)
    width = 2.7 * ncols
    fig.subplots_adjust(
        left=0.7 / width, right=1 - 0.15 / width, top=0.9, bottom=0.06, wspace=0.32, hspace=0.62
    )
    titles = {
        "activations": "output histograms (every element of the batch, the middle 99%)",
        "gradients": "gradient histograms: d loss / d output (log density), same colours",
    }
    kinds = monitor.kinds
    for axes, attr in zip(grid[:2], ("activations", "gradients"), strict=True):
        for ax in axes[len(shown) :]:
            ax.set_visible(False)
        for ax, name in zip(axes, shown, strict=False):
            for rec, color in zip(chosen, colors, strict=True):
                h = getattr(rec, attr).get(name)
                if h is None or h.counts.sum() == 0:
                    continue
                edges, density = _density(h)
                label = f"step {rec.step} (epoch {rec.epoch})"
                ax.stairs(density, edges, color=color, lw=1.3, label=label)
            kind = f" ({kinds[name]})" if name in kinds else ""
            ax.set_title(f"layer {name or 'model'}{kind}", fontsize=10)
            ax.set_xlabel("output value" if attr == "activations" else "gradient value")
            if attr == "gradients":
                # gradients are heavy-tailed (most samples are learnt, a few are not)
                ax.set_yscale("log")
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("density" if attr == "activations" else "density (log)")
        if attr == "activations":  # the same colours in the row below
            axes[0].legend(fontsize=7, title="monitored at", title_fontsize=7)
        _row_title(fig, axes[0], titles[attr])
    _plot_series(monitor, grid[2], layers, kinds)
    _row_title(fig, grid[2][0], "over training (one point per monitored step)")
    head = title or "training monitors"
    if len(shown) < len(layers):
        head += f" (histograms of {len(shown)} of {len(layers)} layers)"
    fig.suptitle(head, fontsize=13, y=0.985)
    return fig


def _row_title(fig: Any, ax: Any, text: str) -> None:
    top = ax.get_position().y1
    fig.text(0.5, top + 0.035, text, ha="center", va="bottom", fontsize=11)


def _density(h: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges and densities (integrating to 1); bins are merged k at a time (keeping every
    k-th edge) so that a small batch still has a few samples per bin."""
    n = int(h.counts.sum())
    bins = len(h.counts)
    k = max(1, round(bins / max(8.0, math.sqrt(n))))
    edges = np.append(h.edges[:-1:k], h.edges[-1])
    counts = np.add.reduceat(h.counts, np.arange(0, bins, k))
    widths = np.diff(edges)
    return edges, counts / (n * widths)


def _plot_series(
    monitor: TrainingMonitor, axes: Any, layers: list[str], kinds: dict[str, str]
) -> None:
    for ax in axes[4:]:
        ax.set_visible(False)
    ax_act, ax_grad, ax_dead, ax_ratio = axes[:4]
    marker = "o" if len(monitor.records) <= 20 else None
    for name in layers:
        label = f"{name} {kinds.get(name, '')}".strip()
        ax_act.plot(*monitor.series("activation_std", name), marker=marker, ms=3, label=label)
        steps, g = monitor.series("gradient_std", name)
        ax_grad.plot(steps, np.where(g > 0, g, np.nan), marker=marker, ms=3, label=label)
    ax_act.set_title("output std per layer", fontsize=10)
    ax_grad.set_title("gradient std per layer", fontsize=10)
    ax_grad.set_yscale("log")
    names = {k: _names(monitor.records, k) for k in ("dead", "saturated", "update_ratio")}
    for name in names["dead"]:
        steps, v = monitor.series("dead", name)
        ax_dead.plot(steps, 100 * v, marker=marker, ms=3, label=f"{name} ReLU: dead units")
    for name in names["saturated"]:
        steps, v = monitor.series("saturated", name)
        kind = kinds.get(name, "")
        ax_dead.plot(steps, 100 * v, "--", marker=marker, ms=3, label=f"{name} {kind}: saturated")
    if not names["dead"] and not names["saturated"]:
        ax_dead.text(0.5, 0.5, "no ReLU, Tanh or Sigmoid layers", ha="center", va="center",
                     transform=ax_dead.transAxes)  # fmt: skip
    ax_dead.set_title("dead ReLU units / saturated outputs", fontsize=10)
    ax_dead.set_ylabel("%")
    for name in names["update_ratio"]:
        steps, v = monitor.series("update_ratio", name)
        style = "-" if name.endswith("weight") else ":"
        ax_ratio.plot(steps, np.where(v > 0, v, np.nan), style, marker=marker, ms=3, label=name)
    ax_ratio.axhline(1e-3, color="gray", lw=1, ls="--", label="1e-3 rule of thumb")
    ax_ratio.set_yscale("log")
    ax_ratio.set_title("||update|| / ||weight||", fontsize=10)
    for ax in axes[:4]:
        ax.set_xlabel("global step")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=1 + len(ax.get_legend_handles_labels()[0]) // 7)
