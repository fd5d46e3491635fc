"""Model bridge: handgrad models to ``torch.nn`` and back, with the same weights.

``to_torch(model)`` builds the equivalent ``torch.nn`` module (a ``Sequential`` becomes a
``torch.nn.Sequential`` with the same child names), ``to_torch(model, functions=True)`` builds
it from the wrappers of :mod:`handgrad.torch_ext.modules`, so that it trains on the hand-written
Functions, and ``from_torch(torch_model)`` goes back. Hyperparameters are read from the layers'
attributes (they have PyTorch's names), weights and buffers are copied through ``state_dict``
(PyTorch's names on both sides), dtypes (float32/float64) and train/eval mode are kept.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import handgrad.nn as hnn
from handgrad._util import RNGLike, as_rng
from handgrad.torch_ext import modules as hand

__all__ = ["from_torch", "supported_layers", "to_torch", "torch_constructor"]


@dataclass(frozen=True)
class _Rule:
    """How one layer crosses the bridge.

    ``attrs`` are the hyperparameters, read by attribute on one side and passed by keyword to
    the other side's constructor (the names are PyTorch's on both). ``torch_defaults`` are torch
    options handgrad does not have: a torch module must hold these values to be converted.
    """

    name: str
    attrs: tuple[str, ...] = ()
    torch_defaults: tuple[tuple[str, Any], ...] = ()
    has_bias_flag: bool = False  # constructor takes bias=... (read as `layer.bias is not None`)
    has_state: bool = False  # parameters or buffers: built with dtype=..., state copied


# where handgrad's layer classes live (handgrad.nn re-exports them all, once wired)
_HANDGRAD_HOMES = ("handgrad.nn", "handgrad.nn.conv", "handgrad.nn.pooling")
_BN = ("num_features", "eps", "momentum", "affine", "track_running_stats")
_LOSS_DEFAULTS = (("weight", None),)

# Rules are data: one row per layer; the class of the same name is looked up in handgrad.nn,
# torch.nn and handgrad.torch_ext.modules.
_RULES: tuple[_Rule, ...] = (
    _Rule("Linear", ("in_features", "out_features"), has_bias_flag=True, has_state=True),
    _Rule("Identity"),
    _Rule("ReLU"),
    _Rule("LeakyReLU", ("negative_slope",)),
    _Rule("Sigmoid"),
    _Rule("Tanh"),
    _Rule("Softplus", ("beta", "threshold")),
    _Rule("GELU", ("approximate",)),
    _Rule("ELU", ("alpha",)),
    _Rule("Softmax", ("dim",)),
    _Rule("LogSoftmax", ("dim",)),
    _Rule("Dropout", ("p",)),
    _Rule("Flatten", ("start_dim", "end_dim")),
    _Rule("BatchNorm1d", _BN, has_bias_flag=True, has_state=True),
    _Rule("BatchNorm2d", _BN, has_bias_flag=True, has_state=True),
    _Rule(
        "Conv2d",
        ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"),
        torch_defaults=(("padding_mode", "zeros"),),
        has_bias_flag=True,
        has_state=True,
    ),
    _Rule(
        "MaxPool2d",
        ("kernel_size", "stride", "padding"),
        torch_defaults=(("dilation", 1), ("return_indices", False), ("ceil_mode", False)),
    ),
    _Rule(
        "AvgPool2d",
        ("kernel_size", "stride", "padding"),
        torch_defaults=(
            ("ceil_mode", False),
            ("count_include_pad", True),
            ("divisor_override", None),
        ),
    ),
    _Rule("MSELoss", ("reduction",)),
    _Rule("BCELoss", ("reduction",), torch_defaults=_LOSS_DEFAULTS),
    _Rule(
        "BCEWithLogitsLoss",
        ("reduction",),
        torch_defaults=(*_LOSS_DEFAULTS, ("pos_weight", None)),
    ),
    _Rule(
        "CrossEntropyLoss",
        ("reduction",),
        torch_defaults=(*_LOSS_DEFAULTS, ("ignore_index", -100), ("label_smoothing", 0.0)),
    ),
    _Rule("NLLLoss", ("reduction",), torch_defaults=(*_LOSS_DEFAULTS, ("ignore_index", -100))),
)


def supported_layers() -> list[str]:
    """Names of the layers that cross the bridge (those present in this install)."""
    names = sorted(r.name for r in _RULES if _handgrad_class(r.name) is not None)
    return [*names, "Sequential"]


def _handgrad_class(name: str) -> type | None:
    """The handgrad layer class of that name, from handgrad.nn (or the module defining it)."""
    for home in _HANDGRAD_HOMES:
        try:
            cls = getattr(importlib.import_module(home), name, None)
        except ImportError:
            continue
        if cls is not None:
            return cls
    return None


def _handgrad_table() -> dict[type, _Rule]:
    # resolved at call time: layers added to handgrad.nn later are picked up
    table = {}
    for r in _RULES:
        cls = _handgrad_class(r.name)
        if cls is not None:
            table[cls] = r
    return table


def _torch_table() -> dict[type, _Rule]:
    table: dict[type, _Rule] = {}
    for r in _RULES:
        for ns in (torch.nn, hand):
            cls = getattr(ns, r.name, None)
            if cls is not None:
                table[cls] = r
    return table


def _lookup(obj: Any, table: dict[type, _Rule]) -> _Rule | None:
    """The rule of the nearest class in ``obj``'s MRO (so subclasses, e.g. the Function-backed
    wrappers of torch modules, are found)."""
    for cls in type(obj).__mro__:
        if cls in table:
            return table[cls]
    return None


def _unsupported(direction: str, layer: Any, path: str) -> TypeError:
    return TypeError(
        f"{direction}: unsupported layer {type(layer).__name__} at '{path or '<root>'}'; "
        f"supported: {', '.join(supported_layers())}"
    )


def _state_dtype(layer: Any, path: str, direction: str) -> Any:
    """The float dtype of a layer's floating parameters/buffers (None if it has none)."""
    dtypes = {
        str(v.dtype).replace("torch.", "")
        for v in layer.state_dict().values()
        if (v.is_floating_point() if isinstance(v, torch.Tensor) else v.dtype.kind == "f")
    }
    if not dtypes:
        return None
    if len(dtypes) > 1 or not dtypes <= {"float32", "float64"}:
        raise TypeError(
            f"{direction}: {type(layer).__name__} at '{path or '<root>'}' has dtype(s) "
            f"{sorted(dtypes)}; handgrad supports float32 or float64 (one per layer)"
        )
    return dtypes.pop()


