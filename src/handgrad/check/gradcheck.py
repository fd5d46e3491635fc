"""Finite-difference gradient checking of a module's hand-written backward pass.

For a layer the checked scalar is ``L = sum(forward(x) * R)``, with ``R`` a fixed standard
normal array drawn from ``seed``; its gradient is exactly ``backward(R)`` for the input and the
accumulated ``.grad`` for each parameter. For a loss (a ``target`` is given) it is
``L = forward(x, target)`` and ``backward()``. Every element of the input and of every
parameter is then nudged by ``+-eps`` and the central difference
``(L(v + eps) - L(v - eps)) / 2 eps`` is compared with the analytic value.

Kinks. At a kink (ReLU at 0, max with ties, abs) the central difference averages the slopes on
both sides and cannot agree with either; such elements are detected and reported, not failed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from handgrad._util import RNGLike, as_rng
from handgrad.check._adapter import F64, ParamsSpec, Session, describe, plain_arrays
from handgrad.check.report import GradcheckReport, TensorCheck, compare_arrays

__all__ = ["gradcheck", "numerical_gradient"]

# Kink test (see _FiniteDifferences.probe): a smooth f has one-sided slopes that differ by
# D(s) = f''(v) s + O(s^3) for a step s, so halving the step halves D. Across a kink at distance
# d < s the difference stays of the size of the jump in slope, and D(s/2)/D(s) is far from 1/2
# for every d except d = s/3, where D(s/4)/D(s/2) is far from it instead. Within _RATIO_TOL of
# 1/2 at both halvings counts as smooth.
_RATIO_TOL = 0.2


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _check_hyper(eps: float, atol: float, rtol: float, max_elements: int | None) -> None:
    if not (_is_real(eps) and eps > 0):
        raise ValueError(f"gradcheck: invalid eps {eps!r}, must be a finite number > 0")
    if not (_is_real(atol) and atol >= 0):
        raise ValueError(f"gradcheck: invalid atol {atol!r}, must be >= 0")
    if not (_is_real(rtol) and rtol >= 0):
        raise ValueError(f"gradcheck: invalid rtol {rtol!r}, must be >= 0")
    if max_elements is not None and (
        isinstance(max_elements, bool)
        or not isinstance(max_elements, (int, np.integer))
        or max_elements <= 0
    ):
        raise ValueError(
            f"gradcheck: invalid max_elements {max_elements!r}, must be a positive int or None"
        )


def _as_input(x: Any, who: str) -> np.ndarray:
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{who}: input must be a real array, got dtype {arr.dtype}")
    x64 = np.array(arr, dtype=F64, copy=True)
    if not np.isfinite(x64).all():
        raise ValueError(f"{who}: input contains non-finite values")
    return x64


def _as_target(target: Any) -> Any:
    t = np.asarray(target)
    if np.issubdtype(t.dtype, np.floating):
        return np.array(t, dtype=F64, copy=True)
    return np.array(t, copy=True)


def _scalar(value: Any, who: str) -> float:
    """A loss value as a float; float32 or non-scalar values are errors."""
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(
            f"{who}: with a target the module is a loss and must return a scalar, "
            f"got shape {arr.shape}"
        )
    if arr.dtype != F64:
        raise TypeError(
            f"{who}: the loss is {arr.dtype}, not float64; gradient checks need float64 "
            "throughout (finite differences in float32 are noise)"
        )
    return float(arr.reshape(()))


def _output(value: Any, who: str) -> np.ndarray:
    out = np.asarray(value)
    if out.dtype != F64:
        raise TypeError(
            f"{who}: forward returned {out.dtype} for a float64 input; gradient checks need "
            "float64 throughout (convert the layer's arrays with .astype(np.float64))"
        )
    return out


def _finite(arr: np.ndarray, what: str, who: str) -> None:
    bad = int(arr.size - np.isfinite(arr).sum())
    if bad:
        raise ValueError(f"{who}: {what} has non-finite values ({bad} of {arr.size} are nan/inf)")


def _input_grad(g: Any, shape: tuple[int, ...], who: str) -> np.ndarray:
    if g is None:
        raise TypeError(
            f"{who}: backward returned None; it must return the gradient with respect to "
            f"the input, of shape {shape}"
        )
    g = np.asarray(g)
    if g.shape != shape:
        raise ValueError(
            f"{who}: backward returned shape {g.shape}, but the input has shape {shape}"
        )
    if not (np.issubdtype(g.dtype, np.floating) or np.issubdtype(g.dtype, np.integer)):
        raise TypeError(f"{who}: backward returned dtype {g.dtype}, expected float64")
    return np.array(g, dtype=F64, copy=True)


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar function with respect to every element of ``x``.

    ``f()`` is called with no argument and must read ``x``, which is perturbed in place (and
    restored) one element at a time: ``(f(x + eps e_i) - f(x - eps e_i)) / 2 eps``. Costs
    ``2 * x.size`` calls. ``x`` should be float64. Returns an array of ``x``'s shape.
    """
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"numerical_gradient: invalid eps {eps!r}, must be > 0")
    grad = np.zeros(x.shape, dtype=F64)
    for i in range(x.size):
        idx = np.unravel_index(i, x.shape)
        fp, fm, hp, hm = _two_sided(f, x, idx, eps)
        grad[idx] = (fp - fm) / (hp + hm)
    return grad


