"""DataLoader (batches, epochs, reproducible shuffling) and standardisation."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad.data as data
from handgrad.data import DataLoader, Standardizer, standardize


def _arrays(n: int = 10):
    # X row i holds 10*i, y holds i, so a batch shows at once whether X and y stay aligned
    X = (np.arange(n, dtype=np.float32) * 10).reshape(n, 1).repeat(3, axis=1)
    return X, np.arange(n)


# -- DataLoader ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n, bs", [(10, 3), (10, 5), (10, 10), (10, 32), (1, 1)])
def test_every_sample_once_per_epoch(shuffle, n, bs):
    X, y = _arrays(n)
    loader = DataLoader(X, y, batch_size=bs, shuffle=shuffle, rng=0)
    assert len(loader) == -(-n // bs)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        assert [len(yb) for _, yb in batches] == [bs] * (n // bs) + ([n % bs] if n % bs else [])
        seen = np.concatenate([yb for _, yb in batches])
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))
        for xb, yb in batches:
            np.testing.assert_array_equal(xb[:, 0], yb * 10)
            np.testing.assert_array_equal(xb, X[yb])
        if not shuffle:
            np.testing.assert_array_equal(seen, np.arange(n))


@pytest.mark.parametrize("n, bs, batches", [(10, 3, 3), (10, 5, 2), (10, 11, 0), (9, 3, 3)])
def test_drop_last(n, bs, batches):
    X, y = _arrays(n)
    loader = DataLoader(X, y, batch_size=bs, drop_last=True, rng=1)
    assert len(loader) == batches
    sizes = [len(yb) for _, yb in loader]
    assert sizes == [bs] * batches
    seen = np.concatenate([yb for _, yb in loader]) if batches else np.array([], int)
    assert len(np.unique(seen)) == len(seen) == bs * batches


def test_shuffle_is_reproducible_and_changes_per_epoch():
    X, y = _arrays(50)
    order = lambda loader: np.concatenate([yb for _, yb in loader])  # noqa: E731
    a, b = DataLoader(X, y, batch_size=8, rng=42), DataLoader(X, y, batch_size=8, rng=42)
    first_a, first_b = order(a), order(b)
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.array_equal(first_a, np.arange(50))
    second_a = order(a)
    assert not np.array_equal(first_a, second_a)  # a fresh permutation each epoch
    # the order is the permutation drawn from the loader's own generator, nothing else
    np.testing.assert_array_equal(first_a, np.random.default_rng(42).permutation(50))
    assert not np.array_equal(order(DataLoader(X, y, batch_size=8, rng=43)), first_b)


def test_resume_from_generator_state():
    X, y = _arrays(40)
    loader = DataLoader(X, y, batch_size=7, rng=5)
    list(loader)  # epoch 1
    saved = loader.state_dict()
    raw = loader.rng.bit_generator.state
    epoch2 = [yb.copy() for _, yb in loader]
    resumed = DataLoader(X, y, batch_size=7, rng=999)
    resumed.load_state_dict(saved)
    for got, want in zip((yb for _, yb in resumed), epoch2, strict=True):
        np.testing.assert_array_equal(got, want)
    again = DataLoader(X, y, batch_size=7)
    again.rng.bit_generator.state = raw  # the plain generator state works the same
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in again]), np.concatenate(epoch2))
    with pytest.raises(KeyError, match=r"DataLoader.load_state_dict: expected key 'rng'"):
        resumed.load_state_dict({})


def test_permutation_drawn_when_iter_is_called():
    X, y = _arrays(20)
    loader = DataLoader(X, y, batch_size=4, rng=0)
    before = loader.rng.bit_generator.state
    it = iter(loader)
    assert loader.rng.bit_generator.state != before
    next(it)


def test_generator_is_used_as_given_and_unshuffled_batches_are_views():
    X, y = _arrays(12)
    gen = np.random.default_rng(0)
    loader = DataLoader(X, y, batch_size=5, shuffle=False, rng=gen)
    assert loader.rng is gen
    xb, yb = next(iter(loader))
    assert np.shares_memory(xb, X) and np.shares_memory(yb, y)


def test_accepts_a_dataset_and_image_shapes():
    ds = data.load("digits")
    loader = DataLoader(ds, batch_size=64, rng=0)
    xb, yb = next(iter(loader))
    assert xb.shape == (64, 1, 8, 8) and xb.dtype == np.float32 and yb.dtype == np.int64
    assert len(loader) == -(-1438 // 64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, r"DataLoader: batch_size must be a positive int, got 0"),
        ({"batch_size": -2}, r"DataLoader: batch_size must be a positive int, got -2"),
        ({"batch_size": 2.5}, r"DataLoader: batch_size must be a positive int, got 2.5"),
        ({"batch_size": True}, r"DataLoader: batch_size must be a positive int, got True"),
        ({"shuffle": "yes"}, r"DataLoader: shuffle must be True or False, got 'yes'"),
        ({"drop_last": 1}, r"DataLoader: drop_last must be True or False, got 1"),
    ],
)
def test_bad_arguments(kwargs, match):
    X, y = _arrays(6)
    with pytest.raises(ValueError, match=match):
        DataLoader(X, y, **kwargs)


def test_bad_data():
    X, y = _arrays(6)
    with pytest.raises(
        ValueError,
        match=r"DataLoader: X and y must have the same number of samples, got X \(6, 3\) "
        r"and y \(5,\)",
    ):
        DataLoader(X, y[:5])
    with pytest.raises(ValueError, match=r"DataLoader: y is required"):
        DataLoader(X)
    with pytest.raises(ValueError, match=r"DataLoader: the data set is empty \(X \(0, 3\)\)"):
        DataLoader(X[:0], y[:0])
    with pytest.raises(ValueError, match=r"DataLoader: pass either a Dataset or arrays"):
        DataLoader(data.load("xor", n=4), y)
    with pytest.raises(ValueError, match=r"leading sample axis, got X \(\), y \(\)"):
        DataLoader(np.float32(1), np.int64(1))
    with pytest.raises(TypeError, match=r"rng must be a numpy.random.Generator"):
        DataLoader(X, y, rng="seed")


# -- standardisation -----------------------------------------------------------------------------
def test_worked_example():
    X = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)  # mean (2, 4), std (1, 2)
    s = Standardizer().fit(X)
    np.testing.assert_array_equal(s.mean, [2.0, 4.0])
    np.testing.assert_array_equal(s.std, [1.0, 2.0])
    np.testing.assert_array_equal(s.transform(X), [[-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(s.transform(np.array([[2.0, 8.0]])), [[0.0, 2.0]])
    np.testing.assert_array_equal(standardize(X, [2.0, 4.0], [1.0, 2.0]), s.transform(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_feature_mode_gives_zero_mean_unit_std(dtype):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((500, 4)) * [1, 10, 0.1, 3] + [5, -2, 0, 100]).astype(dtype)
    s = Standardizer()
    Z = s.fit_transform(X)
    assert Z.dtype == dtype and s.mode == "feature" and s.mean.shape == (4,)
    np.testing.assert_allclose(Z.astype(np.float64).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Z.astype(np.float64).std(axis=0), 1, rtol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(Z), X, rtol=1e-5, atol=1e-4)


def test_channel_mode_for_images():
    rng = np.random.default_rng(1)
    scale = np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)
    X = (rng.uniform(0, 1, size=(20, 3, 5, 5)) * scale).astype(np.float32)
    s = Standardizer().fit(X)  # 'auto' -> per channel for (N, C, H, W)
    assert s.mode == "channel" and s.mean.shape == (3,) and s.std.shape == (3,)
    ref = X.astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(s.mean, ref.mean(axis=1))
    np.testing.assert_allclose(s.std, ref.std(axis=1))
    Z = s.transform(X)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=(0, 2, 3)), 1, rtol=1e-5)
    per_pixel = Standardizer("feature").fit(X)
    assert per_pixel.mean.shape == (3, 5, 5)
    glob = Standardizer("global").fit(X)
    assert glob.mean.shape == () and glob.mean == pytest.approx(X.astype(np.float64).mean())


def test_constant_feature_is_only_centred():
    X = np.array([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]], dtype=np.float32)
    Z = Standardizer().fit_transform(X)
    np.testing.assert_array_equal(Z[:, 1], 0.0)
    assert np.isfinite(Z).all()


def test_int_input_becomes_float32():
    X = np.arange(12).reshape(6, 2)
    assert Standardizer().fit_transform(X).dtype == np.float32
    assert standardize(X, 0, 1).dtype == np.float32


def test_state_dict_round_trip():
    X = np.random.default_rng(2).standard_normal((30, 2, 3, 3)).astype(np.float32)
    s = Standardizer().fit(X)
    t = Standardizer()
    t.load_state_dict(s.state_dict())
    np.testing.assert_array_equal(t.transform(X), s.transform(X))
    with pytest.raises(KeyError, match=r"Standardizer.load_state_dict: missing keys \['std'\]"):
        t.load_state_dict({"mode": "feature", "mean": 0})


def test_standardizer_errors():
    with pytest.raises(ValueError, match=r"Standardizer: unknown per='pixel'; valid: 'auto'"):
        Standardizer("pixel")
    with pytest.raises(RuntimeError, match=r"Standardizer.transform: call fit\(X\) first"):
        Standardizer().transform(np.zeros((2, 2)))
    s = Standardizer().fit(np.zeros((4, 3)))
    with pytest.raises(
        ValueError,
        match=r"Standardizer.transform: fitted on samples of shape \(3,\), got X \(4, 5\)",
    ):
        s.transform(np.zeros((4, 5)))
    c = Standardizer().fit(np.zeros((4, 3, 2, 2)))
    with pytest.raises(
        ValueError,
        match=r"Standardizer.inverse_transform: fitted on 3 channels \(N, C, \.\.\.\), "
        r"got X \(4, 1, 2, 2\)",
    ):
        c.inverse_transform(np.zeros((4, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"Standardizer.fit: X must hold at least one sample"):
        Standardizer().fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"standardize: std must be positive everywhere, got min"):
        standardize(np.ones((2, 2)), 0.0, [1.0, 0.0])
    with pytest.raises(ValueError, match=r"standardize: mean \(3,\) and std \(\) do not broadcast"):
        standardize(np.ones((2, 2)), [0.0, 0.0, 0.0], 1.0)
