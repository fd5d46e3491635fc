"""The mnist-cnn training epoch in handgrad against PyTorch (CPU, float32), side by side.

Model (both libraries, the same initial weights): conv 3x3 1->32, ReLU, maxpool 2, conv 3x3
32->64, ReLU, maxpool 2, flatten, linear -> 10. With ``--padding 1`` (the default, as the
``mnist-cnn`` experiment) the feature map goes 28 -> 28 -> 14 -> 14 -> 7 and the linear layer
is 3136 -> 10; with ``--padding 0`` it goes 28 -> 26 -> 13 -> 11 -> 5 and the linear layer is
1600 -> 10. One epoch is ``--images`` images (10 000) in batches of ``--batch`` (64; the last
batch is smaller), each step: zero the gradients, forward, cross-entropy, backward (neither
library computes the input gradient of the first convolution: the images do not require one),
optimizer step (``--optimizer adam``, lr 1e-3, as the experiment; or ``sgd``, lr 0.01, momentum
0.9). The data are fixed random MNIST-shaped images, so the table measures compute, not
loading.

Fairness:

* Both run in this one process with the same number of threads (torch is set to NumPy's BLAS
  thread count) on the same data.
* Both libraries keep worker threads spinning for a while after a parallel call (OpenBLAS for
  about 0.1 s, OpenMP briefly), and a spinning thread of one steals a core from the other. So
  they alternate in *blocks* of ``--block`` steps, with a pause before each block and one
  untimed step to wake the library's threads; the epoch's steps are split into these blocks,
  and ``--rounds`` whole epochs are timed per library.
* The ratio is taken per pair of blocks (the same steps, run a fraction of a second apart, so
  a burst of background load from other jobs on a shared machine hits both alike), and the
  table gives its median, quartiles and range, next to the epoch times (median, min, max over
  the rounds) and the ratio of the median epochs.

The GEMM floor is the epoch's convolution and linear-layer FLOPs (forward, weight gradient,
input gradient where one is computed) divided by the best rate NumPy's BLAS reaches on the
largest of those GEMMs alone (conv2's forward product): no CNN built on these GEMMs can run
faster than that.

Environment knobs (they act only when set before NumPy is imported, so they are options of this
script, which sets them before its imports, not of the library):

* ``--openblas-thread-timeout 4`` sets ``OPENBLAS_THREAD_TIMEOUT=4``: idle OpenBLAS workers go
  to sleep after about 2**4 * 1024 cycles instead of spinning for about 0.1 s.
* ``--handgrad-threads 2`` sets ``HANDGRAD_NUM_THREADS=2``: im2col, col2im and pooling are split
  over two Python threads (worth it only when BLAS's idle workers sleep, see above).

Run: ``python bench/bench_cnn.py [--padding 0|1] [--rounds 5] [--block 20] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

# the environment knobs must be in place before NumPy (and its BLAS) is loaded
if __name__ == "__main__":
    _early = argparse.ArgumentParser(add_help=False)
    _early.add_argument("--openblas-thread-timeout", type=int, default=None)
    _early.add_argument("--handgrad-threads", type=int, default=None)
    _known, _ = _early.parse_known_args()
    if _known.openblas_thread_timeout is not None:
        if "numpy" in sys.modules:  # pragma: no cover - only when imported oddly
            raise RuntimeError("--openblas-thread-timeout must be set before NumPy is imported")
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(_known.openblas_thread_timeout)
    if _known.handgrad_threads is not None:
        os.environ["HANDGRAD_NUM_THREADS"] = str(_known.handgrad_threads)

import numpy as np

import handgrad.nn as nn
from handgrad.nn._common import num_threads
from handgrad.optim import SGD, Adam

Step = Callable[[int], None]  # runs the training step on batch number i


@dataclass(frozen=True)
class Geometry:
    """Sizes of the mnist-cnn model for one padding."""

    padding: int

    @property
    def side1(self) -> int:  # after conv1
        return 28 + 2 * self.padding - 2

    @property
    def side2(self) -> int:  # after conv2 (input: side1 // 2)
        return self.side1 // 2 + 2 * self.padding - 2

    @property
    def flat(self) -> int:  # linear in_features
        return 64 * (self.side2 // 2) ** 2


def handgrad_model(geo: Geometry, rng: np.random.Generator) -> nn.Sequential:
    p = geo.padding
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=p, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=p, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(geo.flat, 10, rng=rng),
    )  # fmt: skip


def torch_model(geo: Geometry, state: dict[str, np.ndarray]):
    import torch

    p = geo.padding
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=p), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=p), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(geo.flat, 10),
    )  # fmt: skip
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    return model


def batches(n_images: int, batch: int) -> list[slice]:
    return [slice(i, min(i + batch, n_images)) for i in range(0, n_images, batch)]


def make_steps(
    geo: Geometry,
    x: np.ndarray,
    y: np.ndarray,
    batch: int,
    optimizer: str,
    rng: np.random.Generator,
) -> tuple[Step, Step, list[slice]]:
    """The training step of each library, and the epoch's batches."""
    import torch

    ours = handgrad_model(geo, rng)
    theirs = torch_model(geo, ours.state_dict())
    loss_fn, t_loss_fn = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    if optimizer == "adam":
        opt: SGD | Adam = Adam(ours.parameters(), lr=1e-3)
        t_opt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    else:
        opt = SGD(ours.parameters(), lr=0.01, momentum=0.9)
        t_opt = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    parts = batches(len(x), batch)

    # the two must compute the same step before their speed means anything
    check = parts[0]
    ours.zero_grad()
    loss = loss_fn(ours(x[check]), y[check])
    ours.backward(loss_fn.backward(), input_grad=False)
    t_loss = t_loss_fn(theirs(tx[check]), ty[check])
    t_loss.backward()
    assert abs(loss - t_loss.item()) < 1e-4 * max(1.0, abs(loss)), (loss, t_loss.item())
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        err = np.abs(p.grad - tp.grad.numpy()).max() / max(np.abs(tp.grad.numpy()).max(), 1e-12)
        assert err < 1e-2, f"gradient of {name} differs from torch's by {err:.2e}"
        tp.grad = None

    def step_ours(i: int) -> None:
        s = parts[i]
        opt.zero_grad()
        loss_fn(ours(x[s]), y[s])
        ours.backward(loss_fn.backward(), input_grad=False)
        opt.step()

    def step_torch(i: int) -> None:
        s = parts[i]
        t_opt.zero_grad()  # set_to_none, torch's default
        t_loss_fn(theirs(tx[s]), ty[s]).backward()
        t_opt.step()

    return step_ours, step_torch, parts


