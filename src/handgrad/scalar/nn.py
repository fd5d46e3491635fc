"""Neuron, Layer and MLP built on scalar Values, and softmax cross-entropy on lists of Values.

Parameter names follow the equivalent ``handgrad.nn`` / PyTorch model: ``MLP(2, [3, 2])`` holds
the same numbers as ``Sequential(Linear(2, 3), Act(), Linear(3, 2))`` and its ``state_dict``
uses the keys ``0.weight``, ``0.bias``, ``2.weight``, ``2.bias`` with PyTorch's shapes, so
weights move between the scalar and the vectorised model unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np

from handgrad._util import RNGLike, as_rng
from handgrad.scalar.engine import Value, make_node, sum_nodes, vsum

__all__ = ["ACTIVATIONS", "MLP", "Layer", "Neuron", "cross_entropy", "softmax"]

# name -> function applied to a neuron's pre-activation (None: linear)
ACTIVATIONS: dict[str, Callable[[Value], Value] | None] = {
    "linear": None,
    "tanh": Value.tanh,
    "sigmoid": Value.sigmoid,
    "relu": Value.relu,
    "leaky_relu": Value.leaky_relu,
    "softplus": Value.softplus,
}


def _check_size(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _check_activation(owner: str, activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{owner}: unknown activation {activation!r}, expected one of {sorted(ACTIVATIONS)}"
        )
    return activation


def _as_values(x: Sequence[Value | float]) -> list[Value]:
    # convert numbers once, so that a number input is one leaf shared by every neuron
    return [v if isinstance(v, Value) else Value(v) for v in x]


class Neuron:
    """act(sum_i w_i x_i + b) on a list of ``nin`` scalars.

    Init: PyTorch's Linear default, w_i and b ~ U(-1/sqrt(nin), 1/sqrt(nin)).
    The pre-activation is built from one ``*`` per input and one n-ary sum node.
    """

    def __init__(
        self,
        nin: int,
        activation: str = "tanh",
        *,
        rng: RNGLike = None,
    ) -> None:
        self.nin = _check_size("Neuron", "nin", nin)
        self.activation = _check_activation("Neuron", activation)
        self._act = ACTIVATIONS[activation]
        gen = as_rng(rng)
        bound = 1.0 / math.sqrt(nin)
        ws = gen.uniform(-bound, bound, size=nin)
        self.w: list[Value] = [Value(float(u), label=f"w[{i}]") for i, u in enumerate(ws)]
        self.b = Value(float(gen.uniform(-bound, bound)), label="b")

    def __call__(self, x: Sequence[Value | float]) -> Value:
        if len(x) != self.nin:
            raise ValueError(f"{self}: expected {self.nin} inputs, got {len(x)}")
        return self._forward(_as_values(x))

    def _forward(self, xs: list[Value]) -> Value:
        # inputs already checked and converted by the caller
        products = [wi * xi for wi, xi in zip(self.w, xs)]  # noqa: B905 (lengths checked)
        products.append(self.b)
        z = sum_nodes(products)
        return z if self._act is None else self._act(z)

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]

    def __repr__(self) -> str:
        return f"Neuron(nin={self.nin}, activation={self.activation!r})"


class Layer:
    """``nout`` neurons reading the same ``nin`` inputs; returns a list of ``nout`` Values.

    ``name`` prefixes the parameters' labels: with ``name='0.'`` the weight joining input i to
    neuron j is labelled ``0.weight[j,i]``, as the entry of the ``0.weight`` matrix it becomes.
    """

    def __init__(
        self,
        nin: int,
        nout: int,
        activation: str = "tanh",
        *,
        rng: RNGLike = None,
        name: str = "",
    ) -> None:
        self.nin = _check_size("Layer", "nin", nin)
        self.nout = _check_size("Layer", "nout", nout)
        self.activation = _check_activation("Layer", activation)
        gen = as_rng(rng)
        self.neurons = [Neuron(nin, activation, rng=gen) for _ in range(nout)]
        # labels name each number after its entry in the weight matrix, e.g. 0.weight[1,0]
        for j, n in enumerate(self.neurons):
            for i, w in enumerate(n.w):
                w.label = f"{name}weight[{j},{i}]"
            n.b.label = f"{name}bias[{j}]"

    def __call__(self, x: Sequence[Value | float]) -> list[Value]:
        if len(x) != self.nin:
            raise ValueError(f"{self}: expected {self.nin} inputs, got {len(x)}")
        return self._forward(_as_values(x))

    def _forward(self, xs: list[Value]) -> list[Value]:
        return [n._forward(xs) for n in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    @property
    def weight(self) -> np.ndarray:
        """The weights as a float64 array (nout, nin), PyTorch's Linear layout."""
        return np.array([[w.data for w in n.w] for n in self.neurons], dtype=np.float64)

    @property
    def bias(self) -> np.ndarray:
        """The biases as a float64 array (nout,)."""
        return np.array([n.b.data for n in self.neurons], dtype=np.float64)

    def __repr__(self) -> str:
        return f"Layer(nin={self.nin}, nout={self.nout}, activation={self.activation!r})"


