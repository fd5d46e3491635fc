"""Checking a layer that lives in a file: ``handgrad check my_layer.py:MyReLU --input-shape 4,5``.

:func:`load_object` imports ``path/to/file.py:Name``; :func:`check_file` builds it with no
arguments, draws a random float64 input of the given shape and runs :func:`gradcheck`. Every
failure is one line that says what to fix, for the command line to print.

:func:`check_file_isolated` (what ``handgrad check`` runs) does the same in a child process with
a time limit, because the user's file is arbitrary code: it may call ``sys.exit`` or
``os._exit`` on import, raise, crash the interpreter, or never return. Each of these is then a
failing check with a one-line reason (:class:`CheckFailed`), not a silent exit 0 or a hang.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handgrad._util import as_rng
from handgrad.check.gradcheck import gradcheck
from handgrad.check.report import GradcheckReport

__all__ = [
    "DEFAULT_TIMEOUT",
    "CheckFailed",
    "IsolatedCheck",
    "UserCodeError",
    "build_object",
    "check_file",
    "check_file_isolated",
    "load_object",
    "parse_shape",
]

DEFAULT_TIMEOUT = 300.0  # seconds for the whole isolated check: import, build, gradcheck


class UserCodeError(ImportError):
    """Importing the user's file failed: it raised, or called ``sys.exit``."""


class CheckFailed(Exception):
    """The user's file failed while the check imported or ran it (an exception, ``sys.exit``,
    a crash, or the time limit): the check fails with this one-line reason."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def load_object(spec: str) -> Any:
    r"""Import and return the object ``Name`` from ``'path/to/file.py:Name'``.

    The file's folder is on ``sys.path`` while it is imported, so it may import its neighbours.

    Raises:
        ValueError: ``spec`` is not of the form ``path.py:Name``.
        FileNotFoundError: no such file.
        ImportError: importing the file failed (the first line of the cause is quoted).
        ImportError: the file defines no ``Name`` (the classes it does define are listed).

    Examples:
        >>> from handgrad.check import load_object
        >>> import pathlib, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> path = pathlib.Path(folder.name, "my_layer.py")
        >>> _ = path.write_text(
        ...     "import numpy as np\n"
        ...     "class MyTanh:\n"
        ...     "    def forward(self, x):\n"
        ...     "        self.out = np.tanh(x)\n"
        ...     "        return self.out\n"
        ...     "    def backward(self, grad_out):\n"
        ...     "        return grad_out * (1 - self.out**2)\n"
        ... )
        >>> load_object(f"{path}:MyTanh").__name__
        'MyTanh'
        >>> load_object(f"{path}:MyReLU")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ImportError: check: '...my_layer.py' has no 'MyReLU'; classes defined there: MyTanh
        >>> folder.cleanup()
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"check: expected 'path/to/file.py:ClassName', got {spec!r}")
    # rpartition: a Windows drive letter ('C:\\...') keeps its colon
    path_str, _, name = spec.rpartition(":")
    if not path_str or not name.isidentifier():
        raise ValueError(f"check: expected 'path/to/file.py:ClassName', got {spec!r}")
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"check: no such file '{path_str}'")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    mod_name = f"_handgrad_check_{digest}_{''.join(c if c.isalnum() else '_' for c in path.stem)}"
    mspec = importlib.util.spec_from_file_location(mod_name, resolved)
    if mspec is None or mspec.loader is None:
        raise ImportError(f"check: cannot import '{path_str}' (is it a Python file?)")
    mod = importlib.util.module_from_spec(mspec)
    folder = str(resolved.parent)
    sys.modules[mod_name] = mod  # dataclasses and pickling look the module up here
    sys.path.insert(0, folder)
    try:
        mspec.loader.exec_module(mod)
    except SystemExit as e:  # not an Exception, but as much a failure of the import
        sys.modules.pop(mod_name, None)
        raise UserCodeError(
            f"check: importing '{path_str}' called sys.exit({e.code!r}), so its classes were "
            'never defined; move that call under `if __name__ == "__main__":`'
        ) from e
    except Exception as e:
        sys.modules.pop(mod_name, None)
        raise UserCodeError(f"check: importing '{path_str}' failed: {_first_line(e)}") from e
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    if not hasattr(mod, name):
        classes = sorted(
            k for k, v in vars(mod).items() if isinstance(v, type) and v.__module__ == mod_name
        )
        # ImportError, as for Python's own "from module import Name"
        raise ImportError(
            f"check: '{path_str}' has no '{name}'; classes defined there: "
            f"{', '.join(classes) or 'none'}"
        )
    return getattr(mod, name)


