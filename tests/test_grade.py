"""`handgrad grade`: a folder of submissions, right, subtly wrong and broken, each with its verdict.

The reference homework below is written in every convention the grader takes (functional
pairs, a loss function, module objects with gradients as attributes, in dicts, returned or in
Parameters, a loss object, an MLP with ``cache``/``grads`` dicts). Each other submission is the
reference with one change; the test asserts that the changed check gets its verdict and every
other check still passes. Everything is graded once (a module fixture), in parallel, with short
limits, so that the time-outs cost seconds.
"""

from __future__ import annotations

import csv
import doctest
import importlib
import io
import json
import pkgutil
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from handgrad import nn
from handgrad.check import GradeReport, grade_folder, load_spec
from handgrad.check import grade as grade_pkg
from handgrad.check.grade import ArraySpec, CheckResult, GradeSpec, SpecError, SubmissionResult
from handgrad.cli import main

SPEC = """
[grade]
title = "HW 2: backprop by hand"
file = "layers.py"
points = 1
timeout = 1.5              # per check: the infinite loop costs this
submission_timeout = 30    # a backstop only (see test_a_loop_that_swallows_the_time_out...)
memory_mb = 200
max_output_kb = 64

[[check]]
name = "affine"
convention = "functional"
forward = "affine_forward"
backward = "affine_backward"
inputs = { x = [4, 5], w = [5, 3], b = [3] }
output = [4, 3]
points = 10

[[check]]
name = "relu"
convention = "functional"
forward = "relu_forward"
backward = "relu_backward"
inputs = { x = { shape = [6, 5], zeros = 0.3 } }   # exact zeros: on the kink

[[check]]
name = "batchnorm"
convention = "functional"
forward = "batchnorm_forward"
backward = "batchnorm_backward"
extra_args = [{ mode = "train", eps = 1e-5 }]
points = 5
[check.inputs]             # a table of its own: the inputs, in argument order
x = [6, 4]
gamma = { shape = [4], init = "uniform", low = 0.5, high = 1.5 }
beta = [4]

[[check]]
name = "softmax_loss"
convention = "loss"
function = "softmax_loss"
input = [5, 4]
target = { shape = [5], init = "labels", classes = 4 }

[[check]]
name = "cross_entropy"
convention = "loss"
function = "cross_entropy"
input = { shape = [4, 3], init = "softmax" }
target = { shape = [4, 3], init = "onehot" }

[[check]]
name = "linear"
convention = "module"
file = "modules.py"
class = "Linear"
init_args = [5, 3]
input = [4, 5]
grads = "attributes"
params = ["W", "b"]          # gradients in self.dW, self.db

[[check]]
name = "dict_linear"
convention = "module"
file = "modules.py"
class = "DictLinear"
init_kwargs = { in_features = 4, out_features = 4 }
input = [3, 4]
grads = "dicts"              # self.params['weight'] -> self.grads['weight']

[[check]]
name = "returned_linear"
convention = "module"
file = "modules.py"
class = "ReturningLinear"
input = [4, 3]
grads = "returned"           # backward returns (dx, dW, db)
params = ["W", "b"]

[[check]]
name = "parameter_linear"
convention = "module"
file = "modules.py"
class = "ParameterLinear"    # handgrad Parameters: found on their own
input = [2, 3]

[[check]]
name = "ce_module"
convention = "module"
file = "modules.py"
class = "CrossEntropy"
input = { shape = [4, 3], init = "softmax" }
target = { shape = [4, 3], init = "onehot" }

[[check]]
name = "mlp"
convention = "mlp"
file = "mlp.py"
class = "MLP"
init_args = [4, 5, "relu", 5, 3, "sigmoid"]
input = [6, 4]
points = 5
"""

