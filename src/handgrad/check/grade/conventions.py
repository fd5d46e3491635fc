"""The homework conventions, each adapted to an object :func:`~handgrad.check.gradcheck` checks.

This runs inside a submission's grading subprocess (``runner``). Each convention becomes an
adapter with ``forward``/``backward`` (a layer) or ``forward(x, target)``/``backward()`` (a
loss) whose parameters are the attributes ``_p0``, ``_p1``, ... and their gradients ``_g0``,
``_g1``, ...: live views, through the :class:`~handgrad.check._adapter.ParamRef`s below, of
wherever the student's code keeps them (an attribute, a ``params``/``grads`` dict, a returned
tuple, an argument of a function). ``gradcheck(adapter, x, params={'_p0': '_g0', ...})`` then
does the checking: float64, central differences, kinks flagged, not failed. The adapters check
what comes back (a tuple of the right length, every gradient present and of the right shape)
and raise :class:`GradeError` with a message in the student's names.
"""

from __future__ import annotations

import copy
import importlib.util
import random
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from handgrad.check._adapter import ParamRef, find_params
from handgrad.check.gradcheck import gradcheck
from handgrad.check.grade.spec import CheckSpec
from handgrad.check.report import GradcheckReport, TensorCheck

__all__ = ["CheckTimeout", "GradeError", "Loader", "OutputLimit", "classify", "run_check"]


class GradeError(Exception):
    """A verdict other than pass/fail, with its status (``'shape'``, ``'missing'``, ...)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# BaseExceptions, so that a student's ``except Exception`` does not swallow them
class CheckTimeout(BaseException):
    """Raised (from SIGALRM) when a check runs past its time limit."""


class OutputLimit(BaseException):
    """Raised by a print that goes past the output limit."""


# -- errors, in the student's terms -----------------------------------------------------------


_MAX_MESSAGE = 200  # characters of an exception's message kept in a row


def _first_line(e: BaseException) -> str:
    try:
        lines = str(e).strip().splitlines()
    except Exception:  # a student's exception with a broken __str__
        lines = []
    if not lines:
        return type(e).__name__
    line = lines[0] if len(lines[0]) <= _MAX_MESSAGE else lines[0][:_MAX_MESSAGE] + "..."
    return f"{type(e).__name__}: {line}"


def _where(e: BaseException, root: Path) -> str:
    """`` (layers.py:12 in affine_backward)``: the last frame in the submission, or ''."""
    root_str = str(root)
    last = None
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename.startswith(root_str):
            last = frame
    if last is None:
        return ""
    rel = Path(last.filename).relative_to(root) if last.filename != root_str else last.filename
    return f" ({rel}:{last.lineno} in {last.name})"


def _strip_who(message: str) -> str:
    """gradcheck's messages start with ``gradcheck(<adapter>): ``; the row says which check."""
    if message.startswith("gradcheck("):
        _, sep, rest = message.partition("): ")
        if sep:
            return rest
    return message


def classify(e: BaseException, root: Path, memory_mb: float) -> tuple[str, str]:
    """The status and the one-line message for what a check raised."""
    if isinstance(e, GradeError):
        return e.status, e.message
    if isinstance(e, CheckTimeout):
        return "timeout", str(e)
    if isinstance(e, OutputLimit):
        return "output", str(e)
    if isinstance(e, SystemExit):
        code = "" if e.code is None else repr(e.code)
        return "exit", f"called sys.exit({code}){_where(e, root)}; the grader caught it"
    if isinstance(e, MemoryError):
        return "memory", f"ran out of memory (limit {memory_mb:g} MB){_where(e, root)}"
    where = _where(e, root)
    if where:  # raised in the student's code
        return "error", f"raised {_first_line(e)}{where}"
    # raised by the checker about what the code returned (a float32 output, a loss that is not
    # a scalar, ...): its message is the row's
    return "error", _strip_who(_first_line(e).partition(": ")[2] or type(e).__name__)