# --------------------------------------------------------------------------------------------
# handgrad -> torch
# --------------------------------------------------------------------------------------------
def to_torch(model: Any, *, functions: bool = False) -> torch.nn.Module:
    """A ``torch.nn`` module equivalent to the handgrad ``model``, with copies of its weights.

    Args:
        model: a handgrad layer or (nested) ``Sequential`` of supported layers, see
            :func:`supported_layers`.
        functions: build from :mod:`handgrad.torch_ext.modules` (hand-written backward passes)
            instead of the built-in ``torch.nn`` layers. Identity stays ``torch.nn.Identity``
            (it has no gradient to write); losses other than CrossEntropyLoss have no
            hand-written Function and are an error then.

    Returns:
        a module on the CPU with the same child names, parameter/buffer names and values, dtype
        and train/eval mode; move it with ``.to('cuda')`` as any torch module.

    Raises:
        TypeError: naming the first unsupported layer and its dotted path.
    """
    return _to_torch(model, "", functions)


def _to_torch(layer: Any, path: str, functions: bool) -> torch.nn.Module:
    if isinstance(layer, hnn.Sequential):
        out = torch.nn.Sequential()
        for name, child in layer._modules.items():
            out.add_module(name, _to_torch(child, f"{path}.{name}" if path else name, functions))
        out.training = layer.training  # set on the container only: children keep their own
        return out
    name, kwargs = torch_constructor(layer, path)
    rule = _lookup(layer, _handgrad_table())
    assert rule is not None  # torch_constructor raised otherwise
    cls = getattr(torch.nn, name)
    if functions and name != "Identity":
        cls = getattr(hand, name, None)
        if cls is None:
            raise TypeError(
                f"to_torch(functions=True): {name} at '{path or '<root>'}' has no "
                "hand-written Function; use functions=False"
            )
    dtype = _state_dtype(layer, path, "to_torch") if rule.has_state else None
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype)
    out = cls(**kwargs)
    if rule.has_state:
        _copy_into_torch(layer, out, path)
    out.train(layer.training)
    return out


