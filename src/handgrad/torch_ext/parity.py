"""The ``torch-parity`` experiment: one network, trained twice, step for step.

The same network (same initial weights) is trained on the same mini-batches in handgrad
(``handgrad.nn`` layers, ``CrossEntropyLoss``, ``handgrad.optim.Adam``) and in PyTorch on the
hand-written Functions (``to_torch(model, functions=True)``, ``SoftmaxCrossEntropyFunction``,
``handgrad.torch_ext.Adam``), in float64. After every step the largest difference between any
two corresponding parameters is recorded. Two independent implementations of every forward
pass, backward pass and update that stay within 1e-9 of each other over a whole run are the
strongest evidence that the hand-written gradients are right.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

import handgrad.nn as hnn
from handgrad import optim as hoptim
from handgrad.data import DataLoader, load
from handgrad.torch_ext.bridge import to_torch
from handgrad.torch_ext.functions import SoftmaxCrossEntropyFunction
from handgrad.torch_ext.optim import Adam as TorchAdam

__all__ = ["DATASETS", "TOLERANCE", "build_model", "torch_parity"]

DATASETS = ("circle", "digits")
TOLERANCE = 1e-9  # the largest parameter difference (float64) the experiment accepts


def build_model(dataset: str, rng: Any = 0) -> hnn.Sequential:
    """The network of the experiment, in float64.

    circle: MLP 2-32-32-2 with Tanh and ReLU. digits: (1, 8, 8) images flattened, then
    64-64-10 with BatchNorm1d and ReLU (so the batch-norm backward is compared as well).

    The Linear before BatchNorm has no bias: batch norm subtracts the batch mean, so such a
    bias has a gradient of exactly 0 in exact arithmetic, i.e. rounding noise of ~1e-17 in
    practice, which Adam divides by its own tiny root mean square and turns into steps of
    lr * 1e-17 / eps. Two correct implementations then drift apart on a parameter that does
    nothing (by ~1e-10 over a run); without it they agree to ~1e-14.
    """
    if dataset == "circle":
        return hnn.Sequential(
            hnn.Linear(2, 32, rng=rng, dtype=np.float64),
            hnn.Tanh(),
            hnn.Linear(32, 32, rng=rng, dtype=np.float64),
            hnn.ReLU(),
            hnn.Linear(32, 2, rng=rng, dtype=np.float64),
        )
    if dataset == "digits":
        return hnn.Sequential(
            hnn.Flatten(),
            hnn.Linear(64, 64, bias=False, rng=rng, dtype=np.float64),
            hnn.BatchNorm1d(64, dtype=np.float64),
            hnn.ReLU(),
            hnn.Linear(64, 10, rng=rng, dtype=np.float64),
        )
    raise ValueError(f"torch_parity: unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")


def _max_param_diff(model: hnn.Module, tmodel: torch.nn.Module) -> float:
    tparams = dict(tmodel.named_parameters())
    return max(
        float(np.max(np.abs(p.data - tparams[name].detach().numpy())))
        for name, p in model.named_parameters()
    )


def torch_parity(
    out_dir: str | Path,
    dataset: str = "circle",
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 0.01,
    seed: int = 0,
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train one network in handgrad and in PyTorch side by side; plot and compare.

    Args:
        out_dir: folder for ``torch_parity_<dataset>.png`` and ``torch_parity_<dataset>.md``
            (created if missing).
        dataset: ``'circle'`` or ``'digits'`` (see :func:`build_model` for the networks).
        epochs, batch_size, lr: training with Adam; the batches are shuffled by a generator
            seeded with ``seed``, which also draws the initial weights.
        data_dir: passed to ``handgrad.data.load``.

    Returns:
        dict with ``dataset``, ``steps``, ``final_loss_handgrad``, ``final_loss_torch``,
        ``max_param_diff`` (after the last step), ``max_param_diff_run`` (largest over all
        steps), ``max_loss_diff`` (largest over all steps), ``test_accuracy_handgrad``,
        ``test_accuracy_torch``, ``passed`` (``max_param_diff_run < TOLERANCE``), ``figure``
        and ``report`` (paths).
    """
    if dataset not in DATASETS:
        raise ValueError(f"torch_parity: unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"torch_parity: {name} must be a positive int, got {value!r}")
    if not lr > 0:
        raise ValueError(f"torch_parity: lr must be > 0, got {lr!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The tensors here are tiny: with several threads, torch spends more time waking threads
    # than computing (milliseconds per matmul on a busy machine, microseconds on one thread).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = _run(out, dataset, epochs, batch_size, lr, seed, data_dir)
    finally:
        torch.set_num_threads(threads)
    return result


def _run(
    out: Path,
    dataset: str,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    data_dir: str | Path | None,
) -> dict[str, Any]:

    X, y = load(dataset, "train", seed=seed, data_dir=data_dir)
    Xt, yt = load(dataset, "test", seed=seed, data_dir=data_dir)
    X, Xt = X.astype(np.float64), Xt.astype(np.float64)

    model = build_model(dataset, np.random.default_rng(seed))
    tmodel = to_torch(model, functions=True)  # the same weights, on hand-written Functions
    loss_fn = hnn.CrossEntropyLoss()
    opt = hoptim.Adam(model.parameters(), lr=lr)
    topt = TorchAdam(tmodel.parameters(), lr=lr)
    loader = DataLoader(X, y, batch_size=batch_size, shuffle=True, rng=seed)

    losses_h: list[float] = []
    losses_t: list[float] = []
    diffs: list[float] = [_max_param_diff(model, tmodel)]  # step 0: the copied weights
    model.train()
    tmodel.train()
    for _ in range(epochs):
        for xb, yb in loader:
            # handgrad: forward, backward by hand, update
            opt.zero_grad()
            losses_h.append(loss_fn(model(xb), yb))
            model.backward(loss_fn.backward())
            opt.step()
            # torch: the same batch through the hand-written Functions
            topt.zero_grad()
            tloss = SoftmaxCrossEntropyFunction.apply(
                tmodel(torch.from_numpy(xb)), torch.from_numpy(yb)
            )
            tloss.backward()
            topt.step()
            losses_t.append(float(tloss.detach()))
            diffs.append(_max_param_diff(model, tmodel))

    model.eval()
    tmodel.eval()
    with torch.no_grad():
        logits_t = tmodel(torch.from_numpy(Xt)).numpy()
    logits_h = model(Xt)
    acc_h = float(np.mean(logits_h.argmax(1) == yt))
    acc_t = float(np.mean(logits_t.argmax(1) == yt))

    lh, lt, d = np.array(losses_h), np.array(losses_t), np.array(diffs)
    result: dict[str, Any] = {
        "dataset": dataset,
        "steps": len(losses_h),
        "final_loss_handgrad": float(lh[-1]),
        "final_loss_torch": float(lt[-1]),
        "max_param_diff": float(d[-1]),
        "max_param_diff_run": float(d.max()),
        "max_loss_diff": float(np.max(np.abs(lh - lt))),
        "max_test_logit_diff": float(np.max(np.abs(logits_h - logits_t))),
        "test_accuracy_handgrad": acc_h,
        "test_accuracy_torch": acc_t,
        "tolerance": TOLERANCE,
        "passed": bool(d.max() < TOLERANCE),
    }
    result["figure"] = str(_plot(out, dataset, lh, lt, d))
    result["report"] = str(_write_report(out, result, model, epochs, batch_size, lr, seed))
    return result


def _plot(out: Path, dataset: str, lh: np.ndarray, lt: np.ndarray, d: np.ndarray) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(lh) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(steps, lh, lw=2.5, alpha=0.6, label="handgrad (NumPy)")
    ax1.plot(steps, lt, "--", lw=1.2, color="black", label="PyTorch, hand-written Functions")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss (batch)")
    ax1.set_title(f"{dataset}: the two loss curves")
    ax1.legend()
    # a difference of exactly 0 cannot sit on a log axis: it is drawn at the floor
    floor = 1e-20
    ax2.semilogy(np.arange(len(d)), np.maximum(d, floor), color="tab:red")
    ax2.axhline(TOLERANCE, ls=":", color="gray", label=f"tolerance {TOLERANCE:g}")
    ax2.set_ylim(floor / 10, max(1.0, float(d.max()) * 10))
    ax2.set_xlabel("step")
    ax2.set_ylabel("max |parameter difference|")
    ax2.set_title(f"largest parameter difference (0 drawn at {floor:g})")
    ax2.legend()
    fig.tight_layout()
    path = out / f"torch_parity_{dataset}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_report(
    out: Path,
    r: dict[str, Any],
    model: hnn.Module,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> Path:
    layers = ", ".join(type(m).__name__ for m in model.children())
    verdict = "coincide" if r["passed"] else "DIVERGE"
    text = f"""## torch-parity: {r["dataset"]}

The same float64 network ({layers}) with the same initial weights was trained on the same
{r["steps"]} mini-batches ({epochs} epochs, batch size {batch_size}, Adam lr {lr}, seed {seed})
in handgrad and in PyTorch running on the hand-written Functions and Adam of
`handgrad.torch_ext`. The two runs {verdict}.

![loss curves and parameter difference](torch_parity_{r["dataset"]}.png)

| quantity | handgrad | PyTorch |
|---|---|---|
| final training loss | {r["final_loss_handgrad"]:.6f} | {r["final_loss_torch"]:.6f} |
| test accuracy | {r["test_accuracy_handgrad"]:.4f} | {r["test_accuracy_torch"]:.4f} |

- largest parameter difference after the last step: {r["max_param_diff"]:.3e}
- largest parameter difference over the run: {r["max_param_diff_run"]:.3e}
  (tolerance {r["tolerance"]:g})
- largest difference between the two batch losses: {r["max_loss_diff"]:.3e}
- largest difference between test logits: {r["max_test_logit_diff"]:.3e}
"""
    path = out / f"torch_parity_{r['dataset']}.md"
    path.write_text(text)
    return path
