"""handgrad against the packages people would use instead: one command, one table.

    python bench/bench_peers.py            # everything: sized for about 5 minutes on 2 cores
    python bench/bench_peers.py --quick    # small sizes, under a minute: a smoke run
    python bench/bench_peers.py --only mlp,adam --rounds 7

The peers are the real packages from PyPI, installed in the bench's own environment:

    python -m venv .venv-bench && .venv-bench/bin/pip install -e . -r bench/requirements.txt

Comparisons (``--only`` takes their names):

  scalar   handgrad.scalar against micrograd 0.1.0: a 2-16-16-1 ReLU MLP, mean hinge loss on
           100 points, forward + backward; (a) the same model code driving each library's
           Value (the same graph, node for node), with Python's collector on and paused for
           both; (b) each library's own MLP class. The rows of ``bench_scalar.py``.
  mlp      784-512-512-10 ReLU MLP, batch 128, cross-entropy, SGD with momentum 0.9: handgrad
           against PyTorch (CPU) and against the plain NumPy loop ``NumpyMLP`` below.
  cnn      the mnist-cnn network (conv 32, pool, conv 64, pool, linear; padding 1), batch 64,
           Adam: handgrad against PyTorch, through ``bench_cnn.py``'s own steps.
           Both also time the step's GEMMs alone (``gemm_step``), beside the steps: the floor
           no NumPy step on those products can beat, as a ratio to PyTorch's step.
  adam     one Adam step alone on the MLP's parameter shapes (670 000 floats, fixed gradients):
           handgrad.optim.Adam against torch.optim.Adam as constructed by default (on CPU that
           is the for-loop implementation), with ``foreach=True`` and with ``fused=True``.
  sklearn  784-256-128-10 ReLU classifier, Adam lr 1e-3, batch 128, no weight penalty, the same
           number of epochs: handgrad against scikit-learn's MLPClassifier (one ``partial_fit``
           per epoch, its Adam state kept), seconds per epoch and test accuracy. Fashion-MNIST
           when its files are on disk (Debian's package, or handgrad's data folder), else
           ``--samples`` synthetic examples labelled by a random linear teacher.
  memory   peak resident memory (VmHWM) of a mnist-cnn training epoch, each library in a fresh
           process of its own that imports only that library.

Fairness: float32 throughout; the same weights and data, and every comparison checks that the
libraries compute the same loss and gradients (or the same update) before it times anything.
BLAS thread pools are pinned to ``--threads`` with threadpoolctl and ``torch.set_num_threads``,
and the table says how many. The libraries alternate inside one process, in blocks of steps
with a pause before each block (idle OpenBLAS and OpenMP workers spin for a while after a
parallel call and would steal a core from the other library; see ``bench_cnn.py``). A round is
one epoch (or one pass) of each library; the ratio handgrad / peer is taken per round and the
table gives its median, min and max.

The table is printed and written as Markdown to ``--out`` (default ``bench/results/peers.md``,
or ``peers-quick.md`` with ``--quick``) with the date, the machine, the versions, the thread
count and the exact command; the raw per-round numbers go to the ``.json`` file beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import importlib.util
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
INSTALL_HINT = "pip install -r bench/requirements.txt"

Step = Callable[[int], None]  # runs one training step on batch number i

# ---------------------------------------------------------------------------------------------
# Results and the table
# ---------------------------------------------------------------------------------------------


class Skipped(Exception):
    """A comparison that cannot run here (a peer is not installed); the message says why."""


@dataclass
class Result:
    """One row of the table: handgrad's and one peer's measurement, one value per round.

    ``unit`` is how the values read ("ms", "s", "MB", "%"); ``ratio`` False for rows whose
    handgrad / peer quotient means nothing (accuracy); ``skipped`` says why a row is empty.
    """

    comparison: str
    peer: str
    unit: str
    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)
    note: str = ""
    ratio: bool = True
    skipped: str = ""

    def ratios(self) -> list[float]:
        """handgrad / peer, round by round."""
        return [a / b for a, b in zip(self.ours, self.theirs, strict=True)]


COLUMNS = (
    "comparison",
    "peer",
    "handgrad",
    "peer's",
    "handgrad / peer (median)",
    "min",
    "max",
    "rounds",
    "notes",
)


def format_value(value: float, unit: str) -> str:
    if unit == "%":
        return f"{100 * value:.2f}%"
    if unit == "MB":
        return f"{value:.0f} MB"
    digits = 3 if value < 10 else 2 if value < 100 else 1 if value < 1000 else 0
    return f"{value:.{digits}f} {unit}"


def format_ratio(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def table_row(result: Result) -> list[str]:
    """The cells of one result, in the order of ``COLUMNS``."""
    if result.skipped:
        return [result.comparison, result.peer, "", "", "skipped", "", "", "0", result.skipped]
    ours = format_value(statistics.median(result.ours), result.unit)
    theirs = format_value(statistics.median(result.theirs), result.unit)
    if result.ratio:
        ratios = result.ratios()
        spread = [format_ratio(f(ratios)) for f in (statistics.median, min, max)]
    else:
        spread = ["-", "-", "-"]
    rounds = str(len(result.ours))
    return [result.comparison, result.peer, ours, theirs, *spread, rounds, result.note]


def markdown_table(results: Sequence[Result]) -> str:
    """The results as a Markdown table with the columns of ``COLUMNS``; handgrad's and the
    peer's columns are medians over the rounds."""
    lines = ["| " + " | ".join(COLUMNS) + " |"]
    lines.append("|" + "|".join("---:" if c in COLUMNS[2:8] else "---" for c in COLUMNS) + "|")
    for result in results:
        cells = [cell.replace("|", "\\|") for cell in table_row(result)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def environment_lines(env: dict[str, str], more: Sequence[str] = ()) -> str:
    """The Markdown list of what a report ran on (see :func:`environment`), then ``more``."""
    lines = [
        f"machine: {env['machine']}",
        f"threads: {env['threads']}",
        f"versions: {env['versions']}",
        f"BLAS and OpenMP libraries loaded: {env['blas']}",
        f"environment: {env['environ']}",
        f"load average (1 min) at the start and at the end: {env['load']}",
        *more,
    ]
    return "\n".join(f"- {line}" for line in lines) + "\n"


def report_markdown(results: Sequence[Result], env: dict[str, str], quick: bool) -> str:
    """The whole report: what produced it, on what, and the table."""
    parts = [
        "# handgrad against its peers\n",
        f"Produced by `{env['command']}` on {env['date']}.\n",
    ]
    if quick:
        parts.append(
            "**Quick run**: small sizes and few rounds, a smoke test of the benchmark; the "
            "ratios are noisy and are not numbers to quote.\n"
        )
    parts.append(environment_lines(env, [f"sizes: {env['sizes']}"]))
    parts.append(markdown_table(results))
    parts.append(
        "handgrad / peer is taken per round (time, or memory: below 1 means handgrad takes "
        "less); the handgrad and peer's columns are medians over the rounds. Each comparison "
        "ran in one process, the libraries alternating, except the memory rows (one fresh "
        "process per library and round).\n"
    )
    return "\n".join(parts)


def write_report(
    path: Path, results: Sequence[Result], env: dict[str, str], quick: bool
) -> tuple[Path, Path]:
    """Write the Markdown report to ``path`` and the raw numbers to ``path`` with ``.json``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_markdown(results, env, quick), encoding="utf-8")
    raw = path.with_suffix(".json")
    data = {"environment": env, "quick": quick, "results": [asdict(r) for r in results]}
    raw.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path, raw


# ---------------------------------------------------------------------------------------------
# Sizes, threads, the machine
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much each comparison does; ``FULL`` is the default, ``QUICK`` the smoke run."""

    rounds: int = 5
    pause: float = 0.15
    scalar_points: int = 100
    mlp_samples: int = 60_000
    mlp_block: int = 50
    cnn_images: int = 10_000
    cnn_block: int = 10
    adam_steps: int = 100
    adam_block: int = 25
    samples: int | None = None  # classifier training samples: None = all 60 000
    test_samples: int | None = None  # None = all 10 000
    epochs: int = 5
    memory_images: int = 10_000
    memory_rounds: int = 3


FULL = Sizes()
QUICK = Sizes(
    rounds=3,
    pause=0.1,
    mlp_samples=3_840,
    mlp_block=10,
    cnn_images=640,
    adam_steps=30,
    adam_block=10,
    samples=6_000,
    test_samples=2_000,
    epochs=2,
    memory_images=640,
    memory_rounds=1,
)


def need(module: str) -> None:
    """Raise Skipped unless ``module`` can be imported."""
    if importlib.util.find_spec(module) is None:
        raise Skipped(f"{module} not installed: {INSTALL_HINT}")


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """The commit the bench ran on, and whether the tree had changes (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"commit {head}" + (", with uncommitted changes" if dirty else "")


def command_line(args: Sequence[str], script_file: str = __file__) -> str:
    """The script ``script_file`` (this one by default) with ``args`` as a command to paste in
    the repository root."""
    script = Path(script_file).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:  # pragma: no cover - only when the file is copied elsewhere
        pass
    return shlex.join(["python", str(script), *args])


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """Pin every loaded BLAS/OpenMP pool to ``threads`` (threadpoolctl) and torch's intra-op
    pool inside the block; both are restored on exit. The peers are imported first, so that
    their libraries are loaded when the limit is applied."""
    for module in ("torch", "sklearn.neural_network"):
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            importlib.import_module(module)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise SystemExit(f"threadpoolctl not installed: {INSTALL_HINT}") from None
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch else None
    with threadpool_limits(limits=threads):
        if torch:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(torch_threads)


def owner(filepath: str) -> str:
    """The package that ships a shared library: ``numpy`` for .../numpy.libs/libopenblas.so."""
    parts = Path(filepath).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts[:-1]:
            return parts[parts.index(marker) + 1].removesuffix(".libs")
    return Path(filepath).name or "?"


def environment(args: Sequence[str], threads: int, sizes: Sizes) -> dict[str, str]:
    """What produced the numbers: date, machine, versions, threads, command."""
    from threadpoolctl import threadpool_info

    pools = [
        f"{owner(p.get('filepath', ''))}: "
        + " ".join(str(p[k]) for k in ("internal_api", "version") if p.get(k))
        + (f" ({p['architecture']} kernels)" if p.get("architecture") else "")
        + f", threads={p.get('num_threads')}"
        for p in threadpool_info()
    ]
    torch_threads = (
        f", torch.set_num_threads({sys.modules['torch'].get_num_threads()})"
        if "torch" in sys.modules
        else ""
    )
    versions = [
        f"Python {platform.python_version()}",
        f"handgrad {version('handgrad')} ({git_commit()})",
        *(
            f"{name} {version(name)}"
            for name in ("numpy", "torch", "scikit-learn", "micrograd", "threadpoolctl")
        ),
    ]
    knobs = ("OPENBLAS_THREAD_TIMEOUT", "HANDGRAD_NUM_THREADS", "OMP_NUM_THREADS")
    environ = ", ".join(f"{k}={os.environ[k]}" for k in knobs if k in os.environ)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(args),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores ({platform.system()} "
        f"{platform.machine()})",
        "threads": f"{threads} (BLAS pinned with threadpoolctl{torch_threads})",
        "versions": ", ".join(versions),
        "blas": "; ".join(pools) or "none reported",
        "environ": environ or "none of " + ", ".join(knobs) + " set",
        "load": f"{os.getloadavg()[0]:.2f}",
        "sizes": ", ".join(f"{k}={v}" for k, v in asdict(sizes).items()),
    }


def alternate(
    steps: dict[str, Step], n_steps: int, rounds: int, block: int, pause: float
) -> dict[str, list[float]]:
    """Seconds per round of each library: every round runs ``n_steps`` steps of each, the
    libraries taking turns block by block (``bench_cnn.alternate_blocks``)."""
    from bench_cnn import alternate_blocks

    blocks = alternate_blocks(steps, n_steps, rounds, block, pause)
    return {name: times.sum(axis=1).tolist() for name, times in blocks.items()}


def per_step_ms(seconds: Sequence[float], n_steps: int) -> list[float]:
    return [1e3 * s / n_steps for s in seconds]


def max_rel_err(ours: Sequence[np.ndarray], theirs: Sequence[np.ndarray]) -> float:
    """The largest |a - b| / max|b| over pairs of arrays (each pair scaled by its own size)."""
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        b = np.asarray(b, dtype=np.float64)
        scale = max(float(np.abs(b).max()), 1e-12)
        worst = max(worst, float(np.abs(np.asarray(a, dtype=np.float64) - b).max()) / scale)
    return worst


# ---------------------------------------------------------------------------------------------
# the GEMM floor: a training step's matrix products alone, timed beside the step
# ---------------------------------------------------------------------------------------------

Product = tuple[np.ndarray, np.ndarray]  # (left, right) of one GEMM, views as handgrad passes them


def gemm_flops(products: Sequence[Product]) -> int:
    """FLOPs of the products (2 per multiply-add)."""
    return sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in products)


def gemm_step(products_of: Callable[[int], list[Product]], batches: Sequence[slice]) -> Step:
    """A "step" that runs only the GEMMs of batch ``i``'s training step, into preallocated
    outputs: no allocation, no elementwise pass, no Python layer. No step built on these
    products in NumPy can be faster, so its time is the floor beside the step's."""
    by_size: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for s in batches:
        n = s.stop - s.start
        if n not in by_size:
            by_size[n] = [
                (a, b, np.empty((a.shape[0], b.shape[1]), dtype=np.float32))
                for a, b in products_of(n)
            ]

    def step(i: int) -> None:
        s = batches[i]
        for a, b, out in by_size[s.stop - s.start]:
            np.matmul(a, b, out=out)

    return step


def _f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def mlp_products(sizes: Sequence[int], batch: int, seed: int = 0) -> list[Product]:
    """The GEMMs of one step of the ReLU MLP ``sizes`` as ``nn.Linear`` computes them: forward
    ``x @ W.T``, weight gradient ``g.T @ x``, input gradient ``g @ W`` (not for the first
    layer, whose input is the data)."""
    rng = np.random.default_rng(seed)
    products: list[Product] = []
    for k, (a, b) in enumerate(itertools.pairwise(sizes)):
        x, w, g = _f32(rng, batch, a), _f32(rng, b, a), _f32(rng, batch, b)
        products += [(x, w.T), (g.T, x)] + ([(g, w)] if k else [])
    return products


def cnn_products(batch: int, seed: int = 0) -> list[Product]:
    """The GEMMs of one mnist-cnn step (padding 1) as ``nn.Conv2d`` and ``nn.Linear`` compute
    them: per convolution ``W @ cols`` forward (the bias folded in as one more row of ones),
    ``cols @ grad^T`` for the weight (and bias) gradient, ``W^T @ grad`` for the columns'
    gradient (not for the first convolution, whose input is the data); then the linear layer."""
    rng = np.random.default_rng(seed)
    products: list[Product] = []
    for c, o, side, first in ((1, 32, 28, True), (32, 64, 14, False)):
        k, m = c * 9, batch * side * side
        w, cols, g = _f32(rng, o, k + 1), _f32(rng, k + 1, m), _f32(rng, o, m)
        products += [(w, cols), (cols, g.T)] + ([] if first else [(w[:, :k].T, g)])
    x, w, g = _f32(rng, batch, 64 * 7 * 7), _f32(rng, 10, 64 * 7 * 7), _f32(rng, batch, 10)
    return [*products, (x, w.T), (g.T, x), (g, w)]


# ---------------------------------------------------------------------------------------------
# scalar: handgrad.scalar against micrograd
# ---------------------------------------------------------------------------------------------


def compare_scalar(sizes: Sizes, seed: int) -> list[Result]:
    import bench_scalar

    if not bench_scalar.has_micrograd():
        raise Skipped(bench_scalar.MICROGRAD_MISSING)
    X, y = bench_scalar.make_data(sizes.scalar_points, seed)
    rows = bench_scalar.micrograd_rows(2, [16, 16, 1], seed)
    bench_scalar.check_rows(rows, X, y)  # same loss and gradients, or RuntimeError
    times, nodes = bench_scalar.time_rows(rows, X, y, sizes.rounds)
    task = f"2-16-16-1 ReLU MLP, hinge loss, {sizes.scalar_points} points, fwd + bwd"
    results = []
    for what, theirs, ours in bench_scalar.MICROGRAD_PAIRS:
        results.append(
            Result(
                f"scalar engine, {what}",
                "micrograd",
                "ms",
                [1e3 * sum(fb) for fb in times[ours]],
                [1e3 * sum(fb) for fb in times[theirs]],
                note=f"{task}; graph nodes: handgrad {nodes[ours]}, micrograd {nodes[theirs]}",
            )
        )
    return results


# ---------------------------------------------------------------------------------------------
# mlp: handgrad against PyTorch and a plain NumPy loop
# ---------------------------------------------------------------------------------------------


class NumpyMLP:
    """A ReLU MLP with softmax cross-entropy and SGD with momentum, written straight in NumPy
    the way a careful person writes it by hand: float32 end to end, weights ``(out, in)`` as
    PyTorch stores them, in-place operations where they come naturally, no framework.

    ``weights`` is ``[W0, b0, W1, b1, ...]``; the update is PyTorch's SGD with momentum
    (dampening 0): ``v = momentum * v + g``, ``w -= lr * v``.
    """

    def __init__(
        self, weights: Sequence[np.ndarray], lr: float = 0.01, momentum: float = 0.9
    ) -> None:
        self.params = [np.array(w, dtype=np.float32) for w in weights]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.velocity = [np.zeros_like(p) for p in self.params]
        self.lr, self.momentum = lr, momentum

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy of the batch ``x`` (N, in), labels ``y`` (N,); fills ``grads``."""
        n, layers = len(x), len(self.params) // 2
        acts = [x]  # the input of each layer
        h = x
        for i in range(layers):
            h = h @ self.params[2 * i].T  # (N, out)
            h += self.params[2 * i + 1]
            if i < layers - 1:
                np.maximum(h, 0.0, out=h)
            acts.append(h)
        z = acts.pop()  # logits (N, C), overwritten below
        rows = np.arange(n)
        z -= z.max(axis=1, keepdims=True)  # log-sum-exp shift: exp never overflows
        picked = z[rows, y]
        np.exp(z, out=z)
        total = z.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(total[:, 0]) - picked))
        z /= total  # softmax
        z[rows, y] -= 1.0  # d loss / d logits = (p - onehot) / N
        z *= 1.0 / n
        g = z
        for i in reversed(range(layers)):
            h = acts[i]
            np.matmul(g.T, h, out=self.grads[2 * i])
            np.sum(g, axis=0, out=self.grads[2 * i + 1])
            if i > 0:  # no gradient for the data
                g = g @ self.params[2 * i]
                g *= h > 0  # ReLU's derivative, read from its output
        return loss

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss = self.loss_and_grads(x, y)
        for p, g, v in zip(self.params, self.grads, self.velocity, strict=True):
            v *= self.momentum
            v += g
            p -= self.lr * v
        return loss


def mlp_models(sizes: Sequence[int], seed: int) -> tuple[Any, Any, NumpyMLP]:
    """The same ReLU MLP (PyTorch's initialisation, drawn by handgrad) in handgrad, PyTorch and
    ``NumpyMLP``: identical float32 weights."""
    import torch

    import handgrad.nn as nn

    rng = np.random.default_rng(seed)
    layers: list[Any] = []
    t_layers: list[Any] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b, rng=rng))
        t_layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            t_layers.append(torch.nn.ReLU())
    ours = nn.Sequential(*layers)
    state = ours.state_dict()
    theirs = torch.nn.Sequential(*t_layers)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return ours, theirs, NumpyMLP(list(state.values()))


def mlp_gradients(
    models: tuple[Any, Any, NumpyMLP], x: np.ndarray, y: np.ndarray
) -> dict[str, tuple[float, list[np.ndarray]]]:
    """Loss and parameter gradients (``0.weight``, ``0.bias``, ...) of one batch, per library;
    every library's gradients are left at zero (or None) afterwards."""
    import torch

    import handgrad.nn as nn

    ours, theirs, plain = models
    loss_fn = nn.CrossEntropyLoss()
    ours.zero_grad()
    loss = loss_fn(ours(x), y)
    ours.backward(loss_fn.backward(), input_grad=False)
    out = {"handgrad": (float(loss), [p.grad.copy() for p in ours.parameters()])}
    ours.zero_grad()
    theirs.zero_grad()
    t_loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
    t_loss.backward()
    out["pytorch"] = (t_loss.item(), [p.grad.numpy().copy() for p in theirs.parameters()])
    theirs.zero_grad()
    loss = plain.loss_and_grads(x, y)
    out["numpy"] = (loss, [g.copy() for g in plain.grads])
    return out


def check_mlp(models: tuple[Any, Any, NumpyMLP], x: np.ndarray, y: np.ndarray) -> None:
    """Raise RuntimeError unless the three compute the same loss and gradients (float32)."""
    got = mlp_gradients(models, x, y)
    loss, grads = got["handgrad"]
    for name in ("pytorch", "numpy"):
        other_loss, other_grads = got[name]
        err = max_rel_err(grads, other_grads)
        if abs(loss - other_loss) > 1e-4 * max(1.0, abs(loss)) or err > 1e-3:
            raise RuntimeError(
                f"MLP: {name} differs from handgrad: loss {other_loss} vs {loss}, gradients "
                f"by {err:.2e} (relative)"
            )


def compare_mlp(sizes: Sizes, seed: int) -> list[Result]:
    need("torch")
    import torch

    import handgrad.nn as nn
    from bench_mlp import BATCH, SIZES, make_data
    from handgrad.optim import SGD

    X, y = make_data(sizes.mlp_samples, seed)
    models = mlp_models(SIZES, seed)
    check_mlp(models, X[:BATCH], y[:BATCH])
    ours, theirs, plain = models
    loss_fn = nn.CrossEntropyLoss()
    opt = SGD(ours.parameters(), lr=0.01, momentum=0.9)
    t_opt = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)
    n_steps = len(X) // BATCH

    def step_ours(i: int) -> None:
        s = slice(i * BATCH, (i + 1) * BATCH)
        opt.zero_grad()
        loss_fn(ours(X[s]), y[s])
        ours.backward(loss_fn.backward(), input_grad=False)  # torch skips it too
        opt.step()

    def step_torch(i: int) -> None:
        s = slice(i * BATCH, (i + 1) * BATCH)
        t_opt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(tX[s]), ty[s]).backward()
        t_opt.step()

    def step_numpy(i: int) -> None:
        s = slice(i * BATCH, (i + 1) * BATCH)
        plain.step(X[s], y[s])

    batches = [slice(i * BATCH, (i + 1) * BATCH) for i in range(n_steps)]
    step_floor = gemm_step(lambda n: mlp_products(SIZES, n, seed), batches)
    steps = {
        "handgrad": step_ours, "pytorch": step_torch, "numpy": step_numpy, "floor": step_floor,
    }  # fmt: skip
    times = alternate(steps, n_steps, sizes.rounds, sizes.mlp_block, sizes.pause)
    ms = {name: per_step_ms(t, n_steps) for name, t in times.items()}
    what = f"MLP {'-'.join(map(str, SIZES))} training step, batch {BATCH}, SGD momentum"
    note = f"per step; a round is {n_steps} steps ({n_steps * BATCH} random samples) each"
    flops = gemm_flops(mlp_products(SIZES, BATCH, seed))
    return [
        Result(what, "PyTorch (CPU)", "ms", ms["handgrad"], ms["pytorch"], note=note),
        Result(what, "plain NumPy loop", "ms", ms["handgrad"], ms["numpy"], note=note),
        floor_result(what, ms, flops),
    ]