def _two_sided(
    f: Callable[[], float], arr: np.ndarray, idx: tuple[Any, ...], step: float
) -> tuple[float, float, float, float]:
    """f at v + step and v - step, and the steps actually taken (after rounding of v +- step)."""
    v = arr[idx]
    up, down = v + step, v - step
    try:
        arr[idx] = up
        fp = f()
        arr[idx] = down
        fm = f()
    finally:
        arr[idx] = v
    return fp, fm, float(up - v), float(v - down)


class _FiniteDifferences:
    """Central differences of one scalar objective ``f``, with kink detection.

    ``delta`` bounds the rounding error of one evaluation of ``f`` (``2.2e-16 * S``, with
    ``S = sum(|out * R|)`` for a layer and ``|L|`` for a loss, at least 1): the central
    difference cannot resolve anything below ``noise = 2 * delta / eps``, so that is added to
    ``atol`` (it is negligible for moderate layers: 4.4e-8 for S = 100).
    """

    def __init__(
        self, f: Callable[[], float], f0: float, scale: float, eps: float, atol: float, rtol: float
    ) -> None:
        self.f, self.f0, self.eps, self.rtol = f, f0, eps, rtol
        self.delta = float(np.finfo(F64).eps) * max(scale, 1.0)
        self.noise = 2.0 * self.delta / eps
        self.atol = atol + self.noise

    def _slope_gap(self, arr: np.ndarray, idx: tuple[Any, ...], step: float) -> float:
        """(f(v+s) - f(v)) / s - (f(v) - f(v-s)) / s: ~f''(v) s if smooth, the jump at a kink."""
        fp, fm, hp, hm = _two_sided(self.f, arr, idx, step)
        return (fp - self.f0) / hp - (self.f0 - fm) / hm

    def probe(self, arr: np.ndarray, idx: tuple[Any, ...]) -> tuple[float, str]:
        """The central difference at one element and its status: 'ok', 'kink' or 'nonfinite'."""
        h = self.eps
        fp, fm, hp, hm = _two_sided(self.f, arr, idx, h)
        if not (math.isfinite(fp) and math.isfinite(fm)):
            return math.nan, "nonfinite"
        n = (fp - fm) / (hp + hm)
        # the central difference is the mean of the two one-sided slopes; across a kink it is
        # off by at most |d1| / 2 from the slope on either side, so below twice the tolerance
        # a kink cannot cause a failure and is not worth four more calls
        d1 = (fp - self.f0) / hp - (self.f0 - fm) / hm
        if abs(d1) <= 2.0 * (self.atol + self.rtol * abs(n)):
            return n, "ok"
        d2 = self._slope_gap(arr, idx, h / 2)
        d4 = self._slope_gap(arr, idx, h / 4)
        if not (math.isfinite(d2) and math.isfinite(d4)):
            return n, "nonfinite"
        # smooth: the gap halves with the step. Rounding adds up to 4 delta / s to a gap at
        # step s; it is allowed for, so that noise alone is never taken for a kink.
        dh = self.delta / h
        smooth = (
            abs(d2 - 0.5 * d1) <= _RATIO_TOL * abs(d1) + 10.0 * dh
            and abs(d4 - 0.5 * d2) <= _RATIO_TOL * abs(d2) + 20.0 * dh
        )
        return n, "ok" if smooth else "kink"

    def row(
        self,
        name: str,
        kind: str,
        arr: np.ndarray,
        analytic: np.ndarray,
        rng: np.random.Generator,
        max_elements: int | None,
        notes: list[str],
    ) -> TensorCheck:
        """Probe every element of ``arr`` (perturbed in place, restored) and compare."""
        size = arr.size
        if max_elements is None or size <= max_elements:
            flat = np.arange(size)
        else:
            flat = np.sort(rng.choice(size, size=max_elements, replace=False))
        numeric = np.full(arr.shape, np.nan)
        mask = np.zeros(arr.shape, dtype=bool)
        kinks = nonfinite = 0
        for i in flat:
            idx = np.unravel_index(int(i), arr.shape)
            n, status = self.probe(arr, idx)
            numeric[idx] = n
            if status == "ok":
                mask[idx] = True
            elif status == "kink":
                kinks += 1
            else:
                nonfinite += 1
        if nonfinite:
            notes.append(f"{name}: {nonfinite} elements skipped, f(x +- eps) was not finite there")
        return compare_arrays(
            name, kind, analytic, numeric, atol=self.atol, rtol=self.rtol, mask=mask, kinks=kinks
        )


