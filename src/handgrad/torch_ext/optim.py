"""Adam as a ``torch.optim.Optimizer`` whose update is written out line by line."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["Adam"]


class Adam(torch.optim.Optimizer):
    """Adam (Kingma & Ba, 2015) with PyTorch's exact update, so that it matches
    ``torch.optim.Adam`` parameter for parameter.

    For each parameter ``p`` with gradient ``g``, at step ``t = 1, 2, ...``::

        g = g + weight_decay * p                  (L2 penalty, added to the gradient)
        m = beta1 * m + (1 - beta1) * g           (first moment)
        v = beta2 * v + (1 - beta2) * g * g       (second moment)
        v_max = max(v_max, v)                     (only with amsgrad)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v or v_max) / sqrt(1 - beta2^t) + eps)

    The state of each parameter is ``state['step']`` (int), ``state['m']``, ``state['v']`` (and
    ``state['v_max']`` with amsgrad), tensors shaped like the parameter. Parameters whose
    ``.grad`` is None are skipped. ``state_dict()`` / ``load_state_dict()`` are torch's.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        if not (isinstance(lr, (int, float)) and lr >= 0):
            raise ValueError(f"Adam: invalid lr {lr!r}, must be >= 0")
        if not (isinstance(eps, (int, float)) and eps >= 0):
            raise ValueError(f"Adam: invalid eps {eps!r}, must be >= 0")
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not (isinstance(beta, (int, float)) and 0.0 <= beta < 1.0):
                raise ValueError(f"Adam: invalid betas[{i}] {beta!r}, must be in [0, 1)")
        if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise ValueError(f"Adam: invalid weight_decay {weight_decay!r}, must be >= 0")
        defaults = {
            "lr": float(lr),
            "betas": (float(betas[0]), float(betas[1])),
            "eps": float(eps),
            "weight_decay": float(weight_decay),
            "amsgrad": bool(amsgrad),
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"]
            beta1, beta2 = group["betas"]
            eps, weight_decay, amsgrad = group["eps"], group["weight_decay"], group["amsgrad"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Adam: sparse gradients are not supported")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if amsgrad:
                        state["v_max"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"]
                m, v = state["m"], state["v"]

                grad = p.grad
                if weight_decay != 0:
                    grad = grad.add(p, alpha=weight_decay)  # a new tensor: p.grad is kept
                # exponential moving averages of the gradient and of its square;
                # lerp(m, g, 1 - beta1) = beta1 m + (1 - beta1) g, PyTorch's rounding
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                if amsgrad:
                    torch.maximum(state["v_max"], v, out=state["v_max"])
                    second = state["v_max"]
                else:
                    second = v
                # bias correction: m and v start at 0, so early averages are too small by
                # factors 1 - beta^t; the correction of v goes under the square root
                bias_correction1 = 1 - beta1**t
                bias_correction2 = 1 - beta2**t
                denom = (second.sqrt() / bias_correction2**0.5).add_(eps)
                p.addcdiv_(m, denom, value=-lr / bias_correction1)
        return loss