def build_object(obj: Any, name: str | None = None) -> Any:
    """An instance from a class or factory (called with no arguments), or ``obj`` itself.

    Raises TypeError when it cannot be built with no arguments or has no forward/backward,
    ValueError when its constructor fails otherwise.

    Examples:
        >>> from handgrad.check import build_object
        >>> build_object(nn.Tanh)
        Tanh()
        >>> build_object(nn.Linear)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        TypeError: check: cannot build Linear() with no arguments (...); give every ... a default
    """
    name = name or getattr(obj, "__name__", type(obj).__name__)
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "backward")):
        try:
            obj = obj()
        except TypeError as e:
            raise TypeError(
                f"check: cannot build {name}() with no arguments ({_first_line(e)}); "
                "give every constructor argument a default"
            ) from e
        except Exception as e:
            raise ValueError(f"check: building {name}() failed: {_first_line(e)}") from e
    if not callable(getattr(obj, "backward", None)):
        raise TypeError(f"check: {name} has no backward() method")
    if not (callable(obj) or callable(getattr(obj, "forward", None))):
        raise TypeError(f"check: {name} has no forward() method")
    return obj


def parse_shape(value: str | Sequence[int], what: str = "input_shape") -> tuple[int, ...]:
    """``'4,5'``, ``'4x5'`` or ``(4, 5)`` -> ``(4, 5)``; every size a positive integer.

    Examples:
        >>> from handgrad.check import parse_shape
        >>> parse_shape("4,5"), parse_shape("2x3x8x8"), parse_shape([4, 5])
        ((4, 5), (2, 3, 8, 8), (4, 5))
        >>> parse_shape("4,0", "shape")
        Traceback (most recent call last):
        ValueError: check: invalid shape '4,0', expected positive integers like (4, 5) or '4,5'
    """
    try:
        if isinstance(value, str):
            parts = value.replace("x", ",").replace("(", "").replace(")", "").split(",")
            shape = tuple(int(p) for p in parts if p.strip())
        else:
            items = list(value)
            if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
                raise ValueError
            shape = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(
            f"check: invalid {what} {value!r}, expected positive integers like (4, 5) or '4,5'"
        )
    return shape


def check_file(
    spec: str,
    input_shape: str | Sequence[int],
    *,
    target_shape: str | Sequence[int] | None = None,
    target_classes: int | None = None,
    seed: int = 0,
    **kw: Any,
) -> GradcheckReport:
    r"""Gradient-check the class in ``'path/to/file.py:ClassName'``.

    The object is built with no arguments (a class or a factory function; an instance is
    used as is), the input is standard normal float64 of ``input_shape``, drawn from ``seed``.
    A loss needs a target: ``target_classes=C`` draws integer labels in ``[0, C)`` of shape
    ``target_shape`` (default ``(N,)``); otherwise ``target_shape`` draws floats uniform in
    ``[0, 1)``. Other keywords (``eps``, ``atol``, ``rtol``, ``params``, ...) go to
    :func:`gradcheck`.

    Examples:
        >>> from handgrad.check import check_file
        >>> import pathlib, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> path = pathlib.Path(folder.name, "my_layer.py")
        >>> _ = path.write_text(
        ...     "import numpy as np\n"
        ...     "class MyTanh:\n"
        ...     "    def forward(self, x):\n"
        ...     "        self.out = np.tanh(x)\n"
        ...     "        return self.out\n"
        ...     "    def backward(self, grad_out):\n"
        ...     "        return grad_out * (1 - self.out**2)\n"
        ... )
        >>> print(check_file(f"{path}:MyTanh", "4,5").verdict())
        PASSED: 1 tensor, 20 elements agree
        >>> folder.cleanup()
    """
    shape = parse_shape(input_shape, "input_shape")
    name = spec.rpartition(":")[2] if isinstance(spec, str) else str(spec)
    module = build_object(load_object(spec), name)
    return _check_built(module, shape, target_shape, target_classes, seed, **kw)


