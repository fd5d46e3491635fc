"""Training monitors: looking inside a network while it trains.

:class:`TrainingMonitor` is a callback for :func:`handgrad.train.fit` that records, on the
steps it monitors, for every layer (by the model's dotted module names, ``0``, ``1.2``, ...):

- a histogram of the layer's output (its activations) and of the gradient flowing back into it
  (d loss / d output), counting every element of the batch;
- for ReLU layers, the fraction of *dead* units: units whose output was 0 for every sample of
  the batch; for Tanh and Sigmoid layers, the fraction of *saturated* outputs;
- for every parameter, the update-to-weight ratio ``||w_after - w_before|| / ||w_before||``
  across the optimizer step (about 1e-3 is the classic rule of thumb for a healthy rate).

When the loss becomes NaN or infinite, its :class:`NonFiniteWatch` names the first layer whose
output or gradient became non-finite; :func:`handgrad.train.fit` adds that sentence to the
``DivergenceError`` message.

Both observe the model through module hooks (``register_forward_hook``,
``register_full_backward_pre_hook``, ``register_full_backward_hook``), registered when training
begins and removed when it ends or diverges. The statistics are in
:mod:`handgrad.train.monitor_stats` (each callable on its own arrays), the records and their
checkpoint form in :mod:`handgrad.train.monitor_records`, the figure in
:mod:`handgrad.viz.monitors`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from handgrad.nn.module import Module, RemovableHandle, Sequential
from handgrad.train.callbacks import Callback, TrainState
from handgrad.train.monitor_records import (
    SERIES,
    MonitorRecord,
    pack_records,
    unpack_records,
)
from handgrad.train.monitor_stats import (
    Histogram,
    dead_fraction,
    first_nonfinite,
    saturated_fraction,
    update_ratio,
)

__all__ = [
    "Histogram",
    "MonitorRecord",
    "NonFiniteWatch",
    "TrainingMonitor",
    "dead_fraction",
    "first_nonfinite",
    "saturated_fraction",
    "update_ratio",
]


def __getattr__(name: str) -> Any:
    # the figure moved to handgrad.viz (above train in the layering): imported on first use
    if name == "plot_monitors":
        from handgrad.viz.monitors import plot_monitors

        return plot_monitors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _label(name: str, module: Any) -> str:
    kind = type(module).__name__
    return f"layer '{name}' ({kind})" if name else f"the model ({kind})"


class _Slot:
    """One watched module: the arrays that last passed through it (references, not copies)
    and their places in the order things happened (0: never)."""

    __slots__ = ("bcall", "bseq", "fseq", "grad_in", "grad_out", "module", "name", "out")

    def __init__(self, name: str, module: Module) -> None:
        self.name, self.module = name, module
        self.out: Any = None
        self.fseq = 0  # when the last forward finished
        self.grad_out: Any = None
        self.grad_in: Any = None
        self.bcall = 0  # when the last backward began, and when it finished
        self.bseq = 0


# -- where the first NaN came from ---------------------------------------------------------
class NonFiniteWatch:
    """Keeps, through hooks, a reference to the last output, output gradient and input gradient
    of every watched module (no copy, no arithmetic) and the order they came in; then
    :meth:`diagnose` says where the first non-finite value appeared.

    Args:
        model: the model (its parameters are checked too).
        modules: the ``(name, module)`` pairs to watch; by default every module of ``model``
            but the Sequentials, which only pass arrays between their layers.

    Call :meth:`detach` to remove the hooks.

    Examples:
        >>> model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.Tanh())
        >>> watch = NonFiniteWatch(model)
        >>> x = np.ones((4, 2), dtype=np.float32)
        >>> x[2, 1] = np.nan
        >>> _ = model(x)
        >>> print(watch.diagnose())
        First non-finite value: the output of layer '0' (Linear) in the forward pass (3 of 12 values, first at index (2, 0): nan).
        >>> watch.detach()
    """  # noqa: E501

    def __init__(self, model: Module, modules: Iterable[tuple[str, Module]] | None = None) -> None:
        if modules is None:
            modules = [(n, m) for n, m in model.named_modules() if not isinstance(m, Sequential)]
        self.params = dict(model.named_parameters())
        self.slots = [_Slot(name, m) for name, m in modules]
        self._seq = itertools.count(1)
        self._handles: list[RemovableHandle] = []
        for slot in self.slots:
            self._hook(slot)

    def _hook(self, slot: _Slot) -> None:
        seq = self._seq

        def forward(module: Module, args: tuple, out: Any) -> None:
            slot.out = out
            slot.fseq = next(seq)

        def before_backward(module: Module, grad_output: tuple) -> None:
            slot.grad_out = grad_output[0]
            slot.bcall = next(seq)

        def after_backward(module: Module, grad_input: tuple, grad_output: tuple) -> None:
            slot.grad_in = grad_input[0]  # None where only the parameter gradients ran
            slot.bseq = next(seq)

        m = slot.module
        self._handles += [
            m.register_forward_hook(forward),
            m.register_full_backward_pre_hook(before_backward),
            m.register_full_backward_hook(after_backward),
        ]

    def detach(self) -> None:
        """Remove the hooks (safe to call twice)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def diagnose(self, step: int | None = None) -> str:
        """Where the first non-finite value appeared, as one sentence.

        Checked in the order things happened: the last backward pass (the loss gradient,
        then each layer's input and parameter gradients in the order they were computed), the
        parameters the following update wrote, then the last forward pass (each module's
        output in the order it finished). ``step`` is the number of steps done (for the text).
        """
        back = f" in the backward pass of global step {step}" if step else " in the last backward"
        called = sorted((s for s in self.slots if s.bcall), key=lambda s: s.bcall)
        if called:
            what = first_nonfinite(called[0].grad_out)
            if what:
                return (
                    f"First non-finite value: the loss gradient fed to "
                    f"{_label(called[0].name, called[0].module)}{back} ({what})."
                )
        for slot in sorted((s for s in self.slots if s.bseq), key=lambda s: s.bseq):
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
        for pname, p in self.params.items():
            what = first_nonfinite(p.data)
            if what:
                how = f"after the update of global step {step}" if step else "before this step"
                return (
                    f"First non-finite value: parameter '{pname}' {how}, though every "
                    f"gradient was finite ({what}); the update overflowed or the parameter "
                    "was changed outside the optimizer."
                )
        for slot in sorted((s for s in self.slots if s.fseq), key=lambda s: s.fseq):
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
    ``monitor.plot()`` draws the figure. It hooks into ``state.model`` when training begins and
    removes its hooks when training ends or diverges; call :meth:`detach` yourself after an
    interrupt. On the steps it monitors it also hooks the recorded layers' outputs and
    gradients, for those steps only. Its records go into checkpoints, so a resumed run keeps
    the earlier ones.
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
        self._watch: NonFiniteWatch | None = None
        self._recorded: list[tuple[str, Module]] = []
        self._stat_hooks: list[RemovableHandle] = []
        self._pending: MonitorRecord | None = None  # the record of the coming step, if any
        self._before: dict[str, np.ndarray] = {}
        self._params: dict[str, Any] = {}

    # -- attaching ------------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self.model is not None

    def attach(self, model: Any) -> TrainingMonitor:
        """Hook into every module of ``model``; returns self."""
        if not hasattr(model, "named_modules"):
            raise TypeError(
                "TrainingMonitor: the model must be a handgrad Module (with named_modules()), "
                f"got {type(model).__name__}"
            )
        if self.model is model:
            return self
        self.detach()
        modules = list(model.named_modules())
        if self.layers is None:
            wanted = {name for name, m in modules if not m._modules}  # the leaves
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
        self._recorded = [(name, m) for name, m in modules if name in wanted]
        self.layer_names = [name for name, _ in self._recorded]
        self.kinds.update({name: type(m).__name__ for name, m in self._recorded})
        self._params = dict(model.named_parameters())
        self.param_names = list(self._params)
        # a Sequential only passes arrays between its layers: its layers are watched
        watched = [(n, m) for n, m in modules if n in wanted or not isinstance(m, Sequential)]
        self._watch = NonFiniteWatch(model, watched)
        return self

    def detach(self) -> None:
        """Remove every hook (safe to call twice)."""
        if self._watch is not None:
            self._watch.detach()
            self._watch = None
        self._set_stat_hooks(False)
        self._pending = None
        self._before = {}
        self.model = None

    # -- recording ------------------------------------------------------------------------
    def _set_stat_hooks(self, on: bool) -> None:
        """Hook the recorded layers for the coming step (``on``), or unhook them."""
        if not on:
            for handle in self._stat_hooks:
                handle.remove()
            self._stat_hooks = []
        elif not self._stat_hooks:
            for name, module in self._recorded:
                self._stat_hooks += [
                    module.register_forward_hook(self._output_stats(name)),
                    module.register_full_backward_pre_hook(self._gradient_stats(name)),
                ]

    def _output_stats(self, name: str) -> Any:
        def hook(module: Module, args: tuple, out: Any) -> None:
            rec = self._pending
            if rec is None or not module.training or not isinstance(out, np.ndarray):
                return  # (an evaluation pass between two steps is not recorded)
            rec.activations[name] = Histogram.of(out, self.bins, self.tail)
            kind = type(module).__name__
            if kind == "ReLU":
                rec.dead[name] = dead_fraction(out)
            elif kind in ("Tanh", "Sigmoid"):
                rec.saturated[name] = saturated_fraction(out, kind)

        return hook

    def _gradient_stats(self, name: str) -> Any:
        # a pre-hook: the gradient is read before the layer runs (a layer may reuse its memory)
        def hook(module: Module, grad_output: tuple) -> None:
            rec, g = self._pending, grad_output[0]
            if rec is not None and isinstance(g, np.ndarray):
                rec.gradients[name] = Histogram.of(g, self.bins, self.tail)

        return hook

    def _arm(self, state: TrainState, batch: int) -> None:
        """Decide whether the coming step (``batch`` of epoch ``state.epoch + 1``) is
        monitored; if so, remember the parameters before it and hook the recorded layers."""
        armed = self._wanted(state, batch)
        if armed:
            self._pending = MonitorRecord(step=state.step + 1, epoch=state.epoch + 1)
            self._before = {name: p.data.copy() for name, p in self._params.items()}
        else:
            self._pending, self._before = None, {}
        self._set_stat_hooks(armed)

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
        if rec is not None:
            for name, before in self._before.items():
                rec.update_ratio[name] = update_ratio(before, self._params[name].data)
            # backward met the layers in reverse: keep the model's order
            rec.gradients = {n: rec.gradients[n] for n in self.layer_names if n in rec.gradients}
            self.records.append(rec)
        self._arm(state, batch + 1)

    def on_train_end(self, state: TrainState) -> None:
        self.detach()

    def state_dict(self) -> dict[str, Any]:
        return {**pack_records(self.records, self.bins), "kinds": dict(self.kinds)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = unpack_records(state)
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
        """Where the first non-finite value appeared, as one sentence (None if not attached);
        see :meth:`NonFiniteWatch.diagnose`."""
        return None if self._watch is None else self._watch.diagnose(step)

    # -- reading --------------------------------------------------------------------------
    def series(self, metric: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one number per record: ``metric`` is ``'dead'``,
        ``'saturated'``, ``'update_ratio'`` (by parameter name), or ``'activation_mean'``,
        ``'activation_std'``, ``'gradient_mean'``, ``'gradient_std'`` (by layer name).
        Records without it are left out."""
        get = SERIES.get(metric)
        if get is None:
            raise ValueError(
                f"TrainingMonitor.series: unknown metric {metric!r}; valid: {', '.join(SERIES)}"
            )
        pairs = [(r.step, v) for r in self.records if (v := get(r, name)) is not None]
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
        """A matplotlib Figure of the records (see :func:`handgrad.viz.plot_monitors`)."""
        from handgrad.viz.monitors import plot_monitors  # viz sits above train: drawn on use

        return plot_monitors(self, title=title, max_layers=max_layers, max_lines=max_lines)
