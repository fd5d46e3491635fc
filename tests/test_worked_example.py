"""The 2-3-2 network worked by hand: sigmoid hidden layer, softmax output, cross-entropy.

W = [[1, 1, 1], [-1, -1, -1]] maps input 2 -> hidden 3 (row i belongs to input i, so the
PyTorch-layout weight is W^T), b = 0, V = [[1, 1], [-1, -1], [-1, -1]] maps hidden 3 -> 2
(weight V^T), c = 0, x = [1, -1], target class 0.

Forward by hand:
  x W = 1 * [1, 1, 1] + (-1) * [-1, -1, -1] = [2, 2, 2];   h = sigmoid(2) = s  (~0.8808)
  z = h V = [s - s - s, s - s - s] = [-s, -s]: two equal logits, so p = [1/2, 1/2]
  loss = -ln p_0 = ln 2.
Backward by hand:
  dz = p - y = [-1/2, 1/2];   dc = dz;   dV[i, j] = h_i dz_j = [-s/2, s/2] = [-0.4404, 0.4404]
  dh = V dz = [1 * -1/2 + 1 * 1/2, ...] = [0, 0, 0]  (each row of V has equal entries)
  so dW = 0 and db = 0.
"""

from __future__ import annotations

import math

import numpy as np

import handgrad.nn as nn


def build_net() -> nn.Sequential:
    net = nn.Sequential(
        nn.Linear(2, 3, dtype=np.float64), nn.Sigmoid(), nn.Linear(3, 2, dtype=np.float64)
    )
    W = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    V = np.array([[1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])
    net.load_state_dict(
        {"0.weight": W.T, "0.bias": np.zeros(3), "2.weight": V.T, "2.bias": np.zeros(2)}
    )
    return net


def test_hand_worked_232_network() -> None:
    net, loss_fn = build_net(), nn.CrossEntropyLoss()
    x, y = np.array([[1.0, -1.0]]), np.array([0])
    loss = loss_fn(net(x), y)
    assert math.isclose(loss, math.log(2.0), rel_tol=1e-15)

    net.backward(loss_fn.backward())
    s = 1.0 / (1.0 + math.exp(-2.0))
    np.testing.assert_allclose(net[2].bias.grad, [-0.5, 0.5], rtol=1e-15)
    # PyTorch layout: weight[j, i] = V[i, j], so the hand-derived dV rows are columns here
    np.testing.assert_allclose(net[2].weight.grad.T, [[-s / 2, s / 2]] * 3, rtol=1e-15)
    np.testing.assert_allclose(net[2].weight.grad.T, [[-0.4404, 0.4404]] * 3, atol=5e-5)
    np.testing.assert_array_equal(net[0].weight.grad, np.zeros((3, 2)))
    np.testing.assert_array_equal(net[0].bias.grad, np.zeros(3))
