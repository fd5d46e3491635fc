"""The 8x8 handwritten digits that ship with the package (no network needed).

1797 images of 8x8 pixels with values 0..16 (UCI "Optical Recognition of Handwritten Digits",
CC BY 4.0, the copy scikit-learn distributes), stored in ``digits.npz`` by
``tools/make_digits.py`` together with a fixed stratified split: 20% of each class (rounded)
is the test set, 1438 train / 359 test. The split does not depend on ``seed``.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from handgrad.data.dataset import Dataset, check_bool, register

__all__ = ["load_digits_arrays"]

DIGITS_FILE = "digits.npz"


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The raw arrays: images uint8 (1797, 8, 8) in 0..16, labels uint8 (1797,), test mask."""
    # importlib.resources finds the file whether the package is a folder or inside a zip
    with resources.files("handgrad.data").joinpath(DIGITS_FILE).open("rb") as f:
        with np.load(f) as npz:
            return npz["images"], npz["labels"], npz["test"]


@register(
    "digits",
    options={"flatten": False},
    description="8x8 handwritten digits (1797, bundled), fixed stratified 80/20 split",
    kind="bundled",
)
def digits(*, split: str, seed: int, data_dir: Any, download: bool, flatten: Any) -> Dataset:
    flatten = check_bool("digits", "flatten", flatten)
    images, labels, test = load_digits_arrays()
    mask = test if split == "test" else ~test
    # pixel values are counts 0..16 (ink in a 4x4 block of the 32x32 original)
    X = images[mask][:, None].astype(np.float32) / np.float32(16.0)  # (N, 1, 8, 8)
    if flatten:
        X = X.reshape(len(X), -1)
    y = labels[mask].astype(np.int64)
    classes = tuple(str(d) for d in range(10))
    return Dataset(X, y, classes, tuple(X.shape[1:]), "digits", split, {"file": DIGITS_FILE})
