"""A one-hidden-layer network written with plain Python loops over lists, as a learner would.

The network of the ``scalar-net`` example: ``z1 = x W + b``, ``h = sigmoid(z1)``,
``z2 = h V + c``, ``p = softmax(z2)``, ``loss = -log p[target]``. The weights are lists of lists
in the layout of the worked example (``W[i][j]`` joins input i to hidden unit j; PyTorch's
``Linear`` stores the transpose). Every derivative is one line of the chain rule, next to the
forward line it differentiates. No NumPy, no autograd: this is the third, independent way of
computing the numbers the scalar engine and the vectorised layers compute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["backward", "batch_loss_and_grads", "forward", "sgd_update"]

Matrix = list[list[float]]


def _sigmoid(t: float) -> float:
    # two forms so that exp never overflows
    if t >= 0.0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def forward(
    x: Sequence[float], W: Matrix, b: Sequence[float], V: Matrix, c: Sequence[float], target: int
) -> dict:
    """One sample forward.

    Shapes: x (nin,), W (nin, nh), b (nh,), V (nh, nout), c (nout,); target in [0, nout).

    Returns:
        dict with lists z1, h (nh,), z2, p (nout,) and the float loss.
    """
    nin, nh, nout = len(x), len(b), len(c)
    z1 = [0.0] * nh
    for j in range(nh):
        total = b[j]
        for i in range(nin):
            total += x[i] * W[i][j]
        z1[j] = total
    h = [_sigmoid(z1[j]) for j in range(nh)]
    z2 = [0.0] * nout
    for k in range(nout):
        total = c[k]
        for j in range(nh):
            total += h[j] * V[j][k]
        z2[k] = total
    # softmax with the largest logit subtracted, so exp never overflows
    m = max(z2)
    e = [math.exp(z2[k] - m) for k in range(nout)]
    s = sum(e)
    p = [e[k] / s for k in range(nout)]
    loss = m + math.log(s) - z2[target]  # -log p[target], via log-sum-exp
    return {"z1": z1, "h": h, "z2": z2, "p": p, "loss": loss}


def backward(x: Sequence[float], W: Matrix, V: Matrix, cache: dict, target: int) -> dict:
    """One sample backward: every gradient of ``loss`` from ``forward``'s cache.

    Returns:
        dict with dz2, dc (nout,), dV (nh, nout), dh, dz1, db (nh,), dW (nin, nh), dx (nin,).
    """
    nin, nh, nout = len(x), len(cache["h"]), len(cache["p"])
    h, p = cache["h"], cache["p"]
    # d loss / d z2_k = p_k - [k == target]  (softmax followed by -log)
    dz2 = [p[k] - (1.0 if k == target else 0.0) for k in range(nout)]
    dc = list(dz2)  # z2 = h V + c
    dV = [[h[j] * dz2[k] for k in range(nout)] for j in range(nh)]
    dh = [0.0] * nh
    for j in range(nh):
        for k in range(nout):
            dh[j] += V[j][k] * dz2[k]
    # d sigmoid(z)/dz = h (1 - h), written from the saved output
    dz1 = [dh[j] * h[j] * (1.0 - h[j]) for j in range(nh)]
    db = list(dz1)  # z1 = x W + b
    dW = [[x[i] * dz1[j] for j in range(nh)] for i in range(nin)]
    dx = [0.0] * nin
    for i in range(nin):
        for j in range(nh):
            dx[i] += W[i][j] * dz1[j]
    return {"dz2": dz2, "dc": dc, "dV": dV, "dh": dh, "dz1": dz1, "db": db, "dW": dW, "dx": dx}


def batch_loss_and_grads(
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    W: Matrix,
    b: Sequence[float],
    V: Matrix,
    c: Sequence[float],
) -> tuple[float, dict]:
    """Mean loss over the batch and the mean gradients dW, db, dV, dc (sample by sample)."""
    n = len(X)
    nin, nh, nout = len(W), len(b), len(c)
    gW = [[0.0] * nh for _ in range(nin)]
    gb = [0.0] * nh
    gV = [[0.0] * nout for _ in range(nh)]
    gc = [0.0] * nout
    total = 0.0
    for x, t in zip(X, y, strict=True):
        cache = forward(x, W, b, V, c, t)
        total += cache["loss"]
        g = backward(x, W, V, cache, t)
        for i in range(nin):
            for j in range(nh):
                gW[i][j] += g["dW"][i][j] / n
        for j in range(nh):
            gb[j] += g["db"][j] / n
            for k in range(nout):
                gV[j][k] += g["dV"][j][k] / n
        for k in range(nout):
            gc[k] += g["dc"][k] / n
    return total / n, {"dW": gW, "db": gb, "dV": gV, "dc": gc}


def sgd_update(params: dict, grads: dict, lr: float) -> None:
    """In place: every entry of W, b, V, c moves by -lr times its gradient."""
    for name in ("W", "b", "V", "c"):
        p, g = params[name], grads["d" + name]
        for r in range(len(p)):
            if isinstance(p[r], list):
                for s in range(len(p[r])):
                    p[r][s] -= lr * g[r][s]
            else:
                p[r] -= lr * g[r]
