"""A thin progress bar over optimizer steps (tqdm, imported only when a bar is shown)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """Steps done out of ``total``, with live numbers as a postfix.

    Disabled (every method a no-op) when ``enabled`` is False, or when it is None and stderr is
    not a terminal, so logs and CI output stay clean.
    """

    def __init__(
        self, total: int | None, *, initial: int = 0, desc: str = "", enabled: bool | None = None
    ) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar: Any = None
        self._shown = initial
        self._postfix: dict[str, Any] = {}
        if enabled:
            from tqdm.auto import tqdm  # lazy: the training core imports NumPy only

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
