"""Plumbing shared by the (N, C, H, W) layers: input checks and threads for elementwise passes.

Conv2d and the pooling layers use these; nothing here is a layer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from handgrad.nn.module import Module, check_input

__all__ = [
    "PARALLEL_MIN_SIZE",
    "channel_sum",
    "check_grad",
    "check_nchw",
    "num_threads",
    "parallel_for",
]


# -- shape checks at the boundary of forward and backward --------------------------------------
def check_nchw(layer: Module, x: Any, channels: int | None) -> np.ndarray:
    """Validate a forward input: a floating (N, C, H, W) array with N >= 1, with C == channels
    if given (the dtype rule is the one of every layer, :func:`handgrad.nn.module.check_input`)."""
    x = check_input(layer, x)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        expected = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ValueError(f"{layer}: expected input {expected}, got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{layer}: expected a batch of at least one image, got input {x.shape}")
    return x


def check_grad(layer: Module, grad_out: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Validate a backward input: ``grad_out`` must have the forward output's ``shape``."""
    grad_out = np.asarray(grad_out)
    if grad_out.shape != shape:
        raise ValueError(f"{layer}: expected grad_out {shape}, got {grad_out.shape}")
    return grad_out


# -- threads for the elementwise passes --------------------------------------------------------
# BLAS runs the GEMMs on all cores, but NumPy's copies and ufuncs (im2col, col2im, pooling) run
# on one. They release the GIL on large arrays, so splitting them into disjoint slabs across a
# few Python threads can run them in parallel. Off by default: OpenBLAS keeps its idle workers
# spinning for ~0.1 s after every GEMM, so between GEMMs the other cores are taken and extra
# threads only add hand-offs. With OPENBLAS_THREAD_TIMEOUT=4 (set before NumPy is imported) and
# HANDGRAD_NUM_THREADS=2, the 2-core mnist-cnn training epoch ran about 17% faster.
PARALLEL_MIN_SIZE = 1 << 17  # elements; below this the hand-off costs more than it saves
_executor: ThreadPoolExecutor | None = None
_executor_workers = 0


def num_threads() -> int:
    """Threads for the elementwise passes: ``$HANDGRAD_NUM_THREADS`` (default 1)."""
    env = os.environ.get("HANDGRAD_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else 1


def parallel_for(body: Callable[[int, int], None], n: int, size: int) -> None:
    """Run ``body(lo, hi)`` over ``range(n)`` split into contiguous ranges, one per thread.

    ``size`` is the number of elements the whole job touches (small jobs run inline). Every
    ``body`` call must write a region no other call writes; the results are then the same
    bits as ``body(0, n)``.
    """
    global _executor, _executor_workers
    k = min(num_threads(), n)
    if k <= 1 or size < PARALLEL_MIN_SIZE:
        body(0, n)
        return
    if _executor is None or _executor_workers < k - 1:
        _executor = ThreadPoolExecutor(max_workers=k - 1, thread_name_prefix="handgrad")
        _executor_workers = k - 1
    bounds = [n * t // k for t in range(k + 1)]
    futures = [_executor.submit(body, bounds[t], bounds[t + 1]) for t in range(1, k)]
    try:
        body(bounds[0], bounds[1])
    finally:
        for f in futures:
            f.result()


_CHANNEL_SPECS = {2: "nc", 3: "ncl", 4: "nchw"}


def channel_sum(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Per-channel sum over every axis but axis 1 of ``a`` (or of ``a * b``), shape (C,).

    One einsum pass without a temporary: for the channel-major layout convolutions hand
    over it is about ten times faster than ``a.sum(axis=(0, 2, 3))``, and ``a * b`` is never
    stored. Accumulates in the arrays' dtype.
    """
    spec = _CHANNEL_SPECS[a.ndim]
    if b is None:
        return np.einsum(f"{spec}->c", a)
    return np.einsum(f"{spec},{spec}->c", a, b)
