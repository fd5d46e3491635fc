"""The grading spec: a TOML file that says what to check in every submission, and how.

A ``[grade]`` table holds the defaults and the limits, and each ``[[check]]`` table one
function or class: its convention, the file it lives in, the shapes of its inputs, the
tolerances and the points. Every key is validated when the spec is loaded, so a typo fails at
once, naming the check, the key and the valid ones (docs/grading.md lists them all).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArraySpec", "CheckSpec", "GradeSpec", "SpecError", "load_spec"]


class SpecError(ValueError):
    """A spec that cannot be used; the message names the file, the check and the key.

    Examples:
        >>> from handgrad.check.grade import GradeSpec, SpecError
        >>> try:
        ...     GradeSpec.from_dict({"grade": {"timeout": 0}, "check": []}, source="hw.toml")
        ... except SpecError as e:
        ...     print(e)
        hw.toml: [grade]: 'timeout' must be > 0, got 0
    """


CONVENTIONS = ("module", "functional", "loss", "mlp")
INITS = ("normal", "uniform", "softmax", "onehot", "labels")
GRADS = ("auto", "attributes", "dicts", "returned")
INT_DTYPES = ("int64", "int32")

# the keys of [grade]; the check defaults among them may be repeated in each [[check]]
CHECK_DEFAULTS = {
    "file": None,
    "points": 1.0,
    "partial": False,
    "timeout": 10.0,
    "seed": 0,
    "eps": 1e-6,
    # tighter than gradcheck's 1e-5 / 1e-3 (PyTorch's), so that a gradient off by 0.1% fails
    "atol": 1e-6,
    "rtol": 1e-4,
    "max_elements": None,
}
GRADE_KEYS = {"title", "submission_timeout", "memory_mb", "max_output_kb", *CHECK_DEFAULTS}
COMMON_KEYS = {"name", "convention", *CHECK_DEFAULTS}
MODULE_KEYS = {
    "class",
    "init_args",
    "init_kwargs",
    "input",
    "target",
    "output",
    "params",
    "params_dict",
    "grads",
    "grads_dict",
    "grad_name",
    "check_input",
}
KEYS = {
    "module": COMMON_KEYS | MODULE_KEYS,
    "mlp": COMMON_KEYS | MODULE_KEYS,
    "functional": COMMON_KEYS | {"forward", "backward", "inputs", "output", "extra_args", "kwargs"},
    "loss": COMMON_KEYS | {"function", "input", "target", "target_first", "extra_args", "kwargs"},
}
ARRAY_KEYS = {"shape", "init", "scale", "low", "high", "classes", "zeros", "dtype"}


def _fmt_keys(keys: Any) -> str:
    return ", ".join(sorted(keys))


def _grad_location(name: str, grad_name: str, grads: str) -> str:
    """Where the gradient of parameter ``name`` is: ``'W'`` -> ``'dW'``, and for a dotted
    attribute path on the last part, ``'fc1.W'`` -> ``'fc1.dW'`` (dict keys are taken whole)."""
    if grads != "attributes":
        return grad_name.format(name=name)
    owner, dot, attr = name.rpartition(".")
    return owner + dot + grad_name.format(name=attr)


@dataclass(frozen=True)
class ArraySpec:
    """How to draw one array: a shape and a distribution.

    ``init`` is ``'normal'`` (``scale`` times standard normal), ``'uniform'`` (in
    ``[low, high)``), ``'softmax'`` (rows along the last axis that are positive and sum to 1,
    like a Softmax output), ``'onehot'`` (one 1 per row along the last axis) or ``'labels'``
    (integers in ``[0, classes)``). ``zeros`` is the fraction of elements then set to exactly
    0, to put inputs on the kink of a ReLU.

    Examples:
        >>> from handgrad.check.grade import ArraySpec
        >>> spec = ArraySpec((2, 3), init="onehot")
        >>> spec.draw(np.random.default_rng(0)).sum(axis=1).tolist()
        [1.0, 1.0]
    """

    shape: tuple[int, ...]
    init: str = "normal"
    scale: float = 1.0
    low: float = 0.0
    high: float = 1.0
    classes: int | None = None
    zeros: float = 0.0
    dtype: str = "float64"

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        shape = self.shape
        if self.init == "normal":
            arr = self.scale * rng.standard_normal(shape)
        elif self.init == "uniform":
            arr = rng.uniform(self.low, self.high, size=shape)
        elif self.init == "softmax":
            z = rng.standard_normal(shape)
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            arr = e / e.sum(axis=-1, keepdims=True)
        elif self.init == "onehot":
            labels = rng.integers(0, shape[-1], size=shape[:-1])
            arr = np.eye(shape[-1])[labels]
        else:  # labels
            assert self.classes is not None
            arr = rng.integers(0, self.classes, size=shape)
        if self.zeros:
            arr = np.where(rng.uniform(size=shape) < self.zeros, 0, arr)
        return np.asarray(arr).astype(self.dtype)


@dataclass(frozen=True)
class CheckSpec:
    """One ``[[check]]`` of the spec, validated, with the ``[grade]`` defaults filled in.

    Which fields matter depends on ``convention`` (see docs/grading.md):

    - ``'module'``: ``cls_name(*init_args, **init_kwargs)``, then ``forward(input)`` and
      ``backward(dout)``; parameter gradients per ``grads``; a ``target`` makes it a loss
      (``forward(input, target)``, ``backward()``).
    - ``'mlp'``: a module whose ``backward(dJdy_hat)`` fills a ``grads`` dict (``'dJdW1'``)
      for a ``parameters`` dict (``'W1'``); by default its input gradient is not checked.
    - ``'functional'``: ``forward(*inputs, *extra_args, **kwargs) -> (out, cache)`` and
      ``backward(dout, cache) -> (dx, dw, ...)``, one gradient per input, in order.
    - ``'loss'``: ``function(input, target, *extra_args, **kwargs) -> (loss, dx)``.

    Examples:
        >>> from handgrad.check.grade import GradeSpec
        >>> spec = GradeSpec.from_dict(
        ...     {"check": [{"name": "relu", "convention": "functional", "file": "layers.py",
        ...                 "forward": "relu_forward", "backward": "relu_backward",
        ...                 "inputs": {"x": [4, 5]}}]}
        ... )
        >>> check = spec.checks[0]
        >>> check.name, list(check.inputs), check.inputs["x"].shape, check.rtol
        ('relu', ['x'], (4, 5), 0.0001)
    """

    name: str
    convention: str
    file: str
    points: float = 1.0
    partial: bool = False
    timeout: float = 10.0
    seed: int = 0
    eps: float = 1e-6
    atol: float = 1e-6
    rtol: float = 1e-4
    max_elements: int | None = None
    # module / mlp
    cls_name: str | None = None
    init_args: tuple[Any, ...] = ()
    init_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # (name, gradient location) pairs, in order; None: found automatically
    params: tuple[tuple[str, str], ...] | None = None
    params_dict: str | None = None
    grads: str = "auto"
    grads_dict: str = "grads"
    grad_name: str = "{name}"
    check_input: bool = True
    # functional
    forward: str | None = None
    backward: str | None = None
    inputs: Mapping[str, ArraySpec] = field(default_factory=dict)
    extra_args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    # loss
    function: str | None = None
    target_first: bool = False
    # module, mlp, loss: the input; a loss's target; the expected output shape (optional)
    input: ArraySpec | None = None
    target: ArraySpec | None = None
    output: tuple[int, ...] | None = None

    @property
    def names(self) -> list[str]:
        """The names this check loads from the file."""
        if self.convention == "functional":
            return [self.forward, self.backward]  # type: ignore[list-item]
        if self.convention == "loss":
            return [self.function]  # type: ignore[list-item]
        return [self.cls_name]  # type: ignore[list-item]


@dataclass(frozen=True)
class GradeSpec:
    """A whole spec: the checks, in order, and the limits every submission runs under.

    ``timeout`` is per check (in each :class:`CheckSpec`); ``submission_timeout`` bounds one
    submission's process in wall-clock time (default: the checks' timeouts plus 10 s), and is
    also its CPU-time limit; ``memory_mb`` is the memory its code may take on top of the
    grader's own; ``max_output_kb`` caps what it prints, per check. ``raw`` is the dict it was
    built from (what the grading subprocess is given).

    Examples:
        >>> from handgrad.check.grade import GradeSpec, SpecError
        >>> spec = GradeSpec.from_dict({
        ...     "grade": {"title": "HW 2", "file": "layers.py", "timeout": 5},
        ...     "check": [{"name": "loss", "convention": "loss", "function": "softmax_loss",
        ...                "input": [4, 3], "target": {"shape": [4], "init": "labels",
        ...                                            "classes": 3}}],
        ... })
        >>> spec.title, spec.submission_timeout, spec.total_points
        ('HW 2', 15.0, 1.0)
        >>> try:
        ...     GradeSpec.from_dict({"check": [{"name": "a", "convention": "modul"}]})
        ... except SpecError as e:
        ...     print(e)
        spec: check 'a': unknown convention 'modul'; valid: module, functional, loss, mlp
    """

    checks: tuple[CheckSpec, ...]
    title: str = "Grades"
    submission_timeout: float = 60.0
    memory_mb: float = 1024.0
    max_output_kb: float = 1024.0
    source: str = "spec"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def total_points(self) -> float:
        return float(sum(c.points for c in self.checks))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "spec") -> GradeSpec:
        """Validate a parsed spec (what ``tomllib`` returns) and fill in the defaults."""
        return _Parser(source).spec(raw)


def load_spec(path: str | Path) -> GradeSpec:
    r"""Read and validate a grading spec from a TOML file.

    Raises FileNotFoundError for a missing file and :class:`SpecError` (a ValueError) for
    invalid TOML or an invalid spec, with a one-line message.

    Examples:
        >>> from handgrad.check.grade import load_spec
        >>> import pathlib, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> path = pathlib.Path(folder.name, "hw.toml")
        >>> _ = path.write_text(
        ...     '[grade]\nfile = "layers.py"\n\n'
        ...     '[[check]]\nname = "affine"\nconvention = "functional"\n'
        ...     'forward = "affine_forward"\nbackward = "affine_backward"\n'
        ...     'inputs = { x = [4, 5], w = [5, 3], b = [3] }\npoints = 10\n'
        ... )
        >>> spec = load_spec(path)
        >>> [(c.name, c.file, list(c.inputs), c.points) for c in spec.checks]
        [('affine', 'layers.py', ['x', 'w', 'b'], 10.0)]
        >>> _ = path.write_text('[[check]]\nname = "affine"\nconvention = "functional"\n'
        ...                     'file = "layers.py"\nforward = "f"\nbackward = "b"\n'
        ...                     'inptus = { x = [4, 5] }\n')
        >>> try:
        ...     load_spec(path)
        ... except ValueError as e:  # a SpecError
        ...     print(e)  # doctest: +ELLIPSIS
        hw.toml: check 'affine': unknown key 'inptus'; valid: atol, ..., inputs, ...
        >>> folder.cleanup()
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grade: no spec file '{path}'")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path.name}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path.name}: not a UTF-8 text file") from None
    return _Parser(path.name).spec(raw)