# -- importing the submission -----------------------------------------------------------------


class Loader:
    """Imports each file of a submission once; a failure is kept and reported for every check.

    ``override`` (a single-file submission) is the file every check reads, whatever its
    ``file`` says.
    """

    def __init__(self, root: Path, override: str | None = None, memory_mb: float = 0) -> None:
        self.root, self.override, self.memory_mb = root, override, memory_mb
        self._done: dict[str, ModuleType | GradeError] = {}

    def module(self, file: str) -> ModuleType:
        file = self.override or file
        got = self._done.get(file)
        if isinstance(got, GradeError):
            raise got
        if got is not None:
            return got
        try:
            got = self._import(file)
        except GradeError as e:
            self._done[file] = e
            raise
        except BaseException as e:  # a time-out, sys.exit, ... while importing: this check
            status, message = classify(e, self.root, self.memory_mb)  # reports the original
            self._done[file] = GradeError(status, f"importing {file} failed: {message}")
            raise
        self._done[file] = got
        return got

    def _import(self, file: str) -> ModuleType:
        path = self.root / file
        if not path.is_file():
            have = sorted(p.name for p in self.root.glob("*.py"))
            raise GradeError(
                "missing",
                f"no file {file} in the submission (Python files there: "
                f"{', '.join(have) or 'none'})",
            )
        stem = path.stem
        # under its own name if free, so that `from layers import ...` in the student's other
        # files finds this module instead of importing a second copy
        name = stem if stem.isidentifier() and stem not in sys.modules else f"_submission_{stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise GradeError("import", f"cannot import {file} (is it a Python file?)")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception as e:
            sys.modules.pop(name, None)
            where = _where(e, self.root) if not isinstance(e, SyntaxError) else ""
            raise GradeError("import", f"importing {file} failed: {_first_line(e)}{where}") from e
        return mod

    def get(self, file: str, name: str, kind: str) -> Any:
        mod = self.module(file)
        if not hasattr(mod, name):
            defined = sorted(
                k
                for k, v in vars(mod).items()
                if callable(v) and getattr(v, "__module__", None) == mod.__name__
            )
            raise GradeError(
                "missing",
                f"{self.override or file} has no {kind} '{name}' (it defines: "
                f"{', '.join(defined) or 'nothing callable'})",
            )
        return getattr(mod, name)


# -- where a parameter and its gradient live ---------------------------------------------------


class _Place:
    """One storage location: ``get()`` (None when empty) and ``set(value)``."""

    def get(self) -> Any:
        raise NotImplementedError

    def set(self, value: Any) -> None:
        raise NotImplementedError


