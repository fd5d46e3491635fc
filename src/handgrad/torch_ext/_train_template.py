"""Continue a handgrad run in PyTorch: on the CPU, on a GPU, or on many processes with DDP.

Written by ``handgrad export`` next to model.py (the network as plain torch.nn), state.pt
(weights, buffers, the torch.optim state, the learning-rate schedule, the generator that orders
the batches, the history) and data.npz (the training and validation arrays, as handgrad fed
them). It needs torch and numpy, not handgrad::

    python train.py --epochs 20                         # CPU, one process
    python train.py --epochs 20 --device cuda           # one GPU
    torchrun --nproc_per_node=2 train.py --epochs 20    # DDP: gloo on CPU, nccl with cuda

The same batches in the same order as handgrad: each epoch draws one permutation of the
training set from the NumPy generator saved in state.pt (as handgrad's DataLoader does) and cuts
it into batches of ``batch_size``. With N processes each of these global batches is split into
N contiguous parts (sizes differ by at most one); process r computes the loss of part r, scaled
so that DDP's average of the N gradients is the gradient of the mean loss over the whole global
batch. So ``batch_size`` is the global batch (each process takes about batch_size / N of it)
and the learning rate stays as it is: N processes take the same steps as one, to rounding.

Process 0 writes into --out (default: this folder): checkpoint.pt after every epoch (the format
of state.pt; the next call continues from it), metrics.jsonl (handgrad's format, one line per
epoch: ``handgrad report DIR`` redraws the curves and report.md) and config.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from model import build_model

HERE = Path(__file__).resolve().parent
FORMAT = "handgrad-export"  # the "format" entry of state.pt and checkpoint.pt

# The run's settings, written by `handgrad export` from the run folder.
SETTINGS: dict[str, Any] = {}

# accuracy as handgrad's fit(accuracy="auto") picks it from the loss
ACCURACY = {
    "CrossEntropyLoss": "multiclass",
    "NLLLoss": "multiclass",
    "BCEWithLogitsLoss": "logit > 0",
    "BCELoss": "probability > 0.5",
}
# losses whose "mean" averages over every output element, not over the samples
ELEMENTWISE = ("MSELoss", "BCELoss", "BCEWithLogitsLoss")


def fail(message: str) -> None:
    """One line on stderr and exit status 2: the way every error of this script ends."""
    print(f"train.py: error: {message}", file=sys.stderr)
    if dist_running():
        leave(2)  # one of several processes: see leave()
    raise SystemExit(2)


def dist_running() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def leave(status: int) -> None:
    """Exit a process of a torchrun now, without finalizing Python.

    A gloo process group's worker thread frees the last collective's tensors a moment after the
    collective completes. Should Python be finalizing by then, that thread cannot take the GIL
    and the process aborts ("terminate called without an active exception", seen on a busy
    2-core machine). Every file is written and closed before this is called.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"Continue the {SETTINGS['experiment']} run.")
    parser.add_argument(
        "--epochs",
        type=int,
        default=SETTINGS["epochs"],
        help="total epochs, counting those already done (default: %(default)s)",
    )
    parser.add_argument(
        "--max-steps", type=int, default=SETTINGS["max_steps"], help="stop after this many steps"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu or cuda (under torchrun each process takes cuda:LOCAL_RANK)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        help="floating type of weights and data (default: that of the state continued from)",
    )
    parser.add_argument("--out", type=Path, default=HERE, help="where checkpoints and metrics go")
    parser.add_argument(
        "--resume-from",
        type=Path,
        metavar="PATH",
        help="state to continue from (default: OUT/checkpoint.pt if there, else state.pt)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads per process (default: torch's; 1 is often fastest on a busy CPU)",
    )
    parser.add_argument("--quiet", action="store_true", help="no line per epoch")
    return parser.parse_args(argv)


