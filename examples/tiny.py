"""Train a tiny network on XOR with hand-written gradients, then check them."""

import numpy as np

import handgrad.nn as nn
from handgrad.check import gradcheck
from handgrad.optim import SGD

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
y = np.array([0, 1, 1, 0])
model = nn.Sequential(nn.Linear(2, 8, rng=0), nn.Tanh(), nn.Linear(8, 2, rng=1))
loss_fn, opt = nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.5)
for _ in range(500):
    loss = loss_fn(model(X), y)
    opt.zero_grad()
    model.backward(loss_fn.backward())  # every gradient here is written by hand
    opt.step()
print(f"loss {loss:.4f}, predictions {model(X).argmax(axis=1)}")  # -> [0 1 1 0]
print(gradcheck(model, X))  # input and every parameter vs central differences, float64
