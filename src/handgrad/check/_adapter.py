"""Adapting any object with ``forward``/``backward`` to the checkers.

A checked object need not subclass :class:`handgrad.nn.Module`. It needs ``forward`` (or
``__call__``) and ``backward``. Its parameters are found, in this order, through
``named_parameters()``, ``parameters()``, or Parameter-like attributes (anything with an
ndarray ``.data`` and a ``.grad``); a class that keeps plain arrays (``self.W`` and
``self.dW``) names them with ``params={'W': 'dW'}``.

:class:`Session` is one check of one object on one input. It is the only place that knows how
to call the object (a layer: ``forward(x)``, ``backward(grad_out)``; a loss: ``forward(x,
target)``, ``backward()``), runs the pass both checkers start from (:meth:`Session.analytic`),
and keeps the object in float64 for the duration of the check, then puts it back: parameter
dtypes, their ``.grad`` arrays and (for handgrad modules) every buffer.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

F64 = np.dtype(np.float64)

ParamsSpec = bool | Mapping[str, str]


def describe(obj: Any) -> str:
    """A short name for messages: the repr when it is one informative line, else the class."""
    if isinstance(obj, type):
        return obj.__name__
    cls = type(obj)
    if cls.__repr__ is not object.__repr__:
        try:
            text = repr(obj)
        except Exception:  # a broken __repr__ must not hide the real error
            text = ""
        if text and "\n" not in text and len(text) <= 80:
            return text
    return cls.__name__


# -- arguments and results, checked at the boundary --------------------------------------------


def is_real(v: Any) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def check_tolerances(who: str, **tolerances: float) -> None:
    """Raise a ValueError quoting the first tolerance that is not a finite number >= 0."""
    for name, value in tolerances.items():
        if not (is_real(value) and value >= 0):
            raise ValueError(f"{who}: invalid {name} {value!r}, must be >= 0")


def _as_input(x: Any, who: str) -> np.ndarray:
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{who}: input must be a real array, got dtype {arr.dtype}")
    x64 = np.array(arr, dtype=F64, copy=True)
    if not np.isfinite(x64).all():
        raise ValueError(f"{who}: input contains non-finite values")
    return x64


def _as_target(target: Any) -> np.ndarray:
    t = np.asarray(target)
    if np.issubdtype(t.dtype, np.floating):
        return np.array(t, dtype=F64, copy=True)
    return np.array(t, copy=True)


def _loss_value(value: Any, who: str) -> np.ndarray:
    """A loss as a 0-d float64 array; float32 or non-scalar values are errors."""
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
    return np.array(float(arr.reshape(())))


def _layer_output(value: Any, who: str) -> np.ndarray:
    out = np.asarray(value)
    if out.dtype != F64:
        raise TypeError(
            f"{who}: forward returned {out.dtype} for a float64 input; gradient checks need "
            "float64 throughout (convert the layer's arrays with .astype(np.float64))"
        )
    return out


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


def _require_finite(arr: np.ndarray, what: str, who: str) -> None:
    bad = int(arr.size - np.isfinite(arr).sum())
    if bad:
        raise ValueError(f"{who}: {what} has non-finite values ({bad} of {arr.size} are nan/inf)")


# -- parameters ---------------------------------------------------------------------------------


def _resolve(root: Any, path: str) -> tuple[Any, str]:
    """``('fc.W')`` -> (root.fc, 'W')."""
    *owners, attr = path.split(".")
    obj = root
    for part in owners:
        obj = getattr(obj, part)
    return obj, attr


class ParamRef:
    """One parameter as the checker sees it: a name, a data array and a gradient."""

    name: str
    # whether the contract is "backward adds into .grad" (Parameters) or "backward sets it"
    accumulates: bool

    def data(self) -> np.ndarray:
        raise NotImplementedError

    def set_data(self, value: np.ndarray) -> None:
        raise NotImplementedError

    def grad(self) -> Any:
        raise NotImplementedError

    def set_grad(self, value: Any) -> None:
        raise NotImplementedError

    def has_grad(self) -> bool:
        return True

    def describe(self) -> str:
        return f"'{self.name}'"

    def zero_grad(self) -> None:
        g = self.grad() if self.has_grad() else None
        d = self.data()
        if isinstance(g, np.ndarray) and g.shape == d.shape and g.dtype == F64:
            g.fill(0.0)  # in place: the module may hold a reference to its .grad
        else:
            self.set_grad(np.zeros(d.shape, dtype=F64))


class ObjParam(ParamRef):
    """A Parameter-like object: ``obj.data`` and ``obj.grad``."""

    accumulates = True

    def __init__(self, name: str, obj: Any) -> None:
        self.name, self.obj = name, obj

    def data(self) -> np.ndarray:
        return self.obj.data

    def set_data(self, value: np.ndarray) -> None:
        self.obj.data = value

    def grad(self) -> Any:
        return getattr(self.obj, "grad", None)

    def set_grad(self, value: Any) -> None:
        self.obj.grad = value


class AttrParam(ParamRef):
    """A plain array attribute and the attribute backward writes its gradient to."""

    accumulates = False

    def __init__(self, root: Any, data_path: str, grad_path: str) -> None:
        self.name, self.root, self.grad_path = data_path, root, grad_path
        self._data_owner, self._data_attr = _resolve(root, data_path)

    def data(self) -> np.ndarray:
        return getattr(self._data_owner, self._data_attr)

    def set_data(self, value: np.ndarray) -> None:
        setattr(self._data_owner, self._data_attr, value)

    def has_grad(self) -> bool:
        owner, attr = _resolve(self.root, self.grad_path)
        return hasattr(owner, attr)

    def describe(self) -> str:
        return f"'{self.name}' (attribute '{self.grad_path}')"

    def zero_grad(self) -> None:
        # only an existing gradient attribute is zeroed (for code that does self.dW += ...);
        # one that backward creates must be created by backward, or the check says so
        if self.has_grad():
            super().zero_grad()

    def grad(self) -> Any:
        owner, attr = _resolve(self.root, self.grad_path)
        return getattr(owner, attr, None)

    def set_grad(self, value: Any) -> None:
        owner, attr = _resolve(self.root, self.grad_path)
        setattr(owner, attr, value)


def _is_param_like(v: Any) -> bool:
    return (
        not isinstance(v, np.ndarray)
        and isinstance(getattr(v, "data", None), np.ndarray)
        and (hasattr(v, "grad"))
    )


def _scan(obj: Any, prefix: str, seen: set[int], out: list[tuple[str, Any]]) -> None:
    """Parameter-like attributes of a plain object, recursing into sub-layers and lists."""
    for attr, val in vars(obj).items():
        items = list(enumerate(val)) if isinstance(val, (list, tuple)) else [(None, val)]
        for i, item in items:
            name = f"{prefix}{attr}" if i is None else f"{prefix}{attr}.{i}"
            if id(item) in seen:
                continue
            if _is_param_like(item):
                seen.add(id(item))
                out.append((name, item))
            elif hasattr(item, "backward") and hasattr(item, "__dict__"):
                seen.add(id(item))
                _scan(item, name + ".", seen, out)


def find_params(module: Any, params: ParamsSpec, who: str) -> list[ParamRef]:
    """The parameters a check covers (see the module docstring)."""
    if params is False:
        return []
    refs: list[ParamRef]
    if params is True:
        if callable(getattr(module, "named_parameters", None)):
            refs = [ObjParam(n, p) for n, p in module.named_parameters()]
        elif callable(getattr(module, "parameters", None)):
            refs = [ObjParam(f"param{i}", p) for i, p in enumerate(module.parameters())]
        else:
            found: list[tuple[str, Any]] = []
            if hasattr(module, "__dict__"):
                _scan(module, "", {id(module)}, found)
            refs = [ObjParam(n, p) for n, p in found]
    elif isinstance(params, Mapping):
        refs = []
        for data_path, grad_path in params.items():
            if not isinstance(data_path, str) or not isinstance(grad_path, str):
                raise TypeError(
                    f"{who}: params maps attribute names to gradient attribute names, "
                    f"e.g. {{'W': 'dW'}}; got {data_path!r}: {grad_path!r}"
                )
            try:
                refs.append(AttrParam(module, data_path, grad_path))
                refs[-1].data()
            except AttributeError:
                raise AttributeError(f"{who}: params names '{data_path}', which it lacks") from None
    else:
        raise TypeError(
            f"{who}: params must be True, False or a mapping like {{'W': 'dW'}}, got {params!r}"
        )
    for r in refs:
        d = r.data()
        if not isinstance(d, np.ndarray) or not np.issubdtype(d.dtype, np.floating):
            got = f"ndarray of {d.dtype}" if isinstance(d, np.ndarray) else type(d).__name__
            raise TypeError(
                f"{who}: parameter '{r.name}' must be a floating NumPy array, got {got}"
            )
    return refs


def plain_arrays(module: Any) -> list[str]:
    """Public float ndarray attributes (candidates a student forgot to name in ``params``)."""
    if not hasattr(module, "__dict__"):
        return []
    return [
        k
        for k, v in vars(module).items()
        if not k.startswith("_")
        and isinstance(v, np.ndarray)
        and np.issubdtype(v.dtype, np.floating)
        and v.ndim > 0
    ]


def _float_dtype_of(module: Any, refs: list[ParamRef]) -> np.dtype | None:
    """The module's working dtype before the check (to convert it back afterwards)."""
    for r in refs:
        return r.data().dtype
    if callable(getattr(module, "named_buffers", None)):
        for _, b in module.named_buffers():
            if isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.floating):
                return b.dtype
    dt = getattr(module, "dtype", None)
    try:
        dt = np.dtype(dt) if dt is not None else None
    except TypeError:
        return None
    return dt if dt is not None and np.issubdtype(dt, np.floating) else None


