"""Per-layer speed of handgrad's Conv2d, MaxPool2d and Linear against torch.nn, float32, CPU.

Shapes are those of the mnist-cnn model (conv3x3 1->32, ReLU, maxpool2, conv3x3 32->64, ReLU,
maxpool2, linear 3136->10) at one batch size, plus that model's whole training step (forward,
loss, backward, SGD update). Both libraries run in this one process, on the same data, with the
same number of threads (torch is set to NumPy's BLAS thread count). The table shows medians.

How the two are alternated matters. Both libraries keep their worker threads spinning for a
while after a parallel call (OpenBLAS for about 2**28 cycles, ~0.1 s; OpenMP briefly), and a
spinning thread of one library steals a core from the other: alternating call by call makes
torch look up to 2x slower than it is. So the libraries alternate in *blocks*: before each
block the script pauses (the other library's threads go to sleep), makes one untimed call,
then times ``--block`` calls. A burst of background load still hits both alike.

Forward times the layer call; backward times ``backward`` after an untimed forward (torch's
input requires grad, so both compute the input gradient). Layers that sit after another conv
or pooling layer in the model get their input and gradient in the CWHN memory layout those
layers emit (docs/conv.md); torch gets its usual contiguous NCHW tensors. In the training step
neither computes the first convolution's input gradient (``Sequential.backward(g,
input_grad=False)``).

handgrad can split its elementwise passes (im2col, col2im, pooling) over
``$HANDGRAD_NUM_THREADS`` threads (default 1). That pays off only when BLAS's idle threads do
not spin, e.g. with ``OPENBLAS_THREAD_TIMEOUT=4`` set before NumPy is imported.

Run: ``python bench/bench_layers.py [--batch 64] [--repeats 30] [--block 5] [--threads N]``.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

import handgrad.nn as nn
from handgrad.nn._common import num_threads
from handgrad.nn.conv import Conv2d
from handgrad.nn.pooling import MaxPool2d

Timer = Callable[[], tuple[float, ...]]  # runs once, returns the seconds of its timed parts


def blas_threads() -> int | None:
    """NumPy's BLAS thread count (threadpoolctl, if installed), else None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return counts[0] if counts else None


def alternate(
    timers: dict[str, Timer], repeats: int, block: int, pause: float
) -> dict[str, list[float]]:
    """Median of each timed part of each timer, run in alternating blocks (see the docstring)."""
    samples: dict[str, list[tuple[float, ...]]] = {name: [] for name in timers}
    for _ in range(-(-repeats // block)):
        for name, timer in timers.items():
            time.sleep(pause)  # let the other library's idle threads stop spinning
            timer()  # untimed: wakes this library's threads, warms caches and buffers
            samples[name].extend(timer() for _ in range(block))
    return {
        name: [float(np.median(part)) for part in zip(*s, strict=True)]
        for name, s in samples.items()
    }


def cwhn(a: np.ndarray) -> np.ndarray:
    """A copy of an (N, C, H, W) array laid out as handgrad's conv and pooling layers emit it:
    channel, W, H, batch innermost."""
    return np.ascontiguousarray(a.transpose(1, 3, 2, 0)).transpose(3, 0, 2, 1)


def layer_pairs(batch: int, rng: np.random.Generator):
    """(name, handgrad module, torch module, input shape) for each benchmarked layer."""
    import torch

    rows = [
        ("Conv2d 1->32 3x3 p1, 28x28", Conv2d(1, 32, 3, padding=1, rng=rng),
         torch.nn.Conv2d(1, 32, 3, padding=1), (batch, 1, 28, 28)),
        ("Conv2d 32->64 3x3 p1, 14x14", Conv2d(32, 64, 3, padding=1, rng=rng),
         torch.nn.Conv2d(32, 64, 3, padding=1), (batch, 32, 14, 14)),
        ("Conv2d 32->64 3x3 s2 p1, 14x14", Conv2d(32, 64, 3, stride=2, padding=1, rng=rng),
         torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), (batch, 32, 14, 14)),
        ("MaxPool2d 2, 32x28x28", MaxPool2d(2), torch.nn.MaxPool2d(2), (batch, 32, 28, 28)),
        ("MaxPool2d 2, 64x14x14", MaxPool2d(2), torch.nn.MaxPool2d(2), (batch, 64, 14, 14)),
        ("MaxPool2d 3 s2 p1, 32x28x28", MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1),
         (batch, 32, 28, 28)),
        ("Linear 3136->10", nn.Linear(3136, 10, rng=rng), torch.nn.Linear(3136, 10),
         (batch, 3136)),
        ("Linear 784->512", nn.Linear(784, 512, rng=rng), torch.nn.Linear(784, 512),
         (batch, 784)),
        ("BatchNorm1d 512", nn.BatchNorm1d(512), torch.nn.BatchNorm1d(512), (batch, 512)),
        ("BatchNorm2d 32, 28x28", nn.BatchNorm2d(32), torch.nn.BatchNorm2d(32),
         (batch, 32, 28, 28)),
    ]  # fmt: skip
    for _, ours, theirs, _ in rows:
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return rows


