"""RMSprop, with optional momentum, centering and L2 weight decay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from handgrad._validate import check_interval, check_nonnegative
from handgrad.optim.optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop, update for update as ``torch.optim.RMSprop`` (same defaults, lr=1e-2).

    For each parameter ``p`` with gradient ``g``::

        g = -g if maximize
        g = g + weight_decay * p                      (L2 penalty added to the gradient)
        v = alpha * v + (1 - alpha) * g**2
        a = alpha * a + (1 - alpha) * g               if centered
        s = sqrt(v - a**2) + eps if centered else sqrt(v) + eps
        b = momentum * b + g / s;  p = p - lr * b     if momentum > 0
        p = p - lr * g / s                            otherwise

    ``v``, ``a`` and ``b`` start at zero (no bias correction, no special first step). State per
    parameter: ``step``, ``square_avg`` (v), ``momentum_buffer`` (b, momentum > 0) and
    ``grad_avg`` (a, centered).

    Examples:
        >>> w = nn.Parameter(np.array([1.0, -2.0]))
        >>> opt = optim.RMSprop([w], lr=0.01)
        >>> w.grad[:] = 2 * w.data
        >>> opt.step()
        >>> w.data.round(4).tolist()  # first step: lr * g / sqrt((1 - alpha) g^2) = 10 lr
        [0.9, -1.9]
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: Mapping[str, Any]) -> None:
        check_nonnegative("RMSprop", "lr", group["lr"])
        check_nonnegative("RMSprop", "eps", group["eps"])
        check_nonnegative("RMSprop", "momentum", group["momentum"])
        check_nonnegative("RMSprop", "weight_decay", group["weight_decay"])
        check_interval("RMSprop", "alpha", group["alpha"], 0.0, 1.0, closed_high=True)

    def _step_group(self, group: dict[str, Any]) -> None:
        lr = float(group["lr"])
        alpha = float(group["alpha"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        momentum = float(group["momentum"])
        centered = bool(group["centered"])
        maximize = bool(group["maximize"])
        for p in group["params"]:
            grad = self._grad(p)
            if grad is None:
                continue
            param = p.data
            state = self.state.get(p)
            if not state:
                state = self.state[p] = {"step": 0.0, "square_avg": np.zeros_like(param)}
            if momentum > 0.0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = np.zeros_like(param)
            if centered and "grad_avg" not in state:
                state["grad_avg"] = np.zeros_like(param)
            state["step"] += 1.0

            g = self._effective_grad(param, grad, weight_decay, maximize)
            tmp = self._scratch(param, 1)
            square_avg = state["square_avg"]
            square_avg *= alpha
            square_avg += np.multiply(np.multiply(g, g, out=tmp), 1.0 - alpha, out=tmp)
            if centered:
                grad_avg = state["grad_avg"]
                # a <- a + (1 - alpha) (g - a): torch's lerp
                grad_avg += np.multiply(np.subtract(g, grad_avg, out=tmp), 1.0 - alpha, out=tmp)
                avg = np.multiply(grad_avg, grad_avg, out=tmp)
                np.subtract(square_avg, avg, out=avg)
                np.sqrt(avg, out=avg)
            else:
                avg = np.sqrt(square_avg, out=tmp)
            avg += eps
            if momentum > 0.0:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += np.divide(g, avg, out=tmp)
                param -= np.multiply(buf, lr, out=tmp)
            else:
                update = np.divide(g, avg, out=tmp)
                update *= lr
                param -= update