class _Cell(_Place):
    """Held by the adapter: a functional layer's argument, a returned gradient."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value

    def set(self, value: Any) -> None:
        self.value = value


class _Attr(_Place):
    """``obj.W`` (or a dotted path, ``obj.fc.W``)."""

    def __init__(self, obj: Any, path: str) -> None:
        self.obj, self.path = obj, path

    def _owner(self) -> tuple[Any, str]:
        *owners, attr = self.path.split(".")
        obj = self.obj
        for part in owners:
            obj = getattr(obj, part)
        return obj, attr

    def get(self) -> Any:
        try:
            owner, attr = self._owner()
        except AttributeError:
            return None
        return getattr(owner, attr, None)

    def set(self, value: Any) -> None:
        owner, attr = self._owner()
        setattr(owner, attr, value)


class _Item(_Place):
    """``obj.params['W']``: an entry of a dict attribute."""

    def __init__(self, obj: Any, dict_attr: str, key: str) -> None:
        self.obj, self.dict_attr, self.key = obj, dict_attr, key

    def _dict(self) -> dict:
        d = getattr(self.obj, self.dict_attr, None)
        if not isinstance(d, dict):
            got = "missing" if d is None else f"a {type(d).__name__}"
            raise GradeError("error", f"expected a dict self.{self.dict_attr}, but it is {got}")
        return d

    def get(self) -> Any:
        return self._dict().get(self.key)

    def set(self, value: Any) -> None:
        self._dict()[self.key] = value


class _Located(ParamRef):
    """A parameter whose value and gradient live in two places (see the module docstring)."""

    accumulates = False  # homework sets its gradients; only PyTorch-style .grad accumulates

    def __init__(self, name: str, data: _Place, grad: _Place) -> None:
        self.name, self._data, self._grad = name, data, grad

    def data(self) -> np.ndarray:
        return self._data.get()

    def set_data(self, value: np.ndarray) -> None:
        self._data.set(value)

    def has_grad(self) -> bool:
        return self._grad.get() is not None

    def grad(self) -> Any:
        return self._grad.get()

    def set_grad(self, value: Any) -> None:
        self._grad.set(value)


_SLOT = re.compile(r"_([pg])(\d+)")


class _Adapter:
    """gradcheck's view of a submission: parameters ``_p<i>`` and gradients ``_g<i>``."""

    def __init__(self, label: str, refs: list[ParamRef], check_input: bool = True) -> None:
        self.__dict__.update(_label=label, _refs=refs, check_input=check_input)

    def __repr__(self) -> str:
        return self._label

    def __getattr__(self, name: str) -> Any:
        m = _SLOT.fullmatch(name)
        refs = self.__dict__.get("_refs", [])
        if m is None or int(m[2]) >= len(refs):
            raise AttributeError(name)
        ref = refs[int(m[2])]
        if m[1] == "p":
            return ref.data()
        g = ref.grad() if ref.has_grad() else None
        if g is None:
            raise AttributeError(name)  # so that gradcheck sees "no gradient"
        return g

    def __setattr__(self, name: str, value: Any) -> None:
        m = _SLOT.fullmatch(name)
        if m is None:
            object.__setattr__(self, name, value)
        elif m[1] == "p":
            self._refs[int(m[2])].set_data(value)
        else:
            self._refs[int(m[2])].set_grad(value)

    @property
    def slots(self) -> dict[str, str]:
        """The ``params=`` mapping for gradcheck."""
        return {f"_p{i}": f"_g{i}" for i in range(len(self._refs))}

    def check_grads(self) -> None:
        """After backward: every parameter has a gradient of its shape (else a GradeError)."""
        for r in self._refs:
            g = r.grad() if r.has_grad() else None
            if g is None:
                raise GradeError("error", f"backward left no gradient for '{r.name}'")
            shape, want = np.shape(g), np.shape(r.data())
            if shape != want:
                raise GradeError(
                    "shape",
                    f"the gradient of '{r.name}' has shape {shape}, but '{r.name}' has shape "
                    f"{want}",
                )

    def translate(self, message: str) -> str:
        """gradcheck's names for the parameters (``'_p0'``) -> the student's."""
        for i, r in enumerate(self._refs):
            message = message.replace(f"'_p{i}'", f"'{r.name}'")
        return message


def _as_array(value: Any, what: str, want: tuple[int, ...] | None = None) -> np.ndarray:
    if value is None:
        raise GradeError("error", f"{what} is None")
    arr = np.asarray(value)
    if arr.dtype == object:
        raise GradeError("error", f"{what} is not an array (got {type(value).__name__})")
    if want is not None and arr.shape != want:
        raise GradeError("shape", f"{what} has shape {arr.shape}, expected {want}")
    return arr


def _pair(value: Any, what: str, first: str, second: str) -> tuple[Any, Any]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        got = f"a {len(value)}-tuple" if isinstance(value, (tuple, list)) else type(value).__name__
        raise GradeError("error", f"{what} must return ({first}, {second}), got {got}")
    return value[0], value[1]


# -- the conventions ---------------------------------------------------------------------------


