"""Checking a layer that lives in a file: ``handgrad check my_layer.py:MyReLU --input-shape 4,5``.

:func:`load_object` imports ``path/to/file.py:Name``; :func:`check_file` builds it with no
arguments, draws a random float64 input of the given shape and runs :func:`gradcheck`. Every
failure is one line that says what to fix, for the command line to print.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handgrad._util import as_rng
from handgrad.check.gradcheck import gradcheck
from handgrad.check.report import GradcheckReport

__all__ = ["build_object", "check_file", "load_object", "parse_shape"]


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
    except Exception as e:
        sys.modules.pop(mod_name, None)
        raise ImportError(f"check: importing '{path_str}' failed: {_first_line(e)}") from e
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
