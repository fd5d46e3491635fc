"""The playground's web side: a Starlette app and the uvicorn runner (the only web file).

Routes
    ``GET /``          the page (``static/index.html``)
    ``GET /static/..`` the page's assets, served from the package's ``static`` folder only
    ``GET /healthz``   ``{"status": "ok", "sessions": n}``
    ``GET /download/<session id>/<file>``  ``weights.npz``, ``points.csv``, ``model.pt``,
                       ``model.py`` of that session (see :meth:`Session.download`); a fixed
                       list of names, never a path
    ``WS  /ws``        one :class:`~handgrad.playground.session.Session` per connection

The socket speaks JSON (see ``docs/playground.md``). The page sends ``hello``, ``set``,
``play``, ``pause``, ``step``, ``reset``, the point messages, ``explain_step``, ``gradcheck``
and ``reproduce``; the server answers with what :meth:`Session.replies` gives: ``frame``
messages (the session's snapshot), ``explain``/``gradcheck``/``reproduce`` replies and
``error`` messages (one line; the connection and the session stay up).
While the session plays, :func:`_play_loop` trains for at most :data:`COMPUTE_BUDGET` seconds
(up to ``speed`` epochs, and less when the snapshot is slow), sends a frame, and handles the
messages that came meanwhile, so the page gets 20-30 frames per second. Every numerical call
(training, snapshots, rebuilding the data or the network) runs in a worker thread, so one busy
tab never stalls another.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import json
import logging
import math
import os
import socket
import threading
import time
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from handgrad.playground import Session

__all__ = ["COMPUTE_BUDGET", "DOWNLOADS", "FRAME_INTERVAL", "STATIC_DIR", "create_app", "serve"]

STATIC_DIR = Path(__file__).resolve().with_name("static")
WORKDIR = "playground-runs"  # the default folder (under the current one) for written files
# the files a session offers for download (the only names the route accepts); torch: needs it
DOWNLOADS = {"weights.npz": False, "points.csv": False, "model.pt": True, "model.py": True}

# Frames are paced at 30 per second at most. A frame's training gets at most 30 ms and never
# more than what the frame interval leaves after the snapshot (measured as it goes), so that
# even at full speed a frame costs about one interval: ~30 frames per second on an idle core.
FRAME_INTERVAL = 1.0 / 30.0
COMPUTE_BUDGET = 0.030
MIN_BUDGET = 0.005  # a slow snapshot must not starve the training
MAX_MESSAGE_CHARS = 65536  # the largest honest message (a full settings dict) is ~400 chars
# a CSV upload (load_csv) is its file in base64: 2 MiB of file, 4/3 of that in text, and more
MAX_UPLOAD_CHARS = 3 * 1024 * 1024
INBOX_SIZE = 64  # messages waiting for the loop; a flooding client is slowed, not buffered

# The page loads its own files only and talks to its own server only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

log = logging.getLogger("handgrad.playground")
_CLOSED = object()  # the reader's last word: the socket is gone


# ---------------------------------------------------------------------------- JSON helpers


def _plain(obj: Any) -> Any:
    """``obj`` with non-finite floats as None and NumPy scalars/arrays as Python values."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):  # NumPy scalar or array
        return _plain(obj.tolist())
    return obj