def alternate_blocks(
    steps: dict[str, Step], n_steps: int, rounds: int, block: int, pause: float
) -> dict[str, np.ndarray]:
    """Seconds of each block of steps, ``(rounds, blocks)`` per library: every epoch is split
    into blocks of ``block`` steps, and the libraries take turns block by block."""
    starts = range(0, n_steps, block)
    times = {name: np.zeros((rounds, len(starts))) for name in steps}
    for r in range(rounds):
        for b, start in enumerate(starts):
            for name, step in steps.items():
                time.sleep(pause)  # let the other library's idle threads stop spinning
                step(start)  # untimed: wakes this library's threads
                t0 = time.perf_counter()
                for i in range(start, min(start + block, n_steps)):
                    step(i)
                times[name][r, b] = time.perf_counter() - t0
    return times


def gemm_flops(geo: Geometry, n_images: int) -> dict[str, float]:
    """FLOPs of the epoch's GEMMs (2 per multiply-add), per layer."""
    s1, s2 = geo.side1, geo.side2
    conv1 = 2 * 32 * (1 * 9) * n_images * s1 * s1
    conv2 = 2 * 64 * (32 * 9) * n_images * s2 * s2
    linear = 2 * geo.flat * 10 * n_images
    # forward + weight gradient everywhere; input gradient for all but the first layer
    return {"conv1": 2 * conv1, "conv2": 3 * conv2, "linear": 3 * linear}


