"""The handgrad playground: watch a network learn, live in the browser.

:class:`Session` (one tab's state: data, network, optimizer, frames) is pure Python and
handgrad; ``handgrad.playground.server`` is the web app around it (it needs the
``playground`` extra, and is not imported here).
"""

from handgrad.playground.session import DEFAULTS, Session, SettingsError

__all__ = ["DEFAULTS", "Session", "SettingsError"]