def _accumulation_note(g1: np.ndarray, g2: np.ndarray, atol: float, rtol: float) -> str:
    """'' if a second backward added the same gradient again, else what went wrong."""
    if np.allclose(g2, 2 * g1, rtol=rtol, atol=atol) or np.allclose(g1, 0.0, atol=atol):
        return ""
    if np.allclose(g2, g1, rtol=rtol, atol=atol):
        return "backward overwrites .grad instead of adding to it (it must accumulate)"
    return "a second forward/backward did not add the same gradient to .grad again"


def gradcheck(
    module: Any,
    x: Any,
    target: Any = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: RNGLike = 0,
    params: ParamsSpec = True,
    max_elements: int | None = None,
) -> GradcheckReport:
    """Check ``module``'s backward against central finite differences, in float64.

    Args:
        module: anything with ``forward`` (or ``__call__``) and ``backward``; it need not
            subclass :class:`handgrad.nn.Module`. A handgrad module (or one with ``.to``) is
            converted with ``module.to(np.float64)``, other parameters by hand; afterwards the
            dtypes, parameter values, ``.grad`` arrays and buffers are put back as they were.
        x: the input (any shape), converted to a float64 copy.
        target: if given, ``module`` is a loss: ``value = module(x, target)`` (a float) and
            ``module.backward()`` returns d value / d x. Float targets are made float64.
        eps: the finite-difference step. 1e-6 balances truncation error (O(eps^2)) against
            rounding error (O(1e-16 |L| / eps)) in float64.
        atol, rtol: an element passes when
            ``|analytic - numeric| <= atol + noise + rtol * |numeric|`` (``numpy.allclose``'s
            test plus ``noise``, the rounding error of the central difference,
            ``2 * 2.2e-16 * max(S, 1) / eps`` with ``S = sum(|out * R|)`` for a layer and
            ``|L|`` for a loss; printed in the report). The defaults, 1e-5 and 1e-3, are
            PyTorch's gradcheck defaults: loose enough for rounding in moderately sized layers,
            far tighter than any real bug (a wrong gradient is typically off by O(1)).
        seed: draws ``R`` (and the sampled elements with ``max_elements``).
        params: ``True`` checks every parameter found (``named_parameters()``,
            ``parameters()``, or attributes with ``.data``/``.grad``); ``False`` only the input;
            a mapping ``{'W': 'dW', 'b': 'db'}`` names plain-array parameters and the attribute
            backward stores each gradient in (dotted paths like ``'fc.W'`` work).
        max_elements: check at most this many randomly chosen elements per tensor (the rest
            count as skipped); ``None`` checks all.

    Returns:
        a :class:`GradcheckReport`: rows ``'input'`` and each parameter's dotted name.

    Cost: two forward passes per element (five near a kink), so ``2 * (x.size + n_params)``
    forwards in all: meant for small shapes (a few thousand elements at most).

    Also checked: the forward is deterministic (two calls agree), backward accumulates into
    ``Parameter.grad`` (a second backward adds the same amount again), and nothing is
    non-finite. Kinks are not failures (see the module docstring).

    Raises:
        TypeError / ValueError: a bad argument, a module without forward/backward, backward
        returning None or a wrong shape, non-float64 or non-finite outputs, a random forward.
    """
    _check_hyper(eps, atol, rtol, max_elements)
    who = f"gradcheck({describe(module)})"
    session = Session(module, params, who)
    x64 = _as_input(x, who)
    loss_mode = target is not None
    tgt = _as_target(target) if loss_mode else None
    rng = as_rng(seed)
    notes: list[str] = []
    if (
        params is True
        and not session.params
        and not callable(getattr(module, "named_parameters", None))
        and plain_arrays(module)
    ):
        names = plain_arrays(module)
        notes.append(
            f"no parameters found; plain arrays {', '.join(names)} were not checked: pass "
            f"params={{'{names[0]}': 'd{names[0]}', ...}} naming each array and its gradient"
        )
    with session:
        fwd = session.forward
        # -- the analytic gradient -----------------------------------------------------------
        session.zero_grads()
        R: np.ndarray | None = None
        try:
            raw = fwd(x64.copy(), tgt) if loss_mode else fwd(x64.copy())
        except TypeError as e:
            if not loss_mode and hasattr(e, "add_note"):  # Python >= 3.11
                e.add_note(f"{who}: if this module is a loss, pass target=")
            raise
        if loss_mode:
            value = _scalar(raw, who)
            if not math.isfinite(value):
                raise ValueError(f"{who}: forward returned a non-finite loss {value}")
            g_raw = session.module.backward()
        else:
            out = _output(raw, who)
            _finite(out, "forward output", who)
            R = rng.standard_normal(out.shape)
            g_raw = session.module.backward(R.copy())
        g_in = _input_grad(g_raw, x64.shape, who)
        _finite(g_in, "the input gradient from backward", who)
        g_params = [session.read_grad(r) for r in session.params]
        for r, g in zip(session.params, g_params, strict=True):
            _finite(g, f"the gradient of '{r.name}'", who)

        def objective() -> float:
            if loss_mode:
                return float(np.asarray(fwd(x64.copy(), tgt)).reshape(()))
            out = np.asarray(fwd(x64.copy()))
            if out.shape != R.shape:
                raise ValueError(
                    f"{who}: output shape changed from {R.shape} to {out.shape} "
                    "when the input was perturbed"
                )
            return float(np.sum(out * R))

        f0 = objective()
        f0_again = objective()
        if abs(f0 - f0_again) > 1e-12 * max(1.0, abs(f0)):
            raise ValueError(
                f"{who}: forward is not deterministic (two calls on the same input give "
                f"{f0!r} and {f0_again!r}); call .eval() or give the layer a fixed rng"
            )
        # -- the accumulation contract (Parameter.grad += ..., as in PyTorch) ---------------
        acc_notes = {r.name: "" for r in session.params}
        if any(r.accumulates for r in session.params):
            if loss_mode:
                fwd(x64.copy(), tgt)
                session.module.backward()
            else:
                fwd(x64.copy())
                session.module.backward(R.copy())
            for r, g1 in zip(session.params, g_params, strict=True):
                if r.accumulates:
                    g2 = session.read_grad(r)
                    acc_notes[r.name] = _accumulation_note(g1, g2, atol, rtol)
        # -- finite differences, element by element ----------------------------------------
        scale = abs(f0) if loss_mode else float(np.sum(np.abs(out * R)))
        fd = _FiniteDifferences(objective, f0, scale, eps, atol, rtol)
        rows = [fd.row("input", "input", x64, g_in, rng, max_elements, notes)]
        for r, g in zip(session.params, g_params, strict=True):
            row = fd.row(r.name, "param", r.data(), g, rng, max_elements, notes)
            if acc_notes[r.name]:
                row.note, row.passed = acc_notes[r.name], False
            rows.append(row)
    return GradcheckReport(
        module=describe(module),
        rows=rows,
        method="finite differences",
        reference="numeric",
        eps=eps,
        atol=atol,
        rtol=rtol,
        noise=fd.noise,
        notes=notes,
    )