LAYERS = """
import numpy as np


def affine_forward(x, w, b):
    out = x @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    out = np.maximum(x, 0)
    return out, x


def relu_backward(dout, cache):
    x = cache
    return dout * (x > 0)


def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param["eps"]
    mu, var = x.mean(axis=0), x.var(axis=0)
    xhat = (x - mu) / np.sqrt(var + eps)
    return gamma * xhat + beta, (xhat, gamma, var, eps)


def batchnorm_backward(dout, cache):
    xhat, gamma, var, eps = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / np.sqrt(var + eps)
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    return dx, dgamma, dbeta


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=1, keepdims=True)
    N = x.shape[0]
    loss = -np.log(p[np.arange(N), y]).sum() / N
    dx = p.copy()
    dx[np.arange(N), y] -= 1
    dx /= N
    return loss, dx


def cross_entropy(p, y):
    N = p.shape[0]
    loss = -np.sum(y * np.log(p)) / N
    dp = -y / p / N
    return loss, dp
"""

MODULES = """
import numpy as np

from handgrad.nn import Module, Parameter, ProbCrossEntropyLoss


class Linear:
    def __init__(self, in_features, out_features):
        self.W = np.random.randn(in_features, out_features)
        self.b = np.random.randn(out_features)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class DictLinear:
    def __init__(self, in_features, out_features):
        self.params = {
            "weight": np.random.randn(out_features, in_features),
            "bias": np.random.randn(out_features),
        }
        self.grads = {}

    def forward(self, x):
        self.x = x
        return x @ self.params["weight"].T + self.params["bias"]

    def backward(self, grad_out):
        self.grads["weight"] = grad_out.T @ self.x
        self.grads["bias"] = grad_out.sum(axis=0)
        return grad_out @ self.params["weight"]


class ReturningLinear:
    def __init__(self):
        self.W = np.random.randn(3, 2)
        self.b = np.random.randn(2)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        grad_W = self.x.T @ dout
        return dout @ self.W.T, grad_W, dout.sum(axis=0)


class ParameterLinear(Module):
    def __init__(self):
        super().__init__()
        self.weight = Parameter(np.random.randn(2, 3))
        self.bias = Parameter(np.zeros(2))

    def forward(self, x):
        self.x = x
        return x @ self.weight.data.T + self.bias.data

    def backward(self, grad_out):
        self.weight.grad += grad_out.T @ self.x
        self.bias.grad += grad_out.sum(axis=0)
        return grad_out @ self.weight.data


CrossEntropy = ProbCrossEntropyLoss  # handgrad's own, graded as a loss object
"""

MLP = """
import numpy as np

ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(float)),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
    "identity": (lambda z: z, lambda z, a: np.ones_like(z)),
}


class MLP:
    def __init__(self, in1, out1, f_function, in2, out2, g_function):
        self.f, self.df = ACTIVATIONS[f_function]
        self.g, self.dg = ACTIVATIONS[g_function]
        self.parameters = dict(
            W1=np.random.randn(out1, in1),
            b1=np.random.randn(out1),
            W2=np.random.randn(out2, in2),
            b2=np.random.randn(out2),
        )
        self.grads = dict(
            dJdW1=np.zeros((out1, in1)),
            dJdb1=np.zeros(out1),
            dJdW2=np.zeros((out2, in2)),
            dJdb2=np.zeros(out2),
        )
        self.cache = dict()

    def forward(self, x):
        p = self.parameters
        z1 = x @ p["W1"].T + p["b1"]
        z2 = self.f(z1)
        z3 = z2 @ p["W2"].T + p["b2"]
        y_hat = self.g(z3)
        self.cache.update(x=x, z1=z1, z2=z2, z3=z3, y_hat=y_hat)
        return y_hat

    def backward(self, dJdy_hat):
        c, p = self.cache, self.parameters
        dz3 = dJdy_hat * self.dg(c["z3"], c["y_hat"])
        self.grads["dJdW2"] = dz3.T @ c["z2"]
        self.grads["dJdb2"] = dz3.sum(axis=0)
        dz1 = (dz3 @ p["W2"]) * self.df(c["z1"], c["z2"])
        self.grads["dJdW1"] = dz1.T @ c["x"]
        self.grads["dJdb1"] = dz1.sum(axis=0)
"""