class _Layer(_Adapter):
    """A module object: ``forward(x)``, ``backward(dout)``; gradients stored or returned."""

    def __init__(
        self,
        label: str,
        obj: Any,
        refs: list[ParamRef],
        *,
        returned: bool,
        check_input: bool,
        x: np.ndarray,
        output: tuple[int, ...] | None,
    ) -> None:
        super().__init__(label, refs, check_input)
        self.obj, self.returned, self.x_fixed, self.output = obj, returned, x, output
        self._forward = obj.forward if callable(getattr(obj, "forward", None)) else obj

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.check_input:  # gradcheck's input is a placeholder; the real one is fixed
            x = self.x_fixed.copy()
        return _as_array(self._forward(x), "forward's output", self.output)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        got = self.obj.backward(grad_out)
        if self.returned:
            got = self._take_returned(got)
        self.check_grads()
        if not self.check_input:
            return np.zeros(0)
        return _as_array(got, "backward's return value (dx)", self.x_fixed.shape)

    def _take_returned(self, got: Any) -> Any:
        """``(dx, dW, db)`` or ``(dx, {'W': dW, ...})``, without dx when the input is not
        checked: stores each gradient, returns dx (or None)."""
        names = [r.name for r in self._refs]
        got = tuple(got) if isinstance(got, (tuple, list)) else (got,)
        lead = 1 if self.check_input else 0
        grads: Any = got[lead:]
        if len(grads) == 1 and isinstance(grads[0], dict):
            d = grads[0]
            missing = [k for k in names if k not in d]
            if missing:
                raise GradeError(
                    "error", f"backward's dict of gradients has no {missing[0]!r} (has {list(d)})"
                )
            grads = [d[k] for k in names]
        if len(grads) != len(names):
            want = ", ".join(["dx"] * lead + [f"d{k}" for k in names])
            raise GradeError("error", f"backward must return ({want}), got {len(got)} value(s)")
        for r, g in zip(self._refs, grads, strict=True):
            r.set_grad(g)
        return got[0] if lead else None


class _ModuleLoss(_Adapter):
    """A loss object: ``forward(pred, target)`` returns the loss, ``backward()`` d loss/d pred."""

    def __init__(self, label: str, obj: Any, refs: list[ParamRef]) -> None:
        super().__init__(label, refs)
        self.obj = obj
        self._forward = obj.forward if callable(getattr(obj, "forward", None)) else obj

    def forward(self, x: np.ndarray, target: Any) -> Any:
        self._shape = x.shape
        return self._forward(x, target)

    def backward(self) -> np.ndarray:
        got = self.obj.backward()
        self.check_grads()
        return _as_array(got, "backward's return value (dx)", self._shape)


class _Functional(_Adapter):
    """``fwd(x, w, ..., *extra) -> (out, cache)`` and ``bwd(dout, cache) -> (dx, dw, ...)``."""

    def __init__(
        self, check: CheckSpec, fwd: Callable, bwd: Callable, arrays: list[np.ndarray]
    ) -> None:
        names = list(check.inputs)
        refs: list[ParamRef] = [
            _Located(n, _Cell(a), _Cell()) for n, a in zip(names[1:], arrays[1:], strict=True)
        ]
        super().__init__(f"{check.forward}/{check.backward}", refs)
        self.check, self.fwd, self.bwd, self.names = check, fwd, bwd, names

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        args = [x, *(r.data() for r in self._refs), *copy.deepcopy(self.check.extra_args)]
        got = self.fwd(*args, **copy.deepcopy(dict(self.check.kwargs)))
        out, self._cache = _pair(got, self.check.forward, "out", "cache")
        return _as_array(out, f"{self.check.forward}'s out", self.check.output)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        got = self.bwd(grad_out, self._cache)
        n = len(self.names)
        want = "(" + ", ".join(f"d{k}" for k in self.names) + ")"
        if n == 1 and isinstance(got, tuple) and len(got) == 1:  # (dx,)
            got = got[0]
        elif n > 1:
            if not isinstance(got, (tuple, list)) or len(got) != n:
                count = f"{len(got)} values" if isinstance(got, (tuple, list)) else "one value"
                raise GradeError("error", f"{self.check.backward} must return {want}, got {count}")
            for r, g in zip(self._refs, got[1:], strict=True):
                r.set_grad(g)
            got = got[0]
        self.check_grads()
        return _as_array(got, f"{self.check.backward}'s d{self.names[0]}", self._shape)


