"""The course notebooks and what makes handgrad feel at home in Jupyter.

- Every notebook in ``notebooks/`` is committed without outputs, is exactly what
  ``notebooks/_build.py`` writes, is listed in the indexes, and runs top to bottom in a fresh
  kernel (nbclient, the current interpreter) without an error.
- ``handgrad.experiments.run`` returns a run's numbers, history and figures as objects.
- The progress bar knows it is in a notebook; ``handgrad.playground.show()`` serves the page
  for an iframe.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
TORCH_NOTEBOOKS = {"09-to-pytorch.ipynb"}
CELL_TIMEOUT = 300  # seconds; a whole notebook takes seconds to a minute


def _nbformat() -> Any:
    return pytest.importorskip("nbformat", reason="the notebooks need nbformat (test extra)")


def _read(path: Path) -> Any:
    return _nbformat().read(path, as_version=4)


def _build_module() -> Any:
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the files ----------------------------------------------------------------------------
def test_the_course_has_its_nine_notebooks():
    numbers = [p.name[:2] for p in NOTEBOOK_PATHS]
    assert numbers == [f"{i:02d}" for i in range(1, 10)], [p.name for p in NOTEBOOK_PATHS]


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = _read(path)
    _nbformat().validate(nb)
    assert set(nb.metadata) <= {"kernelspec", "language_info"}, "notebook metadata left in"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {i} has outputs"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count"
        assert not cell.metadata, f"{path.name}: cell {i} has metadata {dict(cell.metadata)}"


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.name)
def test_notebook_reads_as_a_lesson(path):
    """Prose between the code: it opens with a title and has a Markdown cell for every couple
    of code cells."""
    cells = _read(path).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), path.name
    kinds = [c.cell_type for c in cells]
    assert kinds.count("markdown") * 2 >= kinds.count("code"), path.name


def test_notebooks_are_what_the_generator_writes():
    _nbformat()
    build = _build_module()
    assert sorted(build.NOTEBOOKS) == [p.name for p in NOTEBOOK_PATHS]
    stale = [
        name
        for name, cells in build.NOTEBOOKS.items()
        if (NOTEBOOKS / name).read_text(encoding="utf-8") != build.render(cells)
    ]
    assert not stale, f"run `python notebooks/_build.py`: {stale} differ from _build.py"


def test_every_notebook_is_in_the_indexes():
    index = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOK_PATHS:
        assert f"]({path.name})" in index, f"notebooks/README.md does not link {path.name}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](notebooks/README.md)" in readme
    for path in NOTEBOOK_PATHS:
        assert f"](notebooks/{path.name})" in readme, f"README.md does not link {path.name}"


# -- executing them -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory) -> Path:
    """A kernelspec that runs this interpreter, whatever kernels the machine has installed."""
    pytest.importorskip("nbclient", reason="executing notebooks needs nbclient (test extra)")
    pytest.importorskip("ipykernel", reason="executing notebooks needs ipykernel (test extra)")
    kernels = tmp_path_factory.mktemp("kernels")
    spec = kernels / "handgrad-test"
    spec.mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "handgrad tests",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    return kernels


def execute(path: Path, kernel_dir: Path, cwd: Path) -> Any:
    """Run the notebook in a fresh kernel in ``cwd``; returns it with its outputs.

    Raises nbclient's CellExecutionError (naming the cell, with the traceback) on any error.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = _read(path)
    km = KernelManager(
        kernel_name="handgrad-test",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]),
    )
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return nb


def _outputs(nb: Any) -> list[Any]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, kernel_dir, tmp_path, monkeypatch):
    if path.name in TORCH_NOTEBOOKS and importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed")
    monkeypatch.setenv("HANDGRAD_OFFLINE", "1")  # the lessons use bundled or generated data
    nb = execute(path, kernel_dir, tmp_path)
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if "%matplotlib inline" in source or "experiments.run(" in source:  # figures, inline
        data = [o.get("data", {}) for o in outputs]
        assert any("image/png" in d or "<img" in d.get("text/html", "") for d in data), path.name