REFERENCE = {"layers.py": LAYERS, "modules.py": MODULES, "mlp.py": MLP}
CHECKS = [
    "affine",
    "relu",
    "batchnorm",
    "softmax_loss",
    "cross_entropy",
    "linear",
    "dict_linear",
    "returned_linear",
    "parameter_linear",
    "ce_module",
    "mlp",
]
FUNCTIONAL = ["affine", "relu", "batchnorm", "softmax_loss", "cross_entropy"]

# name: (file, old, new, {check: (status, message regex)}); every other check must pass.
# `old` must occur exactly once in the reference, so that a change never silently misses.
VARIANTS: dict[str, tuple[str, str, str, dict[str, tuple[str, str]]]] = {
    "right": ("layers.py", "", "", {}),
    # -- subtly wrong ----------------------------------------------------------------------
    "transposed-dw": (
        "layers.py",
        "dw = x.T @ dout",
        "dw = dout.T @ x",
        {"affine": ("shape", r"gradient of 'w' has shape \(3, 5\), but 'w' has shape \(5, 3\)")},
    ),
    "db-not-summed": (
        "layers.py",
        "db = dout.sum(axis=0)",
        "db = dout",
        {"affine": ("shape", r"gradient of 'b' has shape \(4, 3\), but 'b' has shape \(3,\)")},
    ),
    "dx-off-by-0.1%": (
        "layers.py",
        "dx = dout @ w.T",
        "dx = dout @ w.T * 1.001",
        {"affine": ("fail", r"^wrong 'x': max abs err")},
    ),
    "missing-1-over-N": (
        "layers.py",
        "    dx /= N\n",
        "",
        {"softmax_loss": ("fail", r"^wrong 'input'")},
    ),
    "batchnorm-no-mean-terms": (
        "layers.py",
        "dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0))",
        "dx = dxhat",
        {"batchnorm": ("fail", r"^wrong 'x'[^;]*$")},  # gamma and beta are right
    ),
    "relu-mask-from-output": (  # not a bug: out > 0 exactly when x > 0, 0 at 0 either way
        "layers.py",
        "    return out, x\n",
        "    return out, out\n",
        {},
    ),
    "relu-slope-1-at-0": (  # a valid subgradient at the kink: flagged, not failed
        "layers.py",
        "return dout * (x > 0)",
        "return dout * (x >= 0)",
        {},
    ),
    "relu-output-ge-0": (  # out >= 0 everywhere: the mask lets every gradient through
        "layers.py",
        "    return out, x\n\n\ndef relu_backward(dout, cache):\n    x = cache\n"
        "    return dout * (x > 0)",
        "    return out, out\n\n\ndef relu_backward(dout, cache):\n    out = cache\n"
        "    return dout * (out >= 0)",
        {"relu": ("fail", r"^wrong 'x'.*numeric 0\)")},
    ),
    "ce-logits-gradient": (  # p - y is the gradient on logits, not on probabilities
        "layers.py",
        "dp = -y / p / N",
        "dp = (p - y) / N",
        {"cross_entropy": ("fail", r"^wrong 'input'")},
    ),
    "attr-dW-not-stored": (
        "modules.py",
        "        self.dW = self.x.T @ dout\n",
        "",
        {"linear": ("error", r"backward left no gradient for 'W'")},
    ),
    "dict-transposed-weight": (  # a square weight: the transposed gradient has its shape
        "modules.py",
        'self.grads["weight"] = grad_out.T @ self.x',
        'self.grads["weight"] = self.x.T @ grad_out',
        {"dict_linear": ("fail", r"^wrong 'weight'[^;]*$")},
    ),
    "dict-bias-averaged": (
        "modules.py",
        'self.grads["bias"] = grad_out.sum(axis=0)',
        'self.grads["bias"] = grad_out.mean(axis=0)',
        {"dict_linear": ("fail", r"^wrong 'bias'[^;]*$")},
    ),
    "returned-dW-off-by-0.1%": (
        "modules.py",
        "grad_W = self.x.T @ dout",
        "grad_W = self.x.T @ dout * 1.001",
        {"returned_linear": ("fail", r"^wrong 'W'[^;]*$")},
    ),
    "parameter-overwrites": (  # not graded: homework sets gradients, only values count
        "modules.py",
        "self.weight.grad += grad_out.T @ self.x",
        "self.weight.grad = grad_out.T @ self.x",
        {},
    ),
    "mlp-no-sigmoid-derivative": (
        "mlp.py",
        'dz3 = dJdy_hat * self.dg(c["z3"], c["y_hat"])',
        "dz3 = dJdy_hat",
        {"mlp": ("fail", r"^wrong 'W1'.*'b1'.*'W2'.*'b2'")},
    ),
    "mlp-relu-mask-from-output": (
        "mlp.py",
        '"relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(float))',
        '"relu": (lambda z: np.maximum(z, 0), lambda z, a: (a > 0).astype(float))',
        {},
    ),
    # -- broken ----------------------------------------------------------------------------
    "syntax-error": (
        "layers.py",
        "def relu_forward(x):",
        "def relu_forward(x)",
        {c: ("import", r"importing layers.py failed: SyntaxError") for c in FUNCTIONAL},
    ),
    "import-error": (
        "modules.py",
        "import numpy as np\n",
        "import numpy as np\nimport torchvision_not_installed\n",
        {
            c: ("import", r"ModuleNotFoundError: No module named 'torchvision_not_installed'")
            for c in ["linear", "dict_linear", "returned_linear", "parameter_linear", "ce_module"]
        },
    ),
    "raises": (
        "layers.py",
        "    x, w = cache\n",
        "    x, w = cache\n    raise NotImplementedError('TODO')\n",
        {
            "affine": (
                "error",
                r"raised NotImplementedError: TODO \(layers.py:\d+ in affine_backward\)",
            )
        },
    ),
    "wrong-shape": (
        "layers.py",
        "return dout * (x > 0)",
        "return (dout * (x > 0)).T",
        {"relu": ("shape", r"relu_backward's dx has shape \(5, 6\), expected \(6, 5\)")},
    ),
    "wrong-output-shape": (
        "layers.py",
        "out = x @ w + b",
        "out = (x @ w + b).T",
        {"affine": ("shape", r"affine_forward's out has shape \(3, 4\), expected \(4, 3\)")},
    ),
    "infinite-loop": (
        "layers.py",
        "    xhat, gamma, var, eps = cache\n",
        "    xhat, gamma, var, eps = cache\n    while True:\n        pass\n",
        {"batchnorm": ("timeout", r"did not finish within 1.5 s")},
    ),
    "sys-exit": (
        "layers.py",
        "    N = x.shape[0]\n    loss = -np.log",
        "    import sys\n    sys.exit(1)\n    N = x.shape[0]\n    loss = -np.log",
        {"softmax_loss": ("exit", r"called sys.exit\(1\)")},
    ),
    "prints-megabytes": (
        "modules.py",
        '        return x @ self.params["weight"].T',
        '        for _ in range(10**6):\n            print("debug" * 20)\n'
        '        return x @ self.params["weight"].T',
        {"dict_linear": ("output", r"printed more than 64 kB")},
    ),
    "eats-memory": (
        "mlp.py",
        "        p = self.parameters\n",
        "        hoard = []\n        while True:\n            hoard.append(np.ones(10**6))\n",
        {"mlp": ("memory", r"ran out of memory \(limit 200 MB\)")},
    ),
    "os-exit": (  # the process ends: the checks after it cannot run
        "layers.py",
        "    N = p.shape[0]\n",
        "    import os\n    os._exit(0)\n",
        {
            "cross_entropy": ("exit", r"exited with status 0"),
            **{
                c: ("not run", r"ended in check 'cross_entropy'")
                for c in CHECKS[CHECKS.index("cross_entropy") + 1 :]
            },
        },
    ),
}