@dataclass
class AnalyticPass:
    """One forward and backward from zeroed gradients: what the checkers hold up to a reference.

    ``out`` is the layer's output, or the loss as a 0-d array; ``grad_out`` the upstream
    gradient given to a layer's backward (``None`` for a loss); ``input_grad`` what backward
    returned; ``param_grads`` the gradient of each of ``Session.params``, in order.
    """

    out: np.ndarray
    grad_out: np.ndarray | None
    input_grad: np.ndarray
    param_grads: list[np.ndarray]


class Session:
    """One check of ``module`` on the input ``x`` (and ``target``, for a loss).

    Inside ``with`` the module runs in float64; on exit its dtypes, parameter values, ``.grad``
    arrays and buffers are put back. ``x`` is kept as a float64 copy, ``self.x``, which
    finite differences perturb in place; every call gets a fresh copy of it.
    """

    def __init__(self, module: Any, x: Any, target: Any, params: ParamsSpec, who: str) -> None:
        if isinstance(module, type):
            raise TypeError(
                f"{who}: got the class {module.__name__}; pass an instance, "
                f"e.g. {module.__name__}()"
            )
        if not (callable(module) or callable(getattr(module, "forward", None))):
            raise TypeError(f"{who}: {type(module).__name__} has no forward() method")
        if not callable(getattr(module, "backward", None)):
            raise TypeError(f"{who}: {type(module).__name__} has no backward() method")
        self.module = module
        self.who = who
        # __call__ is preferred when it exists: it is what users call
        self._call: Callable[..., Any] = module if callable(module) else module.forward
        self.params = find_params(module, params, who)
        self.x = _as_input(x, who)
        self.target = None if target is None else _as_target(target)

    @property
    def is_loss(self) -> bool:
        """A loss is given a target and returns a scalar; a layer returns an array."""
        return self.target is not None

    # -- the one place that knows how to call a layer and a loss -------------------------------

    def forward(self) -> Any:
        """``module(x)`` for a layer, ``module(x, target)`` for a loss, on a copy of ``x``."""
        if self.is_loss:
            return self._call(self.x.copy(), self.target)
        try:
            return self._call(self.x.copy())
        except TypeError as e:
            if hasattr(e, "add_note"):  # Python >= 3.11
                e.add_note(f"{self.who}: if this module is a loss, pass target=")
            raise

    def backward(self, grad_out: np.ndarray | None) -> Any:
        """``backward(grad_out)`` (a copy) for a layer, ``backward()`` for a loss."""
        if self.is_loss:
            return self.module.backward()
        return self.module.backward(grad_out.copy())

    def analytic(self, rng: np.random.Generator, *, finite: bool) -> AnalyticPass:
        """Zero the gradients, run forward and backward once, and collect what came back.

        A layer's upstream gradient is standard normal from ``rng``. Raises a one-line error
        for a malformed result (not float64, a loss that is not a scalar, a missing or
        wrongly shaped gradient); with ``finite``, also for nan or inf (finite differences
        need finite values; PyTorch parity reports them as mismatches instead).
        """
        who = self.who
        self.zero_grads()
        raw = self.forward()
        if self.is_loss:
            out = _loss_value(raw, who)
            if finite and not math.isfinite(out):
                raise ValueError(f"{who}: forward returned a non-finite loss {float(out)}")
            grad_out = None
        else:
            out = _layer_output(raw, who)
            if finite:
                _require_finite(out, "forward output", who)
            grad_out = rng.standard_normal(out.shape)
        input_grad = _input_grad(self.backward(grad_out), self.x.shape, who)
        if finite:
            _require_finite(input_grad, "the input gradient from backward", who)
        param_grads = [self.read_grad(r) for r in self.params]
        if finite:
            for r, g in zip(self.params, param_grads, strict=True):
                _require_finite(g, f"the gradient of '{r.name}'", who)
        return AnalyticPass(out, grad_out, input_grad, param_grads)

    # -- float64 for the duration of the check ---------------------------------------------------

    def __enter__(self) -> Session:
        m = self.module
        self._state = None
        if callable(getattr(m, "state_dict", None)) and callable(
            getattr(m, "load_state_dict", None)
        ):
            self._state = {k: np.array(v, copy=True) for k, v in m.state_dict().items()}
        self._saved = []
        for r in self.params:
            g = r.grad() if r.has_grad() else None
            self._saved.append(
                (r, r.data().dtype, r.has_grad(), g.copy() if isinstance(g, np.ndarray) else g)
            )
        self._to_dtype = None
        if (
            callable(getattr(m, "to", None))
            and callable(getattr(m, "named_parameters", None))
            and not self._all_float64()
        ):
            # (a module already in float64 is left alone, so its arrays keep their identity)
            self._to_dtype = _float_dtype_of(m, self.params)
            m.to(np.float64)
            # the Parameter objects may have been replaced by .to(): look them up again
            if any(isinstance(r, ObjParam) for r in self.params):
                self.params = find_params(m, True, self.who)
                pairs = zip(self.params, self._saved, strict=True)
                self._saved = [(r, dt, has, g) for r, (_, dt, has, g) in pairs]
        for r in self.params:
            if r.data().dtype != F64:
                r.set_data(r.data().astype(F64))
        return self

    def __exit__(self, *exc: Any) -> None:
        m = self.module
        if self._to_dtype is not None and self._to_dtype != F64:
            m.to(self._to_dtype)
        for r, dtype, had_grad, g in self._saved:
            if r.data().dtype != dtype:
                r.set_data(r.data().astype(dtype))
            if not had_grad:
                continue
            current = r.grad()
            if (
                isinstance(g, np.ndarray)
                and isinstance(current, np.ndarray)
                and current.shape == g.shape
                and current.dtype == g.dtype
            ):
                np.copyto(current, g)  # in place: others may hold this array
            else:
                r.set_grad(g)
        if self._state is not None:
            m.load_state_dict(self._state)

    def _all_float64(self) -> bool:
        if any(r.data().dtype != F64 for r in self.params):
            return False
        if callable(getattr(self.module, "named_buffers", None)):
            for _, b in self.module.named_buffers():
                if isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.floating):
                    if b.dtype != F64:
                        return False
        dt = _float_dtype_of(self.module, [])  # e.g. a parameterless layer's .dtype
        return dt is None or dt == F64

    def zero_grads(self) -> None:
        for r in self.params:
            r.zero_grad()

    def read_grad(self, r: ParamRef) -> np.ndarray:
        """A float64 copy of a parameter's gradient, validated against its data's shape."""
        g = r.grad() if r.has_grad() else None
        what = r.describe()
        if g is None:
            raise ValueError(f"{self.who}: backward left no gradient for {what}")
        g = np.asarray(g)
        if g.shape != r.data().shape:
            raise ValueError(
                f"{self.who}: gradient of {what} has shape {g.shape}, "
                f"but the parameter has shape {r.data().shape}"
            )
        return np.array(g, dtype=F64, copy=True)
