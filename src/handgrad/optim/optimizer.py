"""The Optimizer base class: param groups, per-parameter state, torch's state-dict layout.

An optimizer holds ``param_groups`` (a list of dicts: ``'params'`` plus hyperparameters) and a
per-parameter ``state`` dict, exactly as ``torch.optim.Optimizer`` does, so that
``state_dict()`` has torch's layout::

    {'state': {0: {'step': 3.0, 'exp_avg': ndarray, ...}, 1: {...}},
     'param_groups': [{'lr': 0.001, 'betas': (0.9, 0.999), ..., 'params': [0, 1]}]}

Everything in a state dict is a NumPy array or a plain Python number/bool/str/list/tuple, so
``flatten_state`` (in ``flat_state.py``) can turn it into a flat ``dict[str, ndarray]`` for
``np.savez`` (no pickle), and ``unflatten_state`` turns that back into the same nested structure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from handgrad._util import from_torch
from handgrad.nn.module import Parameter

__all__ = ["Optimizer"]

# Switches that torch keeps in its param groups but that mean nothing for NumPy; they are
# dropped when a torch state dict is loaded.
_TORCH_ONLY_KEYS = frozenset({"foreach", "fused", "differentiable", "capturable"})


# -- the base class ----------------------------------------------------------------------------
class Optimizer:
    """Base class of SGD, Adam, AdamW and RMSprop (torch.optim.Optimizer's contract).

    Args:
        params: an iterable of ``Parameter`` (e.g. ``model.parameters()``), of
            ``(name, Parameter)`` pairs (``model.named_parameters()``), or of dicts
            ``{'params': [...], 'lr': ...}`` giving per-group hyperparameters.
        defaults: hyperparameters used by every group that does not set them.

    Subclasses implement ``_check_group(group)`` (raise on bad hyperparameters) and
    ``_step_group(group)`` (update the group's parameters in place).

    Examples:
        >>> class PlainSGD(optim.Optimizer):
        ...     def __init__(self, params, lr=0.1):
        ...         super().__init__(params, {"lr": lr})
        ...     def _step_group(self, group):
        ...         for p in group["params"]:
        ...             p.data -= group["lr"] * p.grad
        >>> w = nn.Parameter(np.array([1.0, 2.0]))
        >>> w.grad[:] = [1.0, -1.0]
        >>> opt = PlainSGD([w])
        >>> opt.step()
        >>> w.data.tolist()
        [0.9, 2.1]
        >>> opt.state_dict()["param_groups"]
        [{'lr': 0.1, 'params': [0]}]
    """

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        name = type(self).__name__
        self.defaults: dict[str, Any] = dict(defaults)
        self.state: dict[Parameter, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        # scratch arrays, one pair per dtype, shared by all parameters (see _scratch)
        self._workspace: dict[tuple[np.dtype, int], np.ndarray] = {}
        self._check_group(self.defaults)
        if isinstance(params, (Parameter, np.ndarray, dict)):
            raise TypeError(
                f"{name}: params must be an iterable of Parameters or of dicts, "
                f"got {type(params).__name__}"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    # -- groups ------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group ``{'params': [...], <hyperparameter>: value, ...}``; missing
        hyperparameters are taken from ``defaults``. A parameter may be in one group only."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(
                f"{name}: a param group must be a dict, got {type(param_group).__name__}"
            )
        if "params" not in param_group:
            raise ValueError(f"{name}: a param group needs a 'params' entry")
        group = dict(param_group)
        raw = group["params"]
        if isinstance(raw, Parameter):
            raw = [raw]
        elif isinstance(raw, (set, frozenset)):
            raise TypeError(f"{name}: params must be an ordered collection, got a set")
        raw = list(raw)
        params: list[Parameter] = []
        names: list[str] = []
        for item in raw:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                names.append(item[0])
                item = item[1]
            if not isinstance(item, Parameter):
                raise TypeError(
                    f"{name}: can only optimize handgrad Parameters, got {type(item).__name__}"
                )
            params.append(item)
        if names and len(names) != len(params):
            raise ValueError(f"{name}: give names for all parameters of a group or for none")
        group["params"] = params
        if names:
            group["param_names"] = names
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a param group contains the same parameter twice")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def _check_group(self, group: Mapping[str, Any]) -> None:
        """Raise ValueError/TypeError if a group's hyperparameters are invalid."""

    # -- stepping ----------------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to zero, in place.

        Unlike torch (``set_to_none=True``) the arrays are kept: handgrad layers accumulate
        into them with ``+=``.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.fill(0.0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter from its ``.grad`` (in place); returns ``closure()`` if given.

        Parameters whose ``.grad`` is None are skipped, as in torch.
        """
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement _step_group()")

    def _grad(self, p: Parameter) -> np.ndarray | None:
        grad = p.grad
        if grad is not None and grad.shape != p.data.shape:
            raise ValueError(
                f"{type(self).__name__}: parameter {p.data.shape} has grad of shape {grad.shape}"
            )
        return grad

    def _scratch(self, param: np.ndarray, k: int) -> np.ndarray:
        """Scratch array number ``k`` with ``param``'s shape and dtype.

        One flat buffer per (dtype, k), as large as the largest parameter of that dtype, is
        allocated once and reused by every parameter and every step, so ``step()`` allocates
        no full-size temporaries (the update is memory-bound; reusing one buffer also keeps it
        warm in cache).
        """
        key = (param.dtype, k)
        buf = self._workspace.get(key)
        if buf is None or buf.size < param.size:
            size = max((p.data.size for g in self.param_groups for p in g["params"]), default=0)
            buf = np.empty(max(size, param.size), dtype=param.dtype)
            self._workspace[key] = buf
        return buf[: param.size].reshape(param.shape)

    def _effective_grad(
        self, param: np.ndarray, grad: np.ndarray, weight_decay: float, maximize: bool
    ) -> np.ndarray:
        """``(-grad if maximize else grad) + weight_decay * param`` (L2 penalty in the
        gradient, torch's order), written into scratch 0 unless it is ``grad`` itself. The
        caller's ``.grad`` is never modified."""
        if weight_decay == 0.0:
            if not maximize:
                return grad
            return np.negative(grad, out=self._scratch(param, 0))
        out = np.multiply(param, weight_decay, out=self._scratch(param, 0))
        # wd * p - g equals -g + wd * p bit for bit (IEEE addition is commutative)
        if maximize:
            out -= grad
        else:
            out += grad
        return out

    # -- state dict --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A copy of the optimizer state in torch's layout.

        Returns ``{'state': {index: {name: ndarray | float}}, 'param_groups': [dict]}`` where
        parameters are replaced by their running index over all groups (``'params': [0, 1]``).
        Arrays are copies: stepping on does not change a saved state dict.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: _copy_value(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state: dict[int, dict[str, Any]] = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: _copy_value(v) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a state dict from ``state_dict()`` (or from torch's optimizer, or from
        ``unflatten_state``), for an exact resume.

        The optimizer must have the same number of groups and group sizes. Arrays are copied
        and cast to their parameter's dtype; torch tensors are converted to NumPy.
        """
        name = type(self).__name__
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"{name}.load_state_dict: expected a mapping with 'state' and 'param_groups' "
                f"(from state_dict()), got {type(state_dict).__name__}"
            )
        if "state" not in state_dict or "param_groups" not in state_dict:
            raise KeyError(f"{name}.load_state_dict: expected keys 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: state dict has {len(saved_groups)} parameter groups, "
                f"optimizer has {len(self.param_groups)}"
            )
        id_map: dict[int, Parameter] = {}
        new_groups = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            saved_ids = [int(_to_python(j)) for j in saved["params"]]
            if len(saved_ids) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: parameter group {i} has {len(saved_ids)} "
                    f"parameters in the state dict, {len(group['params'])} in the optimizer"
                )
            id_map.update(zip(saved_ids, group["params"], strict=True))
            new = {}
            for key, value in saved.items():
                if key == "params" or key in _TORCH_ONLY_KEYS or value is None:
                    continue
                new[key] = _to_python(value)
            if "betas" in new:
                new["betas"] = tuple(float(b) for b in new["betas"])
            if "param_names" in new:
                new["param_names"] = [str(s) for s in new["param_names"]]
            for key, value in self.defaults.items():
                new.setdefault(key, value)
            new["params"] = group["params"]
            self._check_group(new)
            new_groups.append(new)

        new_state: dict[Parameter, dict[str, Any]] = {}
        for key, saved in state_dict["state"].items():
            idx = int(_to_python(key))
            if idx not in id_map:
                raise ValueError(
                    f"{name}.load_state_dict: state for parameter {idx}, which is in no group"
                )
            p = id_map[idx]
            entry: dict[str, Any] = {}
            for sname, value in saved.items():
                value = from_torch(value)
                if sname == "step" or not isinstance(value, np.ndarray):
                    entry[sname] = _to_python(value)
                    continue
                if value.shape != p.data.shape:
                    raise ValueError(
                        f"{name}.load_state_dict: state '{sname}' of parameter {idx} has shape "
                        f"{value.shape}, parameter has {p.data.shape}"
                    )
                entry[sname] = np.array(value, dtype=p.data.dtype, order="C", copy=True)
            new_state[p] = entry
        self.param_groups[:] = new_groups
        self.state = new_state


def _to_python(value: Any) -> Any:
    """0-d arrays and NumPy scalars to Python numbers; everything else unchanged."""
    value = from_torch(value)
    if isinstance(value, (np.ndarray, np.generic)) and value.ndim == 0:
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _copy_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return list(value)
    return value