def write_submission(folder: Path, file: str, old: str, new: str) -> None:
    folder.mkdir(parents=True)
    for name, text in REFERENCE.items():
        if name == file and old:
            assert text.count(old) == 1, f"{old!r} must occur once in {name}"
            text = text.replace(old, new)
        (folder / name).write_text(textwrap.dedent(text))


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> GradeReport:
    root = tmp_path_factory.mktemp("grade")
    (root / "hw2.toml").write_text(SPEC)
    for name, (file, old, new, _) in VARIANTS.items():
        write_submission(root / "submissions" / name, file, old, new)
    return grade_folder(root / "hw2.toml", root / "submissions", jobs=2, progress=False)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_submission_gets_its_verdict(graded: GradeReport, name: str) -> None:
    expected = VARIANTS[name][3]
    result = graded[name]
    assert [r.check for r in result] == CHECKS
    for r in result:
        status, pattern = expected.get(r.check, ("pass", r"^ok: "))
        assert (r.status, r.check) == (status, r.check), r.message
        assert re.search(pattern, r.message), r.message
        assert r.points == (r.max_points if status == "pass" else 0.0)


def test_the_right_submission_gets_full_marks(graded: GradeReport) -> None:
    right = graded["right"]
    assert right.total == right.max_points == graded.spec.total_points == 28
    # the gradients agree to rounding; the report says where the largest difference is
    assert all(r.max_abs_err is not None and r.max_abs_err < 1e-6 for r in right)
    assert re.fullmatch(r"w \(\d, \d\)|b \(\d,\)|x \(\d, \d\)", right["affine"].worst)
    assert [t["name"] for t in right["affine"].tensors] == ["x", "w", "b"]
    assert [t["name"] for t in right["batchnorm"].tensors] == ["x", "gamma", "beta"]
    assert [t["name"] for t in right["dict_linear"].tensors] == ["input", "weight", "bias"]
    assert [t["name"] for t in right["parameter_linear"].tensors] == ["input", "weight", "bias"]
    # the MLP convention checks the parameter gradients in its grads dict, not an input one
    assert [t["name"] for t in right["mlp"].tensors] == ["W1", "b1", "W2", "b2"]


