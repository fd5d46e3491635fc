"""Run an experiment from Python (a notebook, a script) and get its results as objects.

::

    import handgrad.experiments as ex

    res = ex.run("toy", epochs=100)      # the same run as `handgrad run toy --epochs 100`
    res.metrics["test_accuracy"]         # the final numbers (results.json)
    res.history[-1]                      # the last epoch of the history
    res.figures["probability_map"]       # a matplotlib Figure
    res                                  # in Jupyter: the numbers and every figure, inline

The run writes its folder as the command does (``res.dir``: config, metrics, checkpoint, PNG
figures, report); in a notebook its progress bar is a notebook one. This module registers no
experiment; it only calls the registry.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handgrad.experiments.registry import execute, get, make_config
from handgrad.train.runs import Run

__all__ = ["Results", "run"]


class _FigureKeepingRun(Run):
    """A :class:`Run` that also keeps each figure it saves, as the Figure object."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.figure_objects: dict[str, Any] = {}

    def save_figure(self, name: str, fig: Any, *args: Any, **kwargs: Any) -> Path:
        path = super().save_figure(name, fig, *args, **kwargs)
        self.figure_objects[path.stem] = fig
        return path


@dataclass
class Results:
    """What :func:`run` returns: one finished run, as objects.

    Attributes:
        experiment: the experiment's name.
        config: its config (the frozen dataclass the run used).
        metrics: the final numbers (as in ``results.json`` and the report).
        dir: the run folder.
        history: the history of the run's last ``fit`` (one dict per epoch; empty for the
            experiments that do not train with ``fit``).
        figures: figure name (the PNG's file name without ``.png``) -> matplotlib ``Figure``,
            in the order of the report. Figures an experiment draws outside the run (the scalar
            experiments' graphs) are read back from their PNG files into a Figure each.
        captions: figure name -> the caption the report gives it.
    """

    experiment: str
    config: Any
    metrics: dict[str, float]
    dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)

    @property
    def report(self) -> Path:
        """The run's ``report.md``."""
        return self.dir / "report.md"

    def __getitem__(self, key: str) -> float:
        """``res['test_accuracy']`` is ``res.metrics['test_accuracy']``."""
        return self.metrics[key]

    def __repr__(self) -> str:
        numbers = ", ".join(f"{k}={_fmt(v)}" for k, v in self.metrics.items())
        return (
            f"Results({self.experiment!r}, {numbers}; dir={str(self.dir)!r}, "
            f"figures={list(self.figures)})"
        )

    def _repr_html_(self) -> str:
        """Jupyter's view: the numbers as a table, then each figure (its PNG) with its caption."""
        esc = html.escape
        rows = "".join(
            f"<tr><td>{esc(str(k))}</td><td>{esc(_fmt(v))}</td></tr>"
            for k, v in self.metrics.items()
        )
        parts = [
            f"<p><b>{esc(self.experiment)}</b>: run folder <code>{esc(str(self.dir))}</code></p>",
            f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>",
        ]
        for name in self.figures:
            png = self.dir / f"{name}.png"
            if not png.is_file():
                continue
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            caption = esc(self.captions.get(name, name))
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{caption}' "
                f"style='max-width:100%'><figcaption>{caption}</figcaption></figure>"
            )
        return "\n".join(parts)


def run(
    name: str,
    /,
    *,
    out: str | os.PathLike = "runs",
    callbacks: Sequence[Any] = (),
    **overrides: Any,
) -> Results:
    """Run experiment ``name`` with config fields ``overrides`` and return its :class:`Results`.

    ``run("toy", epochs=100)`` is ``handgrad run toy --epochs 100 --out runs``: the same
    config, the same numbers, the same run folder under ``out``. Overrides are typed values
    (``hidden=(16, 16)``, ``lr=0.1``) or strings as after ``--set``; an unknown name or key is
    a ValueError listing the valid ones. ``quiet=True`` hides the progress bar, which is shown
    in a terminal or a notebook. ``callbacks`` are added to every ``fit`` of the run.
    """
    exp = get(name)
    cfg = make_config(exp, overrides)
    shown = ", ".join([repr(name), *(f"{k}={v!r}" for k, v in overrides.items())])
    the_run = _FigureKeepingRun.create(
        exp.name, cfg, out=out, quiet=cfg.quiet, argv=[f"handgrad.experiments.run({shown})"]
    )
    the_run.callbacks.extend(callbacks)
    metrics = execute(exp, cfg, the_run)
    return _results(exp.name, cfg, metrics, the_run)


def _results(name: str, cfg: Any, metrics: dict[str, float], the_run: Any) -> Results:
    figures: dict[str, Any] = {}
    captions: dict[str, str] = {}
    for file, caption in the_run.figures:
        stem = Path(file).stem
        captions[stem] = caption
        figures[stem] = the_run.figure_objects.get(stem)
    # PNGs the experiment wrote itself (not through run.save_figure): read back as figures
    for png in sorted(the_run.dir.glob("*.png")):
        if png.stem not in figures:
            figures[png.stem] = None
            captions[png.stem] = png.stem.replace("_", " ").replace("-", " ")
    for stem, fig in figures.items():
        if fig is None:
            figures[stem] = _image_figure(the_run.dir / f"{stem}.png")
    return Results(
        experiment=name,
        config=cfg,
        metrics=dict(metrics),
        dir=the_run.dir,
        history=list(the_run.history),
        figures=figures,
        captions=captions,
    )


def _image_figure(path: Path) -> Any:
    """A Figure that shows the PNG at ``path`` at its own size (100 pixels per inch)."""
    from matplotlib.image import imread

    from handgrad.viz import figure

    img = imread(path)
    height, width = img.shape[:2]
    fig, ax = figure(figsize=(width / 100, height / 100), layout=None)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    ax.imshow(img, interpolation="nearest")
    ax.set_axis_off()
    return fig


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)
