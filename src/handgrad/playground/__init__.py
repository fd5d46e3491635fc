"""The handgrad playground: watch a network learn, live in the browser.

:class:`Session` (one tab's state: data, network, optimizer, frames) is pure Python and
handgrad; ``handgrad.playground.server`` is the web app around it (it needs the
``playground`` extra, and is not imported here). ``show()`` opens the playground inside a
Jupyter cell (``handgrad.playground.notebook``).
"""

from handgrad.playground.notebook import PlaygroundView, show
from handgrad.playground.session import DEFAULTS, Session, SettingsError

__all__ = ["DEFAULTS", "PlaygroundView", "Session", "SettingsError", "show"]