@pytest.mark.parametrize("name", ["right", "relu-mask-from-output", "relu-slope-1-at-0"])
def test_relu_at_zero_is_a_kink_flagged_not_failed(graded: GradeReport, name: str) -> None:
    """out > 0 and x > 0 are the same mask; at x = 0 the slope may be 0 or 1 (both are
    subgradients): the elements on the kink are counted and not compared, in every variant."""
    relu = graded[name]["relu"]
    assert relu.passed
    assert relu.kinks > 0
    assert f"{relu.kinks} at kinks not compared" in relu.message


def test_a_failure_names_the_element_and_both_values(graded: GradeReport) -> None:
    r = graded["dx-off-by-0.1%"]["affine"]
    (x,) = [t for t in r.tensors if t["name"] == "x"]
    assert not x["passed"]
    assert x["max_rel_err"] == pytest.approx(0.0005, rel=0.01)  # |a - n| / (|a| + |n|)
    assert x["analytic"] == pytest.approx(1.001 * x["numeric"], rel=1e-6)
    assert r.worst.startswith("x (")
    assert all(t["passed"] for t in r.tensors if t["name"] != "x")


def test_summary_counts_pass_rates_and_the_most_common_failure(graded: GradeReport) -> None:
    summary = {s["check"]: s for s in graded.summary()}
    n = len(VARIANTS)
    affine = summary["affine"]
    failing = [v for v in VARIANTS.values() if "affine" in v[3]]
    assert affine["graded"] == n and affine["passed"] == n - len(failing)
    assert affine["most_common_failure"] == "wrong shape"
    assert affine["most_common_failure_count"] == 3
    assert summary["relu"]["statuses"] == {"pass": n - 3, "fail": 1, "import": 1, "shape": 1}


