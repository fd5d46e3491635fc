"""Named experiments: each a frozen config dataclass and a run function (see registry.py).

Importing this package imports every public module in it, which registers the built-in
experiments; ``names()`` lists them and ``get(name)`` returns one. To add one, write a module
here with ``@register(...)``: nothing else to edit. Modules that register nothing (registry,
common, classifier) are the rooms the experiments share; ``api`` registers nothing either: its
``run(name, **overrides)`` runs one from Python and returns its results and figures as objects.
"""

import importlib
import pkgutil

from handgrad.experiments.api import Results, run
from handgrad.experiments.registry import (
    Config,
    Experiment,
    config_fields,
    execute,
    experiments,
    get,
    make_config,
    names,
    parse_set,
    prepare,
    prepare_resume,
    register,
    resume,
    start,
)


def _import_all() -> None:
    """Import the package's modules (sorted by name, ``_private`` ones left out) so that their
    ``@register`` calls run; the order of ``handgrad list`` is each experiment's ``order``."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_all()

__all__ = [
    "Config",
    "Experiment",
    "Results",
    "config_fields",
    "execute",
    "experiments",
    "get",
    "make_config",
    "names",
    "parse_set",
    "prepare",
    "prepare_resume",
    "register",
    "resume",
    "run",
    "start",
]