# -- processes and devices ------------------------------------------------------------------
def init_processes(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device). torchrun sets RANK, WORLD_SIZE and LOCAL_RANK."""
    try:
        device = torch.device(device_name)
    except RuntimeError:
        fail(f"--device {device_name!r} is not a device (cpu, cuda, cuda:1, ...)")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: this PyTorch sees no CUDA device (torch.cuda.is_available() is False)")
    if "RANK" not in os.environ:
        return 0, 1, device
    dist = torch.distributed
    if not dist.is_available():
        fail(
            "torchrun needs torch.distributed, which this PyTorch build lacks; run "
            "`python train.py` (one process) or install a PyTorch with distributed support"
        )
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    # nccl runs collectives on GPUs, gloo on CPUs
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


# -- state ----------------------------------------------------------------------------------
def load_state(path: Path) -> dict[str, Any]:
    """state.pt or checkpoint.pt, read without running code (weights_only)."""
    if not path.is_file():
        fail(f"no state at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        # a truncated, corrupt or foreign file; torch's messages run long: the first sentence
        reason = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else ""
        reason = reason or type(e).__name__
        fail(f"{path} is not a readable checkpoint (corrupt or truncated): {reason}")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        fail(f"{path} is not a checkpoint written by handgrad export or train.py")
    return state


def to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary name and rename: a killed process leaves the last checkpoint."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(to_cpu(state), tmp)
    os.replace(tmp, path)


def load_data(dtype: torch.dtype) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{'train': (X, y), 'val': (X, y)} from data.npz; float arrays in ``dtype``."""
    path = HERE / "data.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as e:
        fail(f"{path} cannot be read: {e}")
    data = {}
    for split in ("train", "val"):
        if f"{split}_X" in arrays:
            X, y = (torch.from_numpy(arrays[f"{split}_{k}"]) for k in ("X", "y"))
            data[split] = (X.to(dtype), y.to(dtype) if y.is_floating_point() else y.long())
    return data


def make_scheduler(optimizer: torch.optim.Optimizer) -> Any:
    spec = SETTINGS["scheduler"]
    if spec is None:
        return None
    return getattr(torch.optim.lr_scheduler, spec["name"])(optimizer, **spec["args"])


