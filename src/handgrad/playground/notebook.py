"""The playground inside a Jupyter cell: the same server and page, in an iframe.

``show()`` starts the playground's server (:func:`handgrad.playground.server.serve`) in a
background thread on 127.0.0.1, once per kernel, and returns a :class:`PlaygroundView` whose
``_repr_html_`` is an iframe of the page, so that a cell ending in ``show()`` displays the
playground. Nothing here imports IPython or the web stack until ``show()`` is called.

The iframe points at 127.0.0.1: it works where the browser runs on the same machine as the
kernel (a local Jupyter, VS Code). The server lives as long as the kernel (a daemon thread).
"""

from __future__ import annotations

import contextlib
import html
import io
import re
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["PlaygroundView", "show"]

PLAYGROUND_EXTRA = 'the playground needs its extra: pip install "handgrad[playground]"'
HOST = "127.0.0.1"

_lock = threading.Lock()
_running: dict[int, str] = {}  # port -> URL of a server this kernel started


@dataclass(frozen=True)
class PlaygroundView:
    """The playground page at ``url``, shown by Jupyter as an iframe ``height`` pixels high."""

    url: str
    height: int = 720

    def _repr_html_(self) -> str:
        src = html.escape(self.url, quote=True)
        return (
            f'<iframe src="{src}" width="100%" height="{int(self.height)}" '
            'style="border: 1px solid #ccc; border-radius: 4px" '
            'title="handgrad playground"></iframe>'
        )

    def __repr__(self) -> str:
        return f"handgrad playground at {self.url}"


def show(port: int | None = None, height: int = 720, *, timeout: float = 20.0) -> PlaygroundView:
    """Start the playground on 127.0.0.1 (once per kernel) and return a view of it.

    Args:
        port: the port to serve on; None (or 0) takes a free one, or the server already
            running. A port taken by another program is replaced by a free one, as
            ``handgrad playground --port`` does.
        height: the iframe's height in pixels.
        timeout: seconds to wait for the server to answer.

    Returns:
        a :class:`PlaygroundView`: the last expression of a cell, it shows the page; ``.url``
        is the address, for a browser tab.

    Raises:
        ImportError: the ``playground`` extra (starlette, uvicorn) is not installed.
        ValueError: ``port`` or ``height`` is out of range.
        RuntimeError: the server did not come up within ``timeout`` seconds.
    """
    if port is not None and (isinstance(port, bool) or not 0 <= int(port) <= 65535):
        raise ValueError(f"show: port must be in 0..65535 or None, got {port!r}")
    if isinstance(height, bool) or int(height) < 100:
        raise ValueError(f"show: height must be at least 100 pixels, got {height!r}")
    try:
        from handgrad.playground import server
    except ImportError as err:
        raise ImportError(f"{PLAYGROUND_EXTRA} ({err})") from err

    wanted = int(port or 0)
    with _lock:
        for known, url in list(_running.items()):
            if not _answers(url):  # its thread died: forget it
                del _running[known]
        if wanted in _running:
            url = _running[wanted]
        elif wanted == 0 and _running:
            url = next(iter(_running.values()))  # any port will do: the one running
        else:
            url = _start(server, wanted if wanted and _is_free(wanted) else _free_port(), timeout)
            _running[int(url.rstrip("/").rsplit(":", 1)[1])] = url
    return PlaygroundView(url, int(height))


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _start(server: Any, port: int, timeout: float) -> str:
    """Run ``server.serve`` on ``port`` in a daemon thread; return its URL once ``/healthz``
    answers."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            server.serve(HOST, port, open_browser=False)
        except BaseException as e:  # reported by the waiting caller
            failure.append(e)

    said = io.StringIO()
    # serve() says where it listens (another port if this one was taken) and that Ctrl+C stops
    # it, which is not so in a notebook: read its words instead of printing them
    with contextlib.redirect_stdout(said):
        thread = threading.Thread(target=target, name="handgrad-playground", daemon=True)
        thread.start()
        asked = f"http://{HOST}:{port}/"
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(r"http://[^\s/]+:\d+/", said.getvalue())
            url = found.group(0) if found else asked
            if _answers(url):
                return url
            if failure or not thread.is_alive():
                why = f": {failure[0]}" if failure else ""
                raise RuntimeError(f"the playground server stopped{why}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the playground server did not answer at {url} in {timeout} s")
            time.sleep(0.05)


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: no proxy
    try:
        with opener.open(url + "healthz", timeout=1.0) as response:
            return response.status == 200
    except OSError:
        return False