def layer_timers(ours, theirs, shape, rng: np.random.Generator) -> dict[str, Timer]:
    """Timers returning (forward, backward) seconds for handgrad and for torch."""
    import torch

    x = rng.standard_normal(shape, dtype=np.float32)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    g = rng.standard_normal(np.shape(ours(x)), dtype=np.float32)
    tg = torch.from_numpy(g)
    if len(shape) == 4 and shape[1] > 1:
        # inside the model these layers receive a Conv2d's or a pooling layer's output, laid
        # out CWHN (see docs/conv.md), and gradients in that layout: time them as they run there
        x, g = cwhn(x), cwhn(g)
    # the two must agree before their speed means anything
    np.testing.assert_allclose(ours(x), theirs(tx).detach().numpy(), rtol=1e-4, atol=1e-4)

    def run_ours() -> tuple[float, float]:
        t0 = time.perf_counter()
        ours(x)
        t1 = time.perf_counter()
        ours.backward(g)
        return t1 - t0, time.perf_counter() - t1

    def run_torch() -> tuple[float, float]:
        tx.grad = None
        t0 = time.perf_counter()
        out = theirs(tx)
        t1 = time.perf_counter()
        out.backward(tg)
        return t1 - t0, time.perf_counter() - t1

    return {"ours": run_ours, "torch": run_torch}


def step_timers(batch: int, rng: np.random.Generator) -> dict[str, Timer]:
    """Timers of one mnist-cnn training step (fwd, loss, bwd, SGD) in each library."""
    import torch

    ours = nn.Sequential(
        Conv2d(1, 32, 3, padding=1, rng=rng), nn.ReLU(), MaxPool2d(2),
        Conv2d(32, 64, 3, padding=1, rng=rng), nn.ReLU(), MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10, rng=rng),
    )  # fmt: skip
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 10),
    )  # fmt: skip
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    loss, t_loss = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=batch)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    params, t_params = list(ours.parameters()), list(theirs.parameters())
    lr = 0.01

    def run_ours() -> tuple[float]:
        t0 = time.perf_counter()
        ours.zero_grad()
        loss(ours(x), y)
        ours.backward(loss.backward(), input_grad=False)
        for p in params:
            p.data -= lr * p.grad
        return (time.perf_counter() - t0,)

    def run_torch() -> tuple[float]:
        t0 = time.perf_counter()
        for p in t_params:
            p.grad = None
        t_loss(theirs(tx), ty).backward()
        with torch.no_grad():
            for p in t_params:
                p -= lr * p.grad
        return (time.perf_counter() - t0,)

    return {"ours": run_ours, "torch": run_torch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per library")
    parser.add_argument("--block", type=int, default=5, help="timed calls per block")
    parser.add_argument("--pause", type=float, default=0.15, help="seconds before each block")
    parser.add_argument("--threads", type=int, default=None, help="default: NumPy's BLAS count")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    threads = args.threads or blas_threads() or torch.get_num_threads()
    if args.threads:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads, user_api="blas")
        except ImportError:
            print("threadpoolctl not installed: NumPy keeps its own BLAS thread count")
    torch.set_num_threads(threads)
    rng = np.random.default_rng(args.seed)
    print(
        f"batch {args.batch}, float32, {threads} BLAS/torch threads, {num_threads()} handgrad "
        f"elementwise threads (numpy {np.__version__}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}); median of {args.repeats} in blocks "
        f"of {args.block}; times in ms"
    )
    header = f"{'layer':32} {'fwd ours':>9} {'fwd torch':>9} {'ratio':>6}"
    header += f" {'bwd ours':>9} {'bwd torch':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    timing = dict(repeats=args.repeats, block=args.block, pause=args.pause)
    for name, ours, theirs, shape in layer_pairs(args.batch, rng):
        t = alternate(layer_timers(ours, theirs, shape, rng), **timing)
        (hf, hb), (tf, tb) = t["ours"], t["torch"]
        print(
            f"{name:32} {hf * 1e3:9.3f} {tf * 1e3:9.3f} {hf / tf:6.2f}"
            f" {hb * 1e3:9.3f} {tb * 1e3:9.3f} {hb / tb:6.2f}"
        )
    t = alternate(step_timers(args.batch, rng), **timing)
    (h,), (s,) = t["ours"], t["torch"]
    print("-" * len(header))
    print(f"{'mnist-cnn training step':32} {h * 1e3:9.3f} {s * 1e3:9.3f} {h / s:6.2f}")


if __name__ == "__main__":
    main()
