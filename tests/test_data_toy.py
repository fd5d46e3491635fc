"""The registry and the generated 2-D data sets, checked against their geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

import handgrad.data as data

TOY = ["circle", "moons", "xor", "spiral", "gaussians", "rings", "synth"]


# -- registry ------------------------------------------------------------------------------------
def test_names_lists_every_data_set():
    expected = {*TOY, "digits", "mnist", "fashion-mnist", "cifar10"}
    assert set(data.names()) == expected
    assert data.names()[: len(TOY)] == TOY  # generated sets first, as registered


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"load: unknown data set 'mnits'; valid names: circle, "):
        data.load("mnits")
    with pytest.raises(ValueError, match=r"fashion-mnist, cifar10$"):
        data.load("nope")


def test_aliases_and_case():
    assert data.info("Fashion_MNIST").name == "fashion-mnist"
    assert data.info("CIFAR-10").name == "cifar10"
    assert data.load("Circle", n=4).name == "circle"


def test_unknown_split_option_and_bad_seed():
    with pytest.raises(ValueError, match=r"load\('circle'\): unknown split 'val'; valid splits: "):
        data.load("circle", "val")
    with pytest.raises(
        ValueError, match=r"load\('moons'\): unknown option 'size'; valid options: n, noise$"
    ):
        data.load("moons", size=3)
    with pytest.raises(
        ValueError, match=r"load\('synth'\): seed must be a non-negative int, got -1"
    ):
        data.load("synth", seed=-1)
    with pytest.raises(ValueError, match=r"seed must be a non-negative int, got 1.5"):
        data.load("synth", seed=1.5)


@pytest.mark.parametrize(
    "name, options, match",
    [
        ("circle", {"n": 0}, r"circle: n must be an int >= 1, got 0"),
        ("circle", {"n": 2.0}, r"circle: n must be an int >= 1, got 2.0"),
        ("moons", {"noise": -0.1}, r"moons: noise must be a number >= 0.0, got -0.1"),
        ("xor", {"noise": float("nan")}, r"xor: noise must be a number >= 0.0, got nan"),
        ("spiral", {"k": 1}, r"spiral: k must be an int >= 2, got 1"),
        ("spiral", {"k": 4, "n": 3}, r"spiral: n must be an int >= 4, got 3"),
        ("gaussians", {"k": True}, r"gaussians: k must be an int >= 2, got True"),
        ("rings", {"noise": "a"}, r"rings: noise must be a number >= 0.0, got 'a'"),
        ("synth", {"n": -5}, r"synth: n must be an int >= 1, got -5"),
    ],
)
def test_bad_options_quote_the_value(name, options, match):
    with pytest.raises(ValueError, match=match):
        data.load(name, **options)


def test_info_describes_options():
    entry = data.info("spiral")
    assert entry.options == {"n": 512, "k": 3, "noise": 0.05, "turns": 0.75}
    assert entry.kind == "toy" and "arm" in entry.description


# -- every toy set -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TOY)
def test_shapes_dtypes_metadata(name):
    ds = data.load(name, n=101)
    X, y = ds  # unpacking
    assert X is ds.X and y is ds.y
    assert X.shape == (101, 2) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.shape == (101,) and y.dtype == np.int64
    assert ds.input_shape == (2,) and ds.name == name and ds.split == "train"
    assert len(ds) == 101 and ds.num_classes == len(ds.classes) >= 2
    assert set(np.unique(y)) <= set(range(ds.num_classes))
    assert np.all(np.isfinite(X))
    assert ds.meta["seed"] == 0 and ds.meta["n"] == 101


@pytest.mark.parametrize("name", TOY)
def test_seed_reproducible_and_splits_differ(name):
    a = data.load(name, seed=3)
    b = data.load(name, seed=3)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    c = data.load(name, seed=4)
    test = data.load(name, "test", seed=3)
    assert not np.array_equal(a.X, c.X)
    assert not np.array_equal(a.X, test.X)
    assert test.split == "test"


def test_data_sets_do_not_share_a_stream():
    # same seed, different data sets: circle and xor would coincide if they shared a generator
    circle, xor = data.load("circle"), data.load("xor")
    assert not np.allclose(circle.X, xor.X)


@pytest.mark.parametrize(
    "name, k", [("moons", 2), ("spiral", 3), ("gaussians", 3), ("rings", 2), ("spiral", 5)]
)
def test_constructed_sets_are_balanced_and_shuffled(name, k):
    options = {"k": k} if name != "moons" else {}
    ds = data.load(name, n=503, **options)
    counts = np.bincount(ds.y, minlength=k)
    assert counts.sum() == 503 and counts.max() - counts.min() <= 1
    # random order: the first 20 labels are not all one class
    assert len(set(ds.y[:20].tolist())) > 1


@pytest.mark.parametrize("name", ["circle", "xor", "synth"])
def test_sampled_sets_are_roughly_balanced(name):
    # the labels come from a rule, not by construction: P(1) = 0.5 for circle and xor,
    # about 0.558 for synth (Monte Carlo, 2e6 samples); 512 samples give std ~0.022
    p1 = data.load(name).y.mean()
    expected = 0.558 if name == "synth" else 0.5
    assert abs(p1 - expected) < 0.09


# -- the geometry of each set --------------------------------------------------------------------
def test_circle_fraction_inside_is_half():
    L = 5 * math.sqrt(2 * math.pi)
    assert data.toy.CIRCLE_SIDE == pytest.approx(L)
    assert math.pi * 25 / L**2 == pytest.approx(0.5)
    # 200000 points: the binomial std of the fraction is 0.0011; 0.005 is 4.5 std
    y = data.load("circle", n=200_000, seed=1).y
    assert abs((y == 0).mean() - 0.5) < 0.005
    # the classic 512 points: std 0.022, tolerance 4 std
    assert abs((data.load("circle").y == 0).mean() - 0.5) < 0.09


def test_circle_labels_follow_the_radius():
    X, y = data.load("circle", n=5000)
    assert X.min() >= -1 and X.max() <= 1  # scaled to [-1, 1]
    # radius 5 in a square of half-side L/2 is sqrt(2/pi) after scaling
    r = np.hypot(X[:, 0].astype(np.float64), X[:, 1])
    r0 = math.sqrt(2 / math.pi)
    clear = np.abs(r - r0) > 1e-6  # float32 rounding can only matter on the boundary
    np.testing.assert_array_equal(y[clear], (r[clear] >= r0).astype(np.int64))
    assert data.load("circle").classes == ("inside", "outside")


def test_noise_moves_the_same_points():
    clean = data.load("circle", n=300, noise=0.0)
    noisy = data.load("circle", n=300, noise=0.1)
    np.testing.assert_array_equal(clean.y, noisy.y)
    jitter = noisy.X - clean.X
    assert 0.07 < jitter.std() < 0.13  # std 0.1 from 600 draws


def test_synth_labels_match_the_formula():
    X, y = data.load("synth", n=20_000, seed=5)
    x1, x2 = X[:, 0].astype(np.float64), X[:, 1].astype(np.float64)
    np.testing.assert_array_equal(y, (x1**2 + 0.95 * x1 * x2 + 0.4 * x2**2 > 0.6).astype(int))
    # x ~ N(0, I2): mean 0, covariance I
    assert np.abs(X.mean(axis=0)).max() < 0.04
    np.testing.assert_allclose(np.cov(X.T), np.eye(2), atol=0.04)
    np.testing.assert_array_equal(data.synth_rule(X.astype(np.float64)), y)


def test_synth_any_size():
    assert data.load("synth", n=1).X.shape == (1, 2)
    assert data.load("synth", n=12345).X.shape == (12345, 2)


def test_xor_labels_are_opposite_signs():
    X, y = data.load("xor", n=2000)
    assert X.min() >= -1 and X.max() <= 1
    np.testing.assert_array_equal(y, (X[:, 0] * X[:, 1] < 0).astype(np.int64))


def test_moons_lie_on_their_half_circles():
    X, y = data.load("moons", n=400, noise=0.0)
    P = X.astype(np.float64) + np.array([0.5, 0.25])  # undo the centring
    up, lo = P[y == 0], P[y == 1]
    np.testing.assert_allclose(np.hypot(up[:, 0], up[:, 1]), 1.0, atol=1e-6)
    assert np.all(up[:, 1] >= -1e-6)
    np.testing.assert_allclose(np.hypot(lo[:, 0] - 1, lo[:, 1] - 0.5), 1.0, atol=1e-6)
    assert np.all(lo[:, 1] <= 0.5 + 1e-6)


def test_rings_radii():
    X, y = data.load("rings", n=600, k=3, noise=0.0)
    r = np.hypot(X[:, 0].astype(np.float64), X[:, 1])
    np.testing.assert_allclose(r, (y + 1) / 3, atol=1e-6)
    noisy = data.load("rings", n=600, k=3, noise=0.05)
    assert 0.02 < np.abs(np.hypot(*noisy.X.T) - (noisy.y + 1) / 3).mean() < 0.06


def test_spiral_arms():
    k, turns = 4, 0.75
    X, y = data.load("spiral", n=800, k=k, noise=0.0, turns=turns)
    X = X.astype(np.float64)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.max() <= 1 + 1e-6
    theta = np.arctan2(X[:, 1], X[:, 0])
    # the angle of arm j at radius r is 2*pi*(j/k + turns*r), modulo 2*pi
    diff = np.angle(np.exp(1j * (theta - 2 * np.pi * (y / k + turns * r))))
    keep = r > 1e-3  # the angle of a point at the origin is meaningless
    assert np.abs(diff[keep]).max() < 1e-4
    assert data.load("spiral", k=k).classes == ("arm 0", "arm 1", "arm 2", "arm 3")


def test_gaussian_blob_centres_and_spread():
    k, noise = 5, 0.2
    X, y = data.load("gaussians", n=5000, k=k, noise=noise, seed=2)
    for j in range(k):
        pts = X[y == j].astype(np.float64)
        centre = [math.cos(2 * math.pi * j / k), math.sin(2 * math.pi * j / k)]
        # 1000 points per blob: the std of the mean is 0.2/sqrt(1000) = 0.0063
        np.testing.assert_allclose(pts.mean(axis=0), centre, atol=0.03)
        np.testing.assert_allclose(pts.std(axis=0), noise, rtol=0.1)
