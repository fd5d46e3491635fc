"""Cases for Conv2d, MaxPool2d and AvgPool2d (imported at the bottom of layer_cases.py).

Shapes are small (finite differences run one forward pair per input and weight entry) and
deliberately odd (7x5 inputs, 2x3 kernels) so that height/width mix-ups cannot cancel out.
"""

from __future__ import annotations

import numpy as np

from handgrad.nn.conv import Conv2d
from handgrad.nn.pooling import AvgPool2d, MaxPool2d
from layer_cases import Case, tnn


def distinct_values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """All entries different by at least 0.01 (a shuffled grid): no ties and no near-ties, so
    a finite-difference step of 1e-6 never changes which entry is a window's maximum."""
    n = int(np.prod(shape))
    return (rng.permutation(n) - n / 2).reshape(shape) * 0.01


def _conv(name: str, args: tuple, kwargs: dict, shape: tuple[int, ...], **kw) -> Case:
    return Case(
        name,
        lambda rng, dt: Conv2d(*args, **kwargs, rng=rng, dtype=dt),
        lambda: tnn().Conv2d(*args, **kwargs),
        shape,
        **kw,
    )


def _pool(name: str, cls: type, torch_name: str, kwargs: dict, shape, **kw) -> Case:
    return Case(
        name,
        lambda rng, dt: cls(**kwargs),
        lambda: getattr(tnn(), torch_name)(**kwargs),
        shape,
        **kw,
    )


def _max(name: str, kwargs: dict, shape, **kw) -> Case:
    return _pool(name, MaxPool2d, "MaxPool2d", kwargs, shape, input_fn=distinct_values, **kw)


def _avg(name: str, kwargs: dict, shape, **kw) -> Case:
    return _pool(name, AvgPool2d, "AvgPool2d", kwargs, shape, **kw)


CASES: list[Case] = [
    _conv(
        "Conv2d-3x3",
        (3, 4, 3),
        {},
        (2, 3, 7, 5),
        bad_input_shape=(2, 2, 7, 5),
        bad_input_match=r"Conv2d\(3, 4, kernel_size=\(3, 3\), stride=\(1, 1\)\): "
        r"expected input \(N, 3, H, W\), got \(2, 2, 7, 5\)",
    ),
    _conv("Conv2d-3x3-pad1", (2, 3, 3), {"padding": 1}, (2, 2, 7, 5)),
    _conv("Conv2d-2x3-stride2-pad1", (2, 3, (2, 3)), {"stride": 2, "padding": 1}, (2, 2, 7, 5)),
    _conv("Conv2d-3x2-stride(2,1)", (2, 2, (3, 2)), {"stride": (2, 1)}, (3, 2, 7, 5)),
    _conv("Conv2d-nobias", (2, 3, 3), {"padding": (1, 0), "bias": False}, (2, 2, 5, 6)),
    _conv("Conv2d-1x1", (3, 2, 1), {}, (2, 3, 4, 3)),
    _conv("Conv2d-groups2", (4, 6, 3), {"padding": 1, "groups": 2}, (2, 4, 5, 4)),
    _conv("Conv2d-depthwise", (3, 3, (3, 2)), {"groups": 3, "stride": (1, 2)}, (2, 3, 5, 7)),
    _conv("Conv2d-dilation2", (2, 3, 3), {"dilation": 2, "padding": 2}, (2, 2, 7, 6)),
    _conv(
        "Conv2d-dilation(1,2)-stride2",
        (2, 2, (2, 3)),
        {"dilation": (1, 2), "stride": 2, "padding": (0, 1)},
        (2, 2, 7, 9),
    ),
    _conv("Conv2d-same", (2, 3, (3, 5)), {"padding": "same", "dilation": (2, 1)}, (2, 2, 5, 7)),
    _max(
        "MaxPool2d-2x2",
        {"kernel_size": 2},
        (2, 3, 6, 8),
        bad_input_shape=(3, 6, 8),
        bad_input_match=r"MaxPool2d\(kernel_size=\(2, 2\), stride=\(2, 2\), padding=\(0, 0\)\): "
        r"expected input \(N, C, H, W\), got \(3, 6, 8\)",
    ),
    _max("MaxPool2d-2x2-odd-input", {"kernel_size": 2}, (2, 2, 7, 5)),
    _max("MaxPool2d-3x3-stride2-overlap", {"kernel_size": 3, "stride": 2}, (2, 2, 7, 9)),
    _max("MaxPool2d-3x3-stride2-pad1", {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 2, 7, 6)),
    _max(
        "MaxPool2d-2x3-stride(1,2)-pad1",
        {"kernel_size": (2, 3), "stride": (1, 2), "padding": 1},
        (2, 2, 5, 7),
    ),
    _max("MaxPool2d-2x2-stride3-gaps", {"kernel_size": 2, "stride": 3}, (1, 2, 8, 7)),
    _avg(
        "AvgPool2d-2x2",
        {"kernel_size": 2},
        (2, 3, 6, 8),
        bad_input_shape=(2, 3, 1, 8),
        bad_input_match=r"AvgPool2d\(kernel_size=\(2, 2\), stride=\(2, 2\), padding=\(0, 0\)\): "
        r"input \(2, 3, 1, 8\) is too small",
    ),
    _avg("AvgPool2d-3x3-stride2-pad1", {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 2, 7, 6)),
    _avg("AvgPool2d-3x2-stride1", {"kernel_size": (3, 2), "stride": 1}, (2, 2, 7, 5)),
]