# -- loss and accuracy ----------------------------------------------------------------------
def like_output(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # handgrad's elementwise losses take targets (N,) for outputs (N, 1)
    if SETTINGS["loss"]["name"] in ELEMENTWISE and y.shape != out.shape:
        return y.reshape(out.shape)
    return y


def count_correct(out: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    kind = ACCURACY.get(SETTINGS["loss"]["name"])
    if kind == "multiclass":
        target = y.argmax(dim=1) if y.ndim == out.ndim else y
        return int((out.argmax(dim=1) == target).sum()), target.numel()
    threshold = 0.0 if kind == "logit > 0" else 0.5
    return int(((out > threshold) == (y > 0.5)).sum()), y.numel()


@torch.no_grad()
def evaluate(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, device: torch.device):
    """Mean loss (and accuracy) in eval mode, in batches, as handgrad's evaluate."""
    name, size = SETTINGS["loss"]["name"], SETTINGS["eval_batch_size"]
    loss_fn = getattr(torch.nn, name)(reduction="sum")
    model.eval()
    total, elements, correct, counted = 0.0, 0, 0, 0
    for i in range(0, len(X), size):
        out = model(X[i : i + size].to(device))
        yb = like_output(out, y[i : i + size].to(device))
        total += loss_fn(out, yb).item()
        elements += out.numel() if name in ELEMENTWISE else len(out)
        if name in ACCURACY:
            c, k = count_correct(out, yb)
            correct, counted = correct + c, counted + k
    model.train()
    # "mean": per output element (MSE, BCE) or per sample; "sum": the sum per sample
    mean = SETTINGS["loss"]["reduction"] == "mean"
    scores = {"loss": total / elements if mean else total / len(X)}
    if counted:
        scores["accuracy"] = correct / counted
    return scores


# -- training -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rank, world, device = init_processes(args.device)
    out_dir = args.out.resolve()
    start = args.resume_from
    if start is None:
        start = out_dir / "checkpoint.pt"
        start = start if start.is_file() else HERE / "state.pt"
    state = load_state(start)
    epoch, step, history = int(state["epoch"]), int(state["step"]), list(state["history"])
    if world > 1:  # every process must start from the same state (machines without shared --out)
        starts: list[Any] = [None] * world
        torch.distributed.all_gather_object(starts, (epoch, step, str(start)))
        if len({s[:2] for s in starts}) > 1:
            if rank != 0:  # process 0 says why, once
                leave(2)
            found = ", ".join(f"{path} at step {n}" for _, n, path in starts)
            fail(
                f"the processes start from different states ({found}); give every machine the "
                "same --out (a shared folder), or copy checkpoint.pt to each"
            )
    done = epoch >= args.epochs or (args.max_steps is not None and step >= args.max_steps)
    if done:
        if rank == 0:
            print(f"nothing to do: {start.name} has {epoch} epochs ({step} steps); pass --epochs")
        finish(world)
        return 0
    args.dtype = args.dtype or state["dtype"]
    dtype = getattr(torch, args.dtype)

    # the model, the optimizer and its schedule, then their saved state, as torch resumes
    model = build_model().to(dtype)
    model.load_state_dict(state["model"])
    model.to(device)
    opt_spec = SETTINGS["optimizer"]
    optimizer = getattr(torch.optim, opt_spec["name"])(model.parameters(), **opt_spec["args"])
    scheduler = make_scheduler(optimizer)
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    # the batch order: the generator handgrad's DataLoader drew from, in its saved state
    order_rng = np.random.Generator(getattr(np.random, state["rng"]["bit_generator"])())
    order_rng.bit_generator.state = state["rng"]

    net = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    data = load_data(dtype)
    X, y = data["train"]
    N, B = len(X), SETTINGS["batch_size"]
    loss_name, reduction = SETTINGS["loss"]["name"], SETTINGS["loss"]["reduction"]
    mean_loss = getattr(torch.nn, loss_name)(reduction=reduction)
    sum_loss = getattr(torch.nn, loss_name)(reduction="sum")

    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        config = json.loads((HERE / "config.json").read_text(encoding="utf-8"))
        if "epochs" in config["config"]:
            config["config"]["epochs"] = args.epochs
        (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
        with open(out_dir / "metrics.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(h) + "\n" for h in history)
        if not args.quiet:
            print(
                f"{SETTINGS['experiment']}: from {start.name} at epoch {epoch} (step {step}) to "
                f"epoch {args.epochs}; {world} process(es) on {device.type}, {args.dtype}, "
                f"global batch {B} (about {-(-B // world)} per process)"
            )

    while not done:
        t0 = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        order = order_rng.permutation(N) if SETTINGS["shuffle"] else np.arange(N)
        stop = N - N % B if SETTINGS["drop_last"] else N
        # Dropout masks: torch's generator, seeded per (seed, epoch, rank) so a resume repeats
        seeds = np.random.SeedSequence([SETTINGS["seed"], epoch, rank])
        torch.manual_seed(int(seeds.generate_state(1)[0]))
        model.train()
        # sum of per-sample losses, samples, correct, counted (this process's part)
        sums = torch.zeros(4, dtype=torch.float64)
        for first in range(0, stop, B):
            batch = order[first : first + B]  # the global batch, as handgrad draws it
            n = len(batch)
            part = torch.from_numpy(np.array_split(batch, world)[rank])
            xb, yb = X[part].to(device), y[part].to(device)
            out = net(xb)
            yb = like_output(out, yb)
            per_sample = out[0].numel() if loss_name in ELEMENTWISE else 1
            if world == 1:
                loss = mean_loss(out, yb)  # exactly handgrad's loss
                total = loss.item() * (n * per_sample if reduction == "mean" else 1)
            else:
                # DDP averages gradients over the processes: scaled by world / n, the parts'
                # gradients average to that of the global batch's mean loss
                local = sum_loss(out, yb)
                loss = local * (world / (n * per_sample) if reduction == "mean" else world)
                total = local.item()
            if not math.isfinite(total):
                fail(f"training diverged: the loss is {total} at epoch {epoch + 1}, step {step}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None and SETTINGS["scheduler"]["interval"] == "step":
                scheduler.step()
            step += 1
            sums[0] += total / per_sample if reduction == "mean" else total
            sums[1] += len(part)
            if loss_name in ACCURACY:
                c, k = count_correct(out.detach(), yb)
                sums[2] += c
                sums[3] += k
            if args.max_steps is not None and step >= args.max_steps:
                break
        if world > 1:
            totals = sums.to(device)
            torch.distributed.all_reduce(totals)
            sums = totals.cpu()
        epoch += 1
        logs: dict[str, Any] = {"epoch": epoch, "step": step}
        logs["train_loss"] = float(sums[0] / sums[1])
        if loss_name in ACCURACY:
            logs["train_accuracy"] = float(sums[2] / sums[3])
        if rank == 0 and "val" in data:
            scores = evaluate(model, *data["val"], device)
            logs.update({f"val_{key}": value for key, value in scores.items()})
        if scheduler is not None and SETTINGS["scheduler"]["interval"] == "epoch":
            scheduler.step()
        logs["lr"] = lr
        logs["time"] = time.perf_counter() - t0
        history.append(logs)
        done = epoch >= args.epochs or (args.max_steps is not None and step >= args.max_steps)
        if rank == 0:
            with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(logs) + "\n")
            save_state(
                out_dir / "checkpoint.pt",
                {
                    "format": FORMAT,
                    "experiment": SETTINGS["experiment"],
                    "epoch": epoch,
                    "step": step,
                    "dtype": args.dtype,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": None if scheduler is None else scheduler.state_dict(),
                    "rng": order_rng.bit_generator.state,
                    "history": history,
                },
            )
            if not args.quiet:
                shown = "  ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items()
                )
                print(shown, flush=True)
    finish(world)
    return 0


def finish(world: int) -> None:
    """The end of every process of a torchrun: wait for the others, then exit (status 0)."""
    if world > 1:
        # wait for process 0's evaluation and checkpoint: a gloo process group torn down while
        # a peer still works can abort the process
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        leave(0)


if __name__ == "__main__":
    raise SystemExit(main())
