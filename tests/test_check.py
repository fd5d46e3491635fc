"""Tests of handgrad.check: the gradient checker must pass right layers, name wrong gradients,
flag kinks instead of failing them, and explain bad input in one line.

Every expectation is independent of the checker: closed-form gradients (R summed over the
batch for a bias), values worked by hand, or PyTorch.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import handgrad.nn as nn
from handgrad.check import (
    GradcheckReport,
    check_file,
    compare_with_torch,
    gradcheck,
    load_object,
    numerical_gradient,
    parse_shape,
)
from handgrad.nn import Module, Parameter

# -- tiny layers, right and wrong --------------------------------------------------------------


class GoodLinear(Module):
    """y = x W^T + b, written out by hand."""

    def __init__(self, in_features: int, out_features: int, rng: int = 0) -> None:
        super().__init__()
        g = np.random.default_rng(rng)
        self.weight = Parameter(g.standard_normal((out_features, in_features)))
        self.bias = Parameter(g.standard_normal(out_features))
        self._x = None

    def forward(self, x):
        self._x = x
        return x @ self.weight.data.T + self.bias.data

    def backward(self, grad_out):
        self.weight.grad += grad_out.T @ self._x
        self.bias.grad += self.bias_grad(grad_out)
        return grad_out @ self.weight.data

    def bias_grad(self, grad_out):
        return grad_out.sum(axis=0)


class BiasNotSummed(GoodLinear):
    """The classic bug: the bias gradient averaged, not summed, over the batch."""

    def bias_grad(self, grad_out):
        return grad_out.mean(axis=0)


class OverwritingLinear(GoodLinear):
    """Right numbers, wrong contract: assigns weight.grad instead of adding to it."""

    def backward(self, grad_out):
        self.weight.grad = grad_out.T @ self._x
        self.bias.grad += grad_out.sum(axis=0)
        return grad_out @ self.weight.data


class Sigmoid(Module):
    def forward(self, x):
        self.out = 1.0 / (1.0 + np.exp(-x))
        return self.out

    def backward(self, grad_out):
        return grad_out * self.out * (1.0 - self.out)


class WrongSigmoid(Sigmoid):
    def backward(self, grad_out):
        return grad_out * self.out  # forgot the (1 - s)


class Tanh(Module):
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, grad_out):
        return grad_out * (1.0 - self.out**2)


class ReLU(Module):
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0.0)

    def backward(self, grad_out):
        return grad_out * (self.x > 0)


class LeakyThrough(ReLU):
    """Wrong everywhere x < 0: passes the gradient through as if it were the identity."""

    def backward(self, grad_out):
        return grad_out


class Abs(Module):
    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, grad_out):
        return grad_out * np.sign(self.x)


class Exp(Module):
    """Smooth with large curvature: must never be taken for a kink."""

    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, x):
        self.out = np.exp(self.k * x)
        return self.out

    def backward(self, grad_out):
        return grad_out * self.k * self.out


class Square(Module):
    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x):
        self.x = x
        return self.c * x**2

    def backward(self, grad_out):
        return grad_out * 2 * self.c * self.x


class Center(Module):
    """y = x - mean over the batch: whatever comes before gets a bias gradient of exactly 0."""

    def forward(self, x):
        return x - x.mean(axis=0)

    def backward(self, grad_out):
        return grad_out - grad_out.mean(axis=0)


class MaxOverFeatures(Module):
    """y = max over axis 1; the gradient goes to the first maximum, as in PyTorch."""

    def forward(self, x):
        self.x = x
        self.arg = x.argmax(axis=1)
        return x.max(axis=1)

    def backward(self, grad_out):
        g = np.zeros_like(self.x)
        g[np.arange(len(g)), self.arg] = grad_out
        return g


class MSE(Module):
    """mean((pred - target)^2); backward returns 2 (pred - target) / N."""

    def forward(self, pred, target):
        self.diff = pred - target
        return float(np.mean(self.diff**2))

    def backward(self):
        return 2.0 * self.diff / self.diff.size


class WrongMSE(MSE):
    def backward(self):
        return self.diff / self.diff.size  # lost the 2


class SoftmaxCE(Module):
    """Cross-entropy of logits (N, C) with integer targets (N,), mean over the batch."""

    def forward(self, z, y):
        z = z - z.max(axis=1, keepdims=True)
        self.p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        self.y = y
        return float(-np.log(self.p[np.arange(len(y)), y]).mean())

    def backward(self):
        g = self.p.copy()
        g[np.arange(len(self.y)), self.y] -= 1.0
        return g / len(self.y)


# -- student-style classes: no handgrad base class --------------------------------------------


class StudentLinear:
    """Plain arrays W, b; backward *sets* dW, db (the CS231n convention)."""

    def __init__(self, wrong_w: bool = False) -> None:
        g = np.random.default_rng(3)
        self.W = g.standard_normal((4, 3))
        self.b = g.standard_normal(3)
        self.wrong_w = wrong_w

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = dout.T @ self.x if self.wrong_w else self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class StudentReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class Weight:
    """A student's own Parameter: anything with .data and .grad is found."""

    def __init__(self, data):
        self.data = data
        self.grad = np.zeros_like(data)