class _FunctionLoss(_Adapter):
    """``loss(x, y) -> (loss, dx)``."""

    def __init__(self, check: CheckSpec, fn: Callable) -> None:
        super().__init__(check.function or "loss", [])
        self.check, self.fn = check, fn

    def forward(self, x: np.ndarray, target: Any) -> Any:
        self._shape = x.shape
        args = (target, x) if self.check.target_first else (x, target)
        got = self.fn(*args, *copy.deepcopy(self.check.extra_args), **dict(self.check.kwargs))
        value, self._dx = _pair(got, self.check.function, "loss", "dx")
        return value

    def backward(self) -> np.ndarray:
        return _as_array(self._dx, f"{self.check.function}'s dx", self._shape)


# -- building and running one check ------------------------------------------------------------


def _build_object(check: CheckSpec, loader: Loader) -> Any:
    cls = loader.get(check.file, check.cls_name or "", "class")
    try:
        obj = cls(*copy.deepcopy(check.init_args), **copy.deepcopy(dict(check.init_kwargs)))
    except Exception as e:
        args = [repr(a) for a in check.init_args]
        args += [f"{k}={v!r}" for k, v in check.init_kwargs.items()]
        raise GradeError(
            "error", f"building {check.cls_name}({', '.join(args)}) failed: {_first_line(e)}"
        ) from e
    if not callable(getattr(obj, "backward", None)):
        raise GradeError("missing", f"{check.cls_name} has no backward() method")
    if not (callable(getattr(obj, "forward", None)) or callable(obj)):
        raise GradeError("missing", f"{check.cls_name} has no forward() method")
    # a handgrad-style module converts itself, buffers included (gradcheck does the rest)
    if callable(getattr(obj, "to", None)) and callable(getattr(obj, "named_parameters", None)):
        obj.to(np.float64)
    return obj


def _module_refs(check: CheckSpec, obj: Any) -> list[ParamRef]:
    """Where each parameter and its gradient live, per ``grads`` (see CheckSpec)."""
    who = check.cls_name or "module"
    if check.grads == "auto":
        return find_params(obj, True, who)
    params = check.params
    if params is None:  # every key of the parameter dict
        d = getattr(obj, check.params_dict or "params", None)
        if not isinstance(d, dict):
            raise GradeError("error", f"{who} has no dict self.{check.params_dict} of parameters")
        params = tuple((k, check.grad_name.format(name=k)) for k in d)
    refs: list[ParamRef] = []
    for name, grad in params:
        data: _Place
        if check.params_dict is not None:
            data, where = _Item(obj, check.params_dict, name), f"self.{check.params_dict}"
        else:
            data, where = _Attr(obj, name), "its attributes"
        if data.get() is None:
            raise GradeError("missing", f"{who} has no parameter {name!r} in {where}")
        place: _Place
        if check.grads == "returned":
            place = _Cell()
        elif check.grads == "dicts":
            place = _Item(obj, check.grads_dict, grad)
        else:
            place = _Attr(obj, grad)
        refs.append(_Located(name, data, place))
    for r in refs:
        d = r.data()
        if not isinstance(d, np.ndarray) or not np.issubdtype(d.dtype, np.floating):
            got = f"an array of {d.dtype}" if isinstance(d, np.ndarray) else type(d).__name__
            raise GradeError("error", f"parameter '{r.name}' must be a float array, got {got}")
    return refs