def _dumps(message: dict[str, Any]) -> str:
    """JSON text the browser's ``JSON.parse`` accepts (it has no NaN or Infinity)."""
    try:
        return json.dumps(message, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        return json.dumps(_plain(message), allow_nan=False, separators=(",", ":"))


def _error(message: str) -> str:
    return _dumps({"type": "error", "message": " ".join(str(message).split()) or "error"})


def _parse(raw: str | bytes) -> dict[str, Any]:
    """One socket message as a dict, or ValueError with the one line the page shows.

    A message has at most MAX_MESSAGE_CHARS characters; a ``load_csv`` (a file upload) at
    most MAX_UPLOAD_CHARS."""
    if isinstance(raw, bytes):
        raise ValueError("bad message: expected JSON text, got a binary message")
    # only an upload may be long: its type comes first in the page's JSON
    upload = '"load_csv"' in raw[:100]
    limit = MAX_UPLOAD_CHARS if upload else MAX_MESSAGE_CHARS
    if len(raw) > limit:
        raise ValueError(f"bad message: {len(raw)} characters, at most {limit}")
    try:
        message = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"bad message: not JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(message, dict):
        raise ValueError(f"bad message: expected a JSON object, got {type(message).__name__}")
    if len(raw) > MAX_MESSAGE_CHARS and message.get("type") != "load_csv":
        raise ValueError(f"bad message: {len(raw)} characters, at most {MAX_MESSAGE_CHARS}")
    return message


# ---------------------------------------------------------------------------- numerical work
# These run in a worker thread. A session is touched by its connection's loop, which awaits
# each call, and by the download route; the tab's lock keeps the two apart.


@dataclass(eq=False)
class _Tab:
    """One open page: its session and the lock every call on the session holds."""

    session: Session
    lock: threading.Lock = field(default_factory=threading.Lock)


def _downloads(session: Session) -> dict[str, str | None]:
    """The download URLs of a session (the torch files only when torch is installed)."""
    torch = importlib.util.find_spec("torch") is not None
    url = f"/download/{session.session_id}/"
    return {
        "weights": url + "weights.npz",
        "points": url + "points.csv",
        "torch_state": url + "model.pt" if torch else None,
        "torch_py": url + "model.py" if torch else None,
    }


def _handle(tab: _Tab, message: dict[str, Any]) -> list[str]:
    """The JSON texts answering one message, in the order to send them."""
    try:
        with tab.lock:
            replies = tab.session.replies(message)
    except ValueError as e:  # SettingsError and friends: the one-line message is for the page
        return [_error(str(e))]
    except Exception as e:  # a bug must not take the connection (or the server) down
        log.exception("playground: message %r failed", message.get("type"))
        return [_error(f"internal error: {type(e).__name__}: {e}")]
    if message.get("type") == "hello":  # full frames tell the page where its files are
        for reply in replies:
            if reply.get("type") == "frame":
                reply["downloads"] = _downloads(tab.session)
    return [_dumps(reply) for reply in replies]


class _Pacer:
    """How long a frame's snapshot takes (a moving average), to size the training budget."""

    def __init__(self) -> None:
        self.snapshot_s = 0.005

    def budget(self) -> float:
        return max(MIN_BUDGET, min(COMPUTE_BUDGET, FRAME_INTERVAL - 1.2 * self.snapshot_s))

    def measured(self, seconds: float) -> None:
        self.snapshot_s += 0.25 * (seconds - self.snapshot_s)


def _play_frame(tab: _Tab, pacer: _Pacer) -> str:
    """Train up to ``speed`` epochs within the pacer's budget, return the frame's JSON."""
    with tab.lock:
        return _train_frame(tab.session, pacer)


def _train_frame(session: Session, pacer: _Pacer) -> str:
    try:
        speed = max(1, int(session.settings.get("speed", 1)))
        budget = pacer.budget()
        start = time.perf_counter()
        for done in range(1, speed + 1):
            session.step(1)
            elapsed = time.perf_counter() - start
            # stop before the next epoch would overrun the budget (at least one runs)
            if not session.playing or elapsed + elapsed / done > budget:
                break
        start = time.perf_counter()
        text = _dumps(session.snapshot())
        pacer.measured(time.perf_counter() - start)
        return text
    except Exception as e:
        log.exception("playground: training failed")
        session.playing = False
        return _error(f"internal error while training: {type(e).__name__}: {e}")


# ---------------------------------------------------------------------------- the socket


async def _read(ws: WebSocket, inbox: asyncio.Queue[Any]) -> None:
    """Move the socket's messages into ``inbox`` until it closes, then put ``_CLOSED``."""
    try:
        while True:
            event = await ws.receive()
            if event["type"] == "websocket.disconnect":
                break
            text = event.get("text")
            await inbox.put(text if text is not None else event.get("bytes") or b"")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        await inbox.put(_CLOSED)


async def _answer(ws: WebSocket, tab: _Tab, raw: Any) -> bool:
    """Handle one message from the page; False when the socket has closed."""
    if raw is _CLOSED:
        return False
    try:
        message = _parse(raw)
    except ValueError as e:
        await ws.send_text(_error(str(e)))
        return True
    for reply in await anyio.to_thread.run_sync(_handle, tab, message):
        await ws.send_text(reply)
    return True


async def _play_loop(ws: WebSocket, tab: _Tab, inbox: asyncio.Queue[Any]) -> None:
    loop = asyncio.get_running_loop()
    pacer = _Pacer()
    session = tab.session
    while True:
        if not session.playing:
            if not await _answer(ws, tab, await inbox.get()):
                return
            continue
        started = loop.time()
        await ws.send_text(await anyio.to_thread.run_sync(_play_frame, tab, pacer))
        # messages that came during the frame, then wait out the rest of the frame interval
        while not inbox.empty():
            if not await _answer(ws, tab, inbox.get_nowait()):
                return
        while session.playing and (left := FRAME_INTERVAL - (loop.time() - started)) > 0:
            try:
                raw = await asyncio.wait_for(inbox.get(), left)
            except asyncio.TimeoutError:
                break
            if not await _answer(ws, tab, raw):
                return


async def _socket(ws: WebSocket) -> None:
    if not _same_origin(ws.headers.get("origin"), ws.headers.get("host")):
        await ws.close(code=1008)  # policy violation: another site's page may not drive us
        return
    await ws.accept()
    tabs: dict[str, _Tab] = ws.app.state.sessions
    workdir = ws.app.state.workdir
    tab = _Tab(await anyio.to_thread.run_sync(lambda: Session(workdir=workdir)))
    tabs[tab.session.session_id] = tab
    inbox: asyncio.Queue[Any] = asyncio.Queue(maxsize=INBOX_SIZE)
    reader = asyncio.create_task(_read(ws, inbox))
    try:
        await _play_loop(ws, tab, inbox)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the page went away while we were sending
    finally:
        reader.cancel()
        tabs.pop(tab.session.session_id, None)  # the session is freed with the connection
        tab.session.playing = False


def _same_origin(origin: str | None, host: str | None) -> bool:
    """A browser page from another site must not open a socket to this server.

    Browsers always send ``Origin`` on a WebSocket; programs that send none are let in.
    """
    if origin is None:
        return True
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


# ---------------------------------------------------------------------------- the app


async def _index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "sessions": len(request.app.state.sessions)})


