"""The torch-parity experiment, end to end on small runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from handgrad.torch_ext import Adam, parity, torch_parity


@pytest.mark.parametrize(("dataset", "epochs"), [("circle", 2), ("digits", 1)])
def test_runs_coincide_and_write_figure_and_report(tmp_path: Path, dataset: str, epochs: int):
    threads = torch.get_num_threads()
    r = torch_parity(tmp_path, dataset, epochs=epochs, batch_size=32, lr=0.01, seed=3)
    assert torch.get_num_threads() == threads  # the thread setting is restored
    n_train = {"circle": 512, "digits": 1438}[dataset]
    assert r["steps"] == epochs * -(-n_train // 32)
    assert r["passed"] and r["max_param_diff_run"] < 1e-9
    assert r["max_param_diff"] <= r["max_param_diff_run"]
    assert r["max_loss_diff"] < 1e-12 and r["max_test_logit_diff"] < 1e-9
    assert r["final_loss_handgrad"] == pytest.approx(r["final_loss_torch"], abs=1e-12)
    assert r["test_accuracy_handgrad"] == r["test_accuracy_torch"]
    # training did something: better than chance on the test split
    assert r["test_accuracy_handgrad"] > {"circle": 0.6, "digits": 0.5}[dataset]
    fig, report = Path(r["figure"]), Path(r["report"])
    assert fig.name == f"torch_parity_{dataset}.png" and fig.stat().st_size > 10_000
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.read_text()
    assert f"torch_parity_{dataset}.png" in text and "coincide" in text
    assert f"{r['max_param_diff']:.3e}" in text


def test_detects_a_discrepancy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the experiment must be able to fail: a torch side whose lr is off by 1% shows up
    def skewed_adam(params, lr):
        return Adam(params, lr=lr * 1.01)

    monkeypatch.setattr(parity, "TorchAdam", skewed_adam)
    r = torch_parity(tmp_path, "circle", epochs=1, seed=0)
    assert not r["passed"] and r["max_param_diff_run"] > 1e-6
    assert "DIVERGE" in Path(r["report"]).read_text()


def test_same_seed_same_run(tmp_path: Path) -> None:
    a = torch_parity(tmp_path / "a", "circle", epochs=1, seed=5)
    b = torch_parity(tmp_path / "b", "circle", epochs=1, seed=5)
    c = torch_parity(tmp_path / "c", "circle", epochs=1, seed=6)
    assert a["final_loss_handgrad"] == b["final_loss_handgrad"]
    assert not np.isclose(a["final_loss_handgrad"], c["final_loss_handgrad"], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "mnist"}, r"torch_parity: unknown dataset 'mnist'; valid: circle, digits"),
        ({"epochs": 0}, r"torch_parity: epochs must be a positive int, got 0"),
        ({"batch_size": 2.5}, r"torch_parity: batch_size must be a positive int, got 2\.5"),
        ({"lr": -1.0}, r"torch_parity: lr must be > 0, got -1\.0"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        torch_parity(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())  # nothing written
