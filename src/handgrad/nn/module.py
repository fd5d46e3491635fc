"""Module, Parameter and Sequential: the contract every layer follows.

A Module computes ``forward(x)`` and keeps what its ``backward`` needs. ``backward(grad_out)``
returns the gradient with respect to the input and *adds* each parameter's gradient into
``Parameter.grad`` (accumulation, as in PyTorch, until ``zero_grad()``).

Parameters, buffers and submodules are registered by attribute assignment, as in PyTorch, so
``named_parameters()`` and ``state_dict()`` produce PyTorch's dotted names (``0.weight``).

Hooks observe a module without changing it, as PyTorch's do: ``register_forward_pre_hook``,
``register_forward_hook``, ``register_full_backward_pre_hook`` and
``register_full_backward_hook`` each return a :class:`RemovableHandle`.
"""

from __future__ import annotations

import itertools
import numbers
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from handgrad._util import from_torch
from handgrad._validate import check_float_dtype

__all__ = ["Module", "Parameter", "RemovableHandle", "Sequential", "check_input"]

# The input rule, one for every layer and loss (Module.__call__ and Loss.__call__ apply it):
# the first argument must be a floating-point array. A list, a number or a CPU torch tensor is
# converted with np.asarray first; an array of any other dtype (integer, bool, complex, object,
# string) is refused with a TypeError naming the layer and the dtype, never cast silently (an
# integer array through Sigmoid, or as a loss's prediction, would give zeros or zero gradients).
# A float input wider than the layer's own weights (float64 into float32) is computed, with a
# warning, once per layer. The test that lets the usual call through is one set lookup.
_FLOATS = frozenset(np.dtype(t) for t in (np.float16, np.float32, np.float64))
_ndarray = np.ndarray  # one lookup fewer on the hot path


class _AnyDtype:
    """The ``_input_dtypes`` of a container: it passes every array on to its children."""

    __slots__ = ()

    def __contains__(self, dtype: object) -> bool:
        return True


_ANY_DTYPE = _AnyDtype()


def check_input(module: Any, x: Any, what: str = "input") -> Any:
    """``x`` as a floating-point array for ``module`` (the input rule above), or a TypeError
    ``<module>: expected a floating-point input, got dtype int64; ...``.

    A list, a tuple, a number or a CPU torch tensor is converted with ``np.asarray``; anything
    else (None, a string, a dict) is a TypeError too. A module whose forward takes something
    other than a float array sets ``float_input = False`` and is not checked.
    """
    if not isinstance(x, np.ndarray):
        x = from_torch(x)
        if not isinstance(x, (np.ndarray, list, tuple, numbers.Number, np.generic)):
            raise TypeError(
                f"{_name(module)}: expected a floating-point array as {what}, got "
                f"{type(x).__name__}"
            )
        try:
            x = np.asarray(x)
        except ValueError as e:  # a ragged list
            raise TypeError(
                f"{_name(module)}: expected a floating-point array as {what}, got a "
                f"{type(x).__name__} that is not one ({str(e).splitlines()[0]})"
            ) from None
    if x.dtype.kind != "f":
        raise TypeError(
            f"{_name(module)}: expected a floating-point {what}, got dtype {x.dtype}; "
            "convert it first, e.g. x.astype(np.float32)"
        )
    return x


def _name(module: Any) -> str:
    """A module's one-line repr (a container's is many lines: its class name instead)."""
    return type(module).__name__ if getattr(module, "_modules", None) else repr(module)


def _input_dtypes(module: Module) -> frozenset[np.dtype]:
    """The float dtypes ``module`` takes without a word: all, or none wider than its weights."""
    widths = [p.data.dtype.itemsize for p in module._parameters.values() if p is not None]
    if not widths:
        return _FLOATS
    return frozenset(dt for dt in _FLOATS if dt.itemsize <= max(widths))


