"""Checkpoints: exact round trips without pickle, atomic writes, corrupt files, exact resume."""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np
import pytest

import handgrad.nn as nn
import handgrad.optim as optim
from handgrad.data import DataLoader
from handgrad.train import (
    CheckpointError,
    EarlyStopping,
    LRSchedulerCallback,
    ModelCheckpoint,
    fit,
    load_checkpoint,
    save_checkpoint,
)
from handgrad.train.callbacks import TrainState, restore_training_state


def nested_state() -> dict:
    return {
        "epoch": 7,
        "big": 2**100 + 1,  # PCG64 states are 128-bit ints
        "lr": 0.1,
        "nan": math.nan,
        "inf": -math.inf,
        "flag": True,
        "none": None,
        "name": "0.weight",
        "int_keys": {0: {"step": np.float32(3.0), "buf": np.arange(6.0).reshape(2, 3)}, 1: {}},
        "tuple": (0.9, 0.999),
        "list": [1, [2, 3], ()],
        "arrays": {
            "f32": np.linspace(0, 1, 5, dtype=np.float32),
            "i64": np.arange(4, dtype=np.int64),
            "bool": np.array([True, False]),
            "scalar0d": np.array(2.5),
            "empty": np.zeros((0, 3)),
        },
        "__reserved": {"__array__": "not an array"},  # keys that look like the markers
    }


def assert_same(a, b, where="state"):
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where
        if isinstance(a, np.generic):
            assert a.dtype == b.dtype, where


def test_round_trip_is_exact(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", nested_state())
    assert_same(nested_state(), load_checkpoint(path))


def test_file_is_plain_npz_readable_without_pickle(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", {"model": {"0.weight": np.ones((2, 3))}})
    with np.load(path, allow_pickle=False) as npz:
        assert "model/0.weight" in npz.files
        np.testing.assert_array_equal(npz["model/0.weight"], np.ones((2, 3)))
        meta = json.loads(str(npz["__meta__"]))
    assert meta["format"] == "handgrad-checkpoint"


def test_unstorable_values_are_named(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint: cannot store a object at 'opt/fn'"):
        save_checkpoint(tmp_path / "c.npz", {"opt": {"fn": object()}})
    with pytest.raises(TypeError, match=r"cannot store an object array at 'x'"):
        save_checkpoint(tmp_path / "c.npz", {"x": np.array([{}, 1], dtype=object)})


def test_write_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.npz", {"epoch": 1})

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    assert load_checkpoint(path) == {"epoch": 1}  # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["c.npz"]  # and no temporary file is left


def _corrupt_files(tmp_path):
    good = save_checkpoint(tmp_path / "good.npz", {"model": {"w": np.ones(1000)}})
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a checkpoint at all")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    no_meta = tmp_path / "no_meta.npz"
    np.savez(no_meta, w=np.ones(3))
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, __meta__=np.array(json.dumps({"format": "something-else"})))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __meta__=np.array([{"format": "x"}], dtype=object))
    missing_array = tmp_path / "missing_array.npz"
    meta = {"format": "handgrad-checkpoint", "version": 1, "state": {"w": {"__array__": "w"}}}
    np.savez(missing_array, __meta__=np.array(json.dumps(meta)))
    flipped = tmp_path / "flipped.npz"
    raw = bytearray(data)
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte inside an array: the zip CRC catches it
    flipped.write_bytes(bytes(raw))
    return [truncated, garbage, empty, no_meta, foreign, pickled, missing_array, flipped]


def test_corrupt_files_give_one_line_errors(tmp_path):
    for path in _corrupt_files(tmp_path):
        with pytest.raises(CheckpointError, match="is not a valid handgrad checkpoint") as info:
            load_checkpoint(path)
        assert str(path) in str(info.value), path.name
        assert "\n" not in str(info.value), path.name


def test_flipped_byte_is_caught_by_the_zip_crc(tmp_path):
    # guards the assumption behind the "flipped" case above
    path = next(p for p in _corrupt_files(tmp_path) if p.name == "flipped.npz")
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is not None


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*nope.npz"):
        load_checkpoint(tmp_path / "nope.npz")


# -- the training state --------------------------------------------------------------------
def make_setup(seed: int = 0):
    """A model with Dropout (a generator of its own), Adam, a schedule and early stopping."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(
        nn.Linear(3, 16, rng=rng),
        nn.ReLU(),
        nn.Dropout(0.3, rng=seed + 1),
        nn.Linear(16, 2, rng=rng),
    )
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.StepLR(opt, step_size=2, gamma=0.7)
    loader = DataLoader(X, y, batch_size=8, shuffle=True, rng=seed + 2)
    callbacks = [LRSchedulerCallback(sched), EarlyStopping(monitor="train_loss", patience=100)]
    return model, opt, loader, callbacks


def run(epochs, path=None, resume=None):
    model, opt, loader, callbacks = make_setup()
    if path is not None:
        callbacks.append(ModelCheckpoint(path))
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        loader,
        epochs=epochs,
        callbacks=callbacks,
        resume_from=resume,
    )
    return model, opt, callbacks, history


def without_time(history):
    return [{k: v for k, v in h.items() if k != "time"} for h in history]


def test_resume_gives_exactly_the_uninterrupted_run(tmp_path):
    full_model, full_opt, full_cbs, full_history = run(6)
    path = tmp_path / "c.npz"
    run(3, path=path)
    model, opt, cbs, history = run(6, path=path, resume=path)
    for name, value in full_model.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)
    assert_same(full_opt.state_dict(), opt.state_dict())
    assert without_time(history) == without_time(full_history)
    assert cbs[0].scheduler.state_dict() == full_cbs[0].scheduler.state_dict()
    assert cbs[1].state_dict() == full_cbs[1].state_dict()
    # the dropout generator moved on exactly as in the uninterrupted run
    assert model[2].rng.bit_generator.state == full_model[2].rng.bit_generator.state


def test_resume_without_the_generator_states_would_differ(tmp_path):
    """The control experiment: the resume test above can fail. Restoring everything except the
    data loader's generator gives a different run."""
    path = tmp_path / "c.npz"
    full_model, *_ = run(4)
    run(2, path=path)
    ckpt = load_checkpoint(path)
    model, opt, loader, callbacks = make_setup()
    state = TrainState(model, nn.CrossEntropyLoss(), opt, loader, None, 4, callbacks=callbacks)
    restore_training_state(state, ckpt)
    loader.rng = np.random.default_rng(12345)  # lose the loader's state
    fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=2, callbacks=callbacks)
    diff = [
        not np.array_equal(model.state_dict()[k], v) for k, v in full_model.state_dict().items()
    ]
    assert any(diff)


def test_resume_into_a_different_model_is_a_clear_error(tmp_path):
    path = tmp_path / "c.npz"
    run(1, path=path)
    rng = np.random.default_rng(0)
    other = nn.Sequential(nn.Linear(3, 4, rng=rng), nn.ReLU(), nn.Linear(4, 2, rng=rng))
    _, opt, loader, _callbacks = make_setup()
    with pytest.raises(CheckpointError, match=r"c.npz does not fit this run: .*missing keys"):
        fit(other, nn.CrossEntropyLoss(), opt, loader, epochs=2, resume_from=path)
