"""Adam and AdamW (Adam with decoupled weight decay), with optional AMSGrad."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from handgrad._validate import check_interval, check_nonnegative
from handgrad.optim.optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam, update for update as ``torch.optim.Adam`` (same defaults, same bias correction).

    For each parameter ``p`` with gradient ``g``, at step t = 1, 2, ...::

        g = -g if maximize
        p = p * (1 - lr * weight_decay)               if decoupled_weight_decay (AdamW)
        g = g + weight_decay * p                      otherwise (L2 penalty in the gradient)
        m = beta1 * m + (1 - beta1) * g               (torch: m.lerp_(g, 1 - beta1))
        v = beta2 * v + (1 - beta2) * g**2
        v_max = max(v_max, v)                         if amsgrad; then v_max replaces v below
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    ``m`` and ``v`` start at zero. State per parameter: ``step`` (a float, as torch's),
    ``exp_avg`` (m), ``exp_avg_sq`` (v) and ``max_exp_avg_sq`` (v_max, amsgrad only), all of
    the parameter's shape and dtype.

    Examples:
        >>> w = nn.Parameter(np.array([1.0, -2.0]))
        >>> opt = optim.Adam([w], lr=0.1)
        >>> w.grad[:] = 2 * w.data
        >>> opt.step()
        >>> w.data.round(4).tolist()  # the first step moves every entry by about lr
        [0.9, -1.9]
        >>> sorted(opt.state_dict()["state"][0])
        ['exp_avg', 'exp_avg_sq', 'step']
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": _as_betas(type(self).__name__, betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: Mapping[str, Any]) -> None:
        name = type(self).__name__
        check_nonnegative(name, "lr", group["lr"])
        check_nonnegative(name, "eps", group["eps"])
        betas = _as_betas(name, group["betas"])
        for i, beta in enumerate(betas):
            check_interval(name, f"betas[{i}]", beta, 0.0, 1.0, closed_high=False)
        check_nonnegative(name, "weight_decay", group["weight_decay"])

    def _step_group(self, group: dict[str, Any]) -> None:
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        amsgrad = bool(group["amsgrad"])
        maximize = bool(group["maximize"])
        decoupled = bool(group["decoupled_weight_decay"])
        for p in group["params"]:
            grad = self._grad(p)
            if grad is None:
                continue
            param = p.data
            state = self.state.get(p)
            if not state:
                state = self.state[p] = {
                    "step": 0.0,
                    "exp_avg": np.zeros_like(param),
                    "exp_avg_sq": np.zeros_like(param),
                }
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = np.zeros_like(param)
            state["step"] += 1.0
            step = state["step"]

            if weight_decay != 0.0 and decoupled:
                param *= 1.0 - lr * weight_decay
                g = self._effective_grad(param, grad, 0.0, maximize)
            else:
                g = self._effective_grad(param, grad, weight_decay, maximize)
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            tmp = self._scratch(param, 1)

            # m <- m + (1 - beta1) (g - m): torch's lerp, one rounding fewer than two products
            exp_avg += np.multiply(np.subtract(g, exp_avg, out=tmp), 1.0 - beta1, out=tmp)
            exp_avg_sq *= beta2
            exp_avg_sq += np.multiply(np.multiply(g, g, out=tmp), 1.0 - beta2, out=tmp)

            bias_correction1 = 1.0 - beta1**step
            bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
            step_size = lr / bias_correction1
            second = exp_avg_sq
            if amsgrad:
                second = state["max_exp_avg_sq"]
                np.maximum(second, exp_avg_sq, out=second)
            # torch: p -= step_size * m / (sqrt(v) / bc2_sqrt + eps). Multiplying through by
            # bc2_sqrt gives the same value with one pass over the arrays fewer.
            denom = np.sqrt(second, out=tmp)
            denom += eps * bias_correction2_sqrt
            update = np.divide(exp_avg, denom, out=tmp)
            update *= step_size * bias_correction2_sqrt
            param -= update


class AdamW(Adam):
    r"""AdamW, update for update as ``torch.optim.AdamW``: Adam with decoupled weight decay,
    ``p = p * (1 - lr * weight_decay)`` before the Adam step, and default weight_decay=1e-2.
    See ``Adam`` for the formulas and the state.

    Examples:
        >>> w = nn.Parameter(np.array([1.0]))
        >>> opt = optim.AdamW([w], lr=0.1, weight_decay=0.5)
        >>> opt.step()  # a zero gradient: only the decay p * (1 - lr * weight_decay)
        >>> w.data.round(4).tolist()
        [0.95]
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # as torch: an AdamW always decays decoupled, whatever a loaded group says
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def _as_betas(owner: str, betas: Any) -> tuple[float, float]:
    try:
        pair = tuple(betas)
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    return pair  # type: ignore[return-value]