def _build(check: CheckSpec, loader: Loader, rng: np.random.Generator) -> tuple:
    """(adapter, gradcheck's x, target, the name of the input row)."""
    if check.convention == "functional":
        fwd = loader.get(check.file, check.forward or "", "function")
        bwd = loader.get(check.file, check.backward or "", "function")
        arrays = [spec.draw(rng) for spec in check.inputs.values()]
        return _Functional(check, fwd, bwd, arrays), arrays[0], None, next(iter(check.inputs))
    if check.convention == "loss":
        fn = loader.get(check.file, check.function or "", "function")
        assert check.input is not None and check.target is not None
        x, target = check.input.draw(rng), check.target.draw(rng)
        return _FunctionLoss(check, fn), x, target, "input"
    assert check.input is not None
    x = check.input.draw(rng)
    target = check.target.draw(rng) if check.target is not None else None
    obj = _build_object(check, loader)
    refs = _module_refs(check, obj)
    label = check.cls_name or "module"
    if target is not None:
        return _ModuleLoss(label, obj, refs), x, target, "input"
    layer = _Layer(
        label,
        obj,
        refs,
        returned=check.grads == "returned",
        check_input=check.check_input,
        x=x,
        output=check.output,
    )
    return layer, (x if check.check_input else np.zeros(0)), None, "input"


def _fmt_index(idx: tuple[int, ...] | None) -> str:
    if idx is None:
        return "-"
    return "(" + ", ".join(str(i) for i in idx) + ("," if len(idx) == 1 else "") + ")"


def _message(rows: list[TensorCheck], report: GradcheckReport) -> str:
    if all(r.passed for r in rows):
        kinks = sum(r.kinks for r in rows)
        n = sum(r.checked for r in rows)
        text = f"ok: {len(rows)} gradient{'s' if len(rows) != 1 else ''}, {n} elements agree"
        return text + (f"; {kinks} at kinks not compared" if kinks else "")
    parts = [
        f"wrong '{r.name}': max abs err {r.max_abs_err:.2g} at {_fmt_index(r.worst_index)}"
        f" (yours {r.analytic:.6g}, numeric {r.numeric:.6g})"
        for r in rows
        if not r.passed
    ]
    return "; ".join(parts)


def run_check(check: CheckSpec, loader: Loader) -> dict[str, Any]:
    """Build the check's adapter, gradcheck it, and return its result as a JSON-able dict.

    Raises whatever the student's code raises (and GradeError); the runner classifies it.
    """
    # independent streams for the inputs and for gradcheck's upstream gradient R: drawn from
    # one seed, R would equal an input of its shape (and x.T @ R be symmetric, so that a
    # transposed weight gradient would pass)
    inputs_seed, r_seed = np.random.SeedSequence(check.seed).spawn(2)
    # a student's constructor draws its weights from the global generators
    random.seed(check.seed)
    np.random.seed(check.seed)  # noqa: NPY002 - the global generator is what students use
    adapter, x, target, input_name = _build(check, loader, np.random.default_rng(inputs_seed))
    try:
        report = gradcheck(
            adapter,
            x,
            target,
            eps=check.eps,
            atol=check.atol,
            rtol=check.rtol,
            seed=np.random.default_rng(r_seed),
            params=adapter.slots,
            max_elements=check.max_elements,
        )
    except (TypeError, ValueError) as e:
        if _where(e, loader.root):
            raise
        raise GradeError("error", adapter.translate(_strip_who(str(e)))) from e
    names = {f"_p{i}": r.name for i, r in enumerate(adapter._refs)}
    rows = []
    for row in report:
        if row.kind == "input":
            if not adapter.check_input:
                continue
            row.name = input_name
        else:
            row.name = names.get(row.name, row.name)
        rows.append(row)
    message = _message(rows, report)
    notes = [adapter.translate(n) for n in report.notes]
    if notes:
        message += "; " + "; ".join(notes)
    return {
        "status": "pass" if all(r.passed for r in rows) else "fail",
        "message": message,
        "tensors": [r.to_dict() for r in rows],
    }