def blas_rate(geo: Geometry, batch: int, repeats: int = 30) -> float:
    """FLOP/s of NumPy's float32 GEMM on conv2's forward product, (64, 288) @ (288, N*OH*OW)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 288), dtype=np.float32)
    b = rng.standard_normal((288, batch * geo.side2**2), dtype=np.float32)
    out = np.empty((64, b.shape[1]), dtype=np.float32)
    np.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    # the best of the repeats: a floor should use the rate BLAS can reach, not a disturbed one
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] / min(times)


def blas_threads() -> int | None:
    """NumPy's BLAS thread count (threadpoolctl, if installed), else None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return counts[0] if counts else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--padding", type=int, default=1, choices=(0, 1))
    parser.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=10_000, help="images per epoch")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per library")
    parser.add_argument("--block", type=int, default=10, help="steps per alternating block")
    parser.add_argument("--pause", type=float, default=0.15, help="seconds before each block")
    parser.add_argument("--threads", type=int, default=None, help="default: NumPy's BLAS count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--openblas-thread-timeout", type=int, default=None, metavar="T",
                        help="set OPENBLAS_THREAD_TIMEOUT=T before NumPy loads")  # fmt: skip
    parser.add_argument("--handgrad-threads", type=int, default=None, metavar="N",
                        help="set HANDGRAD_NUM_THREADS=N")  # fmt: skip
    args = parser.parse_args()

    import torch

    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads, user_api="blas")
    threads = args.threads or blas_threads() or torch.get_num_threads()
    torch.set_num_threads(threads)

    geo = Geometry(args.padding)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.images, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=args.images)
    step_ours, step_torch, parts = make_steps(geo, x, y, args.batch, args.optimizer, rng)
    blocks = alternate_blocks(
        {"handgrad": step_ours, "torch": step_torch},
        len(parts), args.rounds, args.block, args.pause,
    )  # fmt: skip
    flops = gemm_flops(geo, args.images)
    rate = blas_rate(geo, args.batch)
    floor = sum(flops.values()) / rate

    env = {k: os.environ.get(k, "-") for k in ("OPENBLAS_THREAD_TIMEOUT", "HANDGRAD_NUM_THREADS")}
    print(
        f"mnist-cnn epoch: {args.images} images, batch {args.batch}, padding {args.padding} "
        f"(linear {geo.flat}->10), {args.optimizer}, float32, {threads} BLAS/torch threads, "
        f"{num_threads()} "
        f"handgrad elementwise threads; OPENBLAS_THREAD_TIMEOUT={env['OPENBLAS_THREAD_TIMEOUT']}"
        f" HANDGRAD_NUM_THREADS={env['HANDGRAD_NUM_THREADS']}"
    )
    print(
        f"numpy {np.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cores; {args.rounds} epochs per library in alternating blocks of "
        f"{args.block} steps"
    )
    # epoch seconds per round; the ratio is taken block by block (each pair of blocks ran
    # seconds apart, so a burst of background load hits both), median and quartiles
    ours, theirs = blocks["handgrad"].sum(axis=1), blocks["torch"].sum(axis=1)
    pair = (blocks["handgrad"] / blocks["torch"]).ravel()
    q1, ratio, q3 = np.percentile(pair, [25, 50, 75])
    n = len(parts)
    header = f"{'':28} {'median':>8} {'min':>8} {'max':>8} {'per step':>9}"
    print(header)
    print("-" * len(header))
    for name, t in (("handgrad epoch (s)", ours), ("PyTorch epoch (s)", theirs)):
        med = float(np.median(t))
        print(f"{name:28} {med:8.3f} {t.min():8.3f} {t.max():8.3f} {med / n * 1e3:7.2f}ms")
    print(
        f"{'GEMM floor (s)':28} {floor:8.3f} {'':8} {'':8} {floor / n * 1e3:7.2f}ms"
        f"   ({sum(flops.values()) / 1e9:.1f} GFLOP at {rate / 1e9:.1f} GFLOP/s)"
    )
    print("-" * len(header))
    print(
        f"{'ratio handgrad / PyTorch':28} {ratio:8.3f}   (median of {pair.size} block pairs; "
        f"quartiles {q1:.3f}-{q3:.3f}, range {pair.min():.3f}-{pair.max():.3f})"
    )
    print(
        f"{'ratio of median epochs':28} {np.median(ours) / np.median(theirs):8.3f}   "
        f"(per round: " + " ".join(f"{r:.3f}" for r in ours / theirs) + ")"
    )
    print(
        f"{'GEMM floor / time':28} handgrad {floor / np.median(ours):.2f}, "
        f"PyTorch {floor / np.median(theirs):.2f}"
    )


if __name__ == "__main__":
    main()
