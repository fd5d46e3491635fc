"""The playground's overhead: Session.step against a plain loop of the same handgrad calls.

The default network (2 -> 4 -> 2 -> 1 tanh, circle, 500 points of which 250 train, batch 10,
SGD lr 0.03) trains ``--epochs`` epochs through ``Session.step`` and through a plain loop that
makes the same calls (a shuffle per epoch; per batch forward, BCE-with-logits, zero_grad, the
hand-written backward, SGD step) and nothing else. The two alternate in one process, each
repeat on fresh weights; the table gives steps (mini-batches) per second of each and the ratio
session / plain time (min / median / max over the repeats, and the ratio of the best times).
Time is this process's CPU time (``time.process_time``, BLAS held to one thread), so that
other work on a shared machine disturbs the ratio less than wall-clock time would.

The session's extra work per epoch is what the page needs: the train and test losses and
accuracies (one forward over all points), a history point, and a copy of the state the epoch
started from (to name the first non-finite tensor if it diverges). The target is an overhead
under 20%.

Then ``Session.snapshot()`` (the frame the server sends) is timed for 6 hidden layers of 8
neurons, with the size of its JSON.

    python bench/bench_playground.py [--epochs 50] [--repeats 21]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import handgrad.nn as nn
from handgrad.optim import SGD
from handgrad.playground import Session


def session_epochs(epochs: int) -> tuple[float, int]:
    """Seconds for ``epochs`` epochs through Session.step, and the mini-batch steps done."""
    s = Session()
    t0 = time.process_time()
    s.step(epochs)
    elapsed = time.process_time() - t0
    assert s.epoch == epochs and s.error is None
    return elapsed, epochs * -(-len(s.train_X) // s.settings["batch_size"])


def plain_epochs(epochs: int, X: np.ndarray, t: np.ndarray, batch: int = 10) -> float:
    """Seconds for the same epochs as a plain loop of handgrad.nn / handgrad.optim calls."""
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Linear(2, 4, rng=rng), nn.Tanh(), nn.Linear(4, 2, rng=rng), nn.Tanh(),
        nn.Linear(2, 1, rng=rng),
    )  # fmt: skip
    loss_fn = nn.BCEWithLogitsLoss()
    opt = SGD(model.parameters(), lr=0.03)
    shuffle = np.random.default_rng([0, 1])
    n = len(X)
    t0 = time.process_time()
    for _ in range(epochs):
        order = shuffle.permutation(n)
        Xs, ts = X[order], t[order]
        for i in range(0, n, batch):
            loss_fn(model(Xs[i : i + batch]), ts[i : i + batch])
            opt.zero_grad()
            model.backward(loss_fn.backward(), input_grad=False)
            opt.step()
    return time.process_time() - t0


def snapshot_times(repeats: int) -> tuple[list[float], int, float]:
    """CPU seconds per snapshot() of a 6x8 network (after a few epochs), its JSON size in
    bytes, and the CPU seconds of json.dumps."""
    s = Session({"hidden": [8] * 6})
    s.step(5)
    s.snapshot(full=True)
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        frame = s.snapshot()
        times.append(time.process_time() - t0)
    t0 = time.process_time()
    text = json.dumps(frame, allow_nan=False)
    return times, len(text), time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    try:  # one thread: these matrices are tiny, threads only add noise
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass

    ref = Session()
    X, t = ref.train_X, ref.train_y.astype(np.float32)[:, None]
    session_epochs(10)  # warm up both
    plain_epochs(10, X, t)
    sess, plain, ratios = [], [], []
    steps = 0
    for _ in range(args.repeats):  # alternate so both see the same machine state
        ts, steps = session_epochs(args.epochs)
        tp = plain_epochs(args.epochs, X, t)
        sess.append(ts)
        plain.append(tp)
        ratios.append(ts / tp)

    print(
        f"default network 2-4-2-1 tanh, circle, {len(X)} train points, batch 10, SGD, "
        f"{args.epochs} epochs ({steps} steps) per repeat, {args.repeats} repeats"
    )
    print(f"{'':<22}{'steps/s (median)':>18}{'steps/s (best)':>16}{'ms/epoch (best)':>17}")
    for name, times in (("Session.step", sess), ("plain handgrad loop", plain)):
        med, best = statistics.median(times), min(times)
        print(
            f"{name:<22}{steps / med:>18,.0f}{steps / best:>16,.0f}"
            f"{1e3 * best / args.epochs:>17.3f}"
        )
    median = statistics.median(ratios)
    print(
        f"session / plain time, per repeat: min {min(ratios):.3f}, median {median:.3f}, "
        f"max {max(ratios):.3f}; best / best {min(sess) / min(plain):.3f}"
    )
    print(f"overhead (median ratio): {100 * (median - 1):+.1f}% (target < +20%)")
    times, size, dump = snapshot_times(200)
    print(
        f"snapshot() of 6x8 hidden: median {1e3 * statistics.median(times):.2f} ms, "
        f"max {1e3 * max(times):.2f} ms; frame {size / 1024:.1f} kB of JSON "
        f"(json.dumps {1e3 * dump:.2f} ms)"
    )


if __name__ == "__main__":
    main()
