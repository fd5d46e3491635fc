"""The pure parts of bench/bench_peers.py (and bench_scalar.py's checks): the plain NumPy MLP
against handgrad and PyTorch, the Adam check, the table and report writers, one tiny run.

No timing is asserted: the benchmark itself is run by hand (``python bench/bench_peers.py``).
The test extra installs micrograd (a small pure-Python package), so the check that both
scalar engines compute the same thing runs in CI; without micrograd those tests skip.
"""

from __future__ import annotations

import importlib
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import handgrad.nn as nn
from handgrad.optim import SGD

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    """bench_peers and bench_scalar, imported from bench/ (not a package)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield {name: importlib.import_module(name) for name in ("bench_peers", "bench_scalar")}
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def peers(bench: dict[str, ModuleType]) -> ModuleType:
    return bench["bench_peers"]


SIZES = (12, 9, 7, 4)


def batch(n: int = 16, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, SIZES[0]), dtype=np.float32), rng.integers(0, SIZES[-1], n)


def test_numpy_mlp_gives_handgrad_and_torch_loss_and_gradients(peers: ModuleType, torch: Any):
    x, y = batch()
    got = peers.mlp_gradients(peers.mlp_models(SIZES, seed=0), x, y)
    loss, grads = got["handgrad"]
    assert [g.shape for g in grads] == [(9, 12), (9,), (7, 9), (7,), (4, 7), (4,)]
    for name in ("numpy", "pytorch"):
        other_loss, other_grads = got[name]
        assert other_loss == pytest.approx(loss, rel=1e-6), name
        assert peers.max_rel_err(other_grads, grads) < 1e-5, name
        assert all(g.dtype == np.float32 for g in other_grads), name


def test_check_mlp_passes_and_catches_a_wrong_weight(peers: ModuleType, torch: Any):
    x, y = batch()
    models = peers.mlp_models(SIZES, seed=0)
    peers.check_mlp(models, x, y)
    models[2].params[2][0, 0] += 0.5  # the NumPy loop's second weight matrix, not the others
    with pytest.raises(RuntimeError, match="numpy differs from handgrad"):
        peers.check_mlp(models, x, y)


def test_numpy_mlp_steps_as_handgrad_sgd_with_momentum(peers: ModuleType):
    rng = np.random.default_rng(0)
    layers: list[Any] = []
    for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
        layers += [nn.Linear(a, b, rng=rng)] + ([nn.ReLU()] if i < len(SIZES) - 2 else [])
    model = nn.Sequential(*layers)
    plain = peers.NumpyMLP(list(model.state_dict().values()), lr=0.05, momentum=0.9)
    loss_fn, opt = nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.05, momentum=0.9)
    for seed in range(3):
        x, y = batch(seed=seed)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        assert plain.step(x, y) == pytest.approx(loss, rel=1e-6)
    for ours, theirs in zip(model.parameters(), plain.params, strict=True):
        np.testing.assert_allclose(theirs, ours.data, rtol=1e-5, atol=1e-6)


def test_every_torch_adam_variant_makes_handgrads_update(peers: ModuleType, torch: Any):
    diffs = peers.check_adam(peers.mlp_shapes((6, 5, 3)), seed=0, steps=3)
    assert set(diffs) == set(peers.TORCH_ADAM_VARIANTS)
    assert max(diffs.values()) < 1e-6


def test_mlp_shapes(peers: ModuleType):
    assert peers.mlp_shapes((784, 512, 10)) == [(512, 784), (512,), (10, 512), (10,)]


def test_gemm_floor_products_count_each_steps_flops(peers: ModuleType):
    # closed forms, 2 FLOPs per multiply-add. MLP: forward and weight gradient of every layer,
    # input gradient of all but the first
    b = 128
    layers = [(784, 512), (512, 512), (512, 10)]
    mlp = sum(2 * 2 * b * i * o for i, o in layers) + sum(2 * b * i * o for i, o in layers[1:])
    assert peers.gemm_flops(peers.mlp_products((784, 512, 512, 10), b)) == mlp
    # mnist-cnn (padding 1), batch 64: conv1 1->32 on 28x28 and conv2 32->64 on 14x14, each
    # with the bias as one more input row (K = C*9 + 1) in the forward and weight-gradient
    # GEMMs; conv2's input gradient has K = 288; the linear layer 3136 -> 10 has all three
    n = 64
    conv1 = 2 * 2 * 32 * 10 * n * 28 * 28
    conv2 = 2 * 2 * 64 * 289 * n * 14 * 14 + 2 * 288 * 64 * n * 14 * 14
    linear = 3 * 2 * n * 3136 * 10
    assert peers.gemm_flops(peers.cnn_products(n)) == conv1 + conv2 + linear


def test_gemm_step_builds_each_batch_size_once_and_runs_its_products(peers: ModuleType):
    made: list[int] = []
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4), dtype=np.float32), rng.standard_normal((4, 5))
    bad = np.ones((2, 2), dtype=np.float32)

    def products_of(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        made.append(n)
        return [(a, b.astype(np.float32))] if n == 4 else [(bad, bad[:1])]

    step = peers.gemm_step(products_of, [slice(0, 4), slice(4, 8), slice(8, 10)])
    assert made == [4, 2]
    step(0)
    step(1)
    with pytest.raises(ValueError):  # the last batch's product does not fit: it really runs
        step(2)


def test_scalar_reference_rows_agree(bench: dict[str, ModuleType]):
    scalar = bench["bench_scalar"]
    X, y = scalar.make_data(6, seed=0)
    rows = scalar.reference_rows(2, [4, 4, 1], seed=0)
    assert np.isfinite(scalar.check_rows(rows, X, y))


def test_scalar_micrograd_rows_agree(bench: dict[str, ModuleType]):
    pytest.importorskip("micrograd")
    scalar = bench["bench_scalar"]
    X, y = scalar.make_data(6, seed=0)
    rows = scalar.micrograd_rows(2, [4, 4, 1], seed=0)
    loss = scalar.check_rows(rows, X, y)  # raises unless all six agree
    # a micrograd MLP with other weights must be caught
    for param in rows[4].model.parameters():
        param.data += 0.1
    with pytest.raises(RuntimeError, match="micrograd MLP"):
        scalar.check_rows(rows, X, y)
    assert loss > 0
    names = {name for pair in scalar.MICROGRAD_PAIRS for name in pair[1:]}
    assert names == {row.name for row in rows}


def test_without_micrograd_the_scalar_row_is_skipped_and_says_how_to_install(
    bench: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
):
    peers, scalar = bench["bench_peers"], bench["bench_scalar"]
    monkeypatch.setattr(scalar, "has_micrograd", lambda: False)
    with pytest.raises(peers.Skipped, match=r"pip install -r bench/requirements\.txt"):
        peers.compare_scalar(peers.QUICK, seed=0)
    [row] = peers.run_all(["scalar"], peers.QUICK, peers.parser().parse_args([]))
    assert row.skipped == "micrograd not installed: pip install -r bench/requirements.txt"


def results(peers: ModuleType) -> list[Any]:
    Result = peers.Result
    return [
        Result("MLP step", "PyTorch", "ms", [1.0, 2.0, 3.0], [2.0, 2.0, 2.0], note="a | b"),
        Result("accuracy", "scikit-learn", "%", [0.9], [0.8], ratio=False),
        Result("scalar engine", "micrograd", "", skipped="micrograd not installed"),
    ]


def test_markdown_table_has_the_columns_and_one_row_per_result(peers: ModuleType):
    lines = peers.markdown_table(results(peers)).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == list(peers.COLUMNS)
    assert header[:5] == ["comparison", "peer", "handgrad", "peer's", "handgrad / peer (median)"]
    assert {"min", "max", "rounds", "notes"} <= set(header)
    assert len(lines) == 2 + 3
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[2:]]
    assert all(len(r) == len(header) for r in rows)
    # ratios 0.5, 1.0, 1.5: median, min, max; the medians of each side; a | in a cell escaped
    assert rows[0] == [
        "MLP step", "PyTorch", "2.000 ms", "2.000 ms", "1.00x", "0.50x", "1.50x", "3", "a \\| b",
    ]  # fmt: skip
    assert rows[1][2:5] == ["90.00%", "80.00%", "-"]
    assert rows[2][4] == "skipped" and rows[2][-1] == "micrograd not installed"


def test_write_report(peers: ModuleType, tmp_path: Path):
    env = {
        key: f"<{key}>"
        for key in ("date", "machine", "threads", "versions", "blas", "environ", "load", "sizes")
    }
    env["command"] = "python bench/bench_peers.py --quick"
    md, raw = peers.write_report(tmp_path / "out" / "peers.md", results(peers), env, quick=True)
    text = md.read_text()
    assert "`python bench/bench_peers.py --quick`" in text
    assert "Quick run" in text
    assert "| comparison | peer |" in text
    assert all(f"<{key}>" in text for key in env if key != "command")
    data = json.loads(raw.read_text())
    assert data["quick"] is True
    assert data["results"][0]["ours"] == [1.0, 2.0, 3.0]
    md, _ = peers.write_report(tmp_path / "full.md", results(peers), env, quick=False)
    assert "Quick run" not in md.read_text()


def test_environment_states_the_command_and_threads(peers: ModuleType):
    pytest.importorskip("threadpoolctl")
    env = peers.environment(["--quick", "--only", "mlp"], 1, peers.QUICK)
    assert env["command"] == "python bench/bench_peers.py --quick --only mlp"
    assert env["threads"].startswith("1 ")
    assert "numpy " in env["versions"] and "micrograd " in env["versions"]
    assert f"{peers.os.cpu_count()} cores" in env["machine"]


def test_options(peers: ModuleType):
    args = peers.parser().parse_args(["--quick", "--only", "adam,mlp", "--epochs", "4"])
    assert args.only == ["adam", "mlp"]
    sizes = peers.chosen_sizes(args)
    assert sizes.epochs == 4 and sizes.mlp_samples == peers.QUICK.mlp_samples
    assert peers.chosen_sizes(peers.parser().parse_args([])) == peers.FULL
    with pytest.raises(SystemExit):
        peers.parser().parse_args(["--only", "mlp,gpu"])


def test_synthetic_classification_is_learnable_data(peers: ModuleType):
    Xtr, ytr, Xte, yte = peers.synthetic_classification(300, 100, seed=0, features=20)
    assert Xtr.shape == (300, 20) and Xte.shape == (100, 20) and Xtr.dtype == np.float32
    assert ytr.shape == (300,) and len(np.unique(ytr)) == 10
    # the labels come from a linear rule: even class means separate the test set well
    means = np.stack([Xtr[ytr == c].mean(axis=0) for c in range(10)])
    assert np.mean((Xte @ means.T).argmax(axis=1) == yte) > 0.4  # chance: 0.1


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_memory_child_reports_its_peak(peers: ModuleType):
    got = peers.run_memory_child("handgrad", images=8, threads=1, seed=0)
    assert 0 < got["setup_mb"] <= got["peak_mb"]


def test_a_tiny_run_writes_the_table(peers: ModuleType, tmp_path: Path, torch: Any):
    out = tmp_path / "peers.md"
    code = peers.main(
        ["--only", "scalar,adam,sklearn", "--rounds", "1", "--pause", "0", "--threads", "1",
         "--scalar-points", "4", "--adam-steps", "2", "--synthetic", "--samples", "256",
         "--test-samples", "64", "--epochs", "1", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    data = json.loads(out.with_suffix(".json").read_text())
    by_peer = [r["peer"] for r in data["results"]]
    assert by_peer.count("micrograd") == (3 if peers.importlib.util.find_spec("micrograd") else 1)
    assert by_peer.count("scikit-learn MLPClassifier") == 2
    assert sum(p.startswith("torch.optim.Adam") for p in by_peer) == 3
    assert "python bench/bench_peers.py --only scalar,adam,sklearn" in out.read_text()
