"""The bundled 8x8 digits: shape, values, the fixed stratified split, and scikit-learn's copy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import handgrad.data as data
from handgrad.data.digits import load_digits_arrays

ROOT = Path(__file__).resolve().parents[1]
# class sizes of the 1797 digits (UCI test part, as scikit-learn ships it)
COUNTS = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])


def test_shapes_dtypes_and_values():
    train = data.load("digits")
    test = data.load("digits", "test")
    assert len(train) + len(test) == 1797
    assert (len(train), len(test)) == (1438, 359)
    for ds in (train, test):
        assert ds.X.dtype == np.float32 and ds.X.shape[1:] == (1, 8, 8)
        assert ds.input_shape == (1, 8, 8) and ds.y.dtype == np.int64
        assert ds.classes == tuple("0123456789") and ds.name == "digits"
        # values are counts 0..16 divided by 16
        assert ds.X.min() == 0.0 and ds.X.max() == 1.0
        np.testing.assert_array_equal(ds.X * 16, np.rint(ds.X * 16))


def test_stratified_split_proportions():
    train, test = data.load("digits").y, data.load("digits", "test").y
    n_train, n_test = np.bincount(train, minlength=10), np.bincount(test, minlength=10)
    np.testing.assert_array_equal(n_train + n_test, COUNTS)
    # 20% of each class, rounded: never more than half a sample off
    assert np.abs(n_test - 0.2 * COUNTS).max() <= 0.5
    assert abs(len(test) / 1797 - 0.2) < 0.001


def test_split_is_fixed_and_disjoint():
    a = data.load("digits", "test", seed=0)
    b = data.load("digits", "test", seed=7)  # the split does not depend on the seed
    np.testing.assert_array_equal(a.X, b.X)
    images, labels, test = load_digits_arrays()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    assert labels.shape == (1797,) and test.dtype == bool and test.sum() == 359
    np.testing.assert_array_equal(a.X[:, 0] * 16, images[test])


def test_flatten_option():
    ds = data.load("digits", flatten=True)
    assert ds.X.shape == (1438, 64) and ds.input_shape == (64,)
    np.testing.assert_array_equal(ds.X, data.load("digits").X.reshape(1438, 64))
    with pytest.raises(ValueError, match=r"digits: flatten must be True or False, got 1"):
        data.load("digits", flatten=1)


def test_matches_scikit_learn_copy():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    _, _, test = load_digits_arrays()
    for split, mask in (("train", ~test), ("test", test)):
        ds = data.load("digits", split)
        np.testing.assert_array_equal(ds.X[:, 0] * 16, bunch.images[mask])
        np.testing.assert_array_equal(ds.y, bunch.target[mask])


def test_tool_rebuilds_the_shipped_file(tmp_path, monkeypatch):
    pytest.importorskip("sklearn.datasets")
    spec = importlib.util.spec_from_file_location("make_digits", ROOT / "tools" / "make_digits.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "digits.npz"
    monkeypatch.setattr("sys.argv", ["make_digits.py", "--out", str(out)])
    tool.main()
    shipped = load_digits_arrays()
    with np.load(out) as rebuilt:
        for key, arr in zip(("images", "labels", "test"), shipped, strict=True):
            np.testing.assert_array_equal(rebuilt[key], arr)