class DuckScale:
    """y = x * w (per feature), parameters held in a student's Weight class."""

    def __init__(self) -> None:
        self.w = Weight(np.array([0.5, -1.5, 2.0]))

    def __call__(self, x):
        self.x = x
        return x * self.w.data

    def backward(self, g):
        self.w.grad += (g * self.x).sum(axis=0)
        return g * self.w.data


def x_batch(shape=(4, 5), seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def R_for(shape, seed=0):
    """The R gradcheck draws for an output of this shape (first draw from seed)."""
    return np.random.default_rng(seed).standard_normal(shape)


# -- layers that are right --------------------------------------------------------------------


def test_correct_linear_passes():
    report = gradcheck(GoodLinear(5, 3), x_batch())
    assert isinstance(report, GradcheckReport)
    assert report.passed and bool(report)
    assert report.failed == []
    assert [r.name for r in report] == ["input", "weight", "bias"]
    assert [(r.checked, r.kinks, r.skipped) for r in report] == [(20, 0, 0), (15, 0, 0), (3, 0, 0)]
    assert all(r.max_abs_err < 1e-8 for r in report)
    assert report.verdict() == "PASSED: 3 tensors, 38 elements agree"


def test_handgrad_linear_passes_and_is_left_as_it_was():
    layer = nn.Linear(6, 4, rng=0)  # float32
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    layer.weight.grad[...] = 7.0  # a gradient accumulated before the check must survive it
    report = gradcheck(layer, x_batch((3, 6)))
    assert report.passed, report
    assert report.failed == []
    assert layer.weight.dtype == np.float32 and layer.weight.grad.dtype == np.float32
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
        assert v.dtype == before[k].dtype
    np.testing.assert_array_equal(layer.weight.grad, np.full((4, 6), 7.0, np.float32))
    np.testing.assert_array_equal(layer.bias.grad, np.zeros(4, np.float32))


def test_float64_module_keeps_its_arrays():
    layer = nn.Linear(6, 4, rng=0, dtype=np.float64)
    w, gw = layer.weight.data, layer.weight.grad
    w0 = w.copy()
    gw[...] = 3.0
    assert gradcheck(layer, x_batch((3, 6))).passed
    assert layer.weight.data is w and layer.weight.grad is gw
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(gw, np.full((4, 6), 3.0))


def test_worst_values_match_the_closed_form():
    x = x_batch()
    report = gradcheck(GoodLinear(5, 3), x)
    R = R_for((4, 3))
    # for L = sum(out * R): dL/db = R summed over the batch, dL/dx = R W
    row = report["bias"]
    assert row.numeric == pytest.approx(R.sum(axis=0)[row.worst_index], abs=1e-8)
    w = GoodLinear(5, 3).weight.data
    row = report["input"]
    assert row.analytic == pytest.approx((R @ w)[row.worst_index], abs=1e-12)


@given(
    n=st.integers(1, 4),
    fin=st.integers(1, 4),
    fout=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=15, deadline=None)
def test_linear_passes_for_any_shape(n, fin, fout, seed):
    x = np.random.default_rng(seed).standard_normal((n, fin))
    report = gradcheck(nn.Linear(fin, fout, rng=seed), x, seed=seed)
    assert report.passed and report.kinks == 0, report


@pytest.mark.parametrize("k", [1.0, 5.0, 12.0, 30.0])
def test_smooth_high_curvature_is_not_a_kink(k):
    # k = 30: outputs up to e^30 ~ 1e13, so the central difference has a rounding error of
    # ~1e3 for every element; the report's rounding allowance must absorb it
    x = np.random.default_rng(2).uniform(-1, 1, (6, 5))
    report = gradcheck(Exp(k), x)
    assert report.passed and report.kinks == 0, report
    assert report.noise == pytest.approx(
        2 * np.finfo(float).eps * max(np.abs(np.exp(k * x) * R_for(x.shape)).sum(), 1) / 1e-6
    )


def test_curvature_larger_than_the_slope_is_not_a_kink():
    # y = c x^2 near 0: the one-sided slopes differ by 2 c eps R = 2e-3 R, far above the
    # tolerance, so the halving test runs, and must find the gap halving exactly
    x = np.random.default_rng(3).uniform(-1e-4, 1e-4, (5, 4))
    report = gradcheck(Square(1e3), x)
    assert report.passed and report.kinks == 0, report


def test_smooth_layers_away_from_kinks_have_no_kinks():
    x = x_batch((8, 5), seed=4)
    for layer in (Sigmoid(), Tanh(), nn.Sequential(GoodLinear(5, 4), Tanh(), GoodLinear(4, 2))):
        report = gradcheck(layer, x)
        assert report.passed and report.kinks == 0, report


def test_sequential_gets_dotted_names():
    model = nn.Sequential(GoodLinear(5, 4), Tanh(), GoodLinear(4, 2, rng=1))
    report = gradcheck(model, x_batch())
    assert [r.name for r in report] == ["input", "0.weight", "0.bias", "2.weight", "2.bias"]
    assert report.passed


# -- layers that are wrong --------------------------------------------------------------------


def test_bias_not_summed_over_the_batch_is_named():
    report = gradcheck(BiasNotSummed(5, 3), x_batch())
    assert not report.passed and not bool(report)
    assert report.failed == ["bias"]
    row = report["bias"]
    R = R_for((4, 3))
    # the numeric value is the true gradient (R summed), the analytic one R averaged
    assert row.numeric == pytest.approx(R.sum(axis=0)[row.worst_index], abs=1e-8)
    assert row.analytic == pytest.approx(R.mean(axis=0)[row.worst_index], abs=1e-12)
    text = str(report)
    bias_line = next(line for line in text.splitlines() if line.startswith("bias"))
    assert bias_line.rstrip().endswith("FAIL")
    weight_line = next(line for line in text.splitlines() if line.startswith("weight"))
    assert weight_line.rstrip().endswith("ok")
    assert text.splitlines()[-1].startswith("FAILED: wrong 'bias' (max abs err")


def test_wrong_sigmoid_derivative_is_named():
    x = x_batch()
    report = gradcheck(WrongSigmoid(), x)
    assert report.failed == ["input"]
    s = 1 / (1 + np.exp(-x))
    row = report["input"]
    # numeric = R s (1 - s), the true derivative
    assert row.numeric == pytest.approx((R_for(x.shape) * s * (1 - s))[row.worst_index], abs=1e-8)
    assert "FAILED: wrong 'input'" in str(report)
    assert gradcheck(Sigmoid(), x).passed


def test_overwriting_grad_instead_of_accumulating_fails():
    report = gradcheck(OverwritingLinear(5, 3), x_batch())
    assert report.failed == ["weight"]
    row = report["weight"]
    assert row.max_abs_err < 1e-8  # the numbers are right, the contract is not
    assert "overwrites .grad" in row.note
    assert "note: weight: backward overwrites .grad" in str(report)
    assert "'weight' (backward overwrites .grad" in report.verdict()


def test_wrong_layer_inside_sequential_is_named_by_dotted_name():
    model = nn.Sequential(GoodLinear(5, 4), Tanh(), BiasNotSummed(4, 2, rng=1))
    report = gradcheck(model, x_batch())
    assert report.failed == ["2.bias"]
    assert "'2.bias'" in report.verdict()


# -- student classes without handgrad's Module -----------------------------------------------


def test_student_plain_class_with_params_mapping():
    x = x_batch((5, 4))
    report = gradcheck(StudentLinear(), x, params={"W": "dW", "b": "db"})
    assert report.passed, report
    assert [r.name for r in report] == ["input", "W", "b"]


def test_student_wrong_parameter_gradient_is_named():
    class Wrong(StudentLinear):
        def backward(self, dout):
            out = super().backward(dout)
            self.dW = self.dW * 0.5
            return out

    report = gradcheck(Wrong(), x_batch((5, 4)), params={"W": "dW", "b": "db"})
    assert report.failed == ["W"]


def test_student_class_without_params_is_checked_on_its_input_and_hinted():
    report = gradcheck(StudentLinear(), x_batch((5, 4)))
    assert [r.name for r in report] == ["input"]
    assert report.passed
    assert any("params={'W': 'dW'" in n for n in report.notes)


def test_student_relu_without_parameters():
    x = np.where(x_batch() >= 0, x_batch() + 0.1, x_batch() - 0.1)
    report = gradcheck(StudentReLU(), x)
    assert report.passed and report.kinks == 0
    assert report.notes == []


def test_duck_typed_parameters_are_found():
    layer = DuckScale()
    report = gradcheck(layer, x_batch((4, 3)))
    assert [r.name for r in report] == ["input", "w"]
    assert report.passed
    np.testing.assert_array_equal(layer.w.grad, np.zeros(3))  # restored


def test_float32_student_arrays_are_converted_when_named():
    layer = StudentLinear()
    layer.W = layer.W.astype(np.float32)
    layer.b = layer.b.astype(np.float32)
    report = gradcheck(layer, x_batch((5, 4)), params={"W": "dW", "b": "db"})
    assert report.passed, report
    assert layer.W.dtype == np.float32  # put back


# -- kinks ------------------------------------------------------------------------------------


def test_relu_exactly_at_zero_is_a_kink_not_a_failure():
    x = x_batch()
    x[0, :3] = 0.0
    x[2, 4] = 0.0
    report = gradcheck(ReLU(), x)
    assert report.passed, report
    row = report["input"]
    assert row.kinks == 4
    assert row.checked == 16
    assert report.kinks == 4
    assert "4 at kinks not compared" in report.verdict()


@pytest.mark.parametrize("frac", [1 / 3, -1 / 3, 1 / 6, 0.25, 0.45, 0.7, 0.95])
def test_steps_that_cross_a_kink_are_flagged(frac):
    # at distance frac * eps from the kink: 1/3 is where the first halving looks smooth
    x = np.full((2, 3), frac * 1e-6) * np.array([1.0, -1.0, 1.0])
    for layer in (ReLU(), Abs()):
        report = gradcheck(layer, x)
        assert report.passed and report.kinks == 6, report


def test_kink_does_not_hide_a_wrong_gradient_elsewhere():
    x = x_batch()
    x[0, 0] = 0.0
    report = gradcheck(LeakyThrough(), x)
    assert report.failed == ["input"]
    row = report["input"]
    assert row.kinks == 1
    # the worst element is one where x < 0: true slope 0, analytic R
    assert x[row.worst_index] < 0
    assert row.numeric == pytest.approx(0.0, abs=1e-9)
    assert row.analytic == pytest.approx(R_for(x.shape)[row.worst_index])


def test_kink_in_a_parameter():
    lin = GoodLinear(5, 3)
    lin.bias.data[1] = 0.0
    x = x_batch()
    x[0] = 0.0  # sample 0's pre-activation is exactly the bias: unit 1 sits on the kink
    report = gradcheck(nn.Sequential(lin, ReLU()), x)
    assert report.passed, report
    assert report["0.bias"].kinks == 1
    assert report["input"].kinks == 5  # every input of sample 0 moves unit 1 across 0
    assert report["0.weight"].kinks == 0  # x[0] = 0: the weights cannot move it


def test_max_with_ties_is_a_kink():
    x = x_batch((3, 4))
    x[1, 1] = x[1, 3] = x[1].max() + 1.0  # a tie for the maximum of row 1
    report = gradcheck(MaxOverFeatures(), x)
    assert report.passed, report
    assert report["input"].kinks == 2


def test_zero_gradient_does_not_show_a_relative_error_of_one():
    report = gradcheck(nn.Sequential(GoodLinear(5, 3), Center()), x_batch())
    row = report["0.bias"]
    assert row.passed and abs(row.analytic) < 1e-12  # the true gradient is 0
    assert row.max_rel_err < 1e-3


# -- losses -----------------------------------------------------------------------------------


def test_loss_with_target_passes_and_wrong_loss_is_named():
    x, t = x_batch(), x_batch(seed=9)
    report = gradcheck(MSE(), x, t)
    assert report.passed and [r.name for r in report] == ["input"]
    row = report["input"]
    assert row.numeric == pytest.approx((2 * (x - t) / x.size)[row.worst_index], abs=1e-9)
    wrong = gradcheck(WrongMSE(), x, t)
    assert wrong.failed == ["input"]


def test_cross_entropy_with_integer_targets():
    z = x_batch((6, 4))
    y = np.array([0, 3, 1, 1, 2, 0])
    assert gradcheck(SoftmaxCE(), z, y).passed


def test_loss_without_target_says_to_pass_one():
    with pytest.raises(TypeError) as info:
        gradcheck(MSE(), x_batch())
    assert any("pass target=" in n for n in getattr(info.value, "__notes__", ["pass target="]))


# -- PyTorch parity ---------------------------------------------------------------------------


def test_compare_with_torch_linear(torch):
    layer = nn.Linear(5, 3, rng=0)
    tl = torch.nn.Linear(5, 3)
    report = compare_with_torch(layer, tl, x_batch())
    assert report.passed, report
    assert [r.name for r in report] == ["output", "input", "weight", "bias"]
    assert report.reference == "torch"
    assert all(r.max_abs_err < 1e-12 for r in report)
    # torch got handgrad's weights and its own dtype back; handgrad is float32 again
    assert tl.weight.dtype == torch.float32 and tl.weight.grad is None
    np.testing.assert_array_equal(tl.weight.detach().numpy(), layer.weight.data)
    assert layer.weight.dtype == np.float32


def test_compare_with_torch_names_a_wrong_layer(torch):
    report = compare_with_torch(BiasNotSummed(5, 3), torch.nn.Linear(5, 3), x_batch())
    assert report.failed == ["bias"]
    assert "vs torch" in report.verdict()
    report = compare_with_torch(WrongSigmoid(), torch.nn.Sigmoid(), x_batch())
    assert report.failed == ["input"]
    assert compare_with_torch(Sigmoid(), torch.nn.Sigmoid(), x_batch()).passed


def test_compare_with_torch_losses(torch):
    x, t = x_batch(), x_batch(seed=9)
    report = compare_with_torch(MSE(), torch.nn.MSELoss(), x, t)
    assert report.passed and [r.name for r in report] == ["loss", "input"]
    assert compare_with_torch(WrongMSE(), torch.nn.MSELoss(), x, t).failed == ["input"]
    y = np.array([0, 3, 1, 2])
    assert compare_with_torch(SoftmaxCE(), torch.nn.CrossEntropyLoss(), x_batch((4, 4)), y)


def test_compare_with_torch_batchnorm_buffers(torch):
    report = compare_with_torch(nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4), x_batch((6, 4)))
    names = [r.name for r in report]
    assert names[:4] == ["output", "input", "weight", "bias"]
    assert {"running_mean", "running_var"} <= set(names)
    assert report["running_var"].kind == "buffer"
    assert report.passed, report


