"""Learning-rate schedules: StepLR, ExponentialLR, CosineAnnealingLR (torch.optim.lr_scheduler).

A scheduler rewrites ``group['lr']`` of its optimizer's param groups each time ``step()`` is
called (once per epoch, after ``optimizer.step()``). The values are computed with the same
recursive formulas as torch, so the two lr sequences agree to the last bits.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

from handgrad._validate import check_nonnegative, check_positive, check_positive_period
from handgrad.optim.optimizer import Optimizer

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRScheduler", "StepLR"]


class LRScheduler:
    """Base class: subclasses implement ``get_lr()``, the lrs for epoch ``last_epoch``.

    Args:
        optimizer: the handgrad Optimizer whose ``group['lr']`` values are scheduled.
        last_epoch: index of the last epoch; -1 (default) starts a new schedule and records
            each group's lr as ``group['initial_lr']``. Another value resumes a schedule and
            needs ``initial_lr`` in every group (prefer ``load_state_dict``).

    Building a scheduler performs its first ``step()`` (epoch 0), as torch does. Attributes:
    ``base_lrs`` (the initial lrs), ``last_epoch``, and the state in ``state_dict()`` (every
    attribute except the optimizer, with torch's names, plain Python values only).

    Examples:
        >>> class HalvingLR(optim.LRScheduler):
        ...     def get_lr(self):
        ...         return [base_lr * 0.5**self.last_epoch for base_lr in self.base_lrs]
        >>> opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
        >>> sched = HalvingLR(opt)
        >>> for epoch in range(3):
        ...     sched.step()
        >>> sched.get_last_lr(), opt.param_groups[0]["lr"]
        ([0.125], 0.125)
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{name}: optimizer must be a handgrad.optim.Optimizer, "
                f"got {type(optimizer).__name__}"
            )
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral):
            raise TypeError(f"{name}: last_epoch must be an int, got {last_epoch!r}")
        if last_epoch < -1:
            raise ValueError(f"{name}: invalid last_epoch {last_epoch}, must be >= -1")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{name}: param_groups[{i}] has no 'initial_lr', needed to resume with "
                        f"last_epoch={last_epoch}; load the optimizer's state dict first"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The lrs for epoch ``last_epoch``, one per param group (called by ``step``; to read
        the current lrs use ``get_last_lr()``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr()")

    def _warn_if_outside_step(self) -> None:
        if not getattr(self, "_get_lr_called_within_step", False):
            warnings.warn(
                "To get the last learning rate computed by the scheduler, use get_last_lr().",
                UserWarning,
                stacklevel=3,
            )

    def step(self) -> None:
        """Advance one epoch and write the new lrs into the optimizer's param groups."""
        self._step_count += 1
        self._get_lr_called_within_step = True
        try:
            self.last_epoch += 1
            values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr: list[float] = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The lrs set by the last ``step()``, one per param group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer (torch's keys, e.g. ``last_epoch``,
        ``base_lrs``, ``_last_lr``, ``_step_count``); values are plain Python numbers, bools
        and lists, so ``flatten_state`` stores them in an .npz."""
        return {
            key: list(value) if isinstance(value, list) else value
            for key, value in self.__dict__.items()
            if key != "optimizer"
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from ``state_dict()`` (or from the same torch scheduler)."""
        for key, value in state_dict.items():
            if key == "optimizer":
                continue
            self.__dict__[key] = list(value) if isinstance(value, (list, tuple)) else value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch})"


class StepLR(LRScheduler):
    """Multiply every group's lr by ``gamma`` every ``step_size`` epochs:
    ``lr_e = base_lr * gamma ** (e // step_size)``.

    Args:
        optimizer: the Optimizer to schedule.
        step_size: period of the decay, in epochs (a positive int).
        gamma: multiplicative factor (>= 0), default 0.1.
        last_epoch: see ``LRScheduler``.

    Examples:
        >>> opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1)
        >>> sched = optim.StepLR(opt, step_size=2, gamma=0.5)
        >>> lrs = []
        >>> for epoch in range(5):
        ...     lrs.append(sched.get_last_lr()[0])  # train one epoch with this lr, then:
        ...     sched.step()
        >>> lrs
        [0.1, 0.1, 0.05, 0.05, 0.025]
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.step_size = check_positive_period("StepLR", "step_size", step_size)
        check_nonnegative("StepLR", "gamma", gamma)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_if_outside_step()
        # recursive, as torch: the current lr is multiplied, so outside changes are kept
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class ExponentialLR(LRScheduler):
    """Multiply every group's lr by ``gamma`` every epoch: ``lr_e = base_lr * gamma ** e``.

    Args:
        optimizer: the Optimizer to schedule.
        gamma: multiplicative factor (> 0).
        last_epoch: see ``LRScheduler``.

    Examples:
        >>> opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
        >>> sched = optim.ExponentialLR(opt, gamma=0.5)
        >>> lrs = []
        >>> for epoch in range(3):
        ...     lrs.append(sched.get_last_lr()[0])
        ...     sched.step()
        >>> lrs
        [1.0, 0.5, 0.25]
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        check_positive("ExponentialLR", "gamma", gamma)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_if_outside_step()
        if self._is_initial:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from the initial lr down to ``eta_min`` over ``T_max`` epochs.

    Closed form (SGDR without restarts)::

        lr_e = eta_min + (base_lr - eta_min) * (1 + cos(pi * e / T_max)) / 2

    computed, as in torch, by the recursion
    ``lr_e = eta_min + (lr_{e-1} - eta_min) * (1 + cos(pi e / T)) / (1 + cos(pi (e-1) / T))``
    (so outside changes to the lr are kept), with torch's special step at
    ``e = T_max + 1 (mod 2 T_max)`` where that ratio is 0/0. Past ``T_max`` the lr rises again
    along the cosine, as torch's does.

    Args:
        optimizer: the Optimizer to schedule.
        T_max: half period, in epochs (a positive int).
        eta_min: the lowest lr (>= 0), default 0.
        last_epoch: see ``LRScheduler``.

    Examples:
        >>> opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
        >>> sched = optim.CosineAnnealingLR(opt, T_max=4)
        >>> lrs = []
        >>> for epoch in range(5):
        ...     lrs.append(round(sched.get_last_lr()[0], 4))
        ...     sched.step()
        >>> lrs
        [1.0, 0.8536, 0.5, 0.1464, 0.0]
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        self.T_max = check_positive_period("CosineAnnealingLR", "T_max", T_max)
        check_nonnegative("CosineAnnealingLR", "eta_min", eta_min)
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_if_outside_step()
        groups = self.optimizer.param_groups
        e, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [group["lr"] for group in groups]
        if (e - 1 - T) % (2 * T) == 0:
            # the recursion's ratio is 0/0 right after the minimum: add the first rise instead
            return [
                group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
                for base_lr, group in zip(self.base_lrs, groups, strict=True)
            ]
        return [
            (1 + math.cos(math.pi * e / T))
            / (1 + math.cos(math.pi * (e - 1) / T))
            * (group["lr"] - eta_min)
            + eta_min
            for group in groups
        ]