class Parameter:
    """A trainable array: ``.data`` (ndarray) and ``.grad`` (same shape and dtype, zeros).

    Examples:
        >>> p = nn.Parameter(np.ones((2, 3)))
        >>> p
        Parameter(shape=(2, 3), dtype=float64)
        >>> p.grad.tolist()
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray) -> None:
        data = np.asarray(data)
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float32)
        self.data: np.ndarray = np.array(data, order="C")  # a copy; keeps 0-d shapes
        self.grad: np.ndarray = np.zeros_like(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def zero_grad(self) -> None:
        self.grad.fill(0.0)

    def astype(self, dtype: Any) -> None:
        """Convert data and grad to ``dtype`` in place (the Parameter object is kept)."""
        self.data = self.data.astype(dtype)
        self.grad = self.grad.astype(dtype)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of every layer, loss and model.

    Subclasses implement ``forward`` and ``backward`` and may override ``extra_repr``.

    Examples:
        >>> class Scale(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.alpha = nn.Parameter(np.ones(1))  # registered by assignment
        ...     def forward(self, x):
        ...         self.x = x
        ...         return self.alpha.data * x
        ...     def backward(self, grad_out):
        ...         self.alpha.grad += (grad_out * self.x).sum()  # dL/dalpha, accumulated
        ...         return grad_out * self.alpha.data  # dL/dx
        >>> m = Scale()
        >>> m(np.array([1.0, 2.0])).tolist()
        [1.0, 2.0]
        >>> m.backward(np.ones(2)).tolist()
        [1.0, 1.0]
        >>> m.alpha.grad.tolist()
        [3.0]
        >>> [name for name, _ in m.named_parameters()]
        ['alpha']
    """

    training: bool
    #: The input rule applies to the first argument of ``module(x)`` (see :func:`check_input`).
    #: A subclass whose forward takes something else (integer indices, a dict) sets it False.
    float_input: bool = True

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_input_dtypes", _ANY_DTYPE if not self.float_input else _FLOATS)
        # hooks (None until the first is registered, so __call__ checks one attribute)
        object.__setattr__(self, "_forward_hooks", None)
        object.__setattr__(self, "_backward_hooks", None)

    # -- registration ---------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        if name in self._buffers and (value is None or isinstance(value, np.ndarray)):
            self._buffers[name] = value  # e.g. `self.running_mean = ...` keeps it a buffer
            object.__setattr__(self, name, value)
            return
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
            if self.float_input:
                object.__setattr__(self, "_input_dtypes", _input_dtypes(self))
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """A non-trainable array that belongs to the state dict (e.g. running_mean)."""
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    # -- the contract ---------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def backward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._forward_hooks is not None:
            return self._forward_hooks.call(args, kwargs)
        # the input rule: a float array of a dtype this module expects passes on this one test
        if args and (args[0].__class__ is not _ndarray or args[0].dtype not in self._input_dtypes):
            args = self._check_args(args)
        return self.forward(*args, **kwargs)

    def _check_args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The input rule for ``args[0]`` (:func:`check_input`), and the warning, once per
        layer, when a float input is wider than the layer's weights."""
        if not self.float_input:
            return args
        x = check_input(self, args[0])
        if isinstance(x, np.ndarray) and x.dtype not in self._input_dtypes:
            weights = max(
                (p.data.dtype for p in self._parameters.values() if p is not None),
                key=lambda dt: dt.itemsize,
                default=None,
            )
            if weights is not None and x.dtype.itemsize > weights.itemsize:
                warnings.warn(
                    f"{_name(self)}: {x.dtype} input meets {weights} weights, so the result "
                    f"has only {weights} precision; convert the model with .to(np.{x.dtype}) "
                    f"or the input with x.astype(np.{weights}) (shown once per layer)",
                    stacklevel=3,
                )
            object.__setattr__(self, "_input_dtypes", self._input_dtypes | {x.dtype})
        return (x, *args[1:])

    def _saved(self, value: Any, grad_out: Any = None, shape: Any = None) -> Any:
        """Return a value saved by forward, or fail clearly if forward has not run.

        Given ``grad_out``, also check that it has the forward output's shape: ``shape``, or by
        default the saved value's own (an element-wise layer saves an array of that shape).
        """
        if value is None:
            raise RuntimeError(f"{self}: backward() called before forward()")
        if grad_out is not None:
            expected = value.shape if shape is None else shape
            got = getattr(grad_out, "shape", None)
            if got != expected:
                shown = got if got is not None else type(grad_out).__name__
                raise ValueError(f"{self}: expected grad_out {expected}, got {shown}")
        return value

    # -- hooks ----------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call ``hook(module, args)`` before each ``module(*args)``; a return value other than
        None replaces the input (a tuple, or one value for a one-argument forward)."""
        return _ForwardHooks.of(self).add(hook, pre=True)

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after each ``module(*args)``; a return value
        other than None replaces the output.

        Hooks run when the module is called, ``module(x)`` (as ``Sequential`` calls its
        layers), not when ``module.forward(x)`` is called directly; several hooks run in the
        order they were registered. Returns a handle: ``handle.remove()`` unregisters the hook.
        A module without hooks pays one check per call.

        Examples:
            >>> model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 2, rng=1))
            >>> shapes = []
            >>> handle = model[1].register_forward_hook(
            ...     lambda module, args, out: shapes.append((args[0].shape, out.shape))
            ... )
            >>> _ = model(np.ones((5, 3), dtype=np.float32))
            >>> shapes
            [((5, 4), (5, 4))]
            >>> handle.remove()
            >>> _ = model(np.ones((5, 3), dtype=np.float32))
            >>> len(shapes)
            1
        """
        return _ForwardHooks.of(self).add(hook, pre=False)

    def register_full_backward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call ``hook(module, grad_output)`` before each backward of this module, with
        ``grad_output = (dL/d output,)``; a return value other than None (a one-element tuple)
        replaces it. See :meth:`register_full_backward_hook`."""
        return _BackwardHooks.of(self).add(hook, pre=True)

    def register_full_backward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` after each backward of this module,
        with ``grad_input = (dL/d input,)`` and ``grad_output = (dL/d output,)``; a return
        value other than None (a one-element tuple) replaces ``grad_input``.

        ``grad_input`` is ``(None,)`` when no input gradient was computed (the first layer of
        ``Sequential.backward(g, input_grad=False)`` runs only ``backward_params``). The hook
        runs once per backward pass of the module, whoever calls its backward (a Sequential,
        a model's own backward, ``fit``) and although Linear's ``backward`` calls its own
        ``backward_params``. A module without backward hooks runs its class's ``backward``
        with no check at all. Returns a handle: ``handle.remove()`` unregisters the hook.

        Examples:
            >>> model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 2, rng=1))
            >>> seen = []
            >>> def hook(module, grad_in, grad_out):
            ...     seen.append((type(module).__name__, grad_out[0].shape, grad_in[0] is None))
            >>> handles = [layer.register_full_backward_hook(hook) for layer in model]
            >>> _ = model(np.ones((5, 3), dtype=np.float32))
            >>> model.backward(np.ones((5, 2), dtype=np.float32), input_grad=False)
            >>> seen  # in the order backward meets them; no input gradient for layer 0
            [('Linear', (5, 2), False), ('ReLU', (5, 4), False), ('Linear', (5, 4), True)]
        """
        return _BackwardHooks.of(self).add(hook, pre=False)

    # -- traversal ------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Parameters with PyTorch's dotted names, e.g. ``('0.weight', Parameter)``."""
        seen: set[int] = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mod_name, mod in self.named_modules(prefix):
            for name, b in mod._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    # -- state ----------------------------------------------------------------------------
    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed by PyTorch's dotted names."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for mod_name, mod in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name, p in mod._parameters.items():
                out[pre + name] = p.data.copy()
            for name, b in mod._buffers.items():
                if b is not None:
                    out[pre + name] = np.array(b, copy=True)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Load arrays (NumPy, or anything ``np.asarray`` takes, e.g. CPU torch tensors).

        Values are cast to the dtype of the parameter they replace. With ``strict=True`` missing
        or unexpected keys are an error, listing them. Every value is checked (keys, shapes,
        numeric dtypes) before any is copied, so after an error the module is unchanged.
        """
        targets: dict[str, tuple[Module, str, bool]] = {}
        for mod_name, mod in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name in mod._parameters:
                targets[pre + name] = (mod, name, True)
            for name, b in mod._buffers.items():
                if b is not None:
                    targets[pre + name] = (mod, name, False)
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"{type(self).__name__}.load_state_dict: expected a mapping of names to arrays "
                f"(a state dict), got {type(state_dict).__name__}"
            )
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        # all checks first, then all copies (which cannot fail): atomic, as a whole
        staged: list[tuple[Module, str, bool, np.ndarray]] = []
        for key, value in state_dict.items():
            if key not in targets:
                continue
            mod, name, is_param = targets[key]
            arr = np.asarray(from_torch(value))
            current = mod._parameters[name].data if is_param else mod._buffers[name]
            if arr.shape != current.shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: '{key}' expects shape "
                    f"{current.shape}, got {arr.shape}"
                )
            if arr.dtype.kind not in "biuf":
                raise TypeError(
                    f"{type(self).__name__}.load_state_dict: '{key}' must hold real numbers, "
                    f"got dtype {arr.dtype}"
                )
            staged.append((mod, name, is_param, arr))
        for mod, name, is_param, arr in staged:
            if is_param:
                np.copyto(mod._parameters[name].data, arr, casting="unsafe")
            else:
                mod.register_buffer(name, arr.astype(mod._buffers[name].dtype, copy=True))

    def to(self, dtype: Any) -> Module:
        """Convert every floating parameter and buffer to ``dtype`` (in place); returns self."""
        dtype = check_float_dtype(f"{type(self).__name__}.to", dtype)
        for m in self.modules():
            for p in m._parameters.values():
                p.astype(dtype)
            for name, b in list(m._buffers.items()):
                if b is not None and np.issubdtype(b.dtype, np.floating):
                    m.register_buffer(name, b.astype(dtype))
            if m.float_input:
                object.__setattr__(m, "_input_dtypes", _input_dtypes(m))
            m._on_dtype_change(dtype)
        return self

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        """Hook for layers that keep dtype-specific caches."""

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    # -- printing -------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        name = type(self).__name__
        if not self._modules:
            return f"{name}({self.extra_repr()})"
        lines = [f"{name}("]
        for key, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({key}): {child_repr}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Module):
    """Layers applied in order; ``backward`` runs them in reverse.

    ``Sequential(Linear(2, 3), ReLU())`` names its children ``0``, ``1``, ... as PyTorch does;
    it is indexable (``model[0]``, ``model[-1]``, slices give a new Sequential) and iterable.

    Examples:
        >>> model = nn.Sequential(nn.Linear(4, 8, rng=0), nn.ReLU(), nn.Linear(8, 2, rng=1))
        >>> model(np.ones((5, 4), dtype=np.float32)).shape
        (5, 2)
        >>> model.backward(np.ones((5, 2), dtype=np.float32)).shape
        (5, 4)
        >>> [name for name, _ in model.named_parameters()]
        ['0.weight', '0.bias', '2.weight', '2.bias']
        >>> model[0]
        Linear(in_features=4, out_features=8, bias=True)
    """

    float_input = False  # the input rule is its first layer's to apply, naming that layer

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential: argument {i} must be a Module, got {type(layer).__name__}"
                )
            setattr(self, str(i), layer)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self._modules.values():
            x = layer(x)
        return x

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """Backward through every layer in reverse; returns dL/dx.

        With ``input_grad=False`` the first layer skips dL/dx when it can (it has a
        ``backward_params`` method, as Linear and Conv2d do) and None is returned: PyTorch
        likewise computes no gradient for an input that does not require one.
        """
        layers = list(self._modules.values())
        for layer in reversed(layers[1:]):
            grad_out = layer.backward(grad_out)
        if not layers:
            return grad_out
        first = layers[0]
        if not input_grad and hasattr(first, "backward_params"):
            first.backward_params(grad_out)
            return None
        return first.backward(grad_out)

    def append(self, layer: Module) -> Sequential:
        setattr(self, str(len(self._modules)), layer)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int | slice) -> Any:
        layers = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*layers[idx])
        return layers[idx]


# -- hook plumbing ---------------------------------------------------------------------------
class RemovableHandle:
    """What ``register_*_hook`` returns: ``handle.remove()`` unregisters the hook (a second
    call does nothing); ``with module.register_forward_hook(f):`` removes it on leaving."""

    __slots__ = ("_hooks", "_key", "_on_remove")
    _keys = itertools.count()

    def __init__(
        self,
        hooks: dict[int, Callable[..., Any]],
        hook: Callable[..., Any],
        on_remove: Callable[[], None],
    ) -> None:
        if not callable(hook):
            raise TypeError(f"a hook must be callable, got {type(hook).__name__}")
        self._hooks, self._key, self._on_remove = hooks, next(self._keys), on_remove
        hooks[self._key] = hook

    def remove(self) -> None:
        if self._hooks.pop(self._key, None) is not None:
            self._on_remove()

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class _Hooks:
    """A module's hooks of one direction, ``pre`` and ``post``, in registration order. The module
    holds it (as ``_forward_hooks`` or ``_backward_hooks``) while it has any and None after."""

    __slots__ = ("module", "post", "pre")
    ATTR = ""

    def __init__(self, module: Module) -> None:
        self.module = module
        self.pre: dict[int, Callable[..., Any]] = {}
        self.post: dict[int, Callable[..., Any]] = {}

    @classmethod
    def of(cls, module: Module) -> Any:
        hooks = getattr(module, cls.ATTR)
        if hooks is None:
            hooks = cls(module)
            object.__setattr__(module, cls.ATTR, hooks)
        return hooks

    def add(self, hook: Callable[..., Any], pre: bool) -> RemovableHandle:
        return RemovableHandle(self.pre if pre else self.post, hook, self._release)

    def _release(self) -> None:
        if not (self.pre or self.post) and getattr(self.module, self.ATTR) is self:
            self._unhook()
            object.__setattr__(self.module, self.ATTR, None)

    def _unhook(self) -> None:
        """Undo what the first hook set up (nothing, for forward hooks)."""


class _ForwardHooks(_Hooks):
    __slots__ = ()
    ATTR = "_forward_hooks"

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        module = self.module
        # (copies of the dictionaries: a hook may remove itself)
        for hook in tuple(self.pre.values()) if self.pre else ():
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        if args and (
            args[0].__class__ is not _ndarray or args[0].dtype not in module._input_dtypes
        ):
            args = module._check_args(args)
        output = module.forward(*args, **kwargs)
        for hook in tuple(self.post.values()) if self.post else ():
            result = hook(module, args, output)
            if result is not None:
                output = result
        return output


class _BackwardHooks(_Hooks):
    """Backward hooks, and the entry points that run them.

    ``forward`` is reached through ``__call__``, which checks for hooks; ``backward`` is called
    directly (by Sequential, by a model's own backward, by ``fit``), and Linear's ``backward``
    calls its own ``backward_params``. So while a module has backward hooks, this object's
    ``backward`` (and ``backward_params``, where the class has one) stand in the module's
    instance dictionary, ahead of the class's methods; ``running`` makes a call from inside
    the module's own backward run plainly, so the hooks fire once per backward pass. When the
    last hook is removed they leave, and the module runs its class's code with no check.
    """

    __slots__ = ("inner", "running", "saved")
    ATTR = "_backward_hooks"
    METHODS = ("backward", "backward_params")

    def __init__(self, module: Module) -> None:
        super().__init__(module)
        self.running = False
        names = [n for n in self.METHODS if hasattr(module, n)]
        self.inner = {n: getattr(module, n) for n in names}  # what the entry points run
        self.saved = {n: module.__dict__[n] for n in names if n in module.__dict__}
        for n in names:
            module.__dict__[n] = getattr(self, n)

    def _unhook(self) -> None:
        for n in self.inner:
            if n in self.saved:
                self.module.__dict__[n] = self.saved[n]
            else:
                self.module.__dict__.pop(n, None)

    def backward(self, grad_out: Any, *args: Any, **kwargs: Any) -> Any:
        return self._run(self.inner["backward"], grad_out, args, kwargs)

    def backward_params(self, grad_out: Any, *args: Any, **kwargs: Any) -> Any:
        return self._run(self.inner["backward_params"], grad_out, args, kwargs)

    def _run(self, method: Callable[..., Any], grad_out: Any, args: tuple, kwargs: dict) -> Any:
        if self.running:  # the module's backward calling its backward_params: the same pass
            return method(grad_out, *args, **kwargs)
        module = self.module
        for hook in tuple(self.pre.values()) if self.pre else ():
            result = hook(module, (grad_out,))
            if result is not None:
                grad_out = _only(result, hook, module)
        self.running = True
        try:
            grad_in = method(grad_out, *args, **kwargs)
        finally:
            self.running = False
        for hook in tuple(self.post.values()) if self.post else ():
            result = hook(module, (grad_in,), (grad_out,))
            if result is not None:
                grad_in = _only(result, hook, module)
        return grad_in


def _only(result: Any, hook: Any, module: Module) -> Any:
    """The gradient in a backward hook's one-element tuple (as PyTorch's hooks return)."""
    if not isinstance(result, tuple) or len(result) != 1:
        name = getattr(hook, "__name__", type(hook).__name__)
        raise TypeError(
            f"{module}: backward hook {name} must return None or a one-element tuple "
            f"(grad,), got {type(result).__name__}"
        )
    return result[0]
