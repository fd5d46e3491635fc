"""Gradient checking: finite differences, PyTorch parity, and readable reports.

``gradcheck(layer, x)`` compares a layer's hand-written ``backward`` with central finite
differences in float64 and returns a :class:`GradcheckReport` (print it for a table);
``compare_with_torch(layer, torch_layer, x)`` compares outputs and every gradient with PyTorch;
``check_file('my_layer.py:MyLayer', (4, 5))`` checks a class straight from a file;
``grade_folder(load_spec('hw.toml'), 'submissions/')`` grades a folder of students' layers in
the conventions courses use (:mod:`handgrad.check.grade`). The checked object only needs
``forward`` (or ``__call__``) and ``backward``. NumPy only; torch is imported inside
``compare_with_torch``.

The Examples in the docstrings assume ``import numpy as np`` and ``from handgrad import nn``;
``tests/test_doctests_check.py`` runs them.
"""

from handgrad.check.gradcheck import gradcheck, numerical_gradient
from handgrad.check.grade import GradeReport, GradeSpec, grade_folder, load_spec
from handgrad.check.loader import build_object, check_file, load_object, parse_shape
from handgrad.check.report import GradcheckReport, TensorCheck
from handgrad.check.torch_compare import compare_with_torch

__all__ = [
    "GradcheckReport",
    "GradeReport",
    "GradeSpec",
    "TensorCheck",
    "build_object",
    "check_file",
    "compare_with_torch",
    "gradcheck",
    "grade_folder",
    "load_object",
    "load_spec",
    "numerical_gradient",
    "parse_shape",
]
