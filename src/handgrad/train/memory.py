"""Keep freed memory in the process, so that a training step's large arrays reuse warm pages.

Every training step allocates and frees the same large arrays: activations, their gradients,
masks, im2col columns. With glibc's defaults an array above the *mmap threshold* gets pages
of its own from the kernel, which it gives back when the array is freed; the next step's array
of the same size then faults every page in again and the kernel zeroes each one first. glibc
raises the threshold as it sees such arrays freed, but freed memory at the top of the heap
beyond the *trim threshold* is still handed back, and the faults return. For a CNN on
MNIST-sized batches this costs several percent of the step (measured, see
docs/performance.md).

:func:`keep_freed_memory` sets both thresholds once (``mallopt``), the same thing as the
environment variables ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``: arrays up to
``mmap_threshold`` bytes come from the heap, and the heap keeps up to ``trim_threshold`` bytes
of freed memory instead of returning it. The process's peak memory is unchanged; its memory
between peaks stays near the peak. It acts on glibc's malloc only (Linux); elsewhere, or with
``HANDGRAD_MALLOC=default`` in the environment, it does nothing and returns False.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["ENV_VAR", "keep_freed_memory"]

ENV_VAR = "HANDGRAD_MALLOC"

# glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_done: bool | None = None


def keep_freed_memory(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 2**30) -> bool:
    """Tune glibc's malloc for repeated large allocations (see the module docstring).

    ``handgrad run`` calls it (the command owns its process); a library never changes the
    allocator of a process behind its owner's back, so ``fit`` does not: call it yourself
    before training. Decided once per process; returns whether the settings are in force.
    32 MiB is the largest mmap threshold glibc accepts on 64-bit systems.

    Examples:
        >>> from handgrad.train import keep_freed_memory
        >>> on = keep_freed_memory()  # False off glibc or with HANDGRAD_MALLOC=default
        >>> keep_freed_memory() is on  # decided once: a second call changes nothing
        True
    """
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or os.environ.get(ENV_VAR, "") == "default":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present only in glibc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
    return _done
