"""Random augmentation of training batches: RandomShift, RandomHorizontalFlip, Compose, and
DataLoader(transform=...) with its reproducibility from the loader's generator."""

from __future__ import annotations

import numpy as np
import pytest

from handgrad.data import Compose, DataLoader, RandomHorizontalFlip, RandomShift
from handgrad.experiments import make_config
from handgrad.experiments.classifier import augmentation


def _images(n: int = 40, c: int = 2, h: int = 7, w: int = 5) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, c, h, w)).astype(np.float32)


def _shift_reference(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[i, j] = x[clip(i - dy), clip(j - dx)]: content moved down by dy, right by dx, the
    edge repeated (an index formula, independent of the padding-and-window implementation)."""
    h, w = x.shape[-2:]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return x[..., rows[:, None], cols[None, :]]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_random_shift_moves_each_image_by_one_offset(k):
    x = _images()
    out = RandomShift(k)(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = [(dy, dx) for dy in range(-k, k + 1) for dx in range(-k, k + 1)]
    found = []
    for n in range(len(x)):
        hits = [o for o in offsets if np.array_equal(out[n], _shift_reference(x[n], *o))]
        assert hits, f"image {n} is not a shift of its input by at most {k}"
        found.append(hits[0])
    # with 40 images and (2k+1)^2 offsets, several distinct offsets occur, including non-zero
    assert len(set(found)) > 3 and any(o != (0, 0) for o in found)


def test_random_shift_is_seeded_and_leaves_its_input():
    x = _images()
    before = x.copy()
    a = RandomShift(2)(x, np.random.default_rng(5))
    b = RandomShift(2)(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, before)
    assert RandomShift(0)(x, np.random.default_rng(0)) is x


def test_random_flip_mirrors_about_half():
    x = _images(n=400)
    out = RandomHorizontalFlip()(x, np.random.default_rng(0))
    same = np.array([np.array_equal(o, i) for o, i in zip(out, x, strict=True)])
    mirrored = np.array([np.array_equal(o, i[..., ::-1]) for o, i in zip(out, x, strict=True)])
    assert np.all(same ^ mirrored)  # each image exactly one of the two
    assert 150 < mirrored.sum() < 250  # binomial(400, 1/2): 200 +- 5 sd
    assert RandomHorizontalFlip(0.0)(x, np.random.default_rng(0)).tolist() == x.tolist()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RandomShift(-1), "RandomShift: max_shift must be an int >= 0, got -1"),
        (lambda: RandomShift(1.5), "RandomShift: max_shift must be an int >= 0, got 1.5"),
        (lambda: RandomHorizontalFlip(2), "RandomHorizontalFlip: p must be a probability"),
        (lambda: Compose(3), "Compose: every transform must be callable, got 3"),
        (lambda: DataLoader(np.zeros((2, 1)), [0, 1], transform=1), "transform must be callable"),
    ],
)
def test_bad_arguments_name_themselves(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make()


def test_transforms_refuse_non_image_batches():
    with pytest.raises(ValueError, match=r"RandomShift: expected a batch of images \(N, C, H, W\)"):
        RandomShift(1)(np.zeros((3, 4)), np.random.default_rng(0))


def test_loader_applies_the_transform_to_x_only_and_replays_from_its_state():
    x, y = _images(n=30), np.arange(30)
    loader = DataLoader(
        x, y, batch_size=8, rng=3, transform=Compose(RandomShift(1), RandomHorizontalFlip())
    )
    state = loader.state_dict()
    first = list(loader)
    for xb, yb in first:  # labels untouched; every image is a shifted/flipped copy of its own
        for img, label in zip(xb, yb, strict=True):
            candidates = [
                f(_shift_reference(x[label], dy, dx))
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
                for f in (lambda a: a, lambda a: a[..., ::-1])
            ]
            assert any(np.array_equal(img, c) for c in candidates)
    loader.load_state_dict(state)
    again = list(loader)
    for (a, ya), (b, yb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya, yb)
    # a further epoch draws new shifts
    third = list(loader)
    assert any(not np.array_equal(a, b) for (a, _), (b, _) in zip(first, third, strict=True))


def test_experiment_fields_build_the_augmentation():
    assert augmentation(make_config("fashion-cnn")) is None  # off by default
    t = augmentation(make_config("fashion-cnn", {"shift": 2, "flip": True}))
    assert repr(t) == "Compose(RandomShift(2), RandomHorizontalFlip(p=0.5))"
    with pytest.raises(
        ValueError, match=r"FashionCNNConfig: invalid shift 9, must be an int in 0\.\.7"
    ):
        make_config("fashion-cnn", {"shift": 9})
