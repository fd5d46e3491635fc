"""The experiment registry, config parsing, and every experiment end to end on a tiny config.

MNIST and CIFAR-10 are tested on tiny files written here in the real formats (IDX files and
pickled CIFAR batches), with learnable class patterns; nothing is downloaded.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from handgrad.data import cifar as cifar_mod
from handgrad.experiments import make_config, names, parse_set, registry, start
from handgrad.experiments.classifier import MLP, Classifier, Target, run_classifier
from handgrad.experiments.common import mlp, predict_proba, split_validation

PNG = b"\x89PNG\r\n\x1a\n"


# -- registry and config parsing -----------------------------------------------------------
@dataclass(frozen=True)
class Demo:
    seed: int = 0
    lr: float = 0.1
    quiet: bool = False
    name: str = "x"
    hidden: tuple[int, ...] = (4,)
    betas: tuple[float, float] = (0.9, 0.999)
    limit: int | None = None
    mode: Literal["a", "b"] = "a"


@pytest.fixture
def demo(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("demo", Demo, "a demo")(lambda cfg, run: {"lr": cfg.lr})
    return registry.get("demo")


def test_make_config_parses_each_field_type(demo):
    cfg = make_config(
        "demo",
        parse_set(
            [
                "lr=1e-3",
                "quiet=yes",
                "name=hello=world",
                "hidden=16, 8",
                "betas=0.5,0.6",
                "limit=none",
                "mode=b",
            ]
        ),
    )
    assert cfg == Demo(0, 1e-3, True, "hello=world", (16, 8), (0.5, 0.6), None, "b")
    assert make_config("demo", {"hidden": "", "limit": "7", "quiet": "0"}) == Demo(
        hidden=(), limit=7
    )
    # values read back from config.json are typed already (tuples come back as lists)
    assert make_config("demo", {"hidden": [3, 2], "lr": 1, "limit": None}) == Demo(
        lr=1.0, hidden=(3, 2)
    )


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"lrr": "1"}, r"demo: unknown config key 'lrr'; valid keys: seed, lr, quiet, name, "),
        ({"seed": "1.5"}, r"demo: seed=1.5 is not an int"),
        ({"seed": True}, r"demo: seed=True is not an int"),
        ({"lr": "fast"}, r"demo: lr=fast is not a float"),
        ({"quiet": "maybe"}, r"demo: quiet=maybe is not a bool \(true/false\)"),
        ({"hidden": "1,x"}, r"demo: hidden=1,x is not a comma-separated list of ints"),
        ({"betas": "0.5"}, r"demo: betas=0.5 is not a comma-separated list of floats"),
        ({"limit": "lots"}, r"demo: limit=lots is not an int or none"),
        ({"mode": "c"}, r"demo: mode=c is not one of a, b"),
        ({"name": 3}, r"demo: name=3 is not a string"),
    ],
)
def test_make_config_errors_name_key_and_type(demo, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_config("demo", overrides)


def test_parse_set_needs_key_value_and_maps_dashes():
    assert parse_set(["batch-size=3"]) == {"batch_size": "3"}
    with pytest.raises(ValueError, match=r"--set expects key=value, got '=3'"):
        parse_set(["=3"])


def test_register_checks_the_config_and_names(demo):
    @dataclass
    class Mutable:
        seed: int = 0

    @dataclass(frozen=True)
    class NoDefault:
        seed: int

    with pytest.raises(TypeError, match=r"register\('m'\): the config must be a frozen dataclass"):
        registry.register("m", Mutable, "")
    with pytest.raises(TypeError, match=r"config fields without defaults: \['seed'\]"):
        registry.register("n", NoDefault, "")
    with pytest.raises(ValueError, match=r"an experiment named 'demo' is already registered"):
        registry.register("demo", Demo, "again")(lambda cfg, run: {})
    with pytest.raises(ValueError, match=r"unknown experiment 'demo2'; valid experiments: toy, "):
        registry.get("demo2")


def test_adding_an_experiment_takes_a_few_lines(demo, tmp_path):
    run, results = start("demo", {"lr": "0.25"}, out=tmp_path)
    assert results == {"lr": 0.25}
    assert "| lr | 0.25 |" in run.report_path.read_text()
    assert names()[-1] == "demo"  # registered without an order: after the built-in ones


def test_builtin_experiments_are_registered():
    assert names()[:6] == ["toy", "boundary", "synth", "digits-mlp", "mnist-mlp", "cifar10-mlp"]
    orders = [exp.order for exp in registry.experiments()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)  # no ties to break
    for exp in registry.experiments():
        fields = registry.config_fields(exp.config_cls)
        assert {"seed", "data_dir", "quiet"} <= set(fields), exp.name
        assert exp.description and "\n" not in exp.description


SHARED_ROOMS = {"registry", "common", "classifier", "api"}


def test_every_experiment_module_is_found_and_none_imports_another():
    import handgrad.experiments as package

    folder = Path(package.__file__).parent
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    registered = {exp.run.__module__.rsplit(".", 1)[1] for exp in registry.experiments()}
    assert registered == modules - SHARED_ROOMS  # found without a list of imports
    for name in sorted(modules):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {
            node.module.rsplit(".", 1)[1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("handgrad.experiments.")
        }
        assert imported <= SHARED_ROOMS, f"{name} imports {sorted(imported - SHARED_ROOMS)}"


# -- shared pieces -------------------------------------------------------------------------
def test_mlp_shapes_and_errors():
    model = mlp(5, (7, 3), 2, ("relu", "tanh"), rng=np.random.default_rng(0), dropout=0.1)
    names_ = [type(m).__name__ for m in model]
    assert names_ == ["Linear", "ReLU", "Dropout", "Linear", "Tanh", "Dropout", "Linear"]
    assert model(np.zeros((4, 5), np.float32)).shape == (4, 2)
    with pytest.raises(ValueError, match=r"mlp: 1 activations for 2 hidden layers"):
        mlp(5, (7, 3), 2, ("relu",), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; valid: relu, tanh"):
        mlp(5, (7,), 2, "swish", rng=np.random.default_rng(0))


def test_predict_proba_is_sigmoid_or_softmax():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3)).astype(np.float32)
    binary = mlp(3, (), 1, "relu", rng=rng)
    z = binary(X)[:, 0].astype(np.float64)
    np.testing.assert_allclose(predict_proba(binary, X), 1 / (1 + np.exp(-z)), rtol=1e-12)
    multi = mlp(3, (), 4, "relu", rng=rng)
    z = multi(X).astype(np.float64)
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(predict_proba(multi, X), expected, rtol=1e-12)


def test_split_validation_is_a_seeded_partition():
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    _, y_tr, X_val, y_val = split_validation(X, y, 3, seed=1)
    assert sorted([*y_tr, *y_val]) == list(range(10)) and len(y_val) == 3
    np.testing.assert_array_equal(X_val[:, 0] // 2, y_val)
    again = split_validation(X, y, 3, seed=1)
    np.testing.assert_array_equal(again[3], y_val)
    with pytest.raises(ValueError, match=r"val_size must be in \[0, 10\) .* got 10"):
        split_validation(X, y, 10, seed=1)


def test_target_notes():
    target = Target(0.9, "{met}: {test_accuracy:.0%} of {n} for {target:.0%}", partial="{n} only")
    assert target.note({"test_accuracy": 0.9}, n=5) == "reached: 90% of 5 for 90%"
    assert target.note({"test_accuracy": 0.89}, n=5) == "NOT reached: 89% of 5 for 90%"
    assert target.note({"test_accuracy": 0.2}, full=False, n=5) == "5 only"
    above = Target(0.5, "{met}", metric="p", above=True)
    assert [above.note({"p": p}) for p in (0.5, 0.51)] == ["NOT reached", "reached"]


@dataclass(frozen=True)
class TinyClassifierConfig(registry.Config):
    epochs: int = 2
    batch_size: int = 64
    hidden: tuple[int, ...] = (16,)
    activation: str = "tanh"
    optimizer: str = "adam"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    val_size: int = 100
    schedule: str = "cosine"


def test_a_classifier_experiment_is_a_config_a_network_and_a_target(demo, tmp_path):
    spec = Classifier(
        dataset="digits",
        network=MLP,
        title="tiny: {net}, {cfg.activation}",
        target=Target(0.5, "Target {target:.0%}: {met} ({n_train} training images)."),
    )
    registry.register("tiny", TinyClassifierConfig, "a tiny classifier")(
        lambda cfg, run: run_classifier(spec, cfg, run)
    )
    run, results = start("tiny", {"quiet": True}, out=tmp_path)
    report = check_run(run, results, ["curves", "predictions"])
    assert "Target 50%: reached (1338 training images)." in report
    assert [h["step"] for h in run.history] == [21, 42]  # 1338 images, batch 64
    # the cosine over 42 steps: lr 0.01 in the first epoch, 0.005 from its midpoint on
    assert [h["lr"] for h in run.history] == pytest.approx([0.01, 0.005])


# -- end to end ----------------------------------------------------------------------------
def check_run(run, results, figures):
    assert all(np.isfinite(v) for v in results.values())
    for name in figures:
        assert (run.dir / f"{name}.png").read_bytes()[:8] == PNG, name
    report = run.report_path.read_text()
    for name in figures:
        assert f"]({name}.png)" in report
    assert json.loads((run.dir / "results.json").read_text()) == results
    history = run.history
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # the loss falls
    return report


def test_toy_learns_the_circle(tmp_path):
    overrides = {
        "epochs": 30,
        "n_train": 256,
        "n_test": 256,
        "batch_size": 16,
        "lr": 0.3,
        "snapshots": (5,),
        "resolution": 20,
        "quiet": True,
    }
    run, results = start("toy", overrides, out=tmp_path)
    check_run(run, results, ["loss", "probability_map", "snapshots"])
    # two balanced classes: chance is 50%
    assert results["test_accuracy"] >= 0.85
    assert results["train_loss"] < 0.3 < run.history[0]["train_loss"]


@pytest.mark.parametrize(
    ("overrides", "chance"),
    [
        ({"dataset": "gaussians", "classes": 3, "epochs": 20}, 1 / 3),
        ({"dataset": "moons", "hidden": (8,), "activation": "tanh", "epochs": 30}, 1 / 2),
    ],
)
def test_boundary_on_k_classes_and_two(tmp_path, overrides, chance):
    common = {"n": 256, "resolution": 24, "snapshots": (2,), "quiet": True}
    run, results = start("boundary", {**common, **overrides}, out=tmp_path)
    check_run(run, results, ["loss", "probability_map", "snapshots"])
    assert results["classes"] == overrides.get("classes", 2)
    assert results["test_accuracy"] >= chance + 0.4


def _blobs_csv(path: Path, names: tuple[str, ...], n: int = 90) -> Path:
    """A CSV of ``len(names)`` separated blobs with string labels, in random order."""
    rng = np.random.default_rng(1)
    label = rng.integers(0, len(names), n)
    angle = 2 * np.pi * label / len(names)
    xy = np.stack([np.cos(angle), np.sin(angle)], 1) * 0.7 + rng.normal(0, 0.15, (n, 2))
    rows = [f"{a:.5f},{b:.5f},{names[c]}" for (a, b), c in zip(xy, label, strict=True)]
    path.write_text("x1,x2,label\n" + "\n".join(rows) + "\n")
    return path


def test_boundary_trains_on_a_csv_of_points(tmp_path):
    data = _blobs_csv(tmp_path / "points.csv", ("red", "green", "blue"))
    common = {"data": str(data), "resolution": 16, "snapshots": (2,), "quiet": True}
    overrides = {"hidden": (8,), "epochs": 40, "lr": 0.05, "train_ratio": 0.8, **common}
    run, results = start("boundary", overrides, out=tmp_path / "runs")
    check_run(run, results, ["loss", "probability_map", "snapshots"])
    assert results["classes"] == 3 and results["test_accuracy"] >= 0.9  # chance: 1/3
    # every point trains without a ratio; two classes with one sigmoid output and features
    two = _blobs_csv(tmp_path / "two.csv", ("no", "yes"))
    overrides = {
        **common,
        **{"data": str(two), "output": "sigmoid", "features": ("x1", "x1x2"), "hidden": (4,)},
        **{"regularization": "l2", "reg_rate": 0.001, "epochs": 30},
    }
    run, results = start("boundary", overrides, out=tmp_path / "runs")
    assert "test_loss" not in results and results["train_accuracy"] >= 0.9
    with pytest.raises(ValueError, match="output='sigmoid' needs 2 classes, the data has 3"):
        start("boundary", {**common, "output": "sigmoid", "epochs": 1}, out=tmp_path / "runs")
    with pytest.raises(ValueError, match="invalid features"):
        make_config("boundary", {"features": "x1,x3"})
    with pytest.raises(ValueError, match="invalid train_ratio"):
        make_config("boundary", {"train_ratio": "1.0"})  # a drawn set needs a test split


def test_boundary_defaults_keep_their_numbers(tmp_path):
    """The fields the playground needs changed nothing of a default run (measured before)."""
    common = {"n": 128, "resolution": 12, "snapshots": (2,), "quiet": True, "epochs": 5}
    _, results = start("boundary", {**common, "dataset": "gaussians", "classes": 3}, out=tmp_path)
    assert results["train_loss"] == pytest.approx(0.2392292469739914, rel=1e-5)
    assert results["test_loss"] == pytest.approx(0.2428702414035797, rel=1e-5)


def test_synth_learns_the_quadratic_rule(tmp_path):
    run, results = start(
        "synth", {"epochs": 40, "n_train": 256, "n_test": 256, "quiet": True}, out=tmp_path
    )
    check_run(run, results, ["loss", "probability_map"])
    from handgrad.data import load

    majority = max(np.mean(load("synth", "test", n=256).y), 0.5)  # always guessing one class
    assert results["test_accuracy"] >= majority + 0.2


def test_digits_mlp(tmp_path):
    run, results = start("digits-mlp", {"epochs": 4, "hidden": (64,), "quiet": True}, out=tmp_path)
    report = check_run(run, results, ["curves", "predictions"])
    assert results["test_accuracy"] >= 0.8  # chance: 10%
    assert "Target: test accuracy >= 97%" in report


# -- tiny MNIST and CIFAR-10 files ---------------------------------------------------------
def pattern_images(n: int, size: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, channels, size, size) whose class (0..9) is a bright square at one of
    ten places, on noise: learnable by a small MLP in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, channels, size, size))
    s = size // 4
    for i, c in enumerate(labels):
        r, q = divmod(int(c), 4)
        images[i, :, r * s : (r + 1) * s, q * s : (q + 1) * s] += 180
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_mnist(folder: Path, n_train: int = 400, n_test: int = 200) -> None:
    folder.mkdir(parents=True)
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = pattern_images(n, 28, 1, seed)
        header = struct.pack(">IIII", 2051, n, 28, 28)  # IDX: magic, then one int per dim
        (folder / f"{split}-images-idx3-ubyte").write_bytes(header + images[:, 0].tobytes())
        header = struct.pack(">II", 2049, n)
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())


def write_cifar(folder: Path, per_batch: int = 60, n_test: int = 120) -> None:
    folder.mkdir(parents=True)
    names_ = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names_):
        images, labels = pattern_images(n_test if name == "test_batch" else per_batch, 32, 3, seed)
        batch = {b"data": images.reshape(len(images), 3072), b"labels": labels.tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    classes = [c.encode() for c in cifar_mod.CIFAR10_CLASSES]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": classes}, protocol=4))


@pytest.mark.usefixtures("tiny_mnist")
def test_mnist_mlp_on_tiny_idx_files(tmp_path):
    write_mnist(tmp_path / "data" / "mnist")
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "download": False,
        "epochs": 4,
        "hidden": (64, 64),
        "val_size": 50,
        "max_train": 350,
        "quiet": True,
    }
    run, results = start("mnist-mlp", overrides, out=tmp_path / "runs")
    report = check_run(run, results, ["curves", "predictions"])
    assert {"val_accuracy", "val_loss"} <= set(results)
    assert run.history[0]["step"] == 3  # 300 training images, batch 128
    assert results["test_accuracy"] >= 0.6  # chance: 10%
    assert "Trained on 300 of the mnist training images and tested on 200" in report


def test_cifar10_mlp_on_tiny_pickle_batches(tmp_path, monkeypatch):
    write_cifar(tmp_path / "data" / "cifar10" / "cifar-10-batches-py")
    # the real files have published MD5s; these tiny ones have none to check
    monkeypatch.setattr(cifar_mod, "CIFAR10", dataclasses.replace(cifar_mod.CIFAR10, md5={}))
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "download": False,
        "steps": 30,
        "batch_size": 32,
        "hidden": (64,),
        "quiet": True,
    }
    run, results = start("cifar10-mlp", overrides, out=tmp_path / "runs")
    check_run(run, results, ["curves", "predictions"])
    # 300 training images: 10 steps per epoch, so 30 steps are 3 epochs
    assert [h["step"] for h in run.history] == [10, 20, 30]
    assert "val_accuracy" not in results  # the curves use the test set (val_size=0)
    assert results["test_accuracy"] >= 0.5  # chance: 10%


def test_missing_data_is_a_clear_error(tmp_path):
    from handgrad.data import DataError

    overrides = {"data_dir": str(tmp_path), "download": False, "quiet": True}
    with pytest.raises(DataError, match=r"mnist: train-images-idx3-ubyte.gz .*not found"):
        start("mnist-mlp", overrides, out=tmp_path / "runs")


BAD_SHARED_VALUES = {
    "epochs": 0,
    "batch_size": 0,
    "lr": 0.0,
    "momentum": 1.0,
    "weight_decay": -0.1,
    "val_size": -1,
    "max_train": 0,
    "max_test": 0,
}


def test_shared_field_rules_apply_to_every_experiment_that_has_the_field():
    checked = 0
    for exp in registry.experiments():
        fields = registry.config_fields(exp.config_cls)
        for name in registry.SHARED_FIELD_RULES:
            if name not in fields:
                continue
            bad = BAD_SHARED_VALUES.get(name)
            if name == "hidden":
                default = exp.config_cls().hidden
                bad = (0,) if isinstance(default, tuple) else 0
            with pytest.raises(ValueError, match=rf"invalid {name} "):
                exp.config_cls(**{name: bad})
            checked += 1
    assert checked >= 40  # the rules do reach the experiments