class MLP:
    """A multilayer perceptron on scalars: ``activation`` after every layer but the last.

    ``MLP(2, [3, 2], activation='sigmoid')`` is ``Sequential(Linear(2, 3), Sigmoid(),
    Linear(3, 2))``; calling it on a list of ``nin`` numbers or Values returns a list of
    ``nouts[-1]`` Values (the logits).

    For speed, build a whole batch's graph inside ``with paused_gc():`` (see ``paused_gc``).
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        activation: str = "tanh",
        *,
        rng: RNGLike = None,
    ) -> None:
        self.nin = _check_size("MLP", "nin", nin)
        if isinstance(nouts, (int, np.integer)) or len(nouts) == 0:
            raise ValueError(f"MLP: nouts must be a non-empty list of sizes, got {nouts!r}")
        self.nouts = [_check_size("MLP", "nouts", n) for n in nouts]
        self.activation = _check_activation("MLP", activation)
        gen = as_rng(rng)
        sizes = [self.nin, *self.nouts]
        last = len(self.nouts) - 1
        self.layers = [
            Layer(
                sizes[i],
                sizes[i + 1],
                "linear" if i == last else activation,
                rng=gen,
                name=f"{2 * i}.",
            )
            for i in range(len(self.nouts))
        ]

    def __call__(self, x: Sequence[Value | float]) -> list[Value]:
        if len(x) != self.nin:
            raise ValueError(f"{self}: expected {self.nin} inputs, got {len(x)}")
        out = _as_values(x)
        for layer in self.layers:
            out = layer._forward(out)
        return out

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to 0.0 (gradients accumulate until then)."""
        for p in self.parameters():
            p.grad = 0.0

    def state_dict(self) -> dict[str, np.ndarray]:
        """Weights with the keys and shapes of the equivalent Sequential (float64 copies)."""
        out: dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            out[f"{2 * i}.weight"] = layer.weight
            out[f"{2 * i}.bias"] = layer.bias
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load ``{'0.weight': (nout, nin), '0.bias': (nout,), ...}`` (NumPy or torch arrays)."""
        expected = self.state_dict()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if missing or unexpected:
            raise KeyError(
                f"MLP.load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        for i, layer in enumerate(self.layers):
            for key in (f"{2 * i}.weight", f"{2 * i}.bias"):
                value = state_dict[key]
                if hasattr(value, "detach"):  # a torch tensor
                    value = value.detach().cpu().numpy()
                arr = np.asarray(value, dtype=np.float64)
                if arr.shape != expected[key].shape:
                    raise ValueError(
                        f"MLP.load_state_dict: '{key}' expects shape {expected[key].shape}, "
                        f"got {arr.shape}"
                    )
                for j, neuron in enumerate(layer.neurons):
                    if key.endswith("weight"):
                        for k, w in enumerate(neuron.w):
                            w.data = float(arr[j, k])
                    else:
                        neuron.b.data = float(arr[j])

    def __repr__(self) -> str:
        return f"MLP(nin={self.nin}, nouts={self.nouts}, activation={self.activation!r})"


def softmax(logits: Sequence[Value]) -> list[Value]:
    """Probabilities exp(z_i) / sum_j exp(z_j) built from elementary ops (exp, sum, /).

    The largest logit is subtracted first (as a constant) so that exp never overflows; this
    does not change the result or its gradient.
    """
    zs = _as_values(logits)
    if not zs:
        raise ValueError("softmax: needs at least one logit, got an empty list")
    m = max(z.data for z in zs)
    es = [(z - m).exp() for z in zs]
    total = vsum(es)
    return [e / total for e in es]


def _cross_entropy_one(logits: Sequence[Value], target: Any, i: int | None) -> Value:
    where = "cross_entropy" if i is None else f"cross_entropy: sample {i}"
    zs = _as_values(logits)
    c = len(zs)
    if c == 0:
        raise ValueError(f"{where}: needs at least one logit, got an empty list")
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        t = int(target)
        if not 0 <= t < c:
            raise ValueError(f"{where}: target {t} out of range for {c} classes")
        ys = [0.0] * c
        ys[t] = 1.0
    else:
        try:
            ys = [float(y) for y in target]
        except TypeError:
            raise TypeError(
                f"{where}: target must be a class index or a list of {c} probabilities, "
                f"got {target!r}"
            ) from None
        if len(ys) != c:
            raise ValueError(f"{where}: target has {len(ys)} probabilities for {c} logits")
    # log-sum-exp with the largest logit taken out, so exp never overflows
    m = max(z.data for z in zs)
    exps = [math.exp(z.data - m) for z in zs]
    total = sum(exps)
    lse = m + math.log(total)
    ysum = sum(ys)
    loss = sum(y * (lse - z.data) for y, z in zip(ys, zs, strict=True))  # -sum_i y_i log p_i
    # d loss / d z_i = p_i * sum(y) - y_i, i.e. p - y for a one-hot or probability target
    local = tuple(e / total * ysum - y for e, y in zip(exps, ys, strict=True))
    return make_node(loss, tuple(zs), local, "cross_entropy")


def cross_entropy(
    logits: Sequence[Value] | Sequence[Sequence[Value]],
    target: Any,
    reduction: str = "mean",
) -> Value:
    """Softmax cross-entropy as one node, like ``torch.nn.functional.cross_entropy``.

    Args:
        logits: C Values for one sample, or N lists of C Values for a batch.
        target: for one sample, a class index in [0, C) or C probabilities; for a batch, N such
            targets.
        reduction: 'mean' or 'sum' over the batch (ignored for one sample).

    Returns:
        the loss, a Value whose local derivatives are ``softmax(z) - y`` (per sample, before
        the reduction), computed stably with log-sum-exp.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
    if len(logits) and isinstance(logits[0], (Value, Real)):
        return _cross_entropy_one(logits, target, None)  # type: ignore[arg-type]
    n = len(logits)
    if n == 0:
        raise ValueError("cross_entropy: got an empty batch")
    if len(target) != n:
        raise ValueError(f"cross_entropy: got {n} samples but {len(target)} targets")
    pairs = enumerate(zip(logits, target, strict=True))
    losses = [_cross_entropy_one(z, t, i) for i, (z, t) in pairs]
    total = sum_nodes(losses)
    return total * (1.0 / n) if reduction == "mean" else total
