"""Bad input against the library: every layer, loss, optimizer, scheduler and the data loader.

Each row of a table is one case: what is built or called, the exact exception type, and words
its message must hold (the owner, the argument, the value, what is allowed). A case that must
leave state unchanged says so and the test compares before and after.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import handgrad.nn as nn
import handgrad.optim as optim
from handgrad.data import DataLoader, load
from handgrad.optim import lr_scheduler
from layer_cases import CASES as LAYER_CASES

NAN, INF = float("nan"), float("inf")


@dataclass
class Bad:
    """``make()`` must raise ``exc`` with every one of ``words`` in its message."""

    id: str
    make: Callable[[], Any]
    exc: type[BaseException]
    words: tuple[str, ...]


def expect(case: Bad) -> None:
    with pytest.raises(case.exc) as info:
        case.make()
    assert type(info.value) is case.exc, f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    for word in case.words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "\n" not in message.strip()


def params() -> list[nn.Parameter]:
    return list(nn.Linear(3, 2, rng=0).parameters())


# -- hyperparameters: every constructor, every class of bad value ---------------------------------
HYPER = [
    # BatchNorm
    Bad(
        "bn-eps-nan",
        lambda: nn.BatchNorm1d(3, eps=NAN),
        ValueError,
        ("BatchNorm1d", "eps", "> 0", "nan"),
    ),
    Bad(
        "bn-eps-inf", lambda: nn.BatchNorm2d(3, eps=INF), ValueError, ("BatchNorm2d", "eps", "inf")
    ),
    Bad(
        "bn-eps-neg",
        lambda: nn.BatchNorm1d(3, eps=-1e-5),
        ValueError,
        ("eps must be > 0", "-1e-05"),
    ),
    Bad("bn-eps-zero", lambda: nn.BatchNorm1d(3, eps=0), ValueError, ("eps must be > 0, got 0",)),
    Bad(
        "bn-eps-str",
        lambda: nn.BatchNorm1d(3, eps="1e-5"),
        TypeError,
        ("eps", "real number", "'1e-5'"),
    ),
    Bad(
        "bn-momentum-nan",
        lambda: nn.BatchNorm1d(3, momentum=NAN),
        ValueError,
        ("momentum", "[0, 1] or None", "nan"),
    ),
    Bad(
        "bn-momentum-neg",
        lambda: nn.BatchNorm2d(3, momentum=-0.1),
        ValueError,
        ("momentum", "-0.1"),
    ),
    Bad(
        "bn-affine-str",
        lambda: nn.BatchNorm1d(3, affine="False"),
        TypeError,
        ("affine", "True or False", "'False'"),
    ),
    Bad(
        "bn-track-int",
        lambda: nn.BatchNorm1d(3, track_running_stats=0),
        TypeError,
        ("track_running_stats", "got 0"),
    ),
    Bad(
        "bn-features-float",
        lambda: nn.BatchNorm1d(3.0),
        ValueError,
        ("num_features", "positive integer", "3.0"),
    ),
    Bad("bn-features-bool", lambda: nn.BatchNorm1d(True), ValueError, ("num_features", "True")),
    Bad(
        "bn-form",
        lambda: nn.BatchNorm1d(3, backward_form="fast"),
        ValueError,
        ("backward_form", "'compact' or 'staged'", "'fast'"),
    ),
    Bad(
        "bn-dtype",
        lambda: nn.BatchNorm1d(3, dtype=np.int32),
        ValueError,
        ("BatchNorm1d", "dtype must be float32 or float64", "int32"),
    ),
    # activations
    Bad(
        "leaky-nan",
        lambda: nn.LeakyReLU(NAN),
        ValueError,
        ("LeakyReLU", "negative_slope", "finite", "nan"),
    ),
    Bad("leaky-inf", lambda: nn.LeakyReLU(-INF), ValueError, ("negative_slope", "-inf")),
    Bad("leaky-str", lambda: nn.LeakyReLU("0.1"), TypeError, ("negative_slope", "'0.1'")),
    Bad("elu-nan", lambda: nn.ELU(alpha=NAN), ValueError, ("ELU", "alpha", "finite", "nan")),
    Bad("elu-inf", lambda: nn.ELU(alpha=INF), ValueError, ("alpha", "inf")),
    Bad("elu-none", lambda: nn.ELU(alpha=None), TypeError, ("alpha", "None")),
    Bad(
        "softplus-beta-nan",
        lambda: nn.Softplus(beta=NAN),
        ValueError,
        ("Softplus", "beta must be > 0", "nan"),
    ),
    Bad(
        "softplus-beta-neg", lambda: nn.Softplus(beta=-1), ValueError, ("beta must be > 0, got -1",)
    ),
    Bad(
        "softplus-threshold-nan",
        lambda: nn.Softplus(threshold=NAN),
        ValueError,
        ("threshold", "nan"),
    ),
    Bad(
        "gelu-approximate",
        lambda: nn.GELU("fast"),
        ValueError,
        ("GELU", "'none' or 'tanh'", "'fast'"),
    ),
    Bad(
        "softmax-dim-float",
        lambda: nn.Softmax(dim=1.5),
        TypeError,
        ("Softmax", "dim", "integer", "1.5"),
    ),
    Bad(
        "logsoftmax-dim-str",
        lambda: nn.LogSoftmax(dim="1"),
        TypeError,
        ("LogSoftmax", "dim", "'1'"),
    ),
    Bad(
        "flatten-dim-float",
        lambda: nn.Flatten(start_dim=1.0),
        TypeError,
        ("Flatten", "start_dim", "1.0"),
    ),
    # Dropout
    Bad(
        "dropout-nan",
        lambda: nn.Dropout(NAN),
        ValueError,
        ("Dropout", "p must be a probability in [0, 1]", "nan"),
    ),
    Bad("dropout-neg", lambda: nn.Dropout(-0.1), ValueError, ("p must be", "-0.1")),
    Bad("dropout-big", lambda: nn.Dropout(1.5), ValueError, ("got 1.5",)),
    Bad("dropout-str", lambda: nn.Dropout("0.5"), TypeError, ("p", "'0.5'")),
    Bad(
        "dropout-rng-neg",
        lambda: nn.Dropout(rng=-1),
        ValueError,
        ("Dropout", "rng", "seed >= 0", "-1"),
    ),
    # Linear and Conv2d
    Bad(
        "linear-zero",
        lambda: nn.Linear(0, 3),
        ValueError,
        ("Linear", "in_features", "positive integer", "0"),
    ),
    Bad("linear-neg", lambda: nn.Linear(3, -2), ValueError, ("out_features", "-2")),
    Bad("linear-nan", lambda: nn.Linear(NAN, 3), ValueError, ("in_features", "nan")),
    Bad(
        "linear-bias-str",
        lambda: nn.Linear(3, 2, bias="False"),
        TypeError,
        ("Linear", "bias", "True or False", "'False'"),
    ),
    Bad(
        "linear-dtype",
        lambda: nn.Linear(3, 2, dtype="float16"),
        ValueError,
        ("Linear", "float32 or float64", "float16"),
    ),
    Bad(
        "linear-dtype-garbage",
        lambda: nn.Linear(3, 2, dtype="nope"),
        ValueError,
        ("dtype", "'nope'"),
    ),
    Bad("linear-rng-neg", lambda: nn.Linear(3, 2, rng=-5), ValueError, ("Linear", "rng", "-5")),
    Bad(
        "linear-rng-str",
        lambda: nn.Linear(3, 2, rng="seed"),
        TypeError,
        ("rng must be a numpy.random.Generator",),
    ),
    Bad(
        "conv-kernel-zero",
        lambda: nn.Conv2d(1, 2, 0),
        ValueError,
        ("Conv2d", "kernel_size", "got 0"),
    ),
    Bad("conv-stride-nan", lambda: nn.Conv2d(1, 2, 3, stride=NAN), ValueError, ("stride", "nan")),
    Bad(
        "conv-padding-neg",
        lambda: nn.Conv2d(1, 2, 3, padding=-1),
        ValueError,
        ("padding", "non-negative", "-1"),
    ),
    Bad(
        "conv-groups",
        lambda: nn.Conv2d(3, 2, 3, groups=2),
        ValueError,
        ("in_channels 3", "divisible by groups 2"),
    ),
    Bad(
        "conv-bias-int", lambda: nn.Conv2d(1, 2, 3, bias=1), TypeError, ("Conv2d", "bias", "got 1")
    ),
    Bad("maxpool-zero", lambda: nn.MaxPool2d(0), ValueError, ("MaxPool2d", "kernel_size", "got 0")),
    Bad(
        "avgpool-stride-neg",
        lambda: nn.AvgPool2d(2, stride=-1),
        ValueError,
        ("AvgPool2d", "stride", "-1"),
    ),
    Bad(
        "maxpool-padding",
        lambda: nn.MaxPool2d(2, padding=2),
        ValueError,
        ("padding (2, 2) must be at most half",),
    ),
    # losses
    *[
        Bad(
            f"{cls.__name__}-reduction",
            lambda cls=cls: cls(reduction="avg"),
            ValueError,
            (cls.__name__, "'mean' or 'sum'", "'avg'"),
        )
        for cls in (nn.MSELoss, nn.BCELoss, nn.BCEWithLogitsLoss, nn.CrossEntropyLoss, nn.NLLLoss)
    ],
    # optimizers and schedulers
    *[
        Bad(
            f"{opt.__name__}-lr-{tag}",
            lambda opt=opt, v=v: opt(params(), lr=v),
            err,
            (opt.__name__, "lr", shown),
        )
        for opt in (optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop)
        for tag, v, err, shown in (
            ("nan", NAN, ValueError, "nan"),
            ("inf", INF, ValueError, "inf"),
            ("neg", -0.1, ValueError, "-0.1"),
            ("str", "0.1", TypeError, "'0.1'"),
        )
    ],
    Bad(
        "sgd-momentum-nan",
        lambda: optim.SGD(params(), lr=0.1, momentum=NAN),
        ValueError,
        ("SGD", "momentum", "nan"),
    ),
    Bad(
        "sgd-wd-neg",
        lambda: optim.SGD(params(), lr=0.1, weight_decay=-1),
        ValueError,
        ("weight_decay", "-1"),
    ),
    Bad(
        "adam-beta-nan",
        lambda: optim.Adam(params(), betas=(NAN, 0.9)),
        ValueError,
        ("Adam", "betas[0]", "nan"),
    ),
    Bad(
        "adam-beta-one",
        lambda: optim.Adam(params(), betas=(0.9, 1.0)),
        ValueError,
        ("betas[1]", "[0, 1)"),
    ),
    Bad("adam-eps-neg", lambda: optim.Adam(params(), eps=-1e-8), ValueError, ("eps", "-1e-08")),
    Bad(
        "adamw-wd-nan",
        lambda: optim.AdamW(params(), weight_decay=NAN),
        ValueError,
        ("AdamW", "weight_decay", "nan"),
    ),
    Bad(
        "rmsprop-alpha-nan",
        lambda: optim.RMSprop(params(), alpha=NAN),
        ValueError,
        ("RMSprop", "alpha", "nan"),
    ),
    Bad("optim-empty", lambda: optim.SGD([], lr=0.1), ValueError, ("SGD", "empty parameter list")),
    Bad(
        "optim-arrays",
        lambda: optim.SGD([np.ones(3)], lr=0.1),
        TypeError,
        ("SGD", "Parameters", "ndarray"),
    ),
    Bad(
        "steplr-zero",
        lambda: lr_scheduler.StepLR(optim.SGD(params(), lr=0.1), 0),
        ValueError,
        ("StepLR", "step_size", "0"),
    ),
    Bad(
        "steplr-gamma-nan",
        lambda: lr_scheduler.StepLR(optim.SGD(params(), lr=0.1), 1, gamma=NAN),
        ValueError,
        ("gamma", "nan"),
    ),
    Bad(
        "explr-gamma-inf",
        lambda: lr_scheduler.ExponentialLR(optim.SGD(params(), lr=0.1), INF),
        ValueError,
        ("ExponentialLR", "gamma", "inf"),
    ),
    Bad(
        "cosine-eta-nan",
        lambda: lr_scheduler.CosineAnnealingLR(optim.SGD(params(), lr=0.1), 10, eta_min=NAN),
        ValueError,
        ("eta_min", "nan"),
    ),
    Bad(
        "cosine-tmax-zero",
        lambda: lr_scheduler.CosineAnnealingLR(optim.SGD(params(), lr=0.1), 0),
        ValueError,
        ("T_max", "0"),
    ),
    Bad(
        "optim-load-none",
        lambda: optim.SGD(params(), lr=0.1).load_state_dict(None),
        TypeError,
        ("SGD.load_state_dict", "mapping", "NoneType"),
    ),
    # the data loader and data sets
    Bad(
        "loader-none",
        lambda: DataLoader(None, np.zeros(3)),
        ValueError,
        ("DataLoader", "leading sample axis", "X ()"),
    ),
    Bad(
        "loader-lengths",
        lambda: DataLoader(np.zeros((3, 2)), np.zeros(4)),
        ValueError,
        ("same number of samples", "(3, 2)", "(4,)"),
    ),
    Bad(
        "loader-empty",
        lambda: DataLoader(np.zeros((0, 2)), np.zeros(0)),
        ValueError,
        ("DataLoader", "empty", "(0, 2)"),
    ),
    Bad(
        "loader-batch-zero",
        lambda: DataLoader(np.zeros((3, 2)), np.zeros(3), batch_size=0),
        ValueError,
        ("batch_size", "positive int", "got 0"),
    ),
    Bad(
        "loader-batch-nan",
        lambda: DataLoader(np.zeros((3, 2)), np.zeros(3), batch_size=NAN),
        ValueError,
        ("batch_size", "nan"),
    ),
    Bad(
        "loader-batch-bool",
        lambda: DataLoader(np.zeros((3, 2)), np.zeros(3), batch_size=True),
        ValueError,
        ("batch_size", "True"),
    ),
    Bad(
        "loader-shuffle-str",
        lambda: DataLoader(np.zeros((3, 2)), np.zeros(3), shuffle="yes"),
        ValueError,
        ("shuffle", "True or False", "'yes'"),
    ),
    Bad(
        "loader-rng-neg",
        lambda: DataLoader(np.zeros((3, 2)), np.zeros(3), rng=-1),
        ValueError,
        ("DataLoader", "rng", "-1"),
    ),
    Bad(
        "load-unknown",
        lambda: load("nope"),
        ValueError,
        ("unknown data set 'nope'", "valid names", "circle"),
    ),
    Bad(
        "load-split",
        lambda: load("circle", "val"),
        ValueError,
        ("unknown split 'val'", "'train', 'test'"),
    ),
    Bad(
        "load-n-neg",
        lambda: load("circle", n=-1),
        ValueError,
        ("circle", "n must be an int >= 1", "-1"),
    ),
    Bad("load-noise-nan", lambda: load("moons", noise=NAN), ValueError, ("moons", "noise", "nan")),
    Bad(
        "load-seed-neg",
        lambda: load("circle", seed=-1),
        ValueError,
        ("seed must be a non-negative int", "-1"),
    ),
    Bad(
        "load-option",
        lambda: load("circle", k=3),
        ValueError,
        ("unknown option 'k'", "valid options"),
    ),
]


@pytest.mark.parametrize("case", HYPER, ids=lambda c: c.id)
def test_bad_hyperparameters_and_arguments(case: Bad) -> None:
    expect(case)


# -- inputs: every layer and loss of the registry of layers under test -----------------------------
def built(case: Any) -> nn.Module:
    module = case.make(np.random.default_rng(0), np.float32)
    if case.eval_mode:
        module.eval()
    return module


def output_of(case: Any, module: nn.Module, x: np.ndarray) -> Any:
    if case.kind == "loss":
        return module(x, case.draw_target(np.random.default_rng(1)))
    return module(x)


def name_of(module: nn.Module) -> str:
    return type(module).__name__ if module._modules else repr(module)


BAD_DTYPES = [np.int64, np.int8, np.uint8, np.bool_, np.complex128, object, np.str_]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_non_float_input_is_refused_naming_layer_and_dtype(case: Any, dtype: Any) -> None:
    module = built(case)
    x = np.ones(case.input_shape, dtype=dtype)
    with pytest.raises(TypeError) as info:
        output_of(case, module, x)
    message = str(info.value)
    what = "prediction" if case.kind == "loss" else "input"
    first = module if case.kind == "loss" or not module._modules else next(iter(module))
    assert f"expected a floating-point {what}, got dtype {x.dtype}" in message
    assert message.startswith(name_of(first) + ":"), message


@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_non_array_input_is_refused(case: Any) -> None:
    module = built(case)
    for bad in (None, "abc", {"x": 1}):
        with pytest.raises(
            TypeError, match=r"expected a floating-point array as (input|prediction)"
        ):
            output_of(case, module, bad)


# Identity saves nothing and passes any gradient through, as torch's does
@pytest.mark.parametrize(
    "case", [c for c in LAYER_CASES if c.kind == "layer" and c.name != "Identity"], ids=repr
)
def test_wrong_grad_out_shape_names_both_shapes(case: Any) -> None:
    module = built(case)
    out = module(case.draw_input(np.random.default_rng(0)).astype(np.float32))
    bad = np.ones((*out.shape[:-1], out.shape[-1] + 1), dtype=np.float32)
    with pytest.raises(ValueError) as info:
        module.backward(bad)
    assert f"expected grad_out {out.shape}, got {bad.shape}" in str(info.value)


@pytest.mark.parametrize("case", [c for c in LAYER_CASES if c.kind == "loss"], ids=repr)
def test_losses_refuse_an_empty_batch_and_a_bad_backward_argument(case: Any) -> None:
    module = built(case)
    empty = np.zeros((0, *case.input_shape[1:]), dtype=np.float32)
    with pytest.raises(ValueError, match=r"the prediction is empty \(shape \(0,"):
        module(empty, np.zeros((0, *case.input_shape[1:])))
    output_of(case, module, case.draw_input(np.random.default_rng(0)).astype(np.float32))
    with pytest.raises(TypeError, match=r"backward\(grad_out\) takes a number.*got 'a'"):
        module.backward("a")


EMPTY_NCHW = [
    (lambda: nn.Conv2d(1, 2, 3), "Conv2d"),
    (lambda: nn.MaxPool2d(2), "MaxPool2d"),
    (lambda: nn.AvgPool2d(2), "AvgPool2d"),
]


@pytest.mark.parametrize(("make", "name"), EMPTY_NCHW, ids=[n for _, n in EMPTY_NCHW])
def test_image_layers_refuse_an_empty_batch(make: Any, name: str) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^{name}\(.*expected a batch of at least one image, got input \(0, 1, 6, 6\)",
    ):
        make()(np.zeros((0, 1, 6, 6), np.float32))


def test_float64_input_into_float32_weights_warns_once_naming_the_layer() -> None:
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 2, rng=1))
    x = np.ones((5, 3))  # float64
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model(x)
        model(x)  # once per layer: no second round
    messages = [str(w.message) for w in seen]
    assert len(messages) == 2, messages  # both Linears (ReLU has no weights)
    assert messages[0].startswith("Linear(in_features=3, out_features=4, bias=True): float64 input")
    assert "float32 weights" in messages[0] and "x.astype(np.float32)" in messages[0]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        nn.Sequential(nn.Linear(3, 4, rng=0, dtype=np.float64))(x)  # float64 weights: no word
        nn.Linear(3, 4, rng=0)(x.astype(np.float32))
    assert not seen


def test_int_input_through_sigmoid_and_a_loss_is_refused_not_zeros() -> None:
    # the defect: Sigmoid of an int array returned zeros, losses gave zero gradients
    with pytest.raises(
        TypeError, match=r"^Sigmoid\(\): expected a floating-point input, got dtype int64"
    ):
        nn.Sigmoid()(np.arange(4))
    with pytest.raises(
        TypeError, match=r"^MSELoss\(reduction='mean'\): .*prediction, got dtype int64"
    ):
        nn.MSELoss()(np.arange(4), np.zeros(4))
    # a list of floats is an array
    np.testing.assert_allclose(nn.Sigmoid()([0.0]), [0.5])


# -- load_state_dict: all or nothing ---------------------------------------------------------------
def model_and_state() -> tuple[nn.Module, dict[str, np.ndarray]]:
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.BatchNorm1d(3), nn.Linear(3, 2, rng=1))
    return model, {k: v.copy() for k, v in model.state_dict().items()}


STATE_BAD = [
    (
        "shape of the fifth tensor",
        lambda s: s.update({"1.running_mean": np.zeros(4)}),
        ValueError,
        ("'1.running_mean' expects shape (3,), got (4,)",),
    ),
    (
        "last tensor of strings",
        lambda s: s.update({"2.bias": np.array(["a", "b"])}),
        TypeError,
        ("'2.bias' must hold real numbers", "<U1"),
    ),
    (
        "complex values",
        lambda s: s.update({"2.weight": np.ones((2, 3), complex)}),
        TypeError,
        ("'2.weight'", "complex128"),
    ),
    ("a missing key", lambda s: s.pop("2.bias"), KeyError, ("missing keys ['2.bias']",)),
]


@pytest.mark.parametrize(
    ("what", "spoil", "exc", "words"), STATE_BAD, ids=[c[0] for c in STATE_BAD]
)
def test_load_state_dict_is_atomic(
    what: str, spoil: Any, exc: type, words: tuple[str, ...]
) -> None:
    model, before = model_and_state()
    new = {k: v + 1 for k, v in before.items()}  # every value differs from the model's
    spoil(new)
    with pytest.raises(exc) as info:
        model.load_state_dict(new)
    for word in words:
        assert word in str(info.value)
    after = model.state_dict()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=f"{key} changed ({what})")


def test_load_state_dict_refuses_a_non_mapping() -> None:
    model, _ = model_and_state()
    with pytest.raises(
        TypeError, match=r"Sequential.load_state_dict: expected a mapping .* got NoneType"
    ):
        model.load_state_dict(None)


# -- a config from the command line ----------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_config_refuses_non_finite_numbers(value: str) -> None:
    from handgrad.experiments import make_config

    with pytest.raises(
        ValueError, match=rf"ToyConfig: invalid lr {re.escape(str(float(value)))}, must be"
    ):
        make_config("toy", {"lr": value})