def test_compare_with_torch_errors(torch):
    with pytest.raises(ValueError, match=r"parameter names differ from torch Linear: torch has "):
        compare_with_torch(DuckScale(), torch.nn.Linear(3, 3), x_batch((2, 3)))
    with pytest.raises(ValueError, match=r"'weight' has shape \(3, 5\), torch Linear has \(3, 4\)"):
        compare_with_torch(GoodLinear(5, 3), torch.nn.Linear(4, 3), x_batch())
    with pytest.raises(TypeError, match=r"torch_module must be a torch\.nn\.Module, got Good"):
        compare_with_torch(GoodLinear(5, 3), GoodLinear(5, 3), x_batch())
    with pytest.raises(ValueError, match=r"output shape \(4, 3\) differs from torch Flatten's"):
        compare_with_torch(ReLU(), torch.nn.Flatten(0), x_batch((4, 3)))


# -- check_file -------------------------------------------------------------------------------

LAYER_FILE = """
import numpy as np


class MyTanh:
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, grad_out):
        return grad_out * (1 - self.out**2)


class BadTanh(MyTanh):
    def backward(self, grad_out):
        return grad_out * (1 - self.out)


class MyMSE:
    def __call__(self, pred, target):
        self.d = pred - target
        return float((self.d**2).mean())

    def backward(self):
        return 2 * self.d / self.d.size


class MyCE:
    def __call__(self, z, y):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        self.p, self.y = e / e.sum(axis=1, keepdims=True), y
        return float(-np.log(self.p[np.arange(len(y)), y]).mean())

    def backward(self):
        g = self.p.copy()
        g[np.arange(len(self.y)), self.y] -= 1
        return g / len(self.y)


class NeedsArgs:
    def __init__(self, n):
        self.n = n

    def forward(self, x):
        return x

    def backward(self, g):
        return g


class NoBackward:
    def forward(self, x):
        return x


class Fails(MyTanh):
    def __init__(self):
        raise KeyError("k")
"""


