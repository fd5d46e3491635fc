"""Grading a folder of submissions: ``handgrad grade SPEC.toml SUBMISSIONS/``.

A spec (:func:`load_spec`) lists what to check in each submission, in the conventions courses
write homework in: module objects (gradients as attributes, in ``params``/``grads`` dicts, or
returned), functional ``layer_forward``/``layer_backward`` pairs, ``loss(x, y) -> (loss, dx)``
functions, and an MLP that fills a ``grads`` dict. :func:`grade_folder` grades every
submission in a subprocess of its own, under time, memory and output limits, several at once,
each check with :func:`~handgrad.check.gradcheck` (float64, central differences, kinks flagged,
not failed); the :class:`GradeReport` holds a row per submission and check and writes
Markdown, CSV and JSON. docs/grading.md walks through it.
"""

from handgrad.check.grade.grader import grade_folder, list_submissions
from handgrad.check.grade.report import CheckResult, GradeReport, SubmissionResult
from handgrad.check.grade.spec import ArraySpec, CheckSpec, GradeSpec, SpecError, load_spec

__all__ = [
    "ArraySpec",
    "CheckResult",
    "CheckSpec",
    "GradeReport",
    "GradeSpec",
    "SpecError",
    "SubmissionResult",
    "grade_folder",
    "list_submissions",
    "load_spec",
]
