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
from collections.abc import Callable
from typing import Any

import numpy as np

from handgrad._util import RNGLike, as_rng
from handgrad.check._adapter import (
    F64,
    AnalyticPass,
    ParamsSpec,
    Session,
    check_tolerances,
    describe,
    is_real,
    plain_arrays,
)
from handgrad.check.report import GradcheckReport, TensorCheck, compare_arrays

__all__ = ["gradcheck", "numerical_gradient"]

# Kink test (see _FiniteDifferences.probe): a smooth f has one-sided slopes that differ by
# D(s) = f''(v) s + O(s^3) for a step s, so halving the step halves D. Across a kink at distance
# d < s the difference stays of the size of the jump in slope, and D(s/2)/D(s) is far from 1/2
# for every d except d = s/3, where D(s/4)/D(s/2) is far from it instead. Within _RATIO_TOL of
# 1/2 at both halvings counts as smooth.
_RATIO_TOL = 0.2


def _check_hyper(eps: float, atol: float, rtol: float, max_elements: int | None) -> None:
    if not (is_real(eps) and eps > 0):
        raise ValueError(f"gradcheck: invalid eps {eps!r}, must be a finite number > 0")
    check_tolerances("gradcheck", atol=atol, rtol=rtol)
    if max_elements is not None and (
        isinstance(max_elements, bool)
        or not isinstance(max_elements, (int, np.integer))
        or max_elements <= 0
    ):
        raise ValueError(
            f"gradcheck: invalid max_elements {max_elements!r}, must be a positive int or None"
        )


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar function with respect to every element of ``x``.

    ``f()`` is called with no argument and must read ``x``, which is perturbed in place (and
    restored) one element at a time: ``(f(x + eps e_i) - f(x - eps e_i)) / 2 eps``. Costs
    ``2 * x.size`` calls. ``x`` should be float64. Returns an array of ``x``'s shape.

    Examples:
        >>> from handgrad.check import numerical_gradient
        >>> x = np.array([1.0, 2.0, 3.0])
        >>> numerical_gradient(lambda: float(np.sum(x**3)), x).round(6)  # 3 x^2
        array([ 3., 12., 27.])
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


def _objective(session: Session, grad_out: np.ndarray | None) -> Callable[[], float]:
    """The scalar whose gradient backward computed: the loss, or ``sum(forward(x) * R)``."""

    def f() -> float:
        out = np.asarray(session.forward())
        if session.is_loss:
            return float(out.reshape(()))
        if out.shape != grad_out.shape:
            raise ValueError(
                f"{session.who}: output shape changed from {grad_out.shape} to {out.shape} "
                "when the input was perturbed"
            )
        return float(np.sum(out * grad_out))

    return f


def _deterministic_value(objective: Callable[[], float], who: str) -> float:
    """``objective()``, which must give the same value twice: a random forward can't be checked."""
    f0, f0_again = objective(), objective()
    if abs(f0 - f0_again) > 1e-12 * max(1.0, abs(f0)):
        raise ValueError(
            f"{who}: forward is not deterministic (two calls on the same input give "
            f"{f0!r} and {f0_again!r}); call .eval() or give the layer a fixed rng"
        )
    return f0


def _accumulation_notes(
    session: Session, first: AnalyticPass, atol: float, rtol: float
) -> dict[str, str]:
    """Why a second forward/backward broke ``Parameter.grad += ...``, by parameter name.

    As in PyTorch, backward adds into ``.grad``, so a second pass must add the same again;
    gradients that backward sets (``params={'W': 'dW'}``) are not held to this.
    """
    if not any(r.accumulates for r in session.params):
        return {}
    session.forward()
    session.backward(first.grad_out)
    notes = {}
    for r, g1 in zip(session.params, first.param_grads, strict=True):
        if not r.accumulates:
            continue
        g2 = session.read_grad(r)
        if np.allclose(g2, 2 * g1, rtol=rtol, atol=atol) or np.allclose(g1, 0.0, atol=atol):
            continue
        if np.allclose(g2, g1, rtol=rtol, atol=atol):
            notes[r.name] = "backward overwrites .grad instead of adding to it (it must accumulate)"
        else:
            notes[r.name] = "a second forward/backward did not add the same gradient to .grad again"
    return notes


def _unnamed_arrays(module: Any, session: Session, params: ParamsSpec) -> list[str]:
    """A hint when a plain class keeps its weights in arrays the checker cannot find alone."""
    names = plain_arrays(module)
    if (
        params is not True
        or session.params
        or callable(getattr(module, "named_parameters", None))
        or not names
    ):
        return []
    return [
        f"no parameters found; plain arrays {', '.join(names)} were not checked: pass "
        f"params={{'{names[0]}': 'd{names[0]}', ...}} naming each array and its gradient"
    ]


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

    Examples:
        >>> from handgrad.check import gradcheck
        >>> report = gradcheck(nn.Linear(3, 2, rng=0), np.ones((4, 3)))
        >>> report.passed, [row.name for row in report]
        (True, ['input', 'weight', 'bias'])

        A loss takes its target as the third argument:

        >>> gradcheck(nn.MSELoss(), np.zeros((2, 3)), np.ones((2, 3))).passed
        True

        A hand-written layer need not subclass Module; a wrong backward is named:

        >>> class Square:
        ...     def forward(self, x):
        ...         self.x = x
        ...         return x * x
        ...
        ...     def backward(self, grad_out):
        ...         return grad_out * self.x  # forgot the 2 of d(x^2)/dx = 2x
        >>> print(gradcheck(Square(), np.array([[1.0, 2.0, 3.0]])).verdict())
        FAILED: wrong 'input' (max abs err 1.9 at (0, 2): analytic 1.92127 vs numeric 3.84254)
    """
    _check_hyper(eps, atol, rtol, max_elements)
    who = f"gradcheck({describe(module)})"
    session = Session(module, x, target, params, who)
    rng = as_rng(seed)
    notes = _unnamed_arrays(module, session, params)
    with session:
        ours = session.analytic(rng, finite=True)
        objective = _objective(session, ours.grad_out)
        f0 = _deterministic_value(objective, who)
        accumulation = _accumulation_notes(session, ours, atol, rtol)
        # the size of L's terms, which sets the rounding error of one evaluation
        scale = abs(f0) if session.is_loss else float(np.sum(np.abs(ours.out * ours.grad_out)))
        fd = _FiniteDifferences(objective, f0, scale, eps, atol, rtol)
        rows = [fd.row("input", "input", session.x, ours.input_grad, rng, max_elements, notes)]
        for r, g in zip(session.params, ours.param_grads, strict=True):
            row = fd.row(r.name, "param", r.data(), g, rng, max_elements, notes)
            if r.name in accumulation:
                row.note, row.passed = accumulation[r.name], False
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
