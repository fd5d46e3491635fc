"""Build src/handgrad/data/digits.npz from scikit-learn's copy of the 8x8 digits.

Run once (scikit-learn is needed here only, never by handgrad itself):

    python tools/make_digits.py

The data: UCI "Optical Recognition of Handwritten Digits" (E. Alpaydin, C. Kaynak, 1998),
CC BY 4.0; scikit-learn ships its 1797-image test part as ``load_digits``. The file holds
``images`` uint8 (1797, 8, 8) with values 0..16, ``labels`` uint8 (1797,) and ``test`` bool
(1797,): a fixed stratified split, 20% of each class (rounded) to the test set, chosen with
numpy.random.default_rng(0). The split is stored rather than recomputed at load time, so it
stays the same whatever NumPy version loads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TEST_FRACTION = 0.2
SPLIT_SEED = 0
OUT = Path(__file__).resolve().parents[1] / "src" / "handgrad" / "data" / "digits.npz"


def stratified_test_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for round(fraction * count) samples of each class, drawn without replacement."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = round(fraction * len(idx))
        test[rng.choice(idx, size=k, replace=False)] = True
    return test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from sklearn.datasets import load_digits  # only this script needs scikit-learn

    bunch = load_digits()
    images = bunch.images
    if not np.array_equal(images, np.round(images)) or images.min() < 0 or images.max() > 16:
        raise SystemExit("make_digits: expected integer pixel values in 0..16")
    images = images.astype(np.uint8)  # (1797, 8, 8)
    labels = bunch.target.astype(np.uint8)  # (1797,)
    test = stratified_test_mask(labels, TEST_FRACTION, SPLIT_SEED)
    np.savez_compressed(args.out, images=images, labels=labels, test=test)
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes): {len(labels)} images, "
        f"{int((~test).sum())} train / {int(test.sum())} test"
    )


if __name__ == "__main__":
    main()
