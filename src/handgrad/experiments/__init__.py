"""Named experiments: each a frozen config dataclass and a run function (see registry.py).

Importing this package registers the built-in experiments; ``names()`` lists them and
``get(name)`` returns one. To add one, write a module with ``@register(...)`` and import it
below.
"""

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

# importing a module registers its experiments; the order here is the order of `handgrad list`
from handgrad.experiments import toy, boundary, synth  # noqa: F401  isort: skip
from handgrad.experiments import digits_mlp, mnist_mlp, cifar10_mlp  # noqa: F401  isort: skip
from handgrad.experiments import scalar, torch_parity  # noqa: F401  isort: skip
from handgrad.experiments import normalization, class_visualization  # noqa: F401  isort: skip
from handgrad.experiments import activations, hexagon  # noqa: F401  isort: skip
from handgrad.experiments import digits_cnn, mnist_cnn, cifar10_cnn, batchnorm  # noqa: F401  isort: skip

__all__ = [
    "Config",
    "Experiment",
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
    "start",
]
