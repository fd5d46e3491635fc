"""The ``Examples`` in handgrad.nn and handgrad.optim run, and every name in their ``__all__``
has one.

As in PyTorch's docs, an example assumes ``import numpy as np`` and ``from handgrad import nn,
optim``; those three names are given to every example here.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import numpy as np
import pytest

from handgrad import nn, optim

PACKAGES = (nn, optim)
GLOBALS = {"np": np, "nn": nn, "optim": optim}


def modules() -> list[str]:
    """Each package and every module in it."""
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        names += [m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
    return names


@pytest.mark.parametrize("name", modules())
def test_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    for test in finder.find(module, name, globs=dict(GLOBALS)):  # only what module defines
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_public_name_has_an_example(package: ModuleType) -> None:
    docs = {name: getattr(package, name).__doc__ or "" for name in package.__all__}
    missing = [name for name, doc in docs.items() if "Examples:" not in doc or ">>>" not in doc]
    assert not missing, f"{package.__name__}: no Examples section in the docstring of {missing}"
