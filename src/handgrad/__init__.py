"""handgrad: deep learning with every gradient written by hand in NumPy, and proven."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("handgrad")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
