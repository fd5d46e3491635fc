"""The ``Examples`` in handgrad.check run, and every name in its ``__all__`` has one.

As in PyTorch's docs, an example assumes ``import numpy as np`` and ``from handgrad import nn``;
those names are given to every example here. compare_with_torch's examples need PyTorch.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import numpy as np
import pytest

from handgrad import check, nn

GLOBALS = {"np": np, "nn": nn}
NEEDS_TORCH = {"handgrad.check.torch_compare"}
HAS_TORCH = importlib.util.find_spec("torch") is not None


def modules() -> list[object]:
    """handgrad.check and every module in it; the torch ones are skipped without torch."""
    names = [check.__name__]
    names += [m.name for m in pkgutil.iter_modules(check.__path__, check.__name__ + ".")]
    no_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
    return [pytest.param(n, marks=no_torch) if n in NEEDS_TORCH else n for n in names]


@pytest.mark.parametrize("name", modules())
def test_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner()
    report: list[str] = []
    for test in finder.find(module, name, globs=dict(GLOBALS)):  # only what module defines
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_every_public_name_has_an_example() -> None:
    docs = {name: getattr(check, name).__doc__ or "" for name in check.__all__}
    missing = [name for name, doc in docs.items() if "Examples:" not in doc or ">>>" not in doc]
    assert not missing, f"handgrad.check: no Examples section in the docstring of {missing}"
