"""The registry of layers and losses under test (not to be confused with the experiments').

Each Case says how to build a handgrad module, the equivalent torch module, and the input. The
generic tests in ``test_registry.py`` run every case through: finite differences in float64,
PyTorch parity of the output and of every gradient, dtype preservation, and shape errors.

To put a new layer under test, add a Case here (or to the ``CASES`` list of
``layer_cases_conv.py`` or ``layer_cases_normalize.py``, imported at the bottom of this file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import handgrad.nn as nn


@dataclass
class Case:
    name: str
    # builds the handgrad module: make(rng, dtype)
    make: Callable[[np.random.Generator, Any], nn.Module]
    # builds the equivalent torch module (weights are copied from handgrad's state_dict)
    make_torch: Callable[[], Any] | None
    input_shape: tuple[int, ...]
    # "layer": out = m(x), backward(grad_out); "loss": value = m(x, target), backward()
    kind: str = "layer"
    # draws an input: input_fn(rng, shape) -> float64 array (e.g. to keep away from kinks)
    input_fn: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] | None = None
    # draws a loss target: target_fn(rng, input_shape) -> array
    target_fn: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] | None = None
    # a wrong-shaped input and a regex its error must match (None: no shape check)
    bad_input_shape: tuple[int, ...] | None = None
    bad_input_match: str | None = None
    # modules whose forward is random in training mode are checked in eval mode
    eval_mode: bool = False
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return self.name

    def draw_input(self, rng: np.random.Generator) -> np.ndarray:
        if self.input_fn is not None:
            return self.input_fn(rng, self.input_shape)
        return rng.standard_normal(self.input_shape)

    def draw_target(self, rng: np.random.Generator) -> Any:
        assert self.target_fn is not None
        return self.target_fn(rng, self.input_shape)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal values pushed at least 0.1 away from 0, so a finite-difference step of 1e-6
    never crosses the kink of ReLU-like functions."""
    x = rng.standard_normal(shape)
    return np.where(x >= 0, x + 0.1, x - 0.1)


def away_from(points: tuple[float, ...], margin: float = 0.1, scale: float = 1.0):
    """Input drawer: scaled normals kept at least ``margin`` away from each kink point."""

    def draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        x = scale * rng.standard_normal(shape)
        for p in points:
            near = np.abs(x - p) < margin
            x = np.where(near, p + np.where(x >= p, margin, -margin), x)
        return x

    return draw


def uniform_between(lo: float, hi: float):
    return lambda rng, shape: rng.uniform(lo, hi, size=shape)


def class_targets(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, shape[1], size=shape[0])


