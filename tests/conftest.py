"""What many test files share: PyTorch, which is optional, and one torch thread.

A test that takes the ``torch`` fixture is skipped where PyTorch is not installed. The files
in ``TORCH_FILES`` use torch from their first line (``import torch`` at the top, torch modules
in their parametrisations); without PyTorch they are not collected, and the header says so.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None

TORCH_FILES = ["test_torch_ext_*.py"]

collect_ignore_glob = [] if HAS_TORCH else TORCH_FILES


def pytest_report_header(config: pytest.Config) -> str | None:
    if HAS_TORCH:
        return None
    return f"torch: not installed; not collected: {', '.join(TORCH_FILES)}"


@pytest.fixture(scope="session")
def torch() -> Any:
    """The torch module; the test is skipped where PyTorch is not installed."""
    return pytest.importorskip("torch")


@pytest.fixture
def one_thread(torch: Any) -> Iterator[None]:
    """torch on one thread for the test (``pytestmark = pytest.mark.usefixtures(...)``).

    On tiny tensors, waking idle worker threads costs more than the work, and far more on a
    busy machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    """MNIST without the digests of its real content, for tests that write tiny MNIST files.

    With the real digests such files fail the content check (as they should); without them
    they load "unverified", as any data set without a known digest does.
    """
    from handgrad.data import mnist as mnist_mod

    monkeypatch.setattr(mnist_mod, "MNIST", dataclasses.replace(mnist_mod.MNIST, sha256={}))