async def _download(request: Request) -> Response:
    """A file of an open session, made now from its state; the names are a fixed list."""
    tab = request.app.state.sessions.get(request.path_params["session"])
    name = request.path_params["name"]
    if tab is None:
        return PlainTextResponse("no such session (it closed with its page)", status_code=404)
    if name not in DOWNLOADS:
        return PlainTextResponse(f"no such file; valid: {', '.join(DOWNLOADS)}", status_code=404)

    def make() -> tuple[bytes, str] | None:
        with tab.lock:
            return tab.session.download(name)

    try:
        made = await anyio.to_thread.run_sync(make)
    except Exception as e:  # a bug (or a torch export that fails) is a message, not a crash
        log.exception("playground: download %r failed", name)
        return PlainTextResponse(f"could not make {name}: {type(e).__name__}: {e}", 500)
    if made is None:
        return PlainTextResponse(
            f"{name} needs PyTorch, which is not installed here: pip install torch",
            status_code=404,
        )
    content, media_type = made
    disposition = f'attachment; filename="handgrad-playground-{name}"'
    return Response(content, media_type=media_type, headers={"Content-Disposition": disposition})


class _SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(workdir: str | os.PathLike[str] | None = None) -> Starlette:
    """The playground's ASGI app: the page, its static files, ``/healthz``, the downloads
    and ``/ws``.

    ``workdir`` is the one folder the server writes in (the CSV files of "reproduce"; created
    when first needed; default ``./playground-runs``); nothing a client sends becomes a path.
    ``app.state.sessions`` maps each live session's id to it (one per open socket).

    Examples::

        >>> from starlette.testclient import TestClient
        >>> with TestClient(create_app()) as client:
        ...     client.get("/healthz").json()["status"]
        'ok'
    """
    from starlette.middleware import Middleware

    app = Starlette(
        routes=[
            Route("/", _index),
            Route("/healthz", _healthz),
            Route("/download/{session}/{name}", _download),
            WebSocketRoute("/ws", _socket),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[Middleware(_SecurityHeaders)],
    )
    app.state.sessions = {}
    app.state.workdir = Path(WORKDIR if workdir is None else workdir).resolve()
    return app


# ---------------------------------------------------------------------------- running it


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``(host, port)``, or to a free port of ``host`` when that is taken."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)):
            sock.close()
            raise
        sock.bind((address[0], 0, *address[2:]))
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # bound to every interface; this machine reaches it here
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    open_browser: bool = True,
    workdir: str | os.PathLike[str] | None = None,
) -> None:
    """Run the playground on ``host:port`` until Ctrl+C; print its URL and open a browser.

    When ``port`` is taken another free port is chosen (and said); ``port=0`` asks for any
    free port. The server binds ``127.0.0.1`` (this machine only) unless ``host`` says
    otherwise. ``workdir`` (default ``./playground-runs``) is the only folder it writes in.
    """
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    if port and bound != port:
        print(f"handgrad playground: port {port} is taken; using {bound}", flush=True)
    url = _url(host, bound)
    print(f"handgrad playground: {url}  (Ctrl+C stops it)", flush=True)
    config = uvicorn.Config(
        create_app(workdir),
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws_max_size=MAX_UPLOAD_CHARS * 4,  # bytes of UTF-8: up to 4 per character
    )
    server = uvicorn.Server(config)
    if open_browser:
        threading.Thread(target=_open_when_up, args=(server, url), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _open_when_up(server: uvicorn.Server, url: str) -> None:
    for _ in range(200):  # up to 10 s
        if server.started:
            webbrowser.open(url)
            return
        time.sleep(0.05)
