"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from handgrad._validate import check_interval, check_nonnegative
from handgrad.optim.optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""SGD, update for update as ``torch.optim.SGD`` (same defaults, lr=1e-3).

    For each parameter ``p`` with gradient ``g``, at step t::

        g = -g if maximize
        g = g + weight_decay * p                      (L2 penalty added to the gradient)
        b = g                                         at t = 1 (no dampening on the first step)
        b = momentum * b + (1 - dampening) * g        at t > 1
        d = g + momentum * b if nesterov else b       (d = g when momentum = 0)
        p = p - lr * d

    State per parameter: ``momentum_buffer`` (only when momentum != 0).

    Examples:
        >>> w = nn.Parameter(np.array([1.0, -2.0]))
        >>> opt = optim.SGD([w], lr=0.1)
        >>> w.grad[:] = 2 * w.data  # the gradient of sum(w ** 2)
        >>> opt.step()
        >>> w.data.tolist()
        [0.8, -1.6]

        A training step on a model:

        >>> model, loss_fn = nn.Linear(3, 1, rng=0), nn.MSELoss()
        >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> x, y = np.ones((4, 3), dtype=np.float32), np.zeros((4, 1), dtype=np.float32)
        >>> opt.zero_grad()
        >>> before = loss_fn(model(x), y)
        >>> grad_in = model.backward(loss_fn.backward())
        >>> opt.step()
        >>> loss_fn(model(x), y) < before
        True
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: Mapping[str, Any]) -> None:
        check_nonnegative("SGD", "lr", group["lr"])
        check_nonnegative("SGD", "momentum", group["momentum"])
        check_interval("SGD", "dampening", group["dampening"], 0.0, 1.0, closed_high=True)
        check_nonnegative("SGD", "weight_decay", group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "SGD: nesterov=True requires momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _step_group(self, group: dict[str, Any]) -> None:
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        nesterov = bool(group["nesterov"])
        maximize = bool(group["maximize"])
        for p in group["params"]:
            grad = self._grad(p)
            if grad is None:
                continue
            param = p.data
            d_p = self._effective_grad(param, grad, weight_decay, maximize)
            if momentum != 0.0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    # torch starts the buffer at the first gradient itself, undamped
                    buf = state["momentum_buffer"] = np.array(d_p, order="C", copy=True)
                else:
                    buf *= momentum
                    if dampening == 0.0:
                        buf += d_p
                    else:
                        buf += np.multiply(d_p, 1.0 - dampening, out=self._scratch(param, 1))
                if nesterov:
                    tmp = np.multiply(buf, momentum, out=self._scratch(param, 1))
                    tmp += d_p
                    d_p = tmp
                else:
                    d_p = buf
            param -= np.multiply(d_p, lr, out=self._scratch(param, 1))