def floor_result(what: str, ms: dict[str, list[float]], flops: int) -> Result:
    """The row of the GEMM floor against PyTorch: the lowest ratio NumPy's BLAS allows."""
    hg, floor = float(np.median(ms["handgrad"])), float(np.median(ms["floor"]))
    rate = flops / (floor * 1e-3) / 1e9
    return Result(
        f"{what}: its GEMMs alone, the floor (handgrad column)",
        "PyTorch (CPU)",
        "ms",
        ms["floor"],
        ms["pytorch"],
        note=(
            f"the step's matrix products only, as handgrad's layers shape them, into "
            f"preallocated outputs: {flops / 1e6:.0f} MFLOP per step at {rate:.0f} GFLOP/s; "
            f"handgrad's step takes {hg / floor:.2f}x its floor"
        ),
    )


# ---------------------------------------------------------------------------------------------
# cnn: the mnist-cnn step, handgrad against PyTorch (bench_cnn.py's steps)
# ---------------------------------------------------------------------------------------------

CNN_BATCH = 64


def cnn_data(images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed random MNIST-shaped images (N, 1, 28, 28) and labels: compute, not loading."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((images, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, images)


def compare_cnn(sizes: Sizes, seed: int) -> list[Result]:
    need("torch")
    from bench_cnn import Geometry, make_steps

    x, y = cnn_data(sizes.cnn_images, seed)
    # make_steps checks the loss and every gradient against torch's before returning
    step_ours, step_torch, parts = make_steps(
        Geometry(1), x, y, CNN_BATCH, "adam", np.random.default_rng(seed)
    )
    step_floor = gemm_step(lambda n: cnn_products(n, seed), parts)
    steps = {"handgrad": step_ours, "pytorch": step_torch, "floor": step_floor}
    times = alternate(steps, len(parts), sizes.rounds, sizes.cnn_block, sizes.pause)
    ms = {name: per_step_ms(t, len(parts)) for name, t in times.items()}
    what = f"mnist-cnn training step (padding 1), batch {CNN_BATCH}, Adam"
    return [
        Result(
            what,
            "PyTorch (CPU)",
            "ms",
            ms["handgrad"],
            ms["pytorch"],
            note=f"per step; a round is {sizes.cnn_images} random images each",
        ),
        floor_result(what, ms, gemm_flops(cnn_products(CNN_BATCH, seed))),
    ]


# ---------------------------------------------------------------------------------------------
# adam: one optimizer step alone
# ---------------------------------------------------------------------------------------------

# torch.optim.Adam's keyword arguments for each variant timed against handgrad's Adam
TORCH_ADAM_VARIANTS: dict[str, dict[str, bool]] = {
    "torch.optim.Adam, default (for-loop on CPU)": {},
    "torch.optim.Adam(foreach=True)": {"foreach": True},
    "torch.optim.Adam(fused=True)": {"fused": True},
}


def mlp_shapes(sizes: Sequence[int]) -> list[tuple[int, ...]]:
    """The parameter shapes of the MLP ``sizes``: (out, in) and (out,) per layer."""
    return [s for a, b in itertools.pairwise(sizes) for s in ((b, a), (b,))]


def adam_pairs(
    shapes: Sequence[tuple[int, ...]], seed: int, variants: dict[str, dict[str, bool]]
) -> tuple[Any, dict[str, Any]]:
    """handgrad's Adam and one torch Adam per variant, each over its own copy of the same
    float32 parameters and (fixed) gradients."""
    import torch

    import handgrad.nn as nn
    from handgrad.optim import Adam

    rng = np.random.default_rng(seed)
    data = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    grads = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    params = [nn.Parameter(d) for d in data]
    for p, g in zip(params, grads, strict=True):
        p.grad[...] = g
    ours = Adam(params, lr=1e-3)
    theirs = {}
    for name, kwargs in variants.items():
        tensors = [torch.tensor(d, requires_grad=True) for d in data]
        for t, g in zip(tensors, grads, strict=True):
            t.grad = torch.tensor(g)
        theirs[name] = torch.optim.Adam(tensors, lr=1e-3, **kwargs)
    return ours, theirs


def adam_max_diff(ours: Any, theirs: Any) -> float:
    """The largest |difference| between the two optimizers' parameters."""
    pairs = zip(ours.param_groups[0]["params"], theirs.param_groups[0]["params"], strict=True)
    return max(float(np.abs(p.data - t.detach().numpy()).max()) for p, t in pairs)


def check_adam(shapes: Sequence[tuple[int, ...]], seed: int, steps: int = 3) -> dict[str, float]:
    """The largest parameter difference from handgrad's after ``steps`` updates, per variant."""
    ours, theirs = adam_pairs(shapes, seed, TORCH_ADAM_VARIANTS)
    for _ in range(steps):
        ours.step()
        for opt in theirs.values():
            opt.step()
    return {name: adam_max_diff(ours, opt) for name, opt in theirs.items()}


def compare_adam(sizes: Sizes, seed: int) -> list[Result]:
    need("torch")
    from bench_mlp import SIZES

    shapes = mlp_shapes(SIZES)
    for name, diff in check_adam(shapes, seed).items():
        if diff > 1e-5:  # the updates are 1e-3 in size
            raise RuntimeError(f"Adam: {name} differs from handgrad's by {diff:.2e}")
    ours, theirs = adam_pairs(shapes, seed, TORCH_ADAM_VARIANTS)
    steps: dict[str, Step] = {"handgrad": lambda i: ours.step()}
    for name, opt in theirs.items():
        steps[name] = lambda i, opt=opt: opt.step()
    n = sizes.adam_steps
    times = alternate(steps, n, sizes.rounds, sizes.adam_block, sizes.pause)
    ms = {name: per_step_ms(t, n) for name, t in times.items()}
    floats = sum(int(np.prod(s)) for s in shapes)
    return [
        Result(
            f"Adam step alone, the MLP's {len(shapes)} parameters ({floats} floats)",
            name,
            "ms",
            ms["handgrad"],
            ms[name],
            note=f"per step; a round is {n} steps each",
        )
        for name in theirs
    ]


# ---------------------------------------------------------------------------------------------
# sklearn: an MLP classifier, epoch time and accuracy
# ---------------------------------------------------------------------------------------------

HIDDEN = (256, 128)
SK_BATCH = 128


def synthetic_classification(
    n_train: int, n_test: int, seed: int, features: int = 784, classes: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian inputs labelled by a random linear teacher (learnable, not separable by
    chance): float32 X (N, features), int64 y (N,), train and test."""
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal((features, classes), dtype=np.float32)
    X = rng.standard_normal((n_train + n_test, features), dtype=np.float32)
    y = (X @ teacher + rng.standard_normal((len(X), classes), dtype=np.float32)).argmax(axis=1)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def classifier_data(
    samples: int | None, test_samples: int | None, seed: int, synthetic: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Fashion-MNIST (flattened, in [0, 1]) when its files are on disk, else synthetic data;
    and a description of what was used."""
    from handgrad.data import DataError, load

    if not synthetic:
        try:
            train = load("fashion-mnist", "train", download=False, flatten=True, n=samples)
            test = load("fashion-mnist", "test", download=False, flatten=True, n=test_samples)
        except DataError as err:
            print(f"  Fashion-MNIST not found ({str(err).splitlines()[0][:120]}...); synthetic")
        else:
            return *train, *test, f"Fashion-MNIST, {len(train)} train / {len(test)} test"
    n_train, n_test = samples or 60_000, test_samples or 10_000
    data = synthetic_classification(n_train, n_test, seed)
    return *data, f"synthetic (random linear teacher), {n_train} train / {n_test} test"


def compare_sklearn(sizes: Sizes, seed: int, synthetic: bool = False) -> list[Result]:
    need("sklearn")
    from sklearn.neural_network import MLPClassifier

    import handgrad.nn as nn
    from handgrad.data import DataLoader
    from handgrad.optim import Adam

    Xtr, ytr, Xte, yte, what = classifier_data(sizes.samples, sizes.test_samples, seed, synthetic)
    classes = np.arange(10)
    theirs = MLPClassifier(
        hidden_layer_sizes=HIDDEN, activation="relu", solver="adam", alpha=0.0,
        batch_size=SK_BATCH, learning_rate_init=1e-3, shuffle=True, random_state=seed,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    dims = (Xtr.shape[1], *HIDDEN, 10)
    layers: list[Any] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers += [nn.Linear(a, b, rng=rng)] + ([nn.ReLU()] if i < len(dims) - 2 else [])
    ours = nn.Sequential(*layers)
    loss_fn, opt = nn.CrossEntropyLoss(), Adam(ours.parameters(), lr=1e-3)
    loader = DataLoader(Xtr, ytr, batch_size=SK_BATCH, shuffle=True, rng=rng)

    def epoch_ours() -> None:
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(ours(xb), yb)
            ours.backward(loss_fn.backward(), input_grad=False)
            opt.step()

    def epoch_theirs() -> None:
        theirs.partial_fit(Xtr, ytr, classes=classes)  # one epoch; keeps its Adam state

    runs: dict[str, list[float]] = {"handgrad": [], "sklearn": []}
    epochs = {"handgrad": epoch_ours, "sklearn": epoch_theirs}
    for e in range(sizes.epochs):
        # alternate which goes first, so neither always follows the other's idle threads
        for name in sorted(epochs, reverse=e % 2 == 1):
            time.sleep(sizes.pause)
            t0 = time.perf_counter()
            epochs[name]()
            runs[name].append(time.perf_counter() - t0)
    ours.eval()
    acc_ours = float(np.mean(ours(Xte).argmax(axis=1) == yte))
    acc_theirs = float(theirs.score(Xte, yte))
    arch = f"{'-'.join(map(str, dims))} ReLU, Adam 1e-3, batch {SK_BATCH}"
    return [
        Result(
            f"MLP classifier {arch}: seconds per epoch",
            "scikit-learn MLPClassifier",
            "s",
            runs["handgrad"],
            runs["sklearn"],
            note=f"{what}; float32; sklearn: partial_fit per epoch, alpha=0",
        ),
        Result(
            f"MLP classifier {arch}: test accuracy after {sizes.epochs} epochs",
            "scikit-learn MLPClassifier",
            "%",
            [acc_ours],
            [acc_theirs],
            note="each library's own initialisation and shuffling",
            ratio=False,
        ),
    ]


# ---------------------------------------------------------------------------------------------
# memory: peak RSS of a mnist-cnn epoch, each library in its own process
# ---------------------------------------------------------------------------------------------


def status_mb(key: str) -> float:
    """A memory line of /proc/self/status (``VmRSS``, ``VmHWM``) in MB (2**20 bytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def torch_cnn() -> Any:
    """bench_cnn.torch_model with torch's own initialisation: no handgrad in the process."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 10),
    )  # fmt: skip


def memory_child(library: str, images: int, threads: int, seed: int) -> dict[str, float]:
    """In a fresh process: import ``library`` only, build the mnist-cnn model, its Adam and
    the data; then train one epoch. Returns the RSS after that setup, the peak RSS during the
    epoch (VmHWM, reset after the setup where the kernel allows) and whether it was reset."""
    from threadpoolctl import threadpool_limits

    x, y = cnn_data(images, seed)
    parts = [slice(i, min(i + CNN_BATCH, images)) for i in range(0, images, CNN_BATCH)]
    if library == "handgrad":
        import handgrad.nn as nn
        from bench_cnn import Geometry, handgrad_model
        from handgrad.optim import Adam

        model = handgrad_model(Geometry(1), np.random.default_rng(seed))
        loss_fn, opt = nn.CrossEntropyLoss(), Adam(model.parameters(), lr=1e-3)

        def step(s: slice) -> None:
            opt.zero_grad()
            loss_fn(model(x[s]), y[s])
            model.backward(loss_fn.backward(), input_grad=False)
            opt.step()

    elif library == "pytorch":
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        t_model = torch_cnn()
        t_opt = torch.optim.Adam(t_model.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def step(s: slice) -> None:
            t_opt.zero_grad()
            torch.nn.functional.cross_entropy(t_model(tx[s]), ty[s]).backward()
            t_opt.step()

    else:
        raise ValueError(f"memory child: unknown library {library!r}")
    with threadpool_limits(limits=threads):
        gc.collect()
        setup = status_mb("VmRSS")
        was_reset = reset_peak()
        for s in parts:
            step(s)
        peak = status_mb("VmHWM")
    return {"setup_mb": setup, "peak_mb": peak, "peak_reset": float(was_reset)}


def run_memory_child(library: str, images: int, threads: int, seed: int) -> dict[str, float]:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--memory-child", library,
        "--memory-images", str(images), "--threads", str(threads), "--seed", str(seed),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"memory child {library} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_memory(sizes: Sizes, seed: int, threads: int) -> list[Result]:
    need("torch")
    got: dict[str, list[dict[str, float]]] = {"handgrad": [], "pytorch": []}
    for r in range(sizes.memory_rounds):
        for library in sorted(got, reverse=r % 2 == 1):
            got[library].append(run_memory_child(library, sizes.memory_images, threads, seed))
    reset = all(run["peak_reset"] for runs in got.values() for run in runs)
    epoch = f"a mnist-cnn epoch ({sizes.memory_images} random images, batch {CNN_BATCH}, Adam)"
    peaks = {name: [run["peak_mb"] for run in runs] for name, runs in got.items()}
    grown = {name: [run["peak_mb"] - run["setup_mb"] for run in runs] for name, runs in got.items()}
    setup = {name: statistics.median(run["setup_mb"] for run in runs) for name, runs in got.items()}
    how = "VmHWM reset after setup" if reset else "VmHWM since process start (reset refused)"
    return [
        Result(
            f"peak RSS of the process during {epoch}",
            "PyTorch (CPU)",
            "MB",
            peaks["handgrad"],
            peaks["pytorch"],
            note=f"a fresh process per library and round, importing only that library; "
            f"RSS after imports, data and model: handgrad {setup['handgrad']:.0f} MB, "
            f"PyTorch {setup['pytorch']:.0f} MB; {how}",
        ),
        Result(
            f"peak RSS growth during {epoch} (peak - RSS after setup)",
            "PyTorch (CPU)",
            "MB",
            grown["handgrad"],
            grown["pytorch"],
            note="what training itself adds: activations, gradients, optimizer state, buffers",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------

COMPARISONS: dict[str, tuple[str, str]] = {
    # name: (what, peer) for the row written when the comparison is skipped
    "scalar": ("scalar engine", "micrograd"),
    "mlp": ("MLP 784-512-512-10 training step", "PyTorch (CPU), plain NumPy loop"),
    "cnn": ("mnist-cnn training step", "PyTorch (CPU)"),
    "adam": ("Adam step alone", "torch.optim.Adam"),
    "sklearn": ("MLP classifier, epoch time and accuracy", "scikit-learn MLPClassifier"),
    "memory": ("peak RSS of a mnist-cnn epoch", "PyTorch (CPU)"),
}


def run_comparison(name: str, sizes: Sizes, args: argparse.Namespace) -> list[Result]:
    if name == "scalar":
        return compare_scalar(sizes, args.seed)
    if name == "mlp":
        return compare_mlp(sizes, args.seed)
    if name == "cnn":
        return compare_cnn(sizes, args.seed)
    if name == "adam":
        return compare_adam(sizes, args.seed)
    if name == "sklearn":
        return compare_sklearn(sizes, args.seed, synthetic=args.synthetic)
    if name == "memory":
        return compare_memory(sizes, args.seed, args.threads)
    raise ValueError(f"unknown comparison {name!r}, expected one of {sorted(COMPARISONS)}")


def parse_only(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPARISONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown comparison(s) {unknown or text!r}, expected some of {', '.join(COMPARISONS)}"
        )
    return names


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute: a smoke run")
    ap.add_argument(
        "--only", type=parse_only, default=list(COMPARISONS), metavar="NAMES",
        help=f"comma-separated, some of: {', '.join(COMPARISONS)} (default: all)",
    )  # fmt: skip
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="BLAS and torch threads (default: the number of cores)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=None,
                    help="the Markdown report (default bench/results/peers.md, "
                    "peers-quick.md with --quick); raw numbers go to its .json")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--synthetic",
        action="store_true",
        help="the classifier comparison on synthetic data even where Fashion-MNIST is found",
    )
    sizes = ap.add_argument_group("sizes (defaults: the full run's, or --quick's)")
    for name, doc in (
        ("rounds", "timed rounds per comparison"),
        ("pause", "seconds before each alternating block"),
        ("scalar-points", "points of the scalar MLP's batch"),
        ("mlp-samples", "MLP samples per round (batches of 128)"),
        ("cnn-images", "CNN images per round (batches of 64)"),
        ("adam-steps", "Adam steps per round"),
        ("samples", "classifier training samples (Fashion-MNIST's first N, or N synthetic)"),
        ("test-samples", "classifier test samples"),
        ("epochs", "classifier epochs (one round each)"),
        ("memory-images", "images of the memory comparison's epoch"),
        ("memory-rounds", "fresh processes per library in the memory comparison"),
    ):
        kind = float if name == "pause" else int
        sizes.add_argument(f"--{name}", type=kind, default=None, help=doc)
    ap.add_argument("--memory-child", choices=("handgrad", "pytorch"), help=argparse.SUPPRESS)
    return ap


def chosen_sizes(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    overrides = {
        key: getattr(args, key) for key in asdict(base) if getattr(args, key, None) is not None
    }
    return replace(base, **overrides)


@dataclass
class Progress:
    """Prints what runs and how long it took."""

    started: float = field(default_factory=time.perf_counter)

    def __call__(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f}s] {text}", flush=True)


def run_all(names: Sequence[str], sizes: Sizes, args: argparse.Namespace) -> Iterator[Result]:
    say = Progress()
    for name in names:
        say(f"{name}: {COMPARISONS[name][0]} vs {COMPARISONS[name][1]}")
        try:
            results = run_comparison(name, sizes, args)
        except Skipped as why:
            say(f"{name}: skipped: {why}")
            what, peer = COMPARISONS[name]
            yield Result(what, peer, "", skipped=str(why))
            continue
        yield from results
        say(f"{name}: done")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    sizes = chosen_sizes(args)
    if args.memory_child:
        result = memory_child(args.memory_child, sizes.memory_images, args.threads, args.seed)
        print(json.dumps(result))
        return 0
    with pinned_threads(args.threads):
        env = environment(argv, args.threads, sizes)
        print(f"threads: {env['threads']}\nBLAS: {env['blas']}", flush=True)
        results = list(run_all(args.only, sizes, args))
    env["load"] += f", {os.getloadavg()[0]:.2f}"
    out = args.out or RESULTS / ("peers-quick.md" if args.quick else "peers.md")
    path, raw = write_report(out, results, env, args.quick)
    print()
    print(markdown_table(results))
    print(f"written: {path} and {raw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
