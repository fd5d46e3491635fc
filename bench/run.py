"""Run every benchmark, one after the other, and print their tables.

    python bench/run.py [--quick]

Each benchmark is a plain script that runs handgrad and its baseline (PyTorch CPU, micrograd,
scikit-learn, a plain NumPy loop or a plain reference) side by side in one process and prints
the ratio; this only calls them in turn, in separate processes so that one's thread pools do
not disturb the next. The last, ``bench_peers.py``, also writes its table of every comparison
with the real peers to ``bench/results/peers.md`` (``peers-quick.md`` with ``--quick``).
``--quick`` uses smaller sizes (a smoke run, not numbers to quote). The peers come from the
bench's own environment: ``pip install -r bench/requirements.txt``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, full arguments, quick arguments)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench_mlp.py", [], ["--samples", "6400", "--repeats", "1"]),
    ("bench_cnn.py", [], ["--images", "640", "--rounds", "1"]),
    ("bench_layers.py", [], ["--repeats", "5", "--block", "5"]),
    ("bench_scalar.py", [], ["--repeat", "3"]),
    (
        "bench_to_target.py",
        [],
        ["--max-train", "1024", "--max-test", "500", "--set", "val_size=128", "--epochs", "2"],
    ),
    ("bench_peers.py", [], ["--quick"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args()
    failed = []
    for script, full, quick in BENCHMARKS:
        path = HERE / script
        if not path.exists():
            print(f"== {script}: not present, skipped\n")
            continue
        print(f"== {script}", flush=True)
        done = subprocess.run([sys.executable, str(path), *(quick if args.quick else full)])
        if done.returncode != 0:
            failed.append(script)
        print(flush=True)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
