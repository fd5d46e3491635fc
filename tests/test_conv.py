"""Conv2d, MaxPool2d and AvgPool2d beyond the generic registry checks.

The registry (tests/layer_cases_conv.py, run by test_registry.py) already checks every case against
central finite differences and PyTorch in float64. Here: max-pool ties, -inf and NaN against
PyTorch, random configurations against PyTorch (hypothesis), float32 parity at realistic
sizes, layouts and buffer reuse, initialisation, and every error message.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# layer_cases before layer_cases_conv: layer_cases.py imports layer_cases_conv at its end, and
# the other order would fail on the circular import
import layer_cases
from handgrad.nn import Flatten, Linear, ReLU, Sequential
from handgrad.nn.conv import Conv2d
from handgrad.nn.pooling import AvgPool2d, MaxPool2d
from layer_cases_conv import CASES

torch = pytest.importorskip("torch")


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    scale = max(np.abs(a).max(), np.abs(b).max(), 1e-12)
    return float(np.abs(a - b).max() / scale)


def torch_run(tmod, x: np.ndarray, grad_out: np.ndarray | None = None, seed: int = 1):
    """Output, input gradient and parameter gradients of a torch module (float64 or float32)."""
    tx = torch.tensor(x, requires_grad=True)
    out = tmod(tx)
    if grad_out is None:
        grad_out = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype)
    out.backward(torch.from_numpy(grad_out))
    grads = {n: p.grad.numpy() for n, p in tmod.named_parameters()}
    return out.detach().numpy(), tx.grad.numpy(), grads, grad_out


def ours_run(module, x: np.ndarray, grad_out: np.ndarray):
    module.zero_grad()
    out = module(x)
    dx = module.backward(grad_out)
    return out, dx, {n: p.grad.copy() for n, p in module.named_parameters()}


def load_into_torch(module, tmod):
    tmod.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in module.state_dict().items()})
    return tmod


def assert_parity(module, tmod, x: np.ndarray, tol: float) -> None:
    t_out, t_dx, t_grads, grad_out = torch_run(tmod, x)
    out, dx, grads = ours_run(module, x, grad_out)
    assert out.dtype == x.dtype and dx.dtype == x.dtype
    assert rel_error(out, t_out) < tol, "output"
    assert rel_error(dx, t_dx) < tol, "input gradient"
    assert list(grads) == list(t_grads), "parameter names"
    for name in grads:
        assert rel_error(grads[name], t_grads[name]) < tol, f"gradient of {name}"


# -- max pooling: ties, -inf, NaN ------------------------------------------------------------

POOL_CONFIGS = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2},
    {"kernel_size": 3, "stride": 1, "padding": 1},
    {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 1)},
    {"kernel_size": 3, "stride": 3, "padding": 1},
]


def pool_pair(kwargs: dict):
    return MaxPool2d(**kwargs), torch.nn.MaxPool2d(**kwargs)


@pytest.mark.parametrize("kwargs", POOL_CONFIGS, ids=str)
@pytest.mark.parametrize("kind", ["zeros", "integers", "constant-rows"])
def test_maxpool_ties_go_to_first_maximum_like_torch(kwargs: dict, kind: str) -> None:
    rng = np.random.default_rng(0)
    shape = (2, 3, 7, 8)
    if kind == "zeros":  # every window is one big tie
        x = np.zeros(shape)
    elif kind == "integers":  # many, but not all, windows tie
        x = rng.integers(0, 3, size=shape).astype(np.float64)
    else:  # ties along rows only: first-in-row-major means top-left-most
        x = np.broadcast_to(rng.integers(0, 2, size=(2, 3, 7, 1)), shape).astype(np.float64)
    ours, theirs = pool_pair(kwargs)
    t_out, t_dx, _, grad_out = torch_run(theirs, x)
    out, dx, _ = ours_run(ours, x, grad_out)
    np.testing.assert_array_equal(out, t_out)
    # the same entries receive the same sums of grad_out (order of addition may differ)
    np.testing.assert_allclose(dx, t_dx, rtol=1e-13, atol=1e-13)
    assert ((dx != 0) == (t_dx != 0)).all()


def test_maxpool_tie_rule_worked_example() -> None:
    # one 2x2 window [[1, 5], [5, 5]]: three tied maxima, the gradient goes to (0, 1)
    x = np.array([[[[1.0, 5.0], [5.0, 5.0]]]])
    pool = MaxPool2d(2)
    assert pool(x).item() == 5.0
    dx = pool.backward(np.array([[[[7.0]]]]))
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 7.0], [0.0, 0.0]])


def test_maxpool_overlapping_windows_accumulate_worked_example() -> None:
    # 1x5 row, kernel (1, 3), stride 1: windows [0..2], [1..3], [2..4] all peak at index 2
    x = np.array([[[[0.0, 1.0, 9.0, 1.0, 0.0]]]])
    pool = MaxPool2d((1, 3), stride=1)
    np.testing.assert_array_equal(pool(x)[0, 0, 0], [9.0, 9.0, 9.0])
    dx = pool.backward(np.array([[[[1.0, 2.0, 4.0]]]]))
    np.testing.assert_array_equal(dx[0, 0, 0], [0.0, 0.0, 7.0, 0.0, 0.0])


@pytest.mark.parametrize("kwargs", POOL_CONFIGS[2:], ids=str)
def test_maxpool_all_minus_inf_routes_to_first_real_entry_like_torch(kwargs: dict) -> None:
    x = np.full((1, 2, 5, 6), -np.inf)
    x[0, 1, 2:, 3:] = 1.0  # one channel partly finite
    ours, theirs = pool_pair(kwargs)
    t_out, t_dx, _, grad_out = torch_run(theirs, x)
    out, dx, _ = ours_run(ours, x, grad_out)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_allclose(dx, t_dx, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("kwargs", POOL_CONFIGS, ids=str)
def test_maxpool_nan_propagates_like_torch(kwargs: dict) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 7, 8))
    x[rng.random(x.shape) < 0.15] = np.nan
    ours, theirs = pool_pair(kwargs)
    t_out, t_dx, _, grad_out = torch_run(theirs, x)
    out, dx, _ = ours_run(ours, x, grad_out)
    np.testing.assert_array_equal(out, t_out)  # NaN == NaN for assert_array_equal
    np.testing.assert_allclose(dx, t_dx, rtol=1e-13, atol=1e-13)


def test_maxpool_large_kernel_index_dtype() -> None:
    # 17x17 = 289 window entries do not fit the uint8 index used for small kernels
    rng = np.random.default_rng(4)
    x = rng.permutation(2 * 20 * 20).reshape(1, 2, 20, 20).astype(np.float64)
    assert_parity(MaxPool2d(17, stride=3), torch.nn.MaxPool2d(17, stride=3), x, 1e-15)


# -- randomised parity with torch --------------------------------------------------------------


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    # the input must be at least as large as the dilated kernel after padding
    hmin = max(1, dilation[0] * (k[0] - 1) + 1 - 2 * padding[0])
    wmin = max(1, dilation[1] * (k[1] - 1) + 1 - 2 * padding[1])
    h = draw(st.integers(hmin, hmin + 6))
    w = draw(st.integers(wmin, wmin + 6))
    n = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    args = (cin, cout, k)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias)
    return args, kw, (n, cin, h, w)


@settings(max_examples=40, deadline=None)
@given(conv_configs(), st.integers(0, 2**16))
def test_conv2d_random_configurations_match_torch(config, seed) -> None:
    args, kw, shape = config
    rng = np.random.default_rng(seed)
    module = Conv2d(*args, **kw, rng=rng, dtype=np.float64)
    tmod = load_into_torch(module, torch.nn.Conv2d(*args, **kw).double())
    assert_parity(module, tmod, rng.standard_normal(shape), 1e-10)


@st.composite
def pool_configs(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h = draw(st.integers(max(1, k[0] - 2 * padding[0]), 9))
    w = draw(st.integers(max(1, k[1] - 2 * padding[1]), 9))
    return dict(kernel_size=k, stride=stride, padding=padding), (2, 2, h, w)


@settings(max_examples=40, deadline=None)
@given(pool_configs(), st.sampled_from(["MaxPool2d", "AvgPool2d"]), st.integers(0, 2**16))
def test_pool_random_configurations_match_torch(config, name, seed) -> None:
    kwargs, shape = config
    rng = np.random.default_rng(seed)
    ours = {"MaxPool2d": MaxPool2d, "AvgPool2d": AvgPool2d}[name](**kwargs)
    x = rng.integers(-3, 4, size=shape).astype(np.float64)  # integer values: plenty of ties
    assert_parity(ours, getattr(torch.nn, name)(**kwargs), x, 1e-12)


# -- float32 at realistic sizes, layouts, buffer reuse ----------------------------------------


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kernel_size", [(2, 4), (4, 3)])
def test_conv2d_same_padding_with_even_kernel_pads_the_end_like_torch(kernel_size) -> None:
    # an even kernel needs an odd total padding: the extra row/column goes at the bottom/right
    rng = np.random.default_rng(12)
    module = Conv2d(2, 3, kernel_size, padding="same", rng=rng, dtype=np.float64)
    tmod = load_into_torch(module, torch.nn.Conv2d(2, 3, kernel_size, padding="same").double())
    x = rng.standard_normal((2, 2, 5, 7))
    assert module(x).shape == (2, 3, 5, 7)
    assert_parity(module, tmod, x, 1e-10)


@pytest.mark.parametrize(
    "kw",
    [
        {"padding": 1},
        {"stride": 2, "padding": 1},
        {"padding": 1, "groups": 4, "bias": False},
        {"dilation": 2, "padding": 2},
    ],
    ids=str,
)
def test_conv2d_float32_matches_torch_float32(kw: dict) -> None:
    rng = np.random.default_rng(5)
    module = Conv2d(8, 16, 3, **kw, rng=rng)
    assert module.weight.dtype == np.float32
    tmod = load_into_torch(module, torch.nn.Conv2d(8, 16, 3, **kw))
    x = rng.standard_normal((4, 8, 15, 13)).astype(np.float32)
    assert_parity(module, tmod, x, 1e-5)


def test_pools_float32_in_float32_out() -> None:
    x = np.random.default_rng(6).standard_normal((2, 3, 9, 9)).astype(np.float32)
    for pool in (MaxPool2d(3, 2, 1), AvgPool2d(3, 2, 1), MaxPool2d(2), AvgPool2d(2)):
        out = pool(x)
        assert out.dtype == np.float32
        assert pool.backward(np.ones_like(out)).dtype == np.float32


def test_small_cnn_float64_matches_torch() -> None:
    # layers handing each other non-contiguous (channel-major) arrays, end to end
    rng = np.random.default_rng(7)
    ours = Sequential(
        Conv2d(2, 4, 3, padding=1, rng=rng, dtype=np.float64),
        ReLU(),
        MaxPool2d(2),
        Conv2d(4, 6, (2, 3), stride=(1, 2), rng=rng, dtype=np.float64),
        ReLU(),
        AvgPool2d(2, stride=1),
        Flatten(),
        Linear(6 * 2 * 2, 3, rng=rng, dtype=np.float64),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, (2, 3), stride=(1, 2)),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2, stride=1),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 2 * 2, 3),
    ).double()
    load_into_torch(ours, theirs)
    x = rng.permutation(3 * 2 * 8 * 14).reshape(3, 2, 8, 14) / 100.0 - 3.0  # distinct values
    assert_parity(ours, theirs, x, 1e-10)


def test_conv2d_non_contiguous_input_and_repeated_calls() -> None:
    rng = np.random.default_rng(8)
    module = Conv2d(3, 5, 3, padding=1, rng=rng, dtype=np.float64)
    x_small = rng.standard_normal((2, 3, 6, 7))
    x_big = rng.standard_normal((3, 3, 9, 5))
    out_small = module(x_small).copy()
    # a non-contiguous view (NHWC memory) gives the same result as its contiguous copy
    nhwc = np.ascontiguousarray(x_small.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(module(nhwc), out_small)
    # work buffers are reused between calls: an earlier output must not change, and a shape
    # change followed by the first shape again must still be right
    kept = module(x_small)
    module(x_big)
    np.testing.assert_array_equal(kept, out_small)
    np.testing.assert_array_equal(module(x_small), out_small)
    tmod = load_into_torch(module, torch.nn.Conv2d(3, 5, 3, padding=1).double())
    np.testing.assert_allclose(module(x_big), tmod(torch.from_numpy(x_big)).detach().numpy())
    # backward answers the latest forward, and its result is not a reused buffer
    g = rng.standard_normal((3, 5, 9, 5))
    dx1 = module.backward(g)
    dx1_copy = dx1.copy()
    module.backward(2 * g)
    np.testing.assert_array_equal(dx1, dx1_copy)


def test_conv2d_to_float64_after_forward() -> None:
    rng = np.random.default_rng(9)
    module = Conv2d(2, 3, 3, rng=rng)
    x = rng.standard_normal((1, 2, 5, 5))
    module(x.astype(np.float32))
    module.double()
    out = module(x)
    assert out.dtype == np.float64
    assert module.backward(np.ones_like(out)).dtype == np.float64
    assert module.weight.grad.dtype == np.float64


# -- construction: init, attributes, names ------------------------------------------------------


@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_default_init_bounds(groups: int) -> None:
    module = Conv2d(8, 64, (3, 5), groups=groups, rng=0)
    fan_in = 8 // groups * 3 * 5
    bound = 1.0 / np.sqrt(fan_in)
    assert module.weight.shape == (64, 8 // groups, 3, 5)
    assert module.bias.shape == (64,)
    w = module.weight.data
    # U(-b, b): everything inside, extremes close to the bound, variance b^2 / 3
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.var() / (bound**2 / 3) - 1) < 0.1
    assert np.abs(module.bias.data).max() <= bound
    # the same seed gives the same bits
    np.testing.assert_array_equal(Conv2d(8, 64, (3, 5), groups=groups, rng=0).weight.data, w)


@pytest.mark.parametrize(
    "args, kw",
    [
        ((1, 32, 3), {}),
        ((2, 4, (2, 3)), {"stride": 2, "padding": 1, "dilation": (1, 2), "groups": 2}),
        ((2, 3, 3), {"padding": "same", "bias": False}),
        ((2, 3, 3), {"padding": "valid"}),
    ],
)
def test_conv2d_attributes_repr_and_state_dict_match_torch(args, kw) -> None:
    ours, theirs = Conv2d(*args, **kw), torch.nn.Conv2d(*args, **kw)
    assert repr(ours) == repr(theirs)
    for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.groups == theirs.groups
    state = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert state == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}


def test_pool_attributes_are_pairs() -> None:
    pool = MaxPool2d(3, padding=1)
    assert (pool.kernel_size, pool.stride, pool.padding) == ((3, 3), (3, 3), (1, 1))
    pool = AvgPool2d((2, 3), stride=(1, 2))
    assert (pool.kernel_size, pool.stride, pool.padding) == ((2, 3), (1, 2), (0, 0))
    assert repr(pool) == "AvgPool2d(kernel_size=(2, 3), stride=(1, 2), padding=(0, 0))"


def test_registry_cases_are_registered() -> None:
    names = {c.name for c in layer_cases.CASES}
    assert {c.name for c in CASES} <= names


# -- error messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Conv2d(0, 4, 3), r"Conv2d: in_channels must be a positive integer, got 0"),
        (lambda: Conv2d(2, 4.0, 3), r"Conv2d: out_channels must be a positive integer, got 4\.0"),
        (lambda: Conv2d(2, 4, 0), r"Conv2d: kernel_size must be a positive int .*got 0"),
        (lambda: Conv2d(2, 4, (3, 0)), r"Conv2d: kernel_size .*got \(3, 0\)"),
        (lambda: Conv2d(2, 4, (3, 3, 3)), r"Conv2d: kernel_size .*got \(3, 3, 3\)"),
        (lambda: Conv2d(2, 4, 3, stride=0), r"Conv2d: stride must be a positive .*got 0"),
        (lambda: Conv2d(2, 4, 3, padding=-1), r"Conv2d: padding .*non-negative.*got -1"),
        (lambda: Conv2d(2, 4, 3, padding="full"), r"Conv2d: padding must be 'valid', 'same'"),
        (lambda: Conv2d(2, 4, 3, dilation=(1, 0)), r"Conv2d: dilation .*got \(1, 0\)"),
        (lambda: Conv2d(2, 4, 3, groups=0), r"Conv2d: groups must be a positive integer, got 0"),
        (lambda: Conv2d(3, 4, 3, groups=2), r"Conv2d: in_channels 3 must be divisible by groups 2"),
        (lambda: Conv2d(4, 3, 3, groups=2), r"Conv2d: out_channels 3 must be divisible by groups"),
        (
            lambda: Conv2d(2, 4, 3, stride=2, padding="same"),
            r"Conv2d: padding='same' needs stride 1, got stride=\(2, 2\)",
        ),
        (lambda: Conv2d(2, 4, 3, dtype=np.float16), r"dtype must be float32 or float64"),
        (lambda: MaxPool2d(0), r"MaxPool2d: kernel_size must be a positive int .*got 0"),
        (lambda: MaxPool2d(2, stride=(1, 0)), r"MaxPool2d: stride .*got \(1, 0\)"),
        (lambda: AvgPool2d(2, padding=-1), r"AvgPool2d: padding .*got -1"),
        (
            lambda: MaxPool2d(3, padding=2),
            r"MaxPool2d: padding \(2, 2\) must be at most half of kernel_size \(3, 3\)",
        ),
        (
            lambda: AvgPool2d((4, 2), padding=(2, 2)),
            r"AvgPool2d: padding \(2, 2\) must be at most half of kernel_size \(4, 2\)",
        ),
    ],
)
def test_bad_hyperparameters_fail_when_built(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_conv2d_input_errors_name_layer_and_shapes() -> None:
    conv = Conv2d(1, 32, 3)
    prefix = r"Conv2d\(1, 32, kernel_size=\(3, 3\), stride=\(1, 1\)\): "
    with pytest.raises(ValueError, match=prefix + r"expected input \(N, 1, H, W\), got \(8, 3, 28"):
        conv(np.zeros((8, 3, 28, 28), np.float32))
    with pytest.raises(ValueError, match=prefix + r"expected input \(N, 1, H, W\), got \(8, 784\)"):
        conv(np.zeros((8, 784), np.float32))
    with pytest.raises(
        ValueError,
        match=prefix + r"input \(8, 1, 2, 5\) is too small: padded size \(2, 5\) is smaller "
        r"than the dilated kernel \(3, 3\)",
    ):
        conv(np.zeros((8, 1, 2, 5), np.float32))
    with pytest.raises(TypeError, match=prefix + r"expected a floating-point input, got dtype int"):
        conv(np.zeros((8, 1, 5, 5), np.int64))
    conv(np.zeros((8, 1, 5, 5), np.float32))
    with pytest.raises(
        ValueError, match=prefix + r"expected grad_out \(8, 32, 3, 3\), got \(8, 32, 5, 5\)"
    ):
        conv.backward(np.zeros((8, 32, 5, 5), np.float32))


def test_pool_input_errors_name_layer_and_shapes() -> None:
    pool = MaxPool2d(3, stride=2, padding=1)
    prefix = r"MaxPool2d\(kernel_size=\(3, 3\), stride=\(2, 2\), padding=\(1, 1\)\): "
    with pytest.raises(ValueError, match=prefix + r"expected input \(N, C, H, W\), got \(5, 5\)"):
        pool(np.zeros((5, 5)))
    with pytest.raises(ValueError, match=prefix + r"input \(1, 1, 0, 5\) is too small"):
        pool(np.zeros((1, 1, 0, 5)))
    with pytest.raises(TypeError, match=prefix + r"expected a floating-point input"):
        pool(np.zeros((1, 1, 4, 4), dtype=np.int32))
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        pool.backward(np.zeros((1, 1, 2, 2)))
    pool(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=prefix + r"expected grad_out \(1, 1, 2, 2\), got \(1, 1"):
        pool.backward(np.zeros((1, 1, 4, 4)))
    avg = AvgPool2d(2)
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        avg.backward(np.zeros((1, 1, 2, 2)))


# -- the threaded elementwise passes -----------------------------------------------------------


THREADED_CASES = {
    "conv-wide": (
        lambda: Conv2d(6, 4, 3, padding=1, rng=0, dtype=np.float64),
        lambda: torch.nn.Conv2d(6, 4, 3, padding=1).double(),
    ),
    "conv-strided-groups": (
        lambda: Conv2d(6, 4, (2, 3), stride=2, groups=2, bias=False, rng=0, dtype=np.float64),
        lambda: torch.nn.Conv2d(6, 4, (2, 3), stride=2, groups=2, bias=False).double(),
    ),
    "maxpool-tiled": (lambda: MaxPool2d(2), lambda: torch.nn.MaxPool2d(2)),
    "maxpool-overlap": (
        lambda: MaxPool2d(3, stride=2, padding=1),
        lambda: torch.nn.MaxPool2d(3, stride=2, padding=1),
    ),
}


@pytest.mark.parametrize("name", list(THREADED_CASES))
def test_threaded_passes_give_the_same_bits(name: str, monkeypatch) -> None:
    import handgrad.nn._common as common

    make, make_torch = THREADED_CASES[name]
    rng = np.random.default_rng(10)
    x = rng.integers(-3, 4, size=(3, 6, 9, 8)).astype(np.float64)  # ties for the max-pool
    monkeypatch.setenv("HANDGRAD_NUM_THREADS", "1")
    serial = make()
    out = serial(x)
    grad_out = rng.standard_normal(out.shape)
    dx = serial.backward(grad_out)
    # the serial result is torch's
    t_out, t_dx, t_grads, _ = torch_run(load_into_torch(serial, make_torch()), x, grad_out)
    assert rel_error(out, t_out) < 1e-12 and rel_error(dx, t_dx) < 1e-12
    # every job split across 3 threads, however small: the same bits
    monkeypatch.setattr(common, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setenv("HANDGRAD_NUM_THREADS", "3")
    threaded = make()
    np.testing.assert_array_equal(threaded(x), out)
    np.testing.assert_array_equal(threaded.backward(grad_out), dx)
    for (key, p), q in zip(serial.named_parameters(), threaded.parameters(), strict=True):
        np.testing.assert_array_equal(q.grad, p.grad, err_msg=key)
        assert rel_error(p.grad, t_grads[key]) < 1e-12, key


def test_num_threads_reads_the_environment(monkeypatch) -> None:
    from handgrad.nn._common import num_threads

    monkeypatch.setenv("HANDGRAD_NUM_THREADS", "3")
    assert num_threads() == 3
    for unset in ("", "0", "two"):
        monkeypatch.setenv("HANDGRAD_NUM_THREADS", unset)
        assert num_threads() == 1


def test_conv2d_backward_params_skips_only_the_input_gradient() -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 6, 5))
    full = Conv2d(3, 4, 3, padding=1, rng=1, dtype=np.float64)
    params_only = Conv2d(3, 4, 3, padding=1, rng=1, dtype=np.float64)
    grad_out = rng.standard_normal(full(x).shape)
    full.backward(grad_out)
    params_only(x)
    assert params_only.backward_params(grad_out) is None
    for (name, p), q in zip(full.named_parameters(), params_only.parameters(), strict=True):
        np.testing.assert_array_equal(q.grad, p.grad, err_msg=name)
    # as the first layer of a Sequential that needs no input gradient, with torch's gradients
    model = Sequential(Conv2d(3, 4, 3, rng=2, dtype=np.float64), ReLU(), Flatten())
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
    load_into_torch(model, tmodel.double())
    g = rng.standard_normal((2, 4 * 4 * 3))
    model(x)
    assert model.backward(g, input_grad=False) is None
    tmodel(torch.from_numpy(x)).backward(torch.from_numpy(g))
    for name, p in model.named_parameters():
        t_grad = dict(tmodel.named_parameters())[name].grad.numpy()
        assert rel_error(p.grad, t_grad) < 1e-12, name
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        Conv2d(1, 1, 1).backward_params(np.zeros((1, 1, 1, 1)))


# -- the CWHN work layout and buffer ownership -------------------------------------------------


def cwhn(a: np.ndarray) -> bool:
    """Whether an (N, C, H, W) array is laid out channel, W, H, batch (batch innermost)."""
    return a.transpose(1, 3, 2, 0).flags.c_contiguous


def test_cnn_layers_hand_each_other_cwhn_and_read_it_in_place() -> None:
    rng = np.random.default_rng(13)
    conv1 = Conv2d(2, 4, 3, padding=1, rng=rng, dtype=np.float64)
    pool = MaxPool2d(2)
    conv2 = Conv2d(4, 3, 3, rng=rng, dtype=np.float64)  # unpadded: reads its input in place
    x = rng.standard_normal((5, 2, 8, 10))
    x_before = x.copy()
    h1 = conv1(x)
    h2 = pool(h1)
    out = conv2(h2)
    assert cwhn(h1) and cwhn(h2) and cwhn(out)
    assert conv2._xbuf is None, "an unpadded CWHN input needs no staging copy"
    # the same numbers as torch, and as the same layers fed C-contiguous arrays
    t1 = load_into_torch(conv1, torch.nn.Conv2d(2, 4, 3, padding=1).double())
    t2 = load_into_torch(conv2, torch.nn.Conv2d(4, 3, 3).double())
    t_out = t2(torch.nn.functional.max_pool2d(t1(torch.from_numpy(x)), 2)).detach().numpy()
    assert rel_error(out, t_out) < 1e-12
    np.testing.assert_array_equal(conv2(np.ascontiguousarray(h2)), out)
    # backward on a C-contiguous grad_out (as from Flatten) gives the same bits
    g = rng.standard_normal(out.shape)
    g_cwhn = np.ascontiguousarray(g.transpose(1, 3, 2, 0)).transpose(3, 0, 2, 1)
    conv2(h2)
    dx_c = conv2.backward(g)
    dx_cwhn = conv2.backward(g_cwhn)
    np.testing.assert_array_equal(dx_c, dx_cwhn)
    np.testing.assert_array_equal(x, x_before)


LAYERS_FOR_OWNERSHIP = {
    "conv-padded": lambda: Conv2d(3, 4, 3, padding=1, rng=0, dtype=np.float64),
    "conv-unpadded": lambda: Conv2d(3, 4, 3, rng=0, dtype=np.float64),
    "conv-strided": lambda: Conv2d(3, 4, 3, stride=2, padding=1, rng=0, dtype=np.float64),
    "maxpool": lambda: MaxPool2d(2),
    "maxpool-overlap": lambda: MaxPool2d(3, 2, 1),
    "avgpool": lambda: AvgPool2d(2),
}


@pytest.mark.parametrize("name", list(LAYERS_FOR_OWNERSHIP))
@pytest.mark.parametrize("layout", ["nchw", "cwhn"])
def test_outputs_and_gradients_are_never_overwritten_by_later_calls(name: str, layout) -> None:
    # a user may keep out1 = layer(x1) and dx1 = layer.backward(g1), then call the layer again:
    # work buffers are reused between calls, but what a call returns must stay as it was
    rng = np.random.default_rng(14)
    layer = LAYERS_FOR_OWNERSHIP[name]()

    def draw(shape):
        a = rng.standard_normal(shape)
        return (
            a
            if layout == "nchw"
            else np.ascontiguousarray(a.transpose(1, 3, 2, 0)).transpose(3, 0, 2, 1)
        )

    x1, x2 = draw((4, 3, 8, 8)), draw((4, 3, 8, 8))
    out1 = layer(x1)
    dx1 = layer.backward(g1 := rng.standard_normal(out1.shape))
    kept_out, kept_dx = out1.copy(), dx1.copy()
    out2 = layer(x2)
    dx2 = layer.backward(2 * g1 + 1)
    np.testing.assert_array_equal(out1, kept_out)
    np.testing.assert_array_equal(dx1, kept_dx)
    assert not np.shares_memory(out1, out2) and not np.shares_memory(dx1, dx2)
    assert not np.shares_memory(out1, x1) and not np.shares_memory(dx1, g1)