def class_probabilities(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.dirichlet(np.ones(shape[1]), size=shape[0])


def one_hot_targets(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.eye(shape[1])[class_targets(rng, shape)]


def softmax_rows(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    z = rng.standard_normal(shape)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def torch_prob_cross_entropy(reduction: str):
    """-sum(y log p) / N in torch (it has no such module): the oracle of ProbCrossEntropyLoss."""
    import torch

    class ProbCrossEntropy(torch.nn.Module):
        def forward(self, p, y):
            total = -(y * torch.log(p).clamp(min=-100.0)).sum()
            return total / p.shape[0] if reduction == "mean" else total

    return ProbCrossEntropy()


def log_probabilities(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    z = rng.standard_normal(shape)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def tnn():
    """torch.nn, imported only when a torch module is built (this file imports without torch)."""
    import torch

    return torch.nn


def _act(name: str, make, make_torch, shape=(4, 5), **kw) -> Case:
    return Case(name, lambda rng, dt: make(), make_torch, shape, **kw)


CASES: list[Case] = [
    Case(
        "Linear",
        lambda rng, dt: nn.Linear(5, 3, rng=rng, dtype=dt),
        lambda: tnn().Linear(5, 3),
        (4, 5),
        bad_input_shape=(4, 6),
        bad_input_match=r"Linear\(in_features=5, out_features=3, bias=True\): "
        r"expected input \(N, 5\), got \(4, 6\)",
    ),
    Case(
        "Linear-nobias-3d",
        lambda rng, dt: nn.Linear(5, 3, bias=False, rng=rng, dtype=dt),
        lambda: tnn().Linear(5, 3, bias=False),
        (2, 4, 5),
    ),
    _act("Identity", nn.Identity, lambda: tnn().Identity(), (3, 4)),
    _act("ReLU", nn.ReLU, lambda: tnn().ReLU(), input_fn=away_from((0.0,))),
    _act(
        "LeakyReLU",
        lambda: nn.LeakyReLU(0.2),
        lambda: tnn().LeakyReLU(0.2),
        input_fn=away_from((0.0,)),
    ),
    _act("Sigmoid", nn.Sigmoid, lambda: tnn().Sigmoid(), input_fn=away_from((), scale=4.0)),
    _act("Tanh", nn.Tanh, lambda: tnn().Tanh(), input_fn=away_from((), scale=2.0)),
    _act("Softplus", nn.Softplus, lambda: tnn().Softplus(), input_fn=away_from((), scale=3.0)),
    _act(
        "Softplus-beta2-threshold3",
        lambda: nn.Softplus(beta=2.0, threshold=3.0),
        lambda: tnn().Softplus(beta=2.0, threshold=3.0),
        (6, 7),
        input_fn=away_from((1.5,), scale=2.0),
    ),
    _act("GELU", nn.GELU, lambda: tnn().GELU(), input_fn=away_from((), scale=2.0)),
    _act(
        "GELU-tanh",
        lambda: nn.GELU("tanh"),
        lambda: tnn().GELU(approximate="tanh"),
        input_fn=away_from((), scale=2.0),
    ),
    _act("ELU", nn.ELU, lambda: tnn().ELU(), input_fn=away_from((0.0,))),
    _act(
        "ELU-alpha0.5",
        lambda: nn.ELU(alpha=0.5),
        lambda: tnn().ELU(alpha=0.5),
        input_fn=away_from((0.0,)),
    ),
    _act("Softmax", nn.Softmax, lambda: tnn().Softmax(dim=-1)),
    _act("Softmax-dim0", lambda: nn.Softmax(dim=0), lambda: tnn().Softmax(dim=0), (3, 4, 2)),
    _act(
        "Softmax-bad-dim",
        lambda: nn.Softmax(dim=2),
        lambda: tnn().Softmax(dim=2),
        (3, 4, 2),
        bad_input_shape=(3, 4),
        bad_input_match=r"Softmax\(dim=2\): dim 2 is out of range for input of shape \(3, 4\)",
    ),
    _act("LogSoftmax", nn.LogSoftmax, lambda: tnn().LogSoftmax(dim=-1)),
    _act(
        "LogSoftmax-dim1", lambda: nn.LogSoftmax(dim=1), lambda: tnn().LogSoftmax(dim=1), (2, 3, 4)
    ),
    _act(
        "Dropout-eval", lambda: nn.Dropout(0.3, rng=0), lambda: tnn().Dropout(0.3), eval_mode=True
    ),
    _act("Flatten", nn.Flatten, lambda: tnn().Flatten(), (2, 3, 4, 5)),
    _act("Flatten-1-2", lambda: nn.Flatten(1, 2), lambda: tnn().Flatten(1, 2), (2, 3, 4, 5)),
    Case(
        "BatchNorm1d",
        lambda rng, dt: _perturbed_bn(nn.BatchNorm1d(5, dtype=dt), rng),
        lambda: tnn().BatchNorm1d(5),
        (8, 5),
        bad_input_shape=(8, 4),
        bad_input_match=r"BatchNorm1d\(5, .*\): expected input \(N, 5\) or \(N, 5, L\), "
        r"got \(8, 4\)",
    ),
    Case(
        "BatchNorm1d-3d-momentumNone",
        lambda rng, dt: _perturbed_bn(nn.BatchNorm1d(3, momentum=None, dtype=dt), rng),
        lambda: tnn().BatchNorm1d(3, momentum=None),
        (4, 3, 5),
    ),
    Case(
        "BatchNorm1d-noaffine",
        lambda rng, dt: nn.BatchNorm1d(4, affine=False, dtype=dt),
        lambda: tnn().BatchNorm1d(4, affine=False),
        (6, 4),
    ),
    Case(
        "BatchNorm1d-nobias",
        lambda rng, dt: _perturbed_bn(nn.BatchNorm1d(4, bias=False, dtype=dt), rng),
        lambda: tnn().BatchNorm1d(4, bias=False),
        (6, 4),
    ),
    Case(
        "BatchNorm1d-staged",
        lambda rng, dt: _perturbed_bn(nn.BatchNorm1d(5, backward_form="staged", dtype=dt), rng),
        lambda: tnn().BatchNorm1d(5),
        (8, 5),
    ),
    Case(
        "BatchNorm1d-eval",
        lambda rng, dt: _perturbed_bn(nn.BatchNorm1d(5, dtype=dt), rng, stats=True),
        lambda: tnn().BatchNorm1d(5),
        (8, 5),
        eval_mode=True,
    ),
    Case(
        "BatchNorm2d",
        lambda rng, dt: _perturbed_bn(nn.BatchNorm2d(3, dtype=dt), rng),
        lambda: tnn().BatchNorm2d(3),
        (2, 3, 4, 5),
        bad_input_shape=(2, 3, 4),
        bad_input_match=r"BatchNorm2d\(3, .*\): expected input \(N, 3, H, W\), got \(2, 3, 4\)",
    ),
    Case(
        "BatchNorm2d-eval",
        lambda rng, dt: _perturbed_bn(nn.BatchNorm2d(3, dtype=dt), rng, stats=True),
        lambda: tnn().BatchNorm2d(3),
        (2, 3, 4, 5),
        eval_mode=True,
    ),
    Case(
        "Sequential-MLP",
        lambda rng, dt: nn.Sequential(
            nn.Linear(4, 6, rng=rng, dtype=dt),
            nn.Tanh(),
            nn.Linear(6, 6, rng=rng, dtype=dt),
            nn.Sigmoid(),
            nn.Linear(6, 3, rng=rng, dtype=dt),
        ),
        lambda: tnn().Sequential(
            tnn().Linear(4, 6),
            tnn().Tanh(),
            tnn().Linear(6, 6),
            tnn().Sigmoid(),
            tnn().Linear(6, 3),
        ),
        (5, 4),
        bad_input_shape=(5, 3),
        bad_input_match=r"Linear\(in_features=4, out_features=6, bias=True\): "
        r"expected input \(N, 4\), got \(5, 3\)",
    ),
]


def _perturbed_bn(bn: nn.Module, rng: np.random.Generator, stats: bool = False) -> nn.Module:
    """Batch norm with non-trivial affine parameters (and running statistics if ``stats``),
    so that the checks see gamma != 1 and beta != 0."""
    sd = bn.state_dict()
    for k, v in sd.items():
        if k == "weight":
            sd[k] = rng.uniform(0.5, 1.5, v.shape)
        elif k == "bias" or (stats and k == "running_mean"):
            sd[k] = rng.standard_normal(v.shape)
        elif stats and k == "running_var":
            sd[k] = rng.uniform(0.5, 2.0, v.shape)
    bn.load_state_dict(sd)
    return bn


def _loss(name, make, make_torch, shape, target_fn, input_fn=None) -> Case:
    return Case(
        name,
        lambda rng, dt: make(),
        make_torch,
        shape,
        kind="loss",
        target_fn=target_fn,
        input_fn=input_fn,
    )


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape)


for _red in ("mean", "sum"):
    CASES += [
        _loss(
            f"MSELoss-{_red}",
            lambda r=_red: nn.MSELoss(r),
            lambda r=_red: tnn().MSELoss(reduction=r),
            (4, 3),
            _normal,
        ),
        _loss(
            f"BCELoss-{_red}",
            lambda r=_red: nn.BCELoss(r),
            lambda r=_red: tnn().BCELoss(reduction=r),
            (6, 2),
            uniform_between(0.0, 1.0),
            input_fn=uniform_between(0.05, 0.95),
        ),
        _loss(
            f"BCEWithLogitsLoss-{_red}",
            lambda r=_red: nn.BCEWithLogitsLoss(r),
            lambda r=_red: tnn().BCEWithLogitsLoss(reduction=r),
            (6, 1),
            uniform_between(0.0, 1.0),
            input_fn=away_from((), scale=3.0),
        ),
        _loss(
            f"CrossEntropyLoss-{_red}",
            lambda r=_red: nn.CrossEntropyLoss(r),
            lambda r=_red: tnn().CrossEntropyLoss(reduction=r),
            (5, 4),
            class_targets,
        ),
        _loss(
            f"CrossEntropyLoss-probs-{_red}",
            lambda r=_red: nn.CrossEntropyLoss(r),
            lambda r=_red: tnn().CrossEntropyLoss(reduction=r),
            (5, 4),
            class_probabilities,
        ),
        _loss(
            f"ProbCrossEntropyLoss-{_red}",
            lambda r=_red: nn.ProbCrossEntropyLoss(r),
            lambda r=_red: torch_prob_cross_entropy(r),
            (5, 4),
            one_hot_targets,
            input_fn=softmax_rows,
        ),
        _loss(
            f"NLLLoss-{_red}",
            lambda r=_red: nn.NLLLoss(r),
            lambda r=_red: tnn().NLLLoss(reduction=r),
            (5, 4),
            class_targets,
            input_fn=log_probabilities,
        ),
    ]

# convolution and pooling, and the sum-normalisation heads, keep their cases in files of their
# own; they import Case from here, so they come last (import this module first, not them)
from layer_cases_conv import CASES as _CONV_CASES  # noqa: E402
from layer_cases_normalize import CASES as _NORM_CASES  # noqa: E402

CASES += _CONV_CASES + _NORM_CASES
