"""keep_freed_memory: glibc's malloc keeps freed memory, so a repeated large allocation reuses
warm pages instead of faulting fresh ones in from the kernel (measured as minor page faults,
in fresh processes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import numpy as np
from handgrad.train import keep_freed_memory
on = keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(20):
    # 24 MB and a little larger each time: glibc's own adaptive threshold keeps mapping
    # every one of them afresh, the tuned heap extends a warm block by a page
    a = np.ones(6_000_000 + 1024 * i, dtype=np.float32)
    del a
print(on, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(malloc_setting: str | None) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("HANDGRAD_MALLOC", None)
    if malloc_setting is not None:
        env["HANDGRAD_MALLOC"] = malloc_setting
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


def _glibc() -> bool:
    import ctypes

    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


@pytest.mark.skipif(not _glibc(), reason="tunes glibc's malloc only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    tuned_on, tuned = _faults(None)
    default_on, default = _faults("default")
    assert tuned_on and not default_on
    # 20 arrays of 24 MB: about 117 000 pages of 4 kB if every one faults in afresh
    assert tuned * 3 < default, (tuned, default)


def test_handgrad_run_turns_it_on(monkeypatch, tmp_path):
    import handgrad.train as train
    from handgrad.cli import main

    calls = []
    monkeypatch.setattr(train, "keep_freed_memory", lambda: calls.append(1))
    assert main(["run", "toy", "--quiet", "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert calls == [1]


def test_off_switch_and_idempotence(monkeypatch):
    import handgrad.train.memory as memory

    monkeypatch.setattr(memory, "_done", None)
    monkeypatch.setenv("HANDGRAD_MALLOC", "default")
    assert memory.keep_freed_memory() is False
    monkeypatch.delenv("HANDGRAD_MALLOC")
    assert memory.keep_freed_memory() is False  # decided once per process