def test_markdown_csv_and_json_hold_every_row(graded: GradeReport) -> None:
    md = graded.to_markdown()
    assert md.startswith("# HW 2: backprop by hand\n")
    assert "## Summary" in md and "## Totals" in md
    assert "| right | 10 | 1 | 5 | 1 | 1 | 1 | 1 | 1 | 1 | 1 | 5 | 28 / 28 |" in md
    assert "## eats-memory: 23 / 28" in md
    rows = list(csv.DictReader(io.StringIO(graded.to_csv())))
    assert len(rows) == len(VARIANTS) * len(CHECKS)
    row = next(r for r in rows if r["submission"] == "eats-memory" and r["check"] == "mlp")
    assert (row["status"], row["passed"], row["points"], row["max_points"]) == (
        "memory",
        "False",
        "0",
        "5",
    )
    totals = list(csv.DictReader(io.StringIO(graded.totals_csv())))
    assert [t["submission"] for t in totals] == sorted(VARIANTS)
    data = json.loads(graded.to_json())
    assert [c["name"] for c in data["checks"]] == CHECKS
    assert {s["name"]: s["total"] for s in data["submissions"]}["right"] == 28


def test_a_loop_that_swallows_the_time_out_is_killed_by_the_wall_clock(tmp_path: Path) -> None:
    spec = SPEC.split("[[check]]")[0].replace("submission_timeout = 30", "submission_timeout = 3")
    spec += "[[check]]" + SPEC.split("[[check]]")[-1]  # the mlp check alone
    (tmp_path / "spec.toml").write_text(spec)
    swallow = (
        "        while True:\n            try:\n                sum(range(10**5))\n"
        "            except BaseException:\n                pass\n"
    )
    write_submission(
        tmp_path / "subs" / "loops", "mlp.py", "        p = self.parameters\n", swallow
    )
    report = grade_folder(tmp_path / "spec.toml", tmp_path / "subs", progress=False)
    mlp = report["loops"]["mlp"]
    assert mlp.status == "timeout"
    assert "still running after 3 s (submission_timeout)" in mlp.message


# -- the command line ---------------------------------------------------------------------------

SMALL_SPEC = """
[grade]
file = "layers.py"
timeout = 5

[[check]]
name = "affine"
convention = "functional"
forward = "affine_forward"
backward = "affine_backward"
inputs = { x = [4, 5], w = [5, 3], b = [3] }
points = 2
"""


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "spec.toml").write_text(SMALL_SPEC)
    subs = tmp_path / "subs"
    write_submission(subs / "ann", "layers.py", "", "")
    subs.joinpath("ben.py").write_text(LAYERS.replace("dw = x.T @ dout", "dw = x.T @ dout / 4"))
    return tmp_path / "spec.toml", subs


def test_cli_prints_markdown_and_writes_every_format(small, tmp_path, capsys) -> None:
    spec, subs = small
    out = tmp_path / "out"
    assert main(["grade", str(spec), str(subs), "--quiet", "--out", str(out), "-j", "2"]) == 0
    printed = capsys.readouterr().out
    assert "| ann | 2 | 2 / 2 |" in printed and "| ben | 0 | 0 / 2 |" in printed
    assert "| affine | fail |" in printed and "wrong 'w'" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "grades.csv",
        "grades.json",
        "grades.md",
        "totals.csv",
    ]
    assert out.joinpath("grades.md").read_text().strip() == printed.strip()
    assert out.joinpath("totals.csv").read_text().splitlines() == [
        "submission,affine,total,max_points",
        "ann,2,2,2",
        "ben,0,0,2",
    ]


def test_cli_json(small, capsys) -> None:
    spec, subs = small
    assert main(["grade", str(spec), str(subs), "--json", "--quiet"]) == 0
    data = json.loads(capsys.readouterr().out)
    ben = data["submissions"][1]
    assert ben["name"] == "ben" and ben["results"][0]["status"] == "fail"
    assert data["summary"][0]["most_common_failure"] == "wrong 'w'"


def cli_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("handgrad: error: "), lines
    return lines[0].removeprefix("handgrad: error: ")