class _Parser:
    """Validation with messages that say where: ``hw.toml: check 'affine': ...``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.where = source

    def fail(self, message: str) -> SpecError:
        return SpecError(f"{self.where}: {message}")

    # -- scalars -----------------------------------------------------------------------------

    def string(self, table: Mapping[str, Any], key: str, default: Any = ...) -> Any:
        if key not in table:
            if default is ...:
                raise self.fail(f"missing key '{key}'")
            return default
        v = table[key]
        if not isinstance(v, str) or not v.strip():
            raise self.fail(f"'{key}' must be a non-empty string, got {v!r}")
        return v

    def identifier(self, table: Mapping[str, Any], key: str, default: Any = ...) -> Any:
        v = self.string(table, key, default)
        if isinstance(v, str) and not all(p.isidentifier() for p in v.split(".")):
            raise self.fail(f"'{key}' must be a Python name, got {v!r}")
        return v

    def number(
        self, table: Mapping[str, Any], key: str, default: float, *, positive: bool = False
    ) -> float:
        v = table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(f"'{key}' must be a number, got {v!r}")
        if v < 0 or (positive and v == 0):
            raise self.fail(f"'{key}' must be {'> 0' if positive else '>= 0'}, got {v!r}")
        return float(v)

    def integer(self, table: Mapping[str, Any], key: str, default: Any, minimum: int = 0) -> Any:
        v = table.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(f"'{key}' must be an integer >= {minimum}, got {v!r}")
        return v

    def boolean(self, table: Mapping[str, Any], key: str, default: bool) -> bool:
        v = table.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(f"'{key}' must be true or false, got {v!r}")
        return v

    def choice(self, table: Mapping[str, Any], key: str, choices: tuple[str, ...], default: Any):
        v = table.get(key, default)
        if v not in choices:
            raise self.fail(f"unknown {key} {v!r}; valid: {', '.join(choices)}")
        return v

    def keys(self, table: Any, valid: set[str], what: str) -> None:
        if not isinstance(table, Mapping):
            raise self.fail(f"{what} must be a table, got {table!r}")
        for key in table:
            if key not in valid:
                raise self.fail(f"unknown key '{key}'; valid: {_fmt_keys(valid)}")

    # -- arrays ------------------------------------------------------------------------------

    def shape(self, value: Any, key: str) -> tuple[int, ...]:
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in value)
        ):
            raise self.fail(
                f"'{key}' must be a shape like [4, 5] (positive integers), got {value!r}"
            )
        return tuple(value)

    def array(self, value: Any, key: str, *, checked: bool) -> ArraySpec:
        """``[4, 5]`` or ``{shape = [4, 5], init = ..., ...}``; a checked input is float64."""
        if isinstance(value, list):
            return ArraySpec(self.shape(value, key))
        if not isinstance(value, Mapping):
            raise self.fail(f"'{key}' must be a shape like [4, 5] or a table, got {value!r}")
        outer = self.where
        self.where = f"{outer}: '{key}'"
        try:
            self.keys(value, ARRAY_KEYS, key)
            if "shape" not in value:
                raise self.fail("missing key 'shape'")
            shape = self.shape(value["shape"], "shape")
            init = self.choice(value, "init", INITS, "normal")
            classes = self.integer(value, "classes", None, minimum=1)
            if init == "labels" and classes is None:
                raise self.fail("init = 'labels' needs 'classes' (labels are in [0, classes))")
            zeros = self.number(value, "zeros", 0.0)
            if zeros > 1:
                raise self.fail(f"'zeros' is a fraction in [0, 1], got {zeros!r}")
            if init == "labels":
                if checked:
                    raise self.fail("init = 'labels' is for targets; a checked input is float64")
                dtype = self.choice(value, "dtype", INT_DTYPES, "int64")
            else:  # gradient checks run in float64 (gradcheck makes float targets float64 too)
                dtype = self.choice(value, "dtype", ("float64",), "float64")
            low = self.signed(value, "low", 0.0)
            high = self.signed(value, "high", 1.0)
            if init == "uniform" and not low < high:
                raise self.fail(f"'low' must be below 'high', got {low!r} and {high!r}")
            return ArraySpec(
                shape=shape,
                init=init,
                scale=self.number(value, "scale", 1.0),
                low=low,
                high=high,
                classes=classes,
                zeros=zeros,
                dtype=dtype,
            )
        finally:
            self.where = outer

    def signed(self, table: Mapping[str, Any], key: str, default: float) -> float:
        v = table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(f"'{key}' must be a number, got {v!r}")
        return float(v)

    # -- tables ------------------------------------------------------------------------------

    def spec(self, raw: Any) -> GradeSpec:
        self.keys(raw, {"grade", "check"}, "the spec")
        grade = raw.get("grade", {})
        self.where = f"{self.source}: [grade]"
        self.keys(grade, GRADE_KEYS, "[grade]")
        defaults = self.defaults(grade, dict(CHECK_DEFAULTS))
        title = self.string(grade, "title", "Grades")
        memory_mb = self.number(grade, "memory_mb", 1024.0, positive=True)
        max_output_kb = self.number(grade, "max_output_kb", 1024.0, positive=True)
        tables = raw.get("check")
        self.where = self.source
        if not isinstance(tables, list) or not tables:
            raise self.fail("no checks: add at least one [[check]] table")
        checks = []
        for i, table in enumerate(tables):
            name = table.get("name") if isinstance(table, Mapping) else None
            self.where = f"{self.source}: check {f'{name!r}' if name else f'#{i + 1}'}"
            checks.append(self.check(table, defaults))
        seen: set[str] = set()
        for c in checks:
            if c.name in seen:
                self.where = self.source
                raise self.fail(f"two checks are named {c.name!r}; names must be unique")
            seen.add(c.name)
        self.where = f"{self.source}: [grade]"
        # the whole process's time: every check's limit, plus a margin for starting Python
        submission_timeout = self.number(
            grade, "submission_timeout", sum(c.timeout for c in checks) + 10.0, positive=True
        )
        return GradeSpec(
            checks=tuple(checks),
            title=title,
            submission_timeout=submission_timeout,
            memory_mb=memory_mb,
            max_output_kb=max_output_kb,
            source=self.source,
            raw=raw,
        )

    def defaults(self, table: Mapping[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        if "file" in table:
            out["file"] = self.string(table, "file")
        out["points"] = self.number(table, "points", base["points"])
        out["partial"] = self.boolean(table, "partial", base["partial"])
        out["timeout"] = self.number(table, "timeout", base["timeout"], positive=True)
        out["seed"] = self.integer(table, "seed", base["seed"])
        out["eps"] = self.number(table, "eps", base["eps"], positive=True)
        out["atol"] = self.number(table, "atol", base["atol"])
        out["rtol"] = self.number(table, "rtol", base["rtol"])
        out["max_elements"] = self.integer(table, "max_elements", base["max_elements"], 1)
        return out

    def check(self, table: Any, defaults: dict[str, Any]) -> CheckSpec:
        if not isinstance(table, Mapping):
            raise self.fail(f"a [[check]] must be a table, got {table!r}")
        name = self.string(table, "name")
        convention = table.get("convention")
        if convention is None:
            raise self.fail(f"missing key 'convention' (one of {', '.join(CONVENTIONS)})")
        if convention not in CONVENTIONS:
            raise self.fail(f"unknown convention {convention!r}; valid: {', '.join(CONVENTIONS)}")
        self.keys(table, KEYS[convention], "a check")
        common = self.defaults(table, defaults)
        if common["file"] is None:
            raise self.fail("missing key 'file' (the file in each submission, e.g. 'layers.py')")
        kw: dict[str, Any] = {"name": name, "convention": convention, **common}
        if convention in ("module", "mlp"):
            kw.update(self.module(table, convention))
        elif convention == "functional":
            kw.update(self.functional(table))
        else:
            kw.update(self.loss(table))
        return CheckSpec(**kw)

    def call_args(self, table: Mapping[str, Any], args_key: str, kwargs_key: str) -> dict:
        args = table.get(args_key, [])
        if not isinstance(args, list):
            raise self.fail(f"'{args_key}' must be a list, got {args!r}")
        kwargs = table.get(kwargs_key, {})
        if not isinstance(kwargs, Mapping):
            raise self.fail(f"'{kwargs_key}' must be a table, got {kwargs!r}")
        return {args_key: tuple(args), kwargs_key: dict(kwargs)}

    def output(self, table: Mapping[str, Any]) -> dict:
        return {"output": self.shape(table["output"], "output") if "output" in table else None}

    def module(self, table: Mapping[str, Any], convention: str) -> dict[str, Any]:
        mlp = convention == "mlp"
        kw: dict[str, Any] = {"cls_name": self.identifier(table, "class")}
        kw.update(self.call_args(table, "init_args", "init_kwargs"))
        if "input" not in table:
            raise self.fail("missing key 'input' (its shape, e.g. [4, 5])")
        kw["input"] = self.array(table["input"], "input", checked=True)
        if "target" in table:
            kw["target"] = self.array(table["target"], "target", checked=False)
        kw.update(self.output(table))
        kw["check_input"] = self.boolean(table, "check_input", not mlp)
        params = table.get("params")
        default_grads = "dicts" if mlp else ("auto" if params is None else "attributes")
        if params is not None and ("params_dict" in table or "grads_dict" in table) and not mlp:
            default_grads = "dicts"
        grads = self.choice(table, "grads", GRADS, default_grads)
        if grads == "auto" and params is not None:
            raise self.fail("'params' names parameters, so 'grads' cannot be 'auto'")
        kw["grads"] = grads
        default_dict = ("parameters" if mlp else "params") if grads == "dicts" else None
        kw["params_dict"] = self.identifier(table, "params_dict", default_dict)
        kw["grads_dict"] = self.identifier(table, "grads_dict", "grads")
        default_name = {"attributes": "d{name}", "dicts": "dJd{name}" if mlp else "{name}"}
        grad_name = self.string(table, "grad_name", default_name.get(grads, "{name}"))
        if "{name}" not in grad_name:
            raise self.fail(
                f"'grad_name' must contain {{name}}, e.g. 'd{{name}}', got {grad_name!r}"
            )
        kw["grad_name"] = grad_name
        if params is None:
            if grads in ("attributes", "returned"):
                raise self.fail(
                    f"grads = '{grads}' needs 'params', the parameter names, e.g. ['W', 'b']"
                )
            kw["params"] = None  # auto: found on the object; dicts: every key of the dict
        elif isinstance(params, list):
            if not params or not all(isinstance(p, str) and p for p in params):
                raise self.fail(f"'params' must be a list of names, got {params!r}")
            kw["params"] = tuple((p, _grad_location(p, grad_name, grads)) for p in params)
        elif isinstance(params, Mapping):
            if not params or not all(isinstance(v, str) and v for v in params.values()):
                raise self.fail(f"'params' must map names to gradient names, got {params!r}")
            kw["params"] = tuple(params.items())
        else:
            raise self.fail(f"'params' must be a list of names or a table, got {params!r}")
        if kw["params"] is not None and len({p for p, _ in kw["params"]}) != len(kw["params"]):
            raise self.fail(f"'params' names a parameter twice: {params!r}")
        return kw

    def functional(self, table: Mapping[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "forward": self.identifier(table, "forward"),
            "backward": self.identifier(table, "backward"),
        }
        inputs = table.get("inputs")
        if not isinstance(inputs, Mapping) or not inputs:
            raise self.fail(
                "'inputs' must be a table of the differentiated arguments in order, "
                "e.g. { x = [4, 5], w = [5, 3], b = [3] }"
            )
        kw["inputs"] = {k: self.array(v, k, checked=True) for k, v in inputs.items()}
        kw.update(self.call_args(table, "extra_args", "kwargs"))
        kw.update(self.output(table))
        return kw

    def loss(self, table: Mapping[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {"function": self.identifier(table, "function")}
        for key in ("input", "target"):
            if key not in table:
                raise self.fail(f"missing key '{key}'")
        kw["input"] = self.array(table["input"], "input", checked=True)
        kw["target"] = self.array(table["target"], "target", checked=False)
        kw["target_first"] = self.boolean(table, "target_first", False)
        kw.update(self.call_args(table, "extra_args", "kwargs"))
        return kw
