"""Module, Parameter and Sequential: the contract every layer follows.

A Module computes ``forward(x)`` and keeps what its ``backward`` needs. ``backward(grad_out)``
returns the gradient with respect to the input and *adds* each parameter's gradient into
``Parameter.grad`` (accumulation, as in PyTorch, until ``zero_grad()``).

Parameters, buffers and submodules are registered by attribute assignment, as in PyTorch, so
``named_parameters()`` and ``state_dict()`` produce PyTorch's dotted names (``0.weight``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from handgrad._util import as_float_dtype

__all__ = ["Module", "Parameter", "Sequential"]


class Parameter:
    """A trainable array: ``.data`` (ndarray) and ``.grad`` (same shape and dtype, zeros)."""

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
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

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
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """A non-trainable array that belongs to the state dict (e.g. running_mean)."""
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    def _set_buffer(self, name: str, value: np.ndarray) -> None:
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    # -- the contract ---------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def backward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def _saved(self, value: Any) -> Any:
        """Return a value saved by forward, or fail clearly if forward has not run."""
        if value is None:
            raise RuntimeError(f"{self}: backward() called before forward()")
        return value

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
        or unexpected keys are an error, listing them.
        """
        targets: dict[str, tuple[Module, str, bool]] = {}
        for mod_name, mod in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name in mod._parameters:
                targets[pre + name] = (mod, name, True)
            for name, b in mod._buffers.items():
                if b is not None:
                    targets[pre + name] = (mod, name, False)
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        for key, value in state_dict.items():
            if key not in targets:
                continue
            mod, name, is_param = targets[key]
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            arr = np.asarray(value)
            current = mod._parameters[name].data if is_param else mod._buffers[name]
            if arr.shape != current.shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: '{key}' expects shape "
                    f"{current.shape}, got {arr.shape}"
                )
            if is_param:
                np.copyto(mod._parameters[name].data, arr, casting="unsafe")
            else:
                mod._set_buffer(name, arr.astype(current.dtype, copy=True))

    def to(self, dtype: Any) -> Module:
        """Convert every floating parameter and buffer to ``dtype`` (in place); returns self."""
        dtype = as_float_dtype(dtype)
        for m in self.modules():
            for p in m._parameters.values():
                p.astype(dtype)
            for name, b in list(m._buffers.items()):
                if b is not None and np.issubdtype(b.dtype, np.floating):
                    m._set_buffer(name, b.astype(dtype))
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
    """

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