@pytest.fixture
def layer_file(tmp_path):
    path = tmp_path / "my_layers.py"
    path.write_text(textwrap.dedent(LAYER_FILE))
    return path


def test_check_file_passes_and_fails(layer_file):
    report = check_file(f"{layer_file}:MyTanh", (3, 4))
    assert report.passed and report["input"].shape == (3, 4)
    assert check_file(f"{layer_file}:BadTanh", "3,4").failed == ["input"]
    assert check_file(f"{layer_file}:MyMSE", (5, 2), target_shape=(5, 2)).passed
    assert check_file(f"{layer_file}:MyCE", (6, 3), target_classes=3).passed
    with pytest.raises(ValueError, match=r"check: invalid target_classes 0, must be > 0"):
        check_file(f"{layer_file}:MyCE", (6, 3), target_classes=0)


def test_check_file_errors(layer_file, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"check: no such file '.*nope\.py'"):
        check_file(f"{tmp_path}/nope.py:MyTanh", (2, 2))
    with pytest.raises(
        ImportError, match=r"has no 'Missing'; classes defined there: BadTanh, Fails, MyCE"
    ):
        check_file(f"{layer_file}:Missing", (2, 2))
    with pytest.raises(TypeError, match=r"check: cannot build NeedsArgs\(\) with no arguments"):
        check_file(f"{layer_file}:NeedsArgs", (2, 2))
    with pytest.raises(TypeError, match=r"check: NoBackward has no backward\(\) method"):
        check_file(f"{layer_file}:NoBackward", (2, 2))
    with pytest.raises(ValueError, match=r"check: building Fails\(\) failed: KeyError: 'k'"):
        check_file(f"{layer_file}:Fails", (2, 2))
    with pytest.raises(ValueError, match=r"expected 'path/to/file.py:ClassName', got 'foo.py'"):
        load_object("foo.py")
    with pytest.raises(ValueError, match=r"invalid input_shape '4,0'"):
        check_file(f"{layer_file}:MyTanh", "4,0")
    broken = tmp_path / "broken.py"
    broken.write_text("import numpy as np\nraise RuntimeError('boom')\n")
    with pytest.raises(ImportError, match=r"importing '.*broken\.py' failed: RuntimeError: boom"):
        load_object(f"{broken}:X")


