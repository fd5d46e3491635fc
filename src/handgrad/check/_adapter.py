"""Adapting any object with ``forward``/``backward`` to the checkers.

A checked object need not subclass :class:`handgrad.nn.Module`. It needs ``forward`` (or
``__call__``) and ``backward``. Its parameters are found, in this order, through
``named_parameters()``, ``parameters()``, or Parameter-like attributes (anything with an
ndarray ``.data`` and a ``.grad``); a class that keeps plain arrays (``self.W`` and
``self.dW``) names them with ``params={'W': 'dW'}``.

:class:`Session` runs the object in float64 for the duration of a check and then puts it back:
parameter dtypes, their ``.grad`` arrays and (for handgrad modules) every buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


class Session:
    """Run ``module`` in float64 inside ``with``; restore dtypes, grads and buffers on exit."""

    def __init__(self, module: Any, params: ParamsSpec, who: str) -> None:
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
        self.forward: Callable[..., Any] = module if callable(module) else module.forward
        self.params = find_params(module, params, who)

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
