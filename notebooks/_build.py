# ruff: noqa: E501 (the cells' lines are checked in the notebooks, where they are not indented)
"""Write the course notebooks (``notebooks/NN-*.ipynb``) from the cells below, outputs stripped.

::

    python notebooks/_build.py            # (re)write every notebook
    python notebooks/_build.py --check    # exit 1 if a notebook differs from what would be written

The lessons live here, as Python data: one list of cells per notebook, ``md(...)`` for prose
and ``code(...)`` for code. Edit them here and run the script; ``tests/test_notebooks.py``
fails when a notebook and this file disagree, when a notebook has outputs, and when a notebook
does not run top to bottom. Cell ids are fixed (``cell-00``, ``cell-01``, ...) so that a
rewrite changes only what was edited.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def md(text: str) -> tuple[str, str]:
    return ("markdown", textwrap.dedent(text).strip("\n"))


def code(text: str) -> tuple[str, str]:
    return ("code", textwrap.dedent(text).strip("\n"))


# ------------------------------------------------------------------------------------------
# 01: a neuron and its gradient, by hand
# ------------------------------------------------------------------------------------------
NEURON = [
    md(r"""
    # 1. A neuron and its gradient, by hand

    One neuron: three inputs $x$, three weights $w$, a bias $b$ and a sigmoid,
    $y = \sigma(w \cdot x + b)$. Its error on a target $t$ is $L = \tfrac12 (y - t)^2$.
    Backpropagation is the chain rule, applied from $L$ back to every number that went into
    it. We work it out for this one neuron, check it against finite differences, then write
    the neuron as a layer with a `forward` and a `backward` and let handgrad's `gradcheck`
    grade it.
    """),
    code(r"""
    import numpy as np

    import handgrad.nn as nn
    from handgrad.check import gradcheck
    """),
    md(r"""
    ## The forward pass

    Compute and keep every intermediate number: the backward pass will need them.
    """),
    code(r"""
    x = np.array([1.0, -2.0, 0.5])
    w = np.array([0.3, 0.1, -0.4])
    b = 0.2
    t = 1.0

    z = w @ x + b  # the pre-activation
    y = 1 / (1 + np.exp(-z))  # the sigmoid
    L = 0.5 * (y - t) ** 2
    print(f"z = {z:.4f}, y = {y:.4f}, L = {L:.4f}")
    """),
    md(r"""
    ## The backward pass, one link at a time

    Going down from the loss, each link contributes its local derivative:

    - $\partial L / \partial y = y - t$;
    - $\partial y / \partial z = \sigma(z)\,(1 - \sigma(z)) = y\,(1 - y)$, written with the
      output that the forward pass already computed;
    - $\partial z / \partial w = x$, $\partial z / \partial b = 1$ and
      $\partial z / \partial x = w$.

    Multiplying along the path gives every gradient. The product of the first two,
    $\delta = \partial L / \partial z$, is the neuron's *error signal*: each gradient is
    $\delta$ times the local derivative of $z$.
    """),
    code(r"""
    dL_dy = y - t
    dL_dz = dL_dy * y * (1 - y)  # delta, the error signal
    dL_dw = dL_dz * x
    dL_db = dL_dz
    dL_dx = dL_dz * w
    print("dL/dz =", dL_dz)
    print("dL/dw =", dL_dw)
    print("dL/db =", dL_db)
    print("dL/dx =", dL_dx)
    """),
    md(r"""
    ## Is it right? Ask finite differences

    Nudge one number by $\pm h$ and watch the loss:
    $(L(w + h) - L(w - h)) / 2h$ approximates the derivative with an error of order $h^2$. It
    needs no calculus, which makes it the referee for hand-written gradients: far too slow to
    train with (two forward passes per number), fine for checking.
    """),
    code(r"""
    def loss(w, b):
        y = 1 / (1 + np.exp(-(w @ x + b)))
        return 0.5 * (y - t) ** 2


    h = 1e-6
    numeric_w = np.array([(loss(w + h * e, b) - loss(w - h * e, b)) / (2 * h) for e in np.eye(3)])
    numeric_b = (loss(w, b + h) - loss(w, b - h)) / (2 * h)
    print("analytic dL/dw:", dL_dw)
    print("numeric  dL/dw:", numeric_w)
    print(f"largest difference: {np.abs(dL_dw - numeric_w).max():.1e} (w)")
    print(f"largest difference: {abs(dL_db - numeric_b):.1e} (b)")
    """),
    md(r"""
    ## The neuron as a layer

    handgrad's layers keep PyTorch's contract. `forward(x)` takes a whole batch, shape
    `(N, in_features)`, computes the output and keeps what `backward` needs.
    `backward(grad_out)` receives $\partial L / \partial \text{output}$ for the batch, *adds*
    each parameter's gradient into its `.grad`, and returns $\partial L / \partial x$. The sums
    over the batch become matrix products.
    """),
    code(r"""
    class SigmoidNeuron(nn.Module):
        # in_features inputs -> one sigmoid output; x (N, in) -> y (N, 1)

        def __init__(self, in_features, seed=0):
            super().__init__()
            rng = np.random.default_rng(seed)
            self.weight = nn.Parameter(rng.normal(0.0, 0.5, (1, in_features)))
            self.bias = nn.Parameter(np.zeros(1))

        def forward(self, x):
            self.x = x
            self.y = 1 / (1 + np.exp(-(x @ self.weight.data.T + self.bias.data)))  # (N, 1)
            return self.y

        def backward(self, grad_out):
            delta = grad_out * self.y * (1 - self.y)  # (N, 1): dL/dz for each sample
            self.weight.grad += delta.T @ self.x  # (1, in): summed over the batch
            self.bias.grad += delta.sum(axis=0)  # (1,)
            return delta @ self.weight.data  # (N, in)
    """),
    md(r"""
    `gradcheck` runs the finite-difference test on every element of the input and of every
    parameter, in float64. It makes a number out of the output, $L = \sum \text{out} \cdot R$
    with a fixed random $R$, so that `backward(R)` must produce exactly the gradients of that
    $L$. It prints one row per tensor: the largest error, where it is, both values there.
    """),
    code(r"""
    neuron = SigmoidNeuron(3)
    X = np.random.default_rng(1).normal(size=(5, 3))  # a batch of 5
    report = gradcheck(neuron, X)
    print(report)
    """),
    md(r"""
    The report is also data, for tests and graders: `report.passed`, `report.failed` (the
    names of the wrong tensors) and one row per tensor.
    """),
    code(r"""
    print(report.passed, report.failed, f"{report['weight'].max_abs_err:.1e}")
    """),
    md(r"""
    ## A mistake, caught

    A classic slip: forgetting the sigmoid's own derivative, as if $y = z$.
    """),
    code(r"""
    class ForgetfulNeuron(SigmoidNeuron):
        def backward(self, grad_out):
            delta = grad_out  # wrong: the factor y (1 - y) is missing
            self.weight.grad += delta.T @ self.x
            self.bias.grad += delta.sum(axis=0)
            return delta @ self.weight.data


    print(gradcheck(ForgetfulNeuron(3), X))
    """),
    md(r"""
    Every tensor fails, and the table names the element that is furthest off with both
    values. The analytic gradients are too large by a factor $1 / (y(1-y))$, which is at
    least 4 because $y(1-y) \le 1/4$: a ratio of 4 or more between the two columns points at a
    missing sigmoid derivative.

    ## The same neuron from handgrad's layers

    `nn.Linear(3, 1)` followed by `nn.Sigmoid()` is this neuron. Its parameters have PyTorch's
    names (`0.weight`, `0.bias`), so ours load into it by name.
    """),
    code(r"""
    layers = nn.Sequential(nn.Linear(3, 1, dtype=np.float64), nn.Sigmoid())
    layers.load_state_dict({"0.weight": neuron.weight.data, "0.bias": neuron.bias.data})
    print(f"largest output difference: {np.abs(layers(X) - neuron(X)).max():.1e}")
    print(gradcheck(layers, X))
    """),
    md(r"""
    **What to keep.** A gradient is a product of local derivatives along the path from the
    loss; a layer's `backward` multiplies the incoming gradient by its own local derivative,
    adds its parameters' gradients and passes the rest down. Finite differences check any of
    it without calculus. Next: an engine that does the bookkeeping for every number by itself.
    """),
]


# ------------------------------------------------------------------------------------------
# 02: the scalar engine
# ------------------------------------------------------------------------------------------
SCALAR = [
    md(r"""
    # 2. The scalar engine: build a graph, draw it, step backward through it

    `handgrad.scalar.Value` is a number that remembers how it was made. Each operation creates
    a new Value that records its inputs and its *local* derivative with respect to each of
    them (for `a * b`: `b` and `a`; for `tanh`: $1 - \tanh^2$). `backward()` walks the graph
    from the output down and adds local derivative $\times$ upstream gradient into each input.
    That is the whole of backpropagation, and the same thing PyTorch's autograd does on
    tensors.
    """),
    code(r"""
    import math
    import tempfile
    from pathlib import Path

    from IPython.display import Image, display

    from handgrad.scalar import MLP, Value, cross_entropy, draw_graph, trace_backward

    pictures = Path(tempfile.mkdtemp())  # the drawings are written here, then shown
    """),
    md(r"""
    ## A function, and its gradient for free
    """),
    code(r"""
    x, y = Value(0.5, "x"), Value(-1.5, "y")
    f = (x * y + x.exp()).tanh()
    f.backward()
    print(f"f = {f.data:.6f}, df/dx = {x.grad:.6f}, df/dy = {y.grad:.6f}")


    def g(x, y):  # the same function on plain floats
        return math.tanh(x * y + math.exp(x))


    h = 1e-6
    df_dx = (g(0.5 + h, -1.5) - g(0.5 - h, -1.5)) / (2 * h)
    df_dy = (g(0.5, -1.5 + h) - g(0.5, -1.5 - h)) / (2 * h)
    print(f"finite differences: df/dx = {df_dx:.6f}, df/dy = {df_dy:.6f}")
    """),
    md(r"""
    ## Draw the graph

    A smaller example in which values are used more than once:
    $a = xy + z$, $b = (x + x)\,a$, $w = ab$ with $x = 3$, $y = -2$, $z = 10$.
    `draw_graph` draws one box per Value (its name, data and grad) and one circle per
    operation, arrows in the direction of the forward pass; leaves are green.
    """),
    code(r"""
    x, y, z = Value(3.0, "x"), Value(-2.0, "y"), Value(10.0, "z")
    xy, twice_x = x * y, x + x
    xy.label, twice_x.label = "x*y", "x+x"  # names for the drawing (else v1, v2, ...)
    a = xy + z
    b = twice_x * a
    w = a * b
    a.label, b.label, w.label = "a", "b", "w"
    w.backward()
    display(Image(filename=draw_graph(w, pictures / "graph.png", dpi=80)))
    """),
    md(r"""
    Check against the closed form: $w = 2x\,a^2$, so $\partial w / \partial x = 2a^2 + 4xay$,
    $\partial w / \partial y = 4x^2 a$ and $\partial w / \partial z = 4xa$.
    """),
    code(r"""
    A = 3.0 * -2.0 + 10.0
    print("engine:     ", x.grad, y.grad, z.grad)
    print("closed form:", 2 * A**2 + 4 * 3.0 * A * -2.0, 4 * 3.0**2 * A, 4 * 3.0 * A)
    """),
    md(r"""
    ## Step backward through it

    `trace_backward(w)` runs `w.backward()` again and records every addition
    `grad(input) += local derivative × upstream`. The leaves *accumulate* across backward calls,
    as in PyTorch, so we zero the gradients first.
    """),
    code(r"""
    w.zero_grad()
    trace = trace_backward(w)
    print(trace)
    """),
    md(r"""
    Read the rows top to bottom. `a` is used twice (by `b` and by `w`): its gradient arrives in
    two parts, 24 in step 1 and 24 in step 4, and only then does `a` pass its 48 down. That is
    what the reverse topological order guarantees: a node's turn comes after every use of it
    has reported. `x` is used three times; its gradient goes $0 \to 16 \to 32 \to -64$.
    Overwriting instead of adding would leave it at $-96$, the contribution of its last use:
    the addition is the chain rule's sum over paths.
    """),
    code(r"""
    for k in range(len(trace) + 1):
        grads = trace.grads_after(k)
        print(f"after step {k:2d}: x.grad = {grads[x]:6g}, a.grad = {grads[a]:4g}")
    """),
    md(r"""
    The same steps as pictures: in each frame the step's edge is red, its input orange and the
    node being processed blue.
    """),
    code(r"""
    frames = trace.draw(pictures / "trace.png", frames=[1, 4, 8, 9], ncols=2, dpi=70)
    display(Image(filename=frames))
    """),
    md(r"""
    ## Notebook 1's neuron, with no backward written

    Built from Values, the neuron gets its gradient from the engine: the numbers are the ones
    we derived by hand in notebook 1.
    """),
    code(r"""
    xs = [1.0, -2.0, 0.5]
    ws = [Value(v, f"w{i}") for i, v in enumerate([0.3, 0.1, -0.4])]
    bias = Value(0.2, "b")
    out = (sum(wi * xi for wi, xi in zip(ws, xs, strict=True)) + bias).sigmoid()
    L = 0.5 * (out - 1.0) ** 2
    L.backward()
    print("dL/dw =", [round(wi.grad, 6) for wi in ws], " dL/db =", round(bias.grad, 6))
    """),
    md(r"""
    ## A scalar network learns XOR

    `MLP(2, [8, 2])` is a network of Values with PyTorch's initialisation; `cross_entropy`
    is softmax cross-entropy as one node. Plain gradient descent, a few hundred steps.
    """),
    code(r"""
    net = MLP(2, [8, 2], activation="tanh", rng=0)
    points = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    labels = [0, 1, 1, 0]
    for step in range(200):
        loss = cross_entropy([net(p) for p in points], labels)
        net.zero_grad()
        loss.backward()
        for param in net.parameters():
            param.data -= 0.5 * param.grad
        if step % 50 == 0:
            print(f"step {step:3d}: loss {loss.data:.4f}")
    predictions = [max(range(2), key=lambda k, p=p: net(p)[k].data) for p in points]
    print("predictions:", predictions, "labels:", labels)
    """),
    md(r"""
    **What to keep.** The engine knows each operation's local derivative and adds products of
    them in reverse topological order; sums over uses come from `+=`. It is exact and slow (a
    Python object per number): notebook 3 writes the same rules for whole matrices.
    """),
]


# ------------------------------------------------------------------------------------------
# 03: your own Linear and ReLU
# ------------------------------------------------------------------------------------------
OWN_LAYERS = [
    md(r"""
    # 3. Your own Linear and ReLU, graded by the checker

    Here you write the two layers that most networks are made of, each with its backward pass,
    grade them with `gradcheck`, see what the checker says about three typical mistakes, and
    train a digit classifier made only of your layers.
    """),
    code(r"""
    %matplotlib inline
    import numpy as np

    import handgrad.nn as nn
    import handgrad.optim as optim
    from handgrad import viz
    from handgrad.check import gradcheck
    from handgrad.data import DataLoader, load
    from handgrad.train import fit
    """),
    md(r"""
    ## Linear

    $Y = X W^\top + b$ with $W$ of shape `(out_features, in_features)`, as in PyTorch. For one
    output element $Y_{nj} = \sum_i X_{ni} W_{ji} + b_j$, so with $G = \partial L / \partial Y$:

    - $\partial L / \partial W_{ji} = \sum_n G_{nj} X_{ni}$, that is $G^\top X$;
    - $\partial L / \partial b_j = \sum_n G_{nj}$: a **sum** over the batch;
    - $\partial L / \partial X_{ni} = \sum_j G_{nj} W_{ji}$, that is $G W$.

    Each gradient has the shape of what it is the gradient of: a quick check on every line.
    """),
    code(r"""
    class MyLinear(nn.Module):
        def __init__(self, in_features, out_features, seed=0):
            super().__init__()
            rng = np.random.default_rng(seed)
            bound = 1 / np.sqrt(in_features)  # PyTorch's default initialisation
            weight = rng.uniform(-bound, bound, (out_features, in_features))
            self.weight = nn.Parameter(weight.astype(np.float32))
            self.bias = nn.Parameter(rng.uniform(-bound, bound, out_features).astype(np.float32))

        def forward(self, x):
            self.x = x  # backward needs the input
            return x @ self.weight.data.T + self.bias.data  # (N, out)

        def backward(self, grad_out):
            self.weight.grad += grad_out.T @ self.x  # (out, in)
            self.bias.grad += grad_out.sum(axis=0)  # (out,)
            return grad_out @ self.weight.data  # (N, in)
    """),
    md(r"""
    ## ReLU

    $\text{relu}(x) = \max(x, 0)$: its derivative is 1 where $x > 0$ and 0 elsewhere, so the
    backward pass lets the gradient through where the input was positive. (At exactly 0 the
    slope jumps; PyTorch takes 0 there, and so do we.)
    """),
    code(r"""
    class MyReLU(nn.Module):
        def forward(self, x):
            self.mask = x > 0
            return x * self.mask

        def backward(self, grad_out):
            return grad_out * self.mask
    """),
    md(r"""
    ## Grade them

    `gradcheck` converts the layer to float64, compares `backward` with central finite
    differences for the input and each parameter, and restores the layer afterwards.
    """),
    code(r"""
    X = np.random.default_rng(0).normal(size=(4, 5))
    print(gradcheck(MyLinear(5, 3), X))
    print()
    print(gradcheck(MyReLU(), X))
    """),
    md(r"""
    A finite difference across ReLU's kink at 0 averages the two slopes and agrees with
    neither. The checker recognises such elements and counts them under `kinks` instead of
    failing a correct layer:
    """),
    code(r"""
    X0 = X.copy()
    X0[0, :3] = 0.0  # three inputs exactly on the kink
    print(gradcheck(MyReLU(), X0))
    """),
    md(r"""
    ## Three wrong versions, and what the checker says

    **1. A mean where a sum belongs.** The loss adds up the batch, so every gradient of a
    parameter sums over it.
    """),
    code(r"""
    class MeanBiasLinear(MyLinear):
        def backward(self, grad_out):
            self.weight.grad += grad_out.T @ self.x
            self.bias.grad += grad_out.mean(axis=0)  # wrong
            return grad_out @ self.weight.data


    print(gradcheck(MeanBiasLinear(5, 3), X))
    """),
    md(r"""
    Only `bias` fails, and the analytic value is the numeric one divided by 4, the batch size:
    a mean where a sum belongs.

    **2. A transpose too many.** With a square weight the shapes even match, so nothing
    crashes: the numbers are just wrong.
    """),
    code(r"""
    class TransposedLinear(MyLinear):
        def backward(self, grad_out):
            self.weight.grad += grad_out.T @ self.x
            self.bias.grad += grad_out.sum(axis=0)
            return grad_out @ self.weight.data.T  # wrong: W, not W^T


    print(gradcheck(TransposedLinear(5, 5), X))
    """),
    md(r"""
    The parameters pass and the `input` row fails: the mistake is in the returned gradient.

    **3. `=` where `+=` belongs.** The contract is that `backward` *adds* into `.grad`: a
    parameter used twice (shared weights, a recurrent network) must receive the sum of both
    uses. Overwriting passes a finite-difference test of a single call, so the checker also
    calls `backward` twice and expects the gradient to double.
    """),
    code(r"""
    class OverwritingLinear(MyLinear):
        def backward(self, grad_out):
            self.weight.grad = grad_out.T @ self.x  # wrong: replaces what was there
            self.bias.grad += grad_out.sum(axis=0)
            return grad_out @ self.weight.data


    print(gradcheck(OverwritingLinear(5, 3), X))
    """),
    md(r"""
    ## Your layers train

    A network of your two layers, checked as a whole, then trained on the 8x8 digits that ship
    with handgrad (each image flattened to 64 numbers) with handgrad's `fit` and `SGD`. In a
    notebook, `fit` shows a progress bar.
    """),
    code(r"""
    model = nn.Sequential(MyLinear(64, 64, seed=1), MyReLU(), MyLinear(64, 10, seed=2))
    print(gradcheck(model, np.random.default_rng(3).normal(size=(3, 64)), max_elements=200))
    """),
    code(r"""
    train = load("digits", "train", flatten=True)
    test = load("digits", "test", flatten=True)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(train.X, train.y, batch_size=32, rng=0)
    history = fit(model, loss_fn, opt, loader, val=(test.X, test.y), epochs=15, desc="my layers")
    print(f"test accuracy after {len(history)} epochs: {history[-1]['val_accuracy']:.2%}")
    """),
    code(r"""
    viz.plot_history(history, title="digits, 64-64-10, your layers", val_label="test")
    """),
    md(r"""
    **What to keep.** Derive each gradient element by element, then write it as a matrix
    product whose shape matches; sum over the batch; add into `.grad`. The checker tells you
    *which* gradient is wrong and by how much, and the ratio of the two values often names the
    mistake. From the command line the same check is
    `handgrad check my_layer.py:MyLinear --input-shape 4,5`.
    """),
]


# ------------------------------------------------------------------------------------------
# 04: the toy circle
# ------------------------------------------------------------------------------------------
TOY = [
    md(r"""
    # 4. The toy circle: train, the probability map, what the hidden layers learned

    Points in the square $[-1, 1]^2$, labelled by whether they lie outside a circle that covers
    half of it. No straight line separates the classes; a small network draws the circle out
    of straight pieces. We train it by hand, look at its prediction over the whole plane, open
    up its hidden layers, and then run the same thing as the `toy` experiment.
    """),
    code(r"""
    %matplotlib inline
    import matplotlib.pyplot as plt
    import numpy as np

    import handgrad.experiments as experiments
    import handgrad.nn as nn
    import handgrad.optim as optim
    from handgrad import viz
    from handgrad.data import DataLoader, load
    from handgrad.train import LRSchedulerCallback, fit
    """),
    code(r"""
    train = load("circle", "train", n=512)
    test = load("circle", "test", n=512)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for k, name in enumerate(train.classes):
        ax.scatter(*train.X[train.y == k].T, s=10, label=name)
    ax.set_aspect("equal")
    ax.legend(loc="upper right")
    plt.show()
    """),
    md(r"""
    ## The network and the loss

    2 inputs $\to$ 16 tanh $\to$ 16 sigmoid $\to$ 1 output. The output is a *logit* $z$ and
    $P(\text{outside}) = \sigma(z)$; `BCEWithLogitsLoss` computes
    $-[y \log \sigma(z) + (1-y) \log(1 - \sigma(z))]$ from $z$ directly, whose gradient is
    simply $\sigma(z) - y$ and which never takes the log of a 0. SGD with momentum, the
    learning rate annealed to 0 along a cosine.
    """),
    code(r"""
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Linear(2, 16, rng=rng),
        nn.Tanh(),
        nn.Linear(16, 16, rng=rng),
        nn.Sigmoid(),
        nn.Linear(16, 1, rng=rng),
    )
    y_train = train.y.astype(np.float32)[:, None]  # (N, 1) float targets, like the logits
    y_test = test.y.astype(np.float32)[:, None]
    epochs = 200
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    history = fit(
        model,
        nn.BCEWithLogitsLoss(),
        opt,
        DataLoader(train.X, y_train, batch_size=32, rng=rng),
        val=(test.X, y_test),
        epochs=epochs,
        callbacks=[LRSchedulerCallback(optim.CosineAnnealingLR(opt, T_max=epochs))],
        desc="circle",
    )
    print(f"test accuracy {history[-1]['val_accuracy']:.2%}")
    viz.plot_history(history, title="the circle", val_label="test")
    """),
    md(r"""
    ## The probability map

    Evaluate the network on a grid over the square: the colour is $P(\text{outside})$, the
    black line $P = 0.5$ is the decision boundary.
    """),
    code(r"""
    extent = (-1.1, 1.1, -1.1, 1.1)
    sigmoid = nn.Sigmoid()
    grid = viz.probability_grid(lambda P: sigmoid(model(P)), extent, resolution=120)
    viz.plot_probability_map(grid, train.X, train.y, classes=train.classes)
    """),
    md(r"""
    ## What the hidden layers learned

    Each first-layer unit computes $\tanh(w \cdot x + b)$: it is $-1$ on one side of the line
    $w \cdot x + b = 0$ and $+1$ on the other, a soft half-plane. The second layer mixes 16 such
    half-planes into curved regions, and the output layer adds those up into the circle.
    `model[:2]` is the network up to the first tanh, `model[:4]` up to the second layer's
    sigmoid.
    """),
    code(r"""
    res = 80
    xs = np.linspace(-1.1, 1.1, res)
    xx, yy = np.meshgrid(xs, xs)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)  # (res * res, 2)
    layers = {"tanh": model[:2](points), "sigmoid": model[:4](points)}  # (res * res, 16) each

    fig, axes = plt.subplots(4, 8, figsize=(12, 6.6))
    for k, ax in enumerate(axes.flat):
        name = "tanh" if k < 16 else "sigmoid"
        unit = k % 16
        low = -1 if name == "tanh" else 0
        image = layers[name][:, unit].reshape(res, res)
        ax.imshow(image, origin="lower", extent=extent, cmap="RdBu_r", vmin=low, vmax=1)
        ax.set_title(f"{name} {unit}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("each hidden unit over the square: layer 1 (rows 1-2), layer 2 (rows 3-4)")
    plt.show()
    """),
    md(r"""
    The first two rows are soft straight edges at many angles (a few units are nearly flat:
    barely used). The last two rows bend: several second-layer units have already drawn a
    closed curve around the centre, or its complement, out of those edges. The output layer
    adds them up, with its weights, into the probability map above.

    ## The same, as one command

    `handgrad run toy --epochs 100` on the command line is `experiments.run("toy", epochs=100)`
    in Python. It writes the same run folder (config, metrics, checkpoint, figures, report) and
    returns the results as objects: shown at the end of a cell, they display their numbers and
    figures.
    """),
    code(r"""
    result = experiments.run("toy", epochs=100)
    result
    """),
    code(r"""
    print(result.metrics["test_accuracy"], result.dir)
    print(result.history[-1])
    result.figures["probability_map"]
    """),
    md(r"""
    **What to keep.** A hidden layer turns the input into features (here: half-planes, then
    patches) in which the classes become easy to separate. Drawing each unit over the input
    space is the quickest way to see it, and it works for any 2-D problem:
    `handgrad run boundary --set dataset=spiral` trains on others.
    """),
]


# ------------------------------------------------------------------------------------------
# 05: softmax and cross-entropy
# ------------------------------------------------------------------------------------------
SOFTMAX = [
    md(r"""
    # 5. Softmax and cross-entropy: the fused gradient $p - y$, and softmax vs $z / \sum z$

    A classifier's last layer outputs one score (a logit) $z_j$ per class; softmax turns them
    into probabilities and cross-entropy scores them against the label. Together their
    gradient is remarkably simple. We derive it, check it, see why the two are computed as one
    step, and ask whether the exponential in softmax matters at all.
    """),
    code(r"""
    %matplotlib inline
    import numpy as np

    import handgrad.nn as nn
    import handgrad.optim as optim
    from handgrad import viz
    from handgrad.check import gradcheck
    from handgrad.data import DataLoader, load
    from handgrad.nn.normalize import LogSumNormalize
    from handgrad.train import fit
    """),
    md(r"""
    ## Softmax, computed stably

    $p_j = e^{z_j} / \sum_k e^{z_k}$. Adding the same number to every logit changes nothing
    (it cancels between top and bottom), so we subtract the largest one first: then every
    exponent is $\le 0$ and nothing overflows.
    """),
    code(r"""
    def softmax(z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))  # shift-invariant: exponents <= 0
        return e / e.sum(axis=-1, keepdims=True)


    z = np.array([1000.0, 1001.0, 1002.0])
    with np.errstate(over="ignore", invalid="ignore"):
        print("naive:  ", np.exp(z) / np.exp(z).sum())
    print("shifted:", softmax(z))
    """),
    md(r"""
    ## Cross-entropy and its gradient

    For the label $y$, $L = -\log p_y = -z_y + \log \sum_k e^{z_k}$. Differentiating,
    $\partial L / \partial z_j = -[j = y] + e^{z_j} / \sum_k e^{z_k}$, that is

    $$\frac{\partial L}{\partial z} = p - \text{onehot}(y).$$

    The gradient pushes the correct logit up by $1 - p_y$ and every other logit down by its
    probability. `nn.CrossEntropyLoss` takes the logits and the integer labels, and its
    backward is exactly this (divided by $N$ with `reduction="mean"`).
    """),
    code(r"""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3))
    labels = np.array([0, 2, 1, 2])

    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    print("loss:", loss_fn(logits, labels))
    grad = loss_fn.backward()
    print("largest difference from p - y:", np.abs(grad - (softmax(logits) - np.eye(3)[labels])).max())
    print(gradcheck(nn.CrossEntropyLoss(), logits, labels))
    """),
    md(r"""
    ## Why one fused step, not softmax then log

    Done in two layers, the loss's gradient with respect to $p$ is $-1/p_y$, which softmax's
    backward then multiplies by its Jacobian; in exact arithmetic that also gives $p - y$.
    But when the network is confidently wrong, $p_y$ underflows to 0 and $-1/p_y$ is infinite.
    The fused form never divides by $p$:
    """),
    code(r"""
    z_bad = np.array([[0.0, 800.0, -800.0]])  # label 0, but class 1 has all the probability
    softmax_layer = nn.Softmax(dim=-1)
    p = softmax_layer(z_bad)
    with np.errstate(divide="ignore", invalid="ignore"):
        upstream = np.zeros_like(p)
        upstream[0, 0] = -1 / p[0, 0]  # d(-log p_0)/dp_0
        print("two steps:", softmax_layer.backward(upstream))

    fused = nn.CrossEntropyLoss()
    print("fused:    ", fused(z_bad, np.array([0])), fused.backward())
    """),
    md(r"""
    ## Softmax vs $z / \sum z$

    Softmax is "make positive with $\exp$, then divide by the sum". Dividing the logits
    themselves by their sum does not give probabilities, since logits can be negative:
    """),
    code(r"""
    z = np.array([2.0, -1.0, 0.5])
    print("z / sum z:          ", z / z.sum())
    a = np.log1p(np.exp(z))  # softplus: positive
    print("softplus / its sum: ", a / a.sum())
    print("softmax:            ", softmax(z))
    """),
    md(r"""
    Any positive function in place of $\exp$ gives a distribution. `LogSumNormalize` is
    $\log(a_j / \sum_k a_k)$ as one layer with a hand-written backward, ready for `NLLLoss`
    the way `LogSoftmax` is. Check it, then train two networks that differ only in their
    output head, from the same initial weights and on the same batches: softmax, and softplus
    divided by its sum.
    """),
    code(r"""
    print(gradcheck(LogSumNormalize(), np.abs(rng.normal(size=(4, 3))) + 0.1))
    """),
    code(r"""
    train = load("spiral", "train", n=600)
    test = load("spiral", "test", n=600)


    def body(seed=0):
        rng = np.random.default_rng(seed)  # the same weights for both heads
        return [
            nn.Linear(2, 64, rng=rng),
            nn.ReLU(),
            nn.Linear(64, 64, rng=rng),
            nn.ReLU(),
            nn.Linear(64, 3, rng=rng),
        ]


    heads = {
        "softmax": nn.Sequential(*body(), nn.LogSoftmax(dim=-1)),
        "softplus / sum": nn.Sequential(*body(), nn.Softplus(), LogSumNormalize()),
    }
    histories = {}
    for name, model in heads.items():
        opt = optim.Adam(model.parameters(), lr=0.01)
        loader = DataLoader(train.X, train.y, batch_size=32, rng=1)  # the same batches
        histories[name] = fit(
            model, nn.NLLLoss(), opt, loader, val=(test.X, test.y), epochs=60, desc=name
        )
        print(f"{name}: test accuracy {histories[name][-1]['val_accuracy']:.2%}")
    """),
    code(r"""
    epochs = [h["epoch"] for h in histories["softmax"]]
    viz.plot_curves(
        epochs,
        {name: [h["train_loss"] for h in hist] for name, hist in histories.items()},
        xlabel="epoch",
        ylabel="train loss (NLL)",
        title="the same network, two output heads",
        log_y=True,
    )
    """),
    md(r"""
    On the spiral the two curves are nearly one, and so are the test accuracies: the
    exponential is not what makes a classifier work. It can change the path, though. With
    softmax, raising the correct logit by $d$ multiplies its odds by $e^d$; softplus is nearly
    linear for large inputs, so the sum head becomes confident only by pushing the other
    logits far down. On the ten digit classes this shows: the `normalization` experiment
    (`handgrad run normalization`, about 40 s, several seeds) measures the same test accuracy
    within the seed-to-seed spread, but a training loss that falls more slowly.

    **What to keep.** Softmax + cross-entropy has the gradient $p - y$; compute it fused from
    the logits, stably (subtract the max, log-sum-exp), and never as $-1/p$.
    """),
]


# ------------------------------------------------------------------------------------------
# 06: optimizers side by side
# ------------------------------------------------------------------------------------------
OPTIMIZERS = [
    md(r"""
    # 6. Optimizers side by side: SGD, momentum, Adam

    The gradient says which way is downhill; the optimizer decides how far to go. With
    gradient $g$ and learning rate $\eta$ (as in `torch.optim`, which handgrad follows to the
    letter):

    - **SGD**: $\theta \leftarrow \theta - \eta g$;
    - **momentum**: $v \leftarrow \mu v + g$, $\theta \leftarrow \theta - \eta v$: a running
      sum of past gradients, so steps grow along directions that stay the same and cancel
      where they flip;
    - **Adam**: running means of $g$ and $g^2$ (bias-corrected), $\theta \leftarrow \theta -
      \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$: every parameter gets its own step size, about
      $\eta$ whatever the gradient's scale.

    First on a function of two numbers, where we can watch the path; then on a network.
    """),
    code(r"""
    %matplotlib inline
    import matplotlib.pyplot as plt
    import numpy as np

    import handgrad.nn as nn
    import handgrad.optim as optim
    from handgrad import viz
    from handgrad.data import DataLoader, load
    from handgrad.train import fit
    """),
    md(r"""
    ## A ravine

    $f(x, y) = \tfrac12 (x^2 + 30\,y^2)$ has its minimum at $(0, 0)$ at the bottom of a
    ravine: 30 times steeper across ($y$) than along ($x$), as a loss surface often is in some
    directions. The parameter is a `Parameter` of two numbers; we write its gradient by hand and
    let each optimizer take 50 steps from $(-4, 1)$.
    """),
    code(r"""
    def ravine(p):
        x, y = p
        return 0.5 * (x**2 + 30 * y**2), np.array([x, 30 * y])  # value, gradient


    def descend(make_optimizer, steps=50, start=(-4.0, 1.0)):
        p = nn.Parameter(np.array(start))
        opt = make_optimizer([p])
        path = [p.data.copy()]
        for _ in range(steps):
            opt.zero_grad()
            p.grad += ravine(p.data)[1]
            opt.step()
            path.append(p.data.copy())
        return np.array(path)


    paths = {
        "SGD, lr 0.06": descend(lambda ps: optim.SGD(ps, lr=0.06)),
        "momentum 0.8, lr 0.02": descend(lambda ps: optim.SGD(ps, lr=0.02, momentum=0.8)),
        "Adam, lr 0.3": descend(lambda ps: optim.Adam(ps, lr=0.3)),
    }
    for name, path in paths.items():
        x, y = path[-1]
        print(f"{name:22s} ends at ({x:7.4f}, {y:7.4f}), f = {ravine(path[-1])[0]:.1e}")
    """),
    code(r"""
    gx, gy = np.meshgrid(np.linspace(-4.5, 1.5, 200), np.linspace(-1.5, 1.5, 200))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    heights = 0.5 * (gx**2 + 30 * gy**2)
    ax.contour(gx, gy, heights, levels=np.logspace(-2, 2, 12), colors="grey", linewidths=0.6)
    for name, path in paths.items():
        ax.plot(path[:, 0], path[:, 1], ".-", markersize=3, linewidth=1, label=name)
    ax.plot(0, 0, "k*", markersize=12)
    ax.set_title("50 steps from (-4, 1) on (x^2 + 30 y^2) / 2")
    ax.legend()
    plt.show()
    """),
    md(r"""
    SGD's learning rate is capped by the steep direction: above $2/30$ the $y$ steps grow and
    it diverges. At 0.06 it zigzags across the ravine, and with that same small rate it crawls
    along the flat $x$ direction. Momentum adds up past steps: the alternating $y$ components
    cancel, the steady pull along $x$ accumulates, and it arrives first. Adam divides each
    coordinate's step by the size of its own gradient, so its first steps are about `lr` in
    both coordinates, a diagonal whatever the steepness; it then swings around the minimum
    while its running averages catch up.

    ## On a network

    The same three on one problem: a 2-32-32-3 ReLU network on the three-armed spiral, from the
    *same* initial weights and on the *same* sequence of batches, so that only the optimizer
    differs.
    """),
    code(r"""
    train = load("spiral", "train", n=600)
    test = load("spiral", "test", n=600)


    def network(seed=0):
        rng = np.random.default_rng(seed)
        return nn.Sequential(
            nn.Linear(2, 32, rng=rng),
            nn.ReLU(),
            nn.Linear(32, 32, rng=rng),
            nn.ReLU(),
            nn.Linear(32, 3, rng=rng),
        )


    optimizers = {
        "SGD, lr 0.1": lambda ps: optim.SGD(ps, lr=0.1),
        "momentum 0.9, lr 0.1": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
        "Adam, lr 0.01": lambda ps: optim.Adam(ps, lr=0.01),
    }
    histories = {}
    for name, make_optimizer in optimizers.items():
        model = network()
        loader = DataLoader(train.X, train.y, batch_size=32, rng=1)
        histories[name] = fit(
            model,
            nn.CrossEntropyLoss(),
            make_optimizer(model.parameters()),
            loader,
            val=(test.X, test.y),
            epochs=60,
            desc=name,
        )
    """),
    code(r"""
    epochs = [h["epoch"] for h in histories["Adam, lr 0.01"]]
    viz.plot_curves(
        epochs,
        {name: [h["train_loss"] for h in hist] for name, hist in histories.items()},
        xlabel="epoch",
        ylabel="train loss",
        title="spiral, 2-32-32-3 ReLU: one network, three optimizers",
        log_y=True,
    )
    """),
    code(r"""
    for name, hist in histories.items():
        last = hist[-1]
        print(f"{name:22s} train loss {last['train_loss']:.4f}, test {last['val_accuracy']:.2%}")
    """),
    md(r"""
    With the same learning rate, momentum goes much further than plain SGD in the same number
    of steps; Adam, with a tenth of the rate, is fastest at the start. None of this is a
    ranking: each optimizer has its own best learning rate, and a fair comparison tunes each
    (try it: change the rates above and rerun).

    **What to keep.** The optimizer is the rule that turns gradients into steps. `optim.SGD`
    and `optim.Adam` match `torch.optim` update for update (notebook 9 checks it), so what you
    learn here carries over unchanged.
    """),
]


# ------------------------------------------------------------------------------------------
# 07: batch norm
# ------------------------------------------------------------------------------------------
BATCHNORM = [
    md(r"""
    # 7. Batch norm: two backward passes that agree, and what it does to training

    Batch normalisation standardises each feature over the batch, then rescales it:

    $$\mu = \tfrac1m \textstyle\sum_i x_i,\quad \sigma^2 = \tfrac1m \sum_i (x_i - \mu)^2,\quad
    \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}},\quad y_i = \gamma \hat x_i + \beta.$$

    Its backward pass is the classic exercise: every $x_i$ affects every output through $\mu$
    and $\sigma^2$. `handgrad.nn.BatchNorm1d` has it in two forms: `staged`, the chain rule
    node by node through the graph above (the form one derives first), and `compact`, the
    simplified closed form. They must agree.
    """),
    code(r"""
    import numpy as np

    import handgrad.experiments as experiments
    import handgrad.nn as nn
    from handgrad.check import gradcheck
    """),
    md(r"""
    ## Both backward forms agree
    """),
    code(r"""
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(16, 4))  # a batch of 16, 4 features, far from standard
    grad_out = rng.normal(size=(16, 4))

    grads = {}
    for form in ("compact", "staged"):
        bn = nn.BatchNorm1d(4, backward_form=form, dtype=np.float64)
        bn(x)
        grad_in = bn.backward(grad_out)
        grads[form] = {"input": grad_in, "weight": bn.weight.grad, "bias": bn.bias.grad}
    for name in ("input", "weight", "bias"):
        difference = np.abs(grads["compact"][name] - grads["staged"][name]).max()
        print(f"{name:6s}: largest difference {difference:.1e}")
    """),
    md(r"""
    Equal to float64 rounding. And both agree with finite differences:
    """),
    code(r"""
    for form in ("compact", "staged"):
        report = gradcheck(nn.BatchNorm1d(4, backward_form=form, dtype=np.float64), x)
        print(form, "->", "PASSED" if report.passed else report)
    """),
    md(r"""
    ## The compact form, written out

    With $g_i = \gamma\, \partial L / \partial y_i$ (the gradient at $\hat x_i$) and
    $s = 1/\sqrt{\sigma^2 + \epsilon}$, the sums over the batch collapse to

    $$\frac{\partial L}{\partial x_i} = \frac{s}{m}\Big(m\, g_i - \sum_j g_j - \hat x_i \sum_j g_j \hat x_j\Big).$$

    The two sums remove from the gradient its mean and its component along $\hat x$: moving
    all inputs together, or scaling them, does not change a standardised output.
    """),
    code(r"""
    m = len(x)
    mean, var = x.mean(axis=0), x.var(axis=0)
    s = 1 / np.sqrt(var + 1e-5)
    x_hat = (x - mean) * s
    g = grad_out * 1.0  # gamma is 1 at initialisation
    dx = s / m * (m * g - g.sum(axis=0) - x_hat * (g * x_hat).sum(axis=0))
    print(f"by hand vs BatchNorm1d: {np.abs(dx - grads['compact']['input']).max():.1e}")
    """),
    md(r"""
    ## Training mode and evaluation mode

    While training, the layer uses the batch's own mean and variance, and keeps running
    averages of them. In `eval()` mode it uses those averages instead, so that a prediction
    does not depend on which other samples share its batch.
    """),
    code(r"""
    bn = nn.BatchNorm1d(4, dtype=np.float64)
    for _ in range(50):
        bn(rng.normal(2.0, 3.0, size=(16, 4)))  # training mode: updates the running statistics
    print("running mean:", bn.running_mean.round(2), " running var:", bn.running_var.round(2))
    print("train mode, output std:", bn(x).std(axis=0).round(3))
    bn.eval()
    print("eval mode,  output std:", bn(x).std(axis=0).round(3))
    """),
    md(r"""
    ## What it does to training

    The `batchnorm` experiment trains the same MLP (64 $\to$ 128 $\to$ 128 $\to$ 128 $\to$ 10,
    ReLU) on the 8x8 digits three times, from the same initial weights on the same batches:
    without BatchNorm, with it (compact backward), with it (staged backward). It also compares
    the two backward forms on the real gradients during training. Ten epochs take a few
    seconds.
    """),
    code(r"""
    result = experiments.run("batchnorm", epochs=10)
    result
    """),
    md(r"""
    With BatchNorm the network reaches a low loss in a few epochs at a learning rate where the
    plain network is still slow to start; the two BN curves lie on top of each other, because
    the two backward forms differ only by rounding (the second figure). Normalising every
    layer's input keeps the scale of activations and gradients steady as the weights change,
    which is what allows the larger steps.

    **What to keep.** A layer with coupled outputs is backpropagated like any graph, node by
    node; the closed form is the same numbers, cheaper. Check one against the other, and both
    against finite differences.
    """),
]


# ------------------------------------------------------------------------------------------
# 08: a CNN on the 8x8 digits
# ------------------------------------------------------------------------------------------
CNN = [
    md(r"""
    # 8. A CNN on the 8x8 digits: training, saliency, class visualisation

    The digits that ship with handgrad are 8x8 grey images (1438 for training, 359 for
    testing). A small convolutional network learns them in a few seconds. Then we ask it two
    questions with gradients *with respect to the input*: which pixels does a prediction depend
    on (saliency), and what input does it find most typical of each class (class
    visualisation)?
    """),
    code(r"""
    %matplotlib inline
    import matplotlib.pyplot as plt
    import numpy as np

    import handgrad.nn as nn
    import handgrad.optim as optim
    from handgrad import viz
    from handgrad.check import gradcheck
    from handgrad.data import DataLoader, load
    from handgrad.inputspace import saliency, visualize_classes
    from handgrad.train import fit
    from handgrad.viz.visualize import plot_class_images, plot_saliency
    """),
    code(r"""
    train = load("digits", "train")
    test = load("digits", "test")
    print(train.X.shape, train.X.dtype, "labels", train.classes)  # (N, C, H, W) in [0, 1]
    predicted = train.y[:16]  # no model yet: show the labels
    viz.plot_image_predictions(train.X[:16], train.y[:16], predicted, train.classes, title="digits")
    """),
    md(r"""
    ## The network

    Two blocks of a 3x3 convolution (padding 1 keeps the size), ReLU and 2x2 max pooling
    (which halves it), then a small fully connected classifier. Following a batch through the
    network shows each layer's shape.
    """),
    code(r"""
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=rng),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, rng=rng),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 64, rng=rng),
        nn.ReLU(),
        nn.Linear(64, 10, rng=rng),
    )
    out = train.X[:5]
    for layer in model:
        out = layer(out)
        print(f"{type(layer).__name__:9s} -> {out.shape}")
    """),
    md(r"""
    A convolution's backward pass is a convolution too (of the upstream gradient with the
    flipped kernel, for the input; of the input with the upstream gradient, for the kernel).
    As for every handgrad layer, it is checked against finite differences:
    """),
    code(r"""
    conv = nn.Conv2d(2, 3, 3, padding=1, rng=0)
    print(gradcheck(conv, np.random.default_rng(1).normal(size=(2, 2, 5, 5))))
    """),
    md(r"""
    ## Training

    Adam, batch 32, fifteen epochs: a few seconds.
    """),
    code(r"""
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        optim.Adam(model.parameters(), lr=2e-3),
        DataLoader(train.X, train.y, batch_size=32, rng=1),
        val=(test.X, test.y),
        epochs=15,
        desc="digits CNN",
    )
    print(f"test accuracy {history[-1]['val_accuracy']:.2%}")
    viz.plot_history(history, title="digits, CNN", val_label="test")
    """),
    code(r"""
    model.eval()
    test_predicted = model(test.X).argmax(axis=1)
    wrong = np.flatnonzero(test_predicted != test.y)
    print(f"{len(wrong)} of {len(test.y)} test images wrong")
    shown = wrong[:16] if len(wrong) else np.arange(8)
    title = "the test images it gets wrong: predicted (true)"
    viz.plot_image_predictions(
        test.X[shown], test.y[shown], test_predicted[shown], test.classes, title=title
    )
    """),
    md(r"""
    ## What the first layer looks at

    Each first-layer kernel is a 3x3 pattern; most are edge and stroke detectors.
    """),
    code(r"""
    kernels = model[0].weight.data[:, 0]  # (16, 3, 3)
    fig, axes = plt.subplots(2, 8, figsize=(9, 2.6))
    for kernel, ax in zip(kernels, axes.flat, strict=True):
        ax.imshow(kernel, cmap="RdBu_r", vmin=-abs(kernels).max(), vmax=abs(kernels).max())
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("the 16 first-layer kernels (red positive, blue negative)")
    plt.show()
    """),
    md(r"""
    ## Saliency: which pixels matter

    The network is a function of its input too, so `backward` gives the gradient of a class
    score with respect to every pixel: feed $\partial L / \partial \text{logits}$ = one-hot of
    the class into `model.backward`. Its absolute value is a *saliency map*: bright pixels are
    those that would change the score most.
    """),
    code(r"""
    images = test.X[:8]
    maps, classes = saliency(model, images)  # |d logit of the predicted class / d pixel|
    plot_saliency(images, maps, classes, test.y[:8], test.classes)
    """),
    md(r"""
    ## Class visualisation: the input the network likes best

    Start from a grey image and run gradient *ascent* on the pixels to raise one class's logit,
    with the network's weights fixed. Unconstrained, the ascent finds a high-scoring pattern
    that looks like noise; small penalties (on the distance from grey, on sharp jumps between
    neighbours, on what a blur would remove) keep it image-like.
    """),
    code(r"""
    shape = train.input_shape  # (1, 8, 8)
    bare = visualize_classes(model, range(10), shape, steps=200, lr=0.05)
    plot_class_images(bare.images, bare.targets, bare.probs, train.classes, title="no regulariser")
    """),
    code(r"""
    kept = visualize_classes(
        model, range(10), shape, steps=200, lr=0.05, l2=0.3, tv=0.1, blur=1.0, blur_sigma=0.7
    )
    plot_class_images(
        kept.images, kept.targets, kept.probs, train.classes, title="L2 + total variation + blur"
    )
    """),
    md(r"""
    Both sets make the network almost certain of each class (the probability in each title).
    Without a regulariser the pixels saturate at black and white in patterns that hardly
    resemble digits: an input does not have to look like a digit to be classified as one.
    The penalties keep unused pixels near grey and the strokes smoother; at 8x8 pixels the
    result is a digit's outline at best. The `class-visualization` experiment compares each
    penalty alone, row by row.

    **What to keep.** Backpropagation gives gradients with respect to anything the output
    depends on: the weights (for training) and the input (for saliency and visualisation), with
    the same `backward`. The `digits-cnn` experiment trains a larger CNN of this kind to 99%.
    """),
]


# ------------------------------------------------------------------------------------------
# 09: from handgrad to PyTorch
# ------------------------------------------------------------------------------------------
TORCH = [
    md(r"""
    # 9. From handgrad to PyTorch: the same model, the same numbers, then `torch.autograd`

    handgrad keeps PyTorch's names, shapes, initialisations and update rules, so a model moves
    across with its weights and computes the same numbers. We check that for the output, every
    gradient and a whole training run, then look at what PyTorch does differently: it writes
    the backward pass for you.
    """),
    code(r"""
    import numpy as np
    import torch

    import handgrad.nn as nn
    import handgrad.optim as optim
    from handgrad.data import load
    from handgrad.torch_ext import from_torch, to_torch
    """),
    md(r"""
    ## The same model

    A handgrad MLP on the flattened digits, in float64 so that the comparisons show rounding
    and nothing else. `to_torch` builds the `torch.nn` equivalent with copies of the weights.
    """),
    code(r"""
    train = load("digits", "train", flatten=True)
    X, y = train.X[:64].astype(np.float64), train.y[:64]

    model = nn.Sequential(nn.Linear(64, 32, rng=0), nn.ReLU(), nn.Linear(32, 10, rng=1)).double()
    twin = to_torch(model)
    print(twin)
    print([name for name, _ in model.named_parameters()])
    print([name for name, _ in twin.named_parameters()])
    """),
    md(r"""
    ## The same output and the same gradients

    handgrad: the forward pass, then `backward` of the loss's gradient, layer by layer.
    PyTorch: the forward pass, then `loss.backward()`.
    """),
    code(r"""
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(model(X), y)
    model.zero_grad()
    model.backward(loss_fn.backward())

    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    loss_t = torch.nn.functional.cross_entropy(twin(X_t), y_t)
    twin.zero_grad()
    loss_t.backward()

    print(f"loss: handgrad {loss:.12f}, torch {loss_t.item():.12f}")
    torch_params = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        difference = np.abs(p.grad - torch_params[name].grad.numpy()).max()
        print(f"{name:9s} gradient: largest difference {difference:.1e}")
    """),
    md(r"""
    ## The same training

    Fifty steps of SGD with momentum and weight decay in both libraries, from the same weights,
    on the same batches: `optim.SGD` follows `torch.optim.SGD`'s update to the letter.
    """),
    code(r"""
    model = nn.Sequential(nn.Linear(64, 32, rng=0), nn.ReLU(), nn.Linear(32, 10, rng=1)).double()
    twin = to_torch(model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    opt_t = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    data = train.X.astype(np.float64)
    order = np.random.default_rng(0).permutation(len(data))
    losses, losses_t = [], []
    for step in range(50):
        batch = order[step * 16 : (step + 1) * 16]
        xb, yb = data[batch], train.y[batch]

        losses.append(loss_fn(model(xb), yb))
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()

        loss_t = torch.nn.functional.cross_entropy(twin(torch.from_numpy(xb)), torch.from_numpy(yb))
        opt_t.zero_grad()
        loss_t.backward()
        opt_t.step()
        losses_t.append(loss_t.item())

    print(f"loss after 50 steps: {losses[-1]:.6f} (handgrad), {losses_t[-1]:.6f} (torch)")
    print(f"largest difference over the run: {np.abs(np.array(losses) - losses_t).max():.1e}")
    """),
    md(r"""
    ## What `torch.autograd` does

    In PyTorch you write only the forward pass. Every operation on a tensor that requires a
    gradient records a node (its `grad_fn`), exactly as the `Value`s of notebook 2 did, but one
    node per *tensor* operation instead of per number. `backward()` walks those nodes in
    reverse and calls each one's backward formula, which PyTorch ships for every operation.
    """),
    code(r"""
    w = torch.tensor([0.3, 0.1, -0.4], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    L = 0.5 * (torch.sigmoid(w @ x + 0.2) - 1.0) ** 2  # notebook 1's neuron
    node = L.grad_fn
    while node is not None:
        print(type(node).__name__)
        node = node.next_functions[0][0] if node.next_functions else None
    L.backward()
    print("dL/dw =", w.grad.numpy())  # the numbers of notebook 1
    """),
    md(r"""
    ## Hand-written backward passes inside PyTorch

    A `torch.autograd.Function` puts your own backward into that graph: `forward` computes and
    saves, `backward` receives the upstream gradient and returns one gradient per input. It is
    handgrad's contract in PyTorch's clothes, and `torch.autograd.gradcheck` grades it as
    `handgrad.check.gradcheck` does.
    """),
    code(r"""
    class MySigmoid(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            y = 1 / (1 + torch.exp(-z))
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad_out):
            (y,) = ctx.saved_tensors
            return grad_out * y * (1 - y)


    z = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    print("torch.autograd.gradcheck:", torch.autograd.gradcheck(MySigmoid.apply, (z,)))
    """),
    md(r"""
    `handgrad.torch_ext` has such a Function for every handgrad layer. `to_torch(model,
    functions=True)` builds the PyTorch model out of them: a `torch.nn` model trained by
    handgrad's hand-written gradients, which autograd's own agree with.
    """),
    code(r"""
    hand = to_torch(model, functions=True)
    print([f"{type(layer).__module__}.{type(layer).__name__}" for layer in hand])
    for net in (hand, twin):
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(X_t), y_t).backward()
    pairs = zip(hand.parameters(), twin.parameters(), strict=True)
    difference = max((a.grad - b.grad).abs().max().item() for a, b in pairs)
    print(f"largest gradient difference: {difference:.1e}")
    """),
    md(r"""
    ## And back

    `from_torch` turns a `torch.nn.Sequential` of supported layers into a handgrad model with
    the same weights: train in PyTorch (on a GPU), inspect in handgrad, or the other way round.
    """),
    code(r"""
    back = from_torch(twin)
    print(back)
    difference = np.abs(back(X) - twin(X_t).detach().numpy()).max()
    print(f"largest output difference: {difference:.1e}")
    """),
    md(r"""
    **What to keep.** handgrad and PyTorch compute the same numbers; what PyTorch adds is the
    bookkeeping: it records the graph as you compute and supplies every backward formula.
    Knowing what those formulas are (notebooks 1 to 8) is what lets you check them, write your
    own, and trust the result. `handgrad run torch-parity` trains a larger model both ways,
    step for step.
    """),
]


NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01-neuron-gradient.ipynb": NEURON,
    "02-scalar-engine.ipynb": SCALAR,
    "03-your-own-layers.ipynb": OWN_LAYERS,
    "04-toy-circle.ipynb": TOY,
    "05-softmax-cross-entropy.ipynb": SOFTMAX,
    "06-optimizers.ipynb": OPTIMIZERS,
    "07-batch-norm.ipynb": BATCHNORM,
    "08-cnn-digits.ipynb": CNN,
    "09-to-pytorch.ipynb": TORCH,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook of ``cells``, outputs empty and execution counts None."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"}}
    for i, (kind, source) in enumerate(cells):
        new = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(new(source, id=f"cell-{i:02d}"))
    nbformat.validate(nb)
    return nb


def render(cells: list[tuple[str, str]]) -> str:
    return nbformat.writes(build(cells)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = render(cells)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"not what notebooks/_build.py writes: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