def _check_built(
    module: Any,
    shape: tuple[int, ...],
    target_shape: str | Sequence[int] | None,
    target_classes: int | None,
    seed: int,
    **kw: Any,
) -> GradcheckReport:
    """The gradient check of :func:`check_file` on an object already built."""
    rng = as_rng(seed)
    x = rng.standard_normal(shape)
    target: np.ndarray | None = None
    if target_classes is not None:
        if isinstance(target_classes, bool) or not isinstance(target_classes, int):
            raise ValueError(f"check: invalid target_classes {target_classes!r}, must be an int")
        if target_classes <= 0:
            raise ValueError(f"check: invalid target_classes {target_classes!r}, must be > 0")
        tshape = parse_shape(target_shape, "target_shape") if target_shape else shape[:1]
        target = rng.integers(0, target_classes, size=tshape)
    elif target_shape is not None:
        target = rng.uniform(0.0, 1.0, size=parse_shape(target_shape, "target_shape"))
    # the same generator goes on to draw R, so R is independent of x
    return gradcheck(module, x, target, seed=rng, **kw)


# -- the same check, in a child process ------------------------------------------------------------
@dataclass(frozen=True)
class IsolatedCheck:
    """What :func:`check_file_isolated` returns: the report's verdict and its printed text."""

    passed: bool
    text: str

    def __str__(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        return self.passed


def check_file_isolated(
    spec: str,
    input_shape: str | Sequence[int],
    *,
    target_shape: str | Sequence[int] | None = None,
    target_classes: int | None = None,
    seed: int = 0,
    eps: float = 1e-6,
    params: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> IsolatedCheck:
    """:func:`check_file` in a child Python process that is killed after ``timeout`` seconds.

    The arguments are checked here first, so a mistake in them is a ValueError (or
    FileNotFoundError / ImportError for a missing file or class), as with :func:`check_file`.
    Whatever the user's code does then (raises, calls ``sys.exit`` or ``os._exit``, crashes,
    loops) is a :class:`CheckFailed` with a one-line reason. The child's own output (the
    user's prints) goes to this process's stdout and stderr.
    """
    shape = parse_shape(input_shape, "input_shape")
    tshape = parse_shape(target_shape, "target_shape") if target_shape is not None else None
    if target_classes is not None and (
        isinstance(target_classes, bool) or not isinstance(target_classes, int)
    ):
        raise ValueError(f"check: invalid target_classes {target_classes!r}, must be an int")
    if target_classes is not None and target_classes <= 0:
        raise ValueError(f"check: invalid target_classes {target_classes!r}, must be > 0")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"check: invalid seed {seed!r}, must be an int >= 0")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"check: invalid eps {eps!r}, must be a finite number > 0")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"check: invalid timeout {timeout!r}, must be a number of seconds > 0")
    path_str, _ = _split_spec(spec)
    if not Path(path_str).expanduser().is_file():
        raise FileNotFoundError(f"check: no such file '{path_str}'")
    request = {
        "spec": spec,
        "input_shape": list(shape),
        "target_shape": list(tshape) if tshape is not None else None,
        "target_classes": target_classes,
        "seed": seed,
        "eps": eps,
        "params": dict(params) if params is not None else None,
    }
    with tempfile.TemporaryDirectory(prefix="handgrad-check-") as tmp:
        request_path, result_path = Path(tmp, "request.json"), Path(tmp, "result.json")
        request_path.write_text(json.dumps(request), encoding="utf-8")
        returncode = _run_child(request_path, result_path, path_str, timeout)
        try:
            result = json.loads(result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = None
    if not isinstance(result, dict):
        if returncode < 0:
            try:
                how = f"signal {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"signal {-returncode}"
            raise CheckFailed(
                f"check: the process running '{path_str}' was killed by {how} (a crash in the "
                "file or in a library it calls, or running out of memory)"
            )
        raise CheckFailed(
            f"check: '{path_str}' ended the process (exit status {returncode}) before the check "
            "finished; does it call os._exit()?"
        )
    kind, message = result.get("kind"), str(result.get("message", ""))
    if kind == "report":
        return IsolatedCheck(bool(result["passed"]), str(result["text"]))
    if kind == "failed":
        raise CheckFailed(message)
    error = {"FileNotFoundError": FileNotFoundError, "ImportError": ImportError}
    raise error.get(str(result.get("type")), ValueError)(message)


def _run_child(request_path: Path, result_path: Path, path_str: str, timeout: float) -> int:
    """Start the child on the request; its exit status (negative: killed by a signal)."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds handgrad/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(request_path), str(result_path)],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: a timeout ends all it started
    )
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CheckFailed(
            f"check: '{path_str}' did not finish within {timeout:g} s (does it wait for input, "
            "or loop forever on import or in forward/backward?); allow more with --timeout"
        ) from None
    except BaseException:  # Ctrl-C while waiting: do not leave the child running
        _kill_group(proc)
        raise


_CHILD = "from handgrad.check.loader import _child_main; _child_main()"


def _split_spec(spec: Any) -> tuple[str, str]:
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"check: expected 'path/to/file.py:ClassName', got {spec!r}")
    path_str, _, name = spec.rpartition(":")
    if not path_str or not name.isidentifier():
        raise ValueError(f"check: expected 'path/to/file.py:ClassName', got {spec!r}")
    return path_str, name


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _child_main() -> None:
    """The child of :func:`check_file_isolated`: run the request, write the result as JSON."""
    request_path, result_path = sys.argv[1], sys.argv[2]
    with open(request_path, encoding="utf-8") as f:
        req = json.load(f)
    result = _child_run(req)
    tmp = result_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, result_path)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no interpreter shutdown: the user's atexit hooks or threads cannot hang it


def _child_run(req: dict[str, Any]) -> dict[str, Any]:
    from handgrad.check._adapter import find_params, plain_arrays

    def usage(e: BaseException) -> dict[str, Any]:
        return {"kind": "usage", "type": type(e).__name__, "message": str(e)}

    def failed(message: str) -> dict[str, Any]:
        return {"kind": "failed", "message": message}

    spec = req["spec"]
    path_str, name = _split_spec(spec)
    # 1. import: a missing class is the command's mistake; anything the file does is its own
    try:
        obj = load_object(spec)
    except UserCodeError as e:
        return failed(str(e))
    except (ValueError, FileNotFoundError, ImportError) as e:
        return usage(e)
    except BaseException as e:  # KeyboardInterrupt too: the child was asked to stop
        return failed(f"check: importing '{path_str}' failed: {_describe(e)}")
    # 2. build, then the --params names (the command's to get right)
    try:
        module = build_object(obj, name)
    except (TypeError, ValueError) as e:
        return failed(str(e))
    except BaseException as e:
        return failed(f"check: building {name}() failed: {_describe(e)}")
    params = req["params"]
    if params is not None:
        try:
            find_params(module, params, "check")
        except (AttributeError, TypeError) as e:
            arrays = ", ".join(plain_arrays(module)) or "none"
            return usage(ValueError(f"{e} (in --params); the float arrays of {name}: {arrays}"))
        except BaseException as e:
            return failed(f"check: reading the parameters of {name} failed: {_describe(e)}")
    # 3. the check itself: every error now comes from the user's forward/backward
    try:
        report = _check_built(
            module,
            tuple(req["input_shape"]),
            tuple(req["target_shape"]) if req["target_shape"] else None,
            req["target_classes"],
            req["seed"],
            eps=req["eps"],
            **({"params": params} if params is not None else {}),
        )
    except BaseException as e:
        return failed(f"check: {name} failed while it was checked: {_describe(e)}")
    return {"kind": "report", "passed": bool(report.passed), "text": str(report)}


def _describe(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"it called sys.exit({e.code!r})"
    return _first_line(e)