def test_parse_shape():
    assert parse_shape("4,5") == (4, 5)
    assert parse_shape("2x3x4") == (2, 3, 4)
    assert parse_shape([3]) == (3,)
    for bad in ("", "a,b", (2.5,), (True, 2), (0, 3)):
        with pytest.raises(ValueError, match="expected positive integers"):
            parse_shape(bad)


# -- errors -----------------------------------------------------------------------------------


class NoneBackward(Tanh):
    def backward(self, grad_out):
        super().backward(grad_out)


class TransposedBackward(Tanh):
    def backward(self, grad_out):
        return super().backward(grad_out).T


class LogLayer(Module):
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, grad_out):
        return grad_out / self.x


class Float32Layer(Module):
    def forward(self, x):
        return np.tanh(x).astype(np.float32)

    def backward(self, grad_out):
        return grad_out


class NotScalarLoss(Module):
    def forward(self, pred, target):
        return (pred - target) ** 2

    def backward(self):
        return None


class Noisy(Module):
    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(0)

    def forward(self, x):
        return x * (self.rng.random(x.shape) > 0.5)

    def backward(self, grad_out):
        return grad_out


def test_error_messages_name_the_module():
    x = x_batch()
    with pytest.raises(TypeError, match=r"gradcheck\(NoneBackward\(\)\): backward returned None"):
        gradcheck(NoneBackward(), x)
    with pytest.raises(
        ValueError, match=r"backward returned shape \(5, 4\), but the input has shape \(4, 5\)"
    ):
        gradcheck(TransposedBackward(), x)
    with (
        pytest.raises(ValueError, match=r"gradcheck\(LogLayer\(\)\): forward output has non-fin"),
        np.errstate(invalid="ignore"),
    ):
        gradcheck(LogLayer(), x)
    with pytest.raises(ValueError, match=r"gradcheck\(Noisy\(\)\): forward is not determin"):
        gradcheck(Noisy(), x)
    with pytest.raises(TypeError, match=r"gradcheck\(Float32Layer\(\)\): forward returned float32"):
        gradcheck(Float32Layer(), x)
    with pytest.raises(TypeError, match=r"gradcheck\(Sigmoid\): got the class Sigmoid; pass an"):
        gradcheck(Sigmoid, x)
    with pytest.raises(TypeError, match=r"gradcheck\(StudentReLU\): StudentReLU has no back"):
        sr = StudentReLU()
        sr.backward = None
        gradcheck(sr, x)
    with pytest.raises(ValueError, match=r"gradcheck\(StudentLinear\): gradient of 'W' \(attr"):
        gradcheck(StudentLinear(wrong_w=True), x_batch((5, 4)), params={"W": "dW", "b": "db"})
    with pytest.raises(ValueError, match=r"backward left no gradient for 'W' \(attribute 'gW'\)"):
        gradcheck(StudentLinear(), x_batch((5, 4)), params={"W": "gW"})
    with pytest.raises(AttributeError, match=r"params names 'V', which it lacks"):
        gradcheck(StudentLinear(), x_batch((5, 4)), params={"V": "dV"})
    with pytest.raises(TypeError, match=r"params must be True, False or a mapping"):
        gradcheck(StudentLinear(), x_batch((5, 4)), params=["W"])
    with pytest.raises(ValueError, match=r"with a target the module is a loss and must return a s"):
        gradcheck(NotScalarLoss(), x, x)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"eps": 0.0}, r"gradcheck: invalid eps 0.0, must be a finite number > 0"),
        ({"eps": float("nan")}, r"gradcheck: invalid eps nan"),
        ({"atol": -1.0}, r"gradcheck: invalid atol -1.0, must be >= 0"),
        ({"rtol": -0.1}, r"gradcheck: invalid rtol -0.1, must be >= 0"),
        ({"max_elements": 0}, r"gradcheck: invalid max_elements 0, must be a positive int"),
    ],
)
def test_bad_hyperparameters(kw, match):
    with pytest.raises(ValueError, match=match):
        gradcheck(Tanh(), x_batch(), **kw)


