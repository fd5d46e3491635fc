"""Cases for SumNormalize and LogSumNormalize (imported at the bottom of layer_cases.py).

PyTorch has no such layer, so ``make_torch`` is None: the finite-difference, dtype, shape-error
and backward-before-forward tests run; the torch-parity test skips them. Inputs are drawn in
[0.2, 2] so that they are positive with a comfortable margin.
"""

from __future__ import annotations

from handgrad.nn.normalize import LogSumNormalize, SumNormalize
from layer_cases import Case, uniform_between

_positive = uniform_between(0.2, 2.0)


def _case(name: str, cls: type, dim: int, shape: tuple[int, ...], **kw) -> Case:
    return Case(name, lambda rng, dt: cls(dim=dim), None, shape, input_fn=_positive, **kw)


CASES: list[Case] = [
    _case(
        "SumNormalize",
        SumNormalize,
        -1,
        (4, 5),
        bad_input_shape=(4,),
        bad_input_match=r"SumNormalize\(dim=-1\): expected input >= 0 with a positive sum along "
        r"dim -1 .*got min 0 and smallest sum 0",
    ),
    _case("SumNormalize-dim0", SumNormalize, 0, (3, 4, 2)),
    _case(
        "SumNormalize-bad-dim",
        SumNormalize,
        2,
        (3, 4, 2),
        bad_input_shape=(3, 4),
        bad_input_match=r"SumNormalize\(dim=2\): dim 2 is out of range for input of shape "
        r"\(3, 4\)",
    ),
    _case(
        "LogSumNormalize",
        LogSumNormalize,
        -1,
        (4, 5),
        bad_input_shape=(2, 3),
        bad_input_match=r"LogSumNormalize\(dim=-1\): expected input >= 0 with a positive sum",
    ),
    _case("LogSumNormalize-dim1", LogSumNormalize, 1, (2, 3, 4)),
]
