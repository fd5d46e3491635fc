"""Train a tiny network on XOR with hand-written gradients, then check one gradient."""

import numpy as np

import handgrad.nn as nn

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
y = np.array([0, 1, 1, 0])
model = nn.Sequential(nn.Linear(2, 8, rng=0), nn.Tanh(), nn.Linear(8, 2, rng=1))
loss_fn = nn.CrossEntropyLoss()
for _ in range(500):
    loss = loss_fn(model(X), y)
    model.zero_grad()
    model.backward(loss_fn.backward())  # every gradient here is written by hand
    for p in model.parameters():
        p.data -= 0.5 * p.grad
print(f"loss {loss:.4f}, predictions {model(X).argmax(axis=1)}")  # -> [0 1 1 0]
