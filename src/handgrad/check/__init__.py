"""Gradient checking: finite differences, PyTorch parity, and readable reports.

``gradcheck(layer, x)`` compares a layer's hand-written ``backward`` with central finite
differences in float64 and returns a :class:`GradcheckReport` (print it for a table);
``compare_with_torch(layer, torch_layer, x)`` compares outputs and every gradient with PyTorch;
``check_file('my_layer.py:MyLayer', (4, 5))`` checks a class straight from a file. The checked
object only needs ``forward`` (or ``__call__``) and ``backward``. NumPy only; torch is imported
inside ``compare_with_torch``.

The Examples in the docstrings assume ``import numpy as np`` and ``from handgrad import nn``;
``tests/test_doctests_check.py`` runs them.
"""

from handgrad.check.gradcheck import gradcheck, numerical_gradient
from handgrad.check.loader import build_object, check_file, load_object, parse_shape
from handgrad.check.report import GradcheckReport, TensorCheck
from handgrad.check.torch_compare import compare_with_torch

__all__ = [
    "GradcheckReport",
    "TensorCheck",
    "build_object",
    "check_file",
    "compare_with_torch",
    "gradcheck",
    "load_object",
    "numerical_gradient",
    "parse_shape",
]