BAD_SPECS = [
    ("[[check]]\nname = 'a'\nconvention = 'modul'\n", r"check 'a': unknown convention 'modul'"),
    (
        SMALL_SPEC.replace("inputs =", "inptus ="),
        r"check 'affine': unknown key 'inptus'; valid: .*inputs",
    ),
    (SMALL_SPEC.replace("[3] }", "[0] }"), r"'b' must be a shape like \[4, 5\]"),
    (SMALL_SPEC.replace('file = "layers.py"\n', ""), r"missing key 'file'"),
    (SMALL_SPEC.replace("timeout = 5", "timeout = -1"), r"\[grade\]: 'timeout' must be > 0"),
    (SMALL_SPEC.replace("timeout = 5", "timout = 5"), r"\[grade\]: unknown key 'timout'"),
    (SMALL_SPEC + SMALL_SPEC.split("\n\n", 1)[1], r"two checks are named 'affine'"),
    ("[grade]\ntitle = 'x'\n", r"no checks: add at least one \[\[check\]\]"),
    ("[[check]\n", r"spec.toml: not valid TOML"),
    (
        SMALL_SPEC.replace("x = [4, 5]", "x = { shape = [4, 5], init = 'labels' }"),
        r"init = 'labels' needs 'classes'",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_SPECS)
def test_cli_spec_errors_are_one_line_with_status_2(small, capsys, text, message) -> None:
    spec, subs = small
    spec.write_text(text)
    assert re.search(message, cli_error(capsys, ["grade", str(spec), str(subs)]))


def test_cli_folder_errors(small, tmp_path, capsys) -> None:
    spec, subs = small
    assert "no folder" in cli_error(capsys, ["grade", str(spec), str(tmp_path / "nope")])
    assert "no spec file" in cli_error(capsys, ["grade", str(tmp_path / "no.toml"), str(subs)])
    (tmp_path / "empty").mkdir()
    assert "no submissions in" in cli_error(capsys, ["grade", str(spec), str(tmp_path / "empty")])
    assert "--jobs must be >= 1" in cli_error(capsys, ["grade", str(spec), str(subs), "-j", "0"])


# -- the parts ------------------------------------------------------------------------------------


def test_array_specs_draw_what_they_say() -> None:
    rng = np.random.default_rng(0)
    zeros = ArraySpec((100, 10), zeros=0.3).draw(rng)
    assert 0.2 < (zeros == 0).mean() < 0.4
    probs = ArraySpec((5, 4), init="softmax").draw(rng)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    labels = ArraySpec((50,), init="labels", classes=3, dtype="int64").draw(rng)
    assert labels.dtype == np.int64 and set(labels) == {0, 1, 2}
    uniform = ArraySpec((50,), init="uniform", low=0.5, high=1.5).draw(rng)
    assert 0.5 <= uniform.min() and uniform.max() < 1.5


def test_a_checked_input_must_be_float64() -> None:
    check = {"name": "a", "convention": "loss", "file": "f.py", "function": "f"}
    with pytest.raises(SpecError, match=r"'input': unknown dtype 'float32'; valid: float64"):
        GradeSpec.from_dict(
            {"check": [{**check, "input": {"shape": [2], "dtype": "float32"}, "target": [2]}]}
        )


def test_module_conventions_fill_in_where_the_gradients_are() -> None:
    base = {"file": "m.py", "class": "Net", "input": [2, 3]}
    spec = GradeSpec.from_dict(
        {
            "check": [
                {"name": "mlp", "convention": "mlp", **base},
                {"name": "attr", "convention": "module", "params": ["fc1.W", "b"], **base},
                {"name": "auto", "convention": "module", **base},
                {
                    "name": "ret",
                    "convention": "module",
                    "grads": "returned",
                    "params": ["W"],
                    **base,
                },
            ]
        }
    )
    mlp, attr, auto, ret = spec.checks
    assert (mlp.grads, mlp.params_dict, mlp.grads_dict, mlp.grad_name, mlp.check_input) == (
        "dicts",
        "parameters",
        "grads",
        "dJd{name}",
        False,
    )
    assert (attr.grads, attr.params) == ("attributes", (("fc1.W", "fc1.dW"), ("b", "db")))
    assert (auto.grads, auto.params, auto.check_input) == ("auto", None, True)
    assert (ret.grads, ret.params_dict) == ("returned", None)
    with pytest.raises(SpecError, match=r"grads = 'attributes' needs 'params'"):
        GradeSpec.from_dict(
            {"check": [{"name": "a", "convention": "module", "grads": "attributes", **base}]}
        )


def test_partial_credit_is_per_gradient() -> None:
    spec = GradeSpec.from_dict(
        {
            "check": [
                {
                    "name": "affine",
                    "convention": "functional",
                    "file": "layers.py",
                    "forward": "f",
                    "backward": "b",
                    "inputs": {"x": [2], "w": [2], "b": [2]},
                    "points": 6,
                    "partial": True,
                }
            ]
        }
    )
    tensors = [{"name": n, "passed": n != "w", "worst_index": [0]} for n in "xwb"]
    for t in tensors:
        t.update(max_abs_err=0.1, max_rel_err=0.1, kinks=0)
    rec = {"status": "fail", "message": "wrong 'w'", "tensors": tensors}
    result = CheckResult.from_record("ann", spec.checks[0], rec)
    assert result.points == 4.0
    assert result.worst == "w (0,)"


def test_markdown_cells_are_escaped() -> None:
    check = {"name": "c", "convention": "loss", "file": "f.py", "function": "f"}
    spec = GradeSpec.from_dict({"check": [{**check, "input": [2], "target": [2]}]})
    row = CheckResult("ann", "c", "error", 0.0, 1.0, "raised ValueError: a | b\nsecond line")
    md = GradeReport(spec, [SubmissionResult("ann", [row])]).to_markdown()
    assert "raised ValueError: a \\| b second line |" in md


def test_prob_cross_entropy_through_softmax_equals_cross_entropy_on_logits() -> None:
    """The probabilities version, backpropagated through Softmax, is the logits version."""
    rng = np.random.default_rng(0)
    z, labels = rng.standard_normal((6, 5)), rng.integers(0, 5, size=6)
    one_hot = np.eye(5)[labels]
    softmax, prob_ce, ce = nn.Softmax(), nn.ProbCrossEntropyLoss(), nn.CrossEntropyLoss()
    assert prob_ce(softmax(z), one_hot) == pytest.approx(ce(z, labels), rel=1e-12)
    np.testing.assert_allclose(softmax.backward(prob_ce.backward()), ce.backward(), atol=1e-12)
    # integer classes and one-hot rows are the same target
    assert prob_ce(softmax(z), labels) == pytest.approx(ce(z, one_hot), rel=1e-12)


def test_prob_cross_entropy_errors_and_zero_probabilities() -> None:
    loss = nn.ProbCrossEntropyLoss()
    with pytest.raises(ValueError, match=r"expected probabilities \(N, C\), got \(4,\)"):
        loss(np.full(4, 0.25), np.array([1]))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\].*for logits use CrossEntropy"):
        loss(np.array([[2.0, -1.0]]), np.array([0]))
    # p = 0 where y = 1: a large finite loss and gradient; p = 0 where y = 0 costs nothing
    value = loss(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]))
    assert value == 100.0
    assert np.isfinite(loss.backward()).all()
    assert loss(np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]])) == 0.0
    assert loss.backward().tolist() == [[0.0, -1.0]]


def _grade_modules() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(grade_pkg.__path__, grade_pkg.__name__ + ".")]


@pytest.mark.parametrize("name", _grade_modules())
def test_grade_examples_run(name: str) -> None:
    """handgrad.check.grade's modules (test_doctests_check.py runs handgrad.check's own)."""
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner()
    report: list[str] = []
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name, globs={"np": np}):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_the_spec_in_the_docs_loads(tmp_path: Path) -> None:
    """docs/grading.md's worked example is a valid spec."""
    doc = (Path(__file__).parent.parent / "docs" / "grading.md").read_text()
    block = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert block is not None
    (tmp_path / "hw2.toml").write_text(block[1])
    spec = load_spec(tmp_path / "hw2.toml")
    assert len(spec.checks) >= 3
