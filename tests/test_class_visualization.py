"""Input gradients, the regularisers of class visualisation (each against finite differences),
saliency, 3-channel inputs, and the ``class-visualization`` experiment end to end (digits, and
MNIST on tiny IDX files written here)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import handgrad.nn as nn
from handgrad.check import numerical_gradient
from handgrad.experiments import make_config, start
from handgrad.experiments.class_visualization import build_classifier
from handgrad.inputspace import (
    blur_penalty,
    class_score_gradient,
    gaussian_blur,
    gaussian_kernel,
    saliency,
    total_variation,
    visualize_classes,
)

PNG = b"\x89PNG\r\n\x1a\n"


def images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, shape)


def tiny_cnn(channels=3, seed=0, scale=1.0):
    """A random float64 CNN on (N, channels, 8, 8) images, 4 classes (the output layer's
    weights multiplied by ``scale``)."""
    rng = np.random.default_rng(seed)
    model = nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1, rng=rng, dtype=np.float64),
        nn.Tanh(),  # smooth: finite differences never cross a kink
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 4, rng=rng, dtype=np.float64),
    )
    model[-1].weight.data *= scale
    return model


def tiny_mlp(channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(channels * 36, 7, rng=rng, dtype=np.float64),
        nn.Tanh(),
        nn.Linear(7, 3, rng=rng, dtype=np.float64),
    )


# -- regularisers --------------------------------------------------------------------------
@pytest.mark.parametrize(("beta", "eps"), [(2.0, 0.0), (1.0, 1e-3), (1.5, 1e-4)])
def test_total_variation_gradient_matches_finite_differences(beta, eps):
    x = images((2, 3, 5, 4))
    value, grad = total_variation(x, beta, eps)
    np.testing.assert_allclose(
        grad, numerical_gradient(lambda: total_variation(x, beta, eps)[0], x), rtol=1e-6, atol=1e-8
    )
    assert value > 0


def test_total_variation_worked_example():
    # one row 0, 1, 3: horizontal differences 1 and 2; beta 2 gives 1 + 4
    x = np.array([0.0, 1.0, 3.0]).reshape(1, 1, 1, 3)
    value, grad = total_variation(x, 2.0, 0.0)
    assert value == 5.0
    # d/dx = 2 * (d1 * (-1), d1 - d2, d2) = (-2, -2, 4)
    np.testing.assert_allclose(grad.ravel(), [-2.0, -2.0, 4.0])
    assert total_variation(np.ones((1, 2, 4, 4)), 1.0, 1e-12)[0] == pytest.approx(0, abs=1e-4)


def test_gaussian_kernel_is_normalised_and_symmetric():
    k = gaussian_kernel(0.7)
    assert len(k) == 5 and k.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(k, k[::-1])
    assert np.argmax(k) == 2


def test_blur_is_its_own_adjoint():
    shape = (2, 3, 6, 5)
    # B as an explicit matrix: blur each basis image; symmetric means B^T = B
    n = int(np.prod(shape[1:]))
    basis = np.eye(n).reshape(n, *shape[1:])
    B = gaussian_blur(basis, 0.8).reshape(n, n)  # row i = B e_i, i.e. B^T
    np.testing.assert_allclose(B, B.T, atol=1e-15)
    x, y = images(shape, 1), images(shape, 2)
    assert np.sum(gaussian_blur(x, 0.8) * y) == pytest.approx(np.sum(x * gaussian_blur(y, 0.8)))
    # a worked value: an impulse spreads into the kernel's outer product
    impulse = np.zeros((1, 1, 5, 5))
    impulse[0, 0, 2, 2] = 1.0
    k = gaussian_kernel(0.8)
    np.testing.assert_allclose(gaussian_blur(impulse, 0.8)[0, 0], np.outer(k, k), atol=1e-15)


def test_blur_penalty_gradient_matches_finite_differences():
    x = images((2, 3, 5, 6))
    center = np.array([0.2, 0.5, 0.7]).reshape(3, 1, 1)
    _, grad = blur_penalty(x, 0.9, center)
    numeric = numerical_gradient(lambda: blur_penalty(x, 0.9, center)[0], x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    # a constant image at the centre has no high frequencies at all
    assert blur_penalty(np.broadcast_to(center, (1, 3, 5, 6)), 0.9, center)[0] == 0.0


# -- input gradients -----------------------------------------------------------------------
@pytest.mark.parametrize("make", [tiny_cnn, lambda: tiny_mlp(channels=3)], ids=["cnn", "mlp"])
@pytest.mark.parametrize("score", ["logit", "log_softmax"])
def test_class_score_gradient_three_channels(make, score):
    model = make()
    size = 8 if model[0].__class__ is nn.Conv2d else 6
    x = images((2, 3, size, size))
    target = np.array([2, 0])
    res = class_score_gradient(model, x, target, score)
    assert res.grad.shape == x.shape and res.score.shape == (2,)

    def f():
        z = model(x)
        if score == "log_softmax":
            z = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(z[[0, 1], target].sum())

    np.testing.assert_allclose(res.grad, numerical_gradient(f, x), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.probs.sum(axis=1), 1.0)


def test_class_score_gradient_leaves_the_model_as_it_was():
    model = tiny_mlp()
    model.train()
    before = [p.grad.copy() + 1.0 for p in model.parameters()]
    for p, g in zip(model.parameters(), before, strict=True):
        p.grad[...] = g
    class_score_gradient(model, images((3, 1, 6, 6)), 1)
    assert model.training
    for p, g in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.grad, g)


def test_jitter_gradient_is_the_shifted_back_gradient():
    model = tiny_cnn(channels=1)
    x = images((1, 1, 8, 8))
    shift = (1, -2)
    res = class_score_gradient(model, np.roll(x, shift, axis=(2, 3)), 3)
    back = np.roll(res.grad, (-shift[0], -shift[1]), axis=(2, 3))

    def f():
        return float(model(np.roll(x, shift, axis=(2, 3)))[0, 3])

    np.testing.assert_allclose(back, numerical_gradient(f, x), rtol=1e-6, atol=1e-9)


def test_saliency_is_the_channel_max_of_the_absolute_gradient():
    model = tiny_cnn()
    x = images((3, 3, 8, 8))
    maps, classes = saliency(model, x)
    np.testing.assert_array_equal(classes, model(x).argmax(axis=1))
    grad = class_score_gradient(model, x, classes).grad
    assert maps.shape == (3, 8, 8)
    np.testing.assert_allclose(maps, np.abs(grad).max(axis=1))


# -- class visualisation -------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_visualize_classes_raises_each_target_probability(channels):
    model = tiny_cnn(channels, scale=20.0)  # logits that can move: a random net is flat
    targets = np.arange(4)
    kw = {"l2": 0.01, "tv": 0.01, "blur": 0.01, "jitter": 1, "rng": 0, "steps": 60, "lr": 0.1}
    vis = visualize_classes(model, targets, (channels, 8, 8), init="noise", **kw)
    start_probs = class_score_gradient(model, np.full((4, channels, 8, 8), 0.5), targets).probs
    assert vis.images.shape == (4, channels, 8, 8)
    assert vis.images.min() >= 0.0 and vis.images.max() <= 1.0  # clipped to value_range
    assert (vis.probs > start_probs[targets, targets]).all()
    assert vis.probs.min() >= 0.5  # the least likely class starts below 0.001
    assert vis.history[-1]["score"] > vis.history[0]["score"]
    again = visualize_classes(model, targets, (channels, 8, 8), init="noise", **kw)
    np.testing.assert_array_equal(again.images, vis.images)  # same seed, same bits


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, r"visualize_classes: invalid steps 0, must be an int >= 1"),
        ({"lr": -1.0}, r"visualize_classes: invalid lr -1.0, must be > 0"),
        ({"tv": -0.1}, r"visualize_classes: invalid tv -0.1, must be >= 0"),
        ({"jitter": 1.5}, r"visualize_classes: invalid jitter 1.5, must be an int >= 0"),
        ({"init": "zeros"}, r"visualize_classes: invalid init 'zeros', must be 'grey' or 'noise'"),
        ({"value_range": (1.0, 0.0)}, r"invalid value_range \(1.0, 0.0\), must be \(lo, hi\)"),
    ],
)
def test_visualize_classes_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        visualize_classes(tiny_mlp(), [0], (1, 6, 6), **kwargs)


def test_input_errors_are_one_line_and_quote_the_value():
    model = tiny_mlp()
    with pytest.raises(ValueError, match=r"total_variation: expected images \(N, C, H, W\), got"):
        total_variation(np.zeros((6, 6)))
    with pytest.raises(ValueError, match=r"total_variation: invalid beta 0.5, must be >= 1"):
        total_variation(np.zeros((1, 1, 6, 6)), beta=0.5)
    with pytest.raises(ValueError, match=r"gaussian_kernel: invalid sigma 0, must be > 0"):
        gaussian_blur(np.zeros((1, 1, 4, 4)), 0)
    with pytest.raises(ValueError, match=r"target must be integer classes in \[0, 3\), got 3"):
        class_score_gradient(model, images((1, 1, 6, 6)), 3)
    with pytest.raises(ValueError, match=r"unknown score 'prob'; valid: logit, log_softmax"):
        class_score_gradient(model, images((1, 1, 6, 6)), 0, score="prob")
    with pytest.raises(ValueError, match=r"build_classifier: cnn needs H and W divisible by 4"):
        build_classifier("cnn", (1, 6, 6), 3, rng=np.random.default_rng(0))
    with pytest.raises(
        ValueError, match=r"ClassVisualizationConfig: invalid tv -1.0, must be >= 0"
    ):
        make_config("class-visualization", {"tv": "-1"})


# -- the experiment ------------------------------------------------------------------------
def check_run(run, results, figures):
    for name in figures:
        assert (run.dir / f"{name}.png").read_bytes()[:8] == PNG, name
    report = run.report_path.read_text()
    assert "Target: the model's probability for each visualised class >= 0.99: reached" in report
    assert all(np.isfinite(v) for v in results.values())


def test_class_visualization_on_digits(tmp_path):
    overrides = {"epochs": 20, "steps": 150, "saliency_images": 4, "quiet": True}
    run, results = start("class-visualization", overrides, out=tmp_path)
    check_run(run, results, ["curves", "class_images", "regularizers", "saliency"])
    assert results["test_accuracy"] >= 0.1 + 0.75  # chance: 10%
    assert results["min_target_probability"] >= 0.99


def write_mnist(folder, n_train=300, n_test=100):
    """Tiny MNIST IDX files: each class is a bright square at one of ten places, on noise."""
    folder.mkdir(parents=True)
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 10, n)
        imgs = rng.integers(0, 60, (n, 28, 28))
        for i, c in enumerate(labels):
            r, q = divmod(int(c), 4)
            imgs[i, r * 7 : (r + 1) * 7, q * 7 : (q + 1) * 7] += 180
        header = struct.pack(">IIII", 2051, n, 28, 28)
        (folder / f"{split}-images-idx3-ubyte").write_bytes(
            header + imgs.astype(np.uint8).tobytes()
        )
        header = struct.pack(">II", 2049, n)
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(
            header + labels.astype(np.uint8).tobytes()
        )


@pytest.mark.usefixtures("tiny_mnist")
def test_class_visualization_mnist_mlp_on_tiny_files(tmp_path):
    write_mnist(tmp_path / "data" / "mnist")
    overrides = {
        "dataset": "mnist",
        "model": "mlp",
        "hidden": (32,),
        "data_dir": str(tmp_path / "data"),
        "download": False,
        "epochs": 10,
        "lr": 5e-3,
        "score": "log_softmax",
        "steps": 80,
        "vis_lr": 0.1,
        "l2": 0.0,  # every regulariser switched off
        "tv": 0.0,
        "blur": 0.0,
        "compare": False,
        "saliency_images": 3,
        "quiet": True,
    }
    run, results = start("class-visualization", overrides, out=tmp_path / "runs")
    check_run(run, results, ["curves", "class_images", "saliency"])
    assert not (run.dir / "regularizers.png").exists()
    assert results["test_accuracy"] >= 0.1 + 0.5
    assert results["min_target_probability"] >= 0.99
