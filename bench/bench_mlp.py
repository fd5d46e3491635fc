"""MLP 784-512-512-10 training step: handgrad vs PyTorch CPU vs the GEMM floor, side by side.

One "epoch" is ``--samples`` random MNIST-sized examples (default 60 000) in batches of 128:
forward, cross-entropy, backward, SGD-with-momentum step. handgrad and PyTorch run the same
architecture in float32 with the same number of threads, alternating in one process; the table
reports the median epoch time of each and the ratio handgrad / PyTorch.

The floor is the epoch's matrix-multiply FLOPs divided by the float32 GEMM rate NumPy's BLAS
reaches here on matrices of the same shapes: no NumPy implementation can beat it.

    python bench/bench_mlp.py [--samples 60000] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

import numpy as np

SIZES = (784, 512, 512, 10)
BATCH = 128


def make_data(samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((samples, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], size=samples)
    return X, y


def handgrad_epoch(
    X: np.ndarray, y: np.ndarray, *, input_grad: bool = False, dtype=np.float32
) -> float:
    import handgrad.nn as nn
    from handgrad.optim import SGD

    X = X.astype(dtype, copy=False)
    layers: list = []
    for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
        layers.append(nn.Linear(a, b, rng=i, dtype=dtype))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    loss_fn = nn.CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    t0 = time.perf_counter()
    for i in range(0, len(X) - BATCH + 1, BATCH):
        xb, yb = X[i : i + BATCH], y[i : i + BATCH]
        loss_fn(model(xb), yb)
        opt.zero_grad()
        # like torch, no gradient for the data itself (unless asked, for the ablation)
        model.backward(loss_fn.backward(), input_grad=input_grad)
        opt.step()
    return time.perf_counter() - t0


def torch_epoch(X: np.ndarray, y: np.ndarray) -> float:
    import torch

    torch.manual_seed(0)
    layers: list = []
    for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    t0 = time.perf_counter()
    for i in range(0, len(X) - BATCH + 1, BATCH):
        xb, yb = Xt[i : i + BATCH], yt[i : i + BATCH]
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def gemm_floor(samples: int) -> float:
    """Seconds the epoch's GEMMs take at the measured BLAS rate for these exact shapes."""
    steps = samples // BATCH
    total = 0.0
    rng = np.random.default_rng(0)
    for a, b in itertools.pairwise(SIZES):
        x = rng.standard_normal((BATCH, a), dtype=np.float32)
        w = rng.standard_normal((b, a), dtype=np.float32)
        g = rng.standard_normal((BATCH, b), dtype=np.float32)
        products = [(x, w.T), (g.T, x)]
        if a != SIZES[0]:  # the input gradient of the first layer is not needed
            products.append((g, w))
        for left, right in products:
            left @ right
            reps = 200
            t0 = time.perf_counter()
            for _ in range(reps):
                left @ right
            total += (time.perf_counter() - t0) / reps
    return total * steps


def gemm_rate() -> float:
    """float32 GFLOP/s of a large square matmul (the machine's peak through NumPy's BLAS)."""
    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    a @ a
    t0 = time.perf_counter()
    reps = 10
    for _ in range(reps):
        a @ a
    return 2 * 1024**3 * reps / (time.perf_counter() - t0) / 1e9


VARIANTS = {
    "first layer dx computed": {"input_grad": True},
    "float64": {"dtype": np.float64},
}


def variant_epoch(X: np.ndarray, y: np.ndarray, name: str) -> float:
    """handgrad with one optimisation undone (see docs/performance.md)."""
    return handgrad_epoch(X, y, **VARIANTS[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--ablation", action="store_true", help="also time handgrad with each speed-up undone"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    X, y = make_data(args.samples)
    times: dict[str, list[float]] = {"handgrad": [], "pytorch": []}
    handgrad_epoch(X[:2048], y[:2048])  # warm up both
    torch_epoch(X[:2048], y[:2048])
    if args.ablation:
        times.update({name: [] for name in VARIANTS})
    for _ in range(args.repeats):  # alternate so both see the same machine state
        times["handgrad"].append(handgrad_epoch(X, y))
        times["pytorch"].append(torch_epoch(X, y))
        for name in VARIANTS if args.ablation else ():
            times[name].append(variant_epoch(X, y, name))
    floor = gemm_floor(args.samples)
    hg, pt = statistics.median(times["handgrad"]), statistics.median(times["pytorch"])
    print(
        f"MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, {args.samples} samples, "
        f"float32, {args.threads} threads, median of {args.repeats}"
    )
    print(f"peak float32 GEMM: {gemm_rate():.1f} GFLOP/s")
    print(f"{'':<36}{'seconds':>10}{'vs PyTorch':>12}")
    rows = [("handgrad", hg), ("PyTorch (CPU)", pt), ("GEMM floor (NumPy)", floor)]
    rows += [
        (f"handgrad, {name}", statistics.median(times[name])) for name in VARIANTS if name in times
    ]
    for name, t in rows:
        print(f"{name:<36}{t:>10.3f}{t / pt:>11.2f}x")


if __name__ == "__main__":
    main()