def test_nonfinite_steps_are_skipped_and_noted():
    x = np.array([[0.5e-6, 1.0, 2.0]])  # log(x - eps) is nan at the first element
    with np.errstate(invalid="ignore"):
        report = gradcheck(LogLayer(), x)
    row = report["input"]
    assert (row.checked, row.skipped) == (2, 1)
    assert report.passed
    assert any("1 elements skipped" in n for n in report.notes)


# -- the report -------------------------------------------------------------------------------


def test_report_programmatic_use_and_table():
    report = gradcheck(BiasNotSummed(5, 3), x_batch())
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["passed"] is False and d["failed"] == ["bias"]
    assert [r["name"] for r in d["rows"]] == ["input", "weight", "bias"]
    assert d["rows"][2]["worst_index"] == list(report["bias"].worst_index)
    with pytest.raises(KeyError, match=r"no tensor named 'gamma'"):
        report["gamma"]
    assert len(report) == 3 and "FAILED ['bias']" in repr(report)
    lines = str(report).splitlines()
    header = lines[1]
    assert header.split() == [
        "tensor",
        "shape",
        "checked",
        "kinks",
        "skipped",
        "max",
        "abs",
        "err",
        "max",
        "rel",
        "err",
        "worst",
        "index",
        "analytic",
        "numeric",
        "status",
    ]
    status_col = header.index("status")
    for line in lines[3:6]:
        assert line[status_col:].strip() in ("ok", "FAIL")
    assert lines[0].startswith("GoodLinear") or lines[0].startswith("BiasNotSummed")


def test_max_elements_samples_and_counts_the_rest_as_skipped():
    report = gradcheck(GoodLinear(5, 3), x_batch(), max_elements=7)
    assert [(r.checked, r.skipped) for r in report] == [(7, 13), (7, 8), (3, 0)]
    assert report.passed


def test_numerical_gradient_closed_form():
    x = x_batch((3, 2))
    R = R_for((3, 2), seed=5)
    g = numerical_gradient(lambda: float(np.sum(np.sin(x) * R)), x)
    np.testing.assert_allclose(g, np.cos(x) * R, atol=1e-9)
    with pytest.raises(ValueError, match="numerical_gradient: invalid eps -1"):
        numerical_gradient(lambda: 0.0, x, eps=-1)
