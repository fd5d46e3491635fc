"""A thin progress bar over optimizer steps (tqdm, imported only when a bar is shown).

In a terminal it is tqdm's text bar; in a Jupyter notebook it is ``tqdm.auto``'s widget (with
ipywidgets installed; without it, the text bar, which Jupyter shows as well).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

__all__ = ["ProgressBar", "in_notebook"]


def in_notebook() -> bool:
    """True when running in a Jupyter kernel (IPython's ZMQ shell under ``IPKernelApp``).

    It only looks at modules already imported: it never imports IPython itself.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # an IPython without get_ipython, a shell without config
        return False


def _tqdm_class() -> Any:
    if in_notebook() and importlib.util.find_spec("ipywidgets") is None:
        # tqdm.auto would warn that ipywidgets is missing and fall back to this text bar anyway
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm  # a widget in Jupyter, the text bar elsewhere
    return tqdm


class ProgressBar:
    """Steps done out of ``total``, with live numbers as a postfix.

    Disabled (every method a no-op) when ``enabled`` is False, or when it is None and stderr is
    neither a terminal nor a Jupyter notebook's, so logs and CI output stay clean.
    """

    def __init__(
        self, total: int | None, *, initial: int = 0, desc: str = "", enabled: bool | None = None
    ) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty() or in_notebook()
        self._bar: Any = None
        self._shown = initial
        self._postfix: dict[str, Any] = {}
        if enabled:
            tqdm = _tqdm_class()  # lazy: the training core imports NumPy only
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit="step",
                dynamic_ncols=True,
                mininterval=0.2,
                leave=True,
            )

    @property
    def enabled(self) -> bool:
        return self._bar is not None

    def update_to(self, step: int, **postfix: Any) -> None:
        """Move the bar to ``step`` steps done and update the shown numbers with ``postfix``
        (others stay, e.g. the last epoch's accuracy while the running loss changes)."""
        if self._bar is None:
            return
        if postfix:
            self._postfix.update(
                {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items()}
            )
            self._bar.set_postfix(self._postfix, refresh=False)
        if step > self._shown:
            self._bar.update(step - self._shown)
            self._shown = step

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