def torch_constructor(
    layer: Any, path: str = "", direction: str = "to_torch"
) -> tuple[str, dict[str, Any]]:
    """The ``torch.nn`` class name and constructor keywords of one handgrad layer (not a
    ``Sequential``): what :func:`to_torch` builds, less ``dtype``.

    Raises:
        TypeError: ``"<direction>: unsupported layer <Name> at '<path>'; supported: ..."``.

    Examples:
        >>> import handgrad.nn as hnn
        >>> torch_constructor(hnn.Linear(3, 2, bias=False))
        ('Linear', {'in_features': 3, 'out_features': 2, 'bias': False})
    """
    rule = _lookup(layer, _handgrad_table())
    if rule is None:
        raise _unsupported(direction, layer, path)
    kwargs = {a: getattr(layer, a) for a in rule.attrs}
    if rule.has_bias_flag:
        kwargs["bias"] = getattr(layer, "bias", None) is not None
        # BatchNorm's bias keyword is new in torch 2.13: pass it only where it differs from
        # the default (older torch builds the same layer), and never without affine (ignored)
        if rule.name.startswith("BatchNorm") and (kwargs["bias"] or not layer.affine):
            kwargs.pop("bias")
    return rule.name, kwargs


def _copy_into_torch(layer: Any, tmod: torch.nn.Module, path: str) -> None:
    src = layer.state_dict()
    dst = tmod.state_dict()
    missing = [k for k in dst if k not in src and k != "num_batches_tracked"]
    unexpected = [k for k in src if k not in dst]
    if missing or unexpected:
        raise KeyError(
            f"to_torch: state of {type(layer).__name__} at '{path or '<root>'}' does not match "
            f"torch's: missing {missing}, unexpected {unexpected}"
        )
    new = {}
    for key, target in dst.items():
        if key not in src:
            new[key] = target
            continue
        value = torch.from_numpy(np.array(src[key], copy=True))
        new[key] = value.reshape(target.shape).to(target.dtype)
    tmod.load_state_dict(new, strict=True)


# --------------------------------------------------------------------------------------------
# torch -> handgrad
# --------------------------------------------------------------------------------------------
def from_torch(torch_model: torch.nn.Module, *, rng: RNGLike = None) -> Any:
    """A handgrad model equivalent to ``torch_model``, with copies of its weights (on the CPU).

    Args:
        torch_model: a ``torch.nn`` layer or (nested) ``torch.nn.Sequential`` of supported layers
            (built-in or the wrappers of :mod:`handgrad.torch_ext.modules`); float32 or float64.
        rng: generator or seed for the masks of Dropout layers (one generator shared by all).

    Returns:
        a handgrad ``Module``; a ``Sequential``'s children are numbered 0, 1, ... in order.

    Raises:
        TypeError: naming the first unsupported layer (or unsupported option) and its path.
    """
    return _from_torch(torch_model, "", as_rng(rng))


def _from_torch(tmod: torch.nn.Module, path: str, rng: np.random.Generator) -> Any:
    if isinstance(tmod, torch.nn.Sequential):
        children = [
            _from_torch(child, f"{path}.{name}" if path else name, rng)
            for name, child in tmod.named_children()
        ]
        out = hnn.Sequential(*children)
        object.__setattr__(out, "training", tmod.training)
        return out
    rule = _lookup(tmod, _torch_table())
    hcls = None if rule is None else _handgrad_class(rule.name)
    if rule is None or hcls is None:
        raise _unsupported("from_torch", tmod, path)
    where = f"{rule.name} at '{path or '<root>'}'"
    for option, default in rule.torch_defaults:
        value = getattr(tmod, option, default)
        if (value is not None) if default is None else (value != default):
            raise TypeError(
                f"from_torch: {where} has {option}={value!r}; handgrad supports only "
                f"{option}={default!r}"
            )
    kwargs = {a: getattr(tmod, a) for a in rule.attrs}
    if rule.name in ("Softmax", "LogSoftmax") and kwargs["dim"] is None:
        raise TypeError(f"from_torch: {where} has dim=None; give the dimension explicitly")
    if rule.has_bias_flag and not (rule.name.startswith("BatchNorm") and not tmod.affine):
        kwargs["bias"] = getattr(tmod, "bias", None) is not None
    if rule.name == "Dropout":
        kwargs["rng"] = rng
    dtype = _state_dtype(tmod, path, "from_torch") if rule.has_state else None
    if dtype is not None:
        kwargs["dtype"] = np.dtype(dtype)
    layer = hcls(**kwargs)
    if rule.has_state:
        _copy_into_handgrad(tmod, layer)
    object.__setattr__(layer, "training", tmod.training)
    return layer


def _copy_into_handgrad(tmod: torch.nn.Module, layer: Any) -> None:
    targets = layer.state_dict()
    state = {}
    for key, value in tmod.state_dict().items():
        if key in targets:
            state[key] = value.detach().cpu().numpy().reshape(targets[key].shape)
    layer.load_state_dict(state, strict=True)