def test_fit_and_experiments_show_progress_and_figures_in_a_notebook(kernel_dir, tmp_path):
    """In a kernel, ``fit``'s progress bar is on (a widget with ipywidgets, else tqdm's text),
    and ``experiments.run`` returns results whose HTML view embeds the figures."""
    nbformat = _nbformat()
    path = tmp_path / "probe.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import handgrad.experiments as experiments\n"
            "result = experiments.run('toy', epochs=3, n_train=64, n_test=64, resolution=16)\n"
            "result"
        )
    ]
    nbformat.write(nb, path)
    outputs = _outputs(execute(path, kernel_dir, tmp_path))
    bar_text = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets or ("toy" in bar_text and "6/6" in bar_text), bar_text  # 2 steps an epoch
    html = [o.data["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert html and html[-1].count("<img") == 3 and "test_accuracy" in html[-1]
    assert list((tmp_path / "runs").glob("toy-*/probability_map.png"))


# -- experiments.run ----------------------------------------------------------------------
TINY_TOY = {"epochs": 2, "n_train": 64, "n_test": 32, "resolution": 12, "snapshots": (1,)}


def test_run_returns_numbers_history_and_figures_as_objects(tmp_path):
    from matplotlib.figure import Figure

    import handgrad.experiments as experiments

    res = experiments.run("toy", out=tmp_path, quiet=True, **TINY_TOY)
    assert isinstance(res, experiments.Results)
    assert res.experiment == "toy" and res.config.epochs == 2 and res.config.quiet
    assert res.dir.parent == tmp_path and res.report == res.dir / "report.md"
    assert res.metrics == json.loads((res.dir / "results.json").read_text())
    assert res["test_accuracy"] == res.metrics["test_accuracy"]
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert list(res.figures) == ["loss", "probability_map", "snapshots"]
    assert all(isinstance(fig, Figure) for fig in res.figures.values())
    assert res.captions["probability_map"] == "final probability map"
    html = res._repr_html_()
    assert html.count("<img src='data:image/png;base64,") == 3 and "test_accuracy" in html
    assert "Results('toy', train_loss=" in repr(res)
    saved = json.loads((res.dir / "config.json").read_text())
    assert saved["config"]["epochs"] == 2 and saved["argv"][0].startswith("handgrad.experiments")


def test_run_gives_the_numbers_of_the_command_line(tmp_path):
    import handgrad.experiments as experiments
    from handgrad.cli import main

    res = experiments.run("toy", out=tmp_path / "py", quiet=True, **TINY_TOY)
    sets = ["epochs=2", "n_train=64", "n_test=32", "resolution=12", "snapshots=1"]  # TINY_TOY
    assert main(["run", "toy", "--quiet", "--out", str(tmp_path / "cli"), "--set", *sets]) == 0
    (cli_dir,) = (tmp_path / "cli").glob("toy-*")
    assert res.metrics == json.loads((cli_dir / "results.json").read_text())


def test_run_reads_back_figures_an_experiment_drew_itself(tmp_path):
    from matplotlib.figure import Figure

    import handgrad.experiments as experiments

    res = experiments.run("scalar-graph", out=tmp_path, quiet=True, gif=False)
    assert {"scalar-graph", "scalar-trace"} <= set(res.figures)
    assert all(isinstance(fig, Figure) for fig in res.figures.values())
    assert res.metrics["dw/dx"] == -64 and res.history == []


def test_run_refuses_unknown_names_and_keys(tmp_path):
    import handgrad.experiments as experiments

    with pytest.raises(ValueError, match="unknown experiment 'nope'; valid experiments: toy"):
        experiments.run("nope", out=tmp_path)
    with pytest.raises(ValueError, match="toy: unknown config key 'epoch'"):
        experiments.run("toy", out=tmp_path, epoch=3)
    assert not list(tmp_path.iterdir())  # nothing written for a run that never started


def test_importing_the_notebook_helpers_stays_light():
    code = (
        "import sys, handgrad.experiments, handgrad.playground, handgrad.train.progress\n"
        "heavy = ('IPython', 'matplotlib', 'tqdm', 'uvicorn', 'starlette')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- the progress bar ---------------------------------------------------------------------
class _FakeShell:
    def __init__(self, config: dict) -> None:
        self.config = config


def test_in_notebook_looks_for_a_kernel_without_importing_ipython(monkeypatch):
    import types

    from handgrad.train import progress

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not progress.in_notebook()
    fake = types.ModuleType("IPython")
    monkeypatch.setitem(sys.modules, "IPython", fake)
    fake.get_ipython = lambda: None  # IPython imported, no shell running
    assert not progress.in_notebook()
    fake.get_ipython = lambda: _FakeShell({"TerminalIPythonApp": {}})  # the ipython console
    assert not progress.in_notebook()
    fake.get_ipython = lambda: _FakeShell({"IPKernelApp": {}})  # a Jupyter kernel
    assert progress.in_notebook()


def test_progress_bar_is_on_by_default_in_a_notebook(monkeypatch, capsys):
    from handgrad.train import progress

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    bar = progress.ProgressBar(10, desc="nb")
    assert bar.enabled
    bar.update_to(10, loss=0.5)
    bar.close()
    assert "nb" in capsys.readouterr().err  # tqdm's text bar outside a real kernel
    assert not progress.ProgressBar(10, enabled=False).enabled


# -- the playground in a cell -------------------------------------------------------------
def _get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return response.status, response.read().decode("utf-8")


def test_show_serves_the_playground_for_an_iframe():
    pytest.importorskip("starlette", reason="the playground extra (starlette) is not installed")
    pytest.importorskip("uvicorn", reason="the playground extra (uvicorn) is not installed")
    import handgrad.playground as playground

    view = playground.show(height=500)
    assert view.url.startswith("http://127.0.0.1:") and view.url.endswith("/")
    status, page = _get(view.url)
    assert status == 200 and "<html" in page.lower()
    status, health = _get(view.url + "healthz")
    assert status == 200 and json.loads(health)["status"] == "ok"
    html = view._repr_html_()
    assert f'src="{view.url}"' in html and 'height="500"' in html and html.startswith("<iframe")
    assert playground.show().url == view.url  # one server per kernel
    port = int(view.url.rstrip("/").rsplit(":", 1)[1])
    assert playground.show(port=port).url == view.url
    assert repr(view) == f"handgrad playground at {view.url}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 70000}, "port must be in 0..65535 or None, got 70000"),
        ({"port": True}, "port must be in 0..65535 or None, got True"),
        ({"height": 20}, "height must be at least 100 pixels, got 20"),
    ],
)
def test_show_checks_its_arguments(kwargs, message):
    import handgrad.playground as playground

    with pytest.raises(ValueError, match=message):
        playground.show(**kwargs)
