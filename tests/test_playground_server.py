"""The playground's web side without a browser: routes, static files, the WebSocket protocol.

Starlette's TestClient drives the ASGI app in-process; the page itself is tested in a real
browser by tests/e2e/test_playground_browser.py.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import socket
import time
import warnings

import pytest

pytest.importorskip("starlette", reason="the playground extra (starlette) is not installed")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx")

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 and warns about httpx
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from handgrad.playground import DEFAULTS
from handgrad.playground import server as pg

# the ids the browser test and docs/playground.md rely on
PAGE_IDS = [
    "play", "step", "reset", "speed", "epoch", "train-loss", "test-loss", "fps", "error",
    "dataset", "classes", "noise", "n-points", "train-ratio", "seed", "regenerate",
    "feature-x1", "feature-x2", "feature-x1sq", "feature-x2sq", "feature-x1x2",
    "feature-sin-x1", "feature-sin-x2", "add-layer", "remove-layer", "layer-count",
    "activation", "optimizer", "lr", "batch-size", "regularization", "reg-rate",
    "network", "decision", "loss-curve",
]  # fmt: skip


@pytest.fixture(scope="module")
def client():
    with TestClient(pg.create_app()) as c:
        yield c


def send(ws, message) -> dict:
    """Send one message (a dict as JSON, or raw text) and return the reply."""
    ws.send_text(message if isinstance(message, str) else json.dumps(message))
    return json.loads(ws.receive_text())


def test_index_is_the_page_with_every_control(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    for name in PAGE_IDS:
        assert f'id="{name}"' in r.text, name
    # every asset comes from the package: no CDN, no external font
    assert not re.search(r"""(src|href)="(https?:)?//""", r.text)
    assert "/static/playground.js" in r.text and "/static/playground.css" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/static/playground.js", "javascript"), ("/static/playground.css", "text/css")],
)
def test_static_files_are_served(client, path, kind):
    r = client.get(path)
    assert r.status_code == 200
    assert kind in r.headers["content-type"]
    assert len(r.content) > 1000
    assert "http://" not in r.text and "https://" not in r.text  # nothing from the internet


@pytest.mark.parametrize(
    "path",
    [
        "/static/../server.py",
        "/static/%2e%2e/server.py",
        "/static/..%2fserver.py",
        "/static/%2e%2e/%2e%2e/playground/session.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/..%5cserver.py",
        "/server.py",
        "/static/",
    ],
)
def test_no_path_escapes_the_static_folder(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert "import" not in r.text and "root:" not in r.text


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok", "sessions": 0}


def test_hello_gets_a_full_frame(client):
    with client.websocket_connect("/ws") as ws:
        frame = send(ws, {"type": "hello"})
    assert frame["type"] == "frame"
    assert frame["epoch"] == 0 and frame["playing"] is False and frame["error"] is None
    assert frame["settings"] == DEFAULTS
    assert frame["layers"] == [2, 4, 2, 1]
    assert frame["history_reset"] is True
    assert len(frame["points"]["train"]) + len(frame["points"]["test"]) == 500
    assert math.isfinite(frame["test_loss"])


def test_bad_setting_is_an_error_and_the_session_stays_up(client):
    with client.websocket_connect("/ws") as ws:
        reply = send(ws, {"type": "set", "settings": {"lr": -1}})
        assert reply == {"type": "error", "message": reply["message"]}
        assert reply["message"].startswith("lr:") and "-1" in reply["message"]
        reply = send(ws, {"type": "set", "settings": {"lr": "nan"}})
        assert reply["type"] == "error" and "lr" in reply["message"]
        # nothing changed, and the same socket still answers
        frame = send(ws, {"type": "hello"})
        assert frame["type"] == "frame" and frame["settings"]["lr"] == DEFAULTS["lr"]
        assert send(ws, {"type": "step"})["epoch"] == 1
    assert client.get("/healthz").json()["status"] == "ok"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{not json", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('"play"', "expected a JSON object"),
        ('{"type": "explode"}', "explode"),
        ('{"kind": "play"}', "type"),
        ('{"type": "set", "settings": 3}', "settings"),
        ('{"type": "play", "extra": 1}', "extra"),
        ("x" * (pg.MAX_MESSAGE_CHARS + 1), "at most"),
    ],
)
def test_malformed_messages_get_an_error_and_the_connection_stays(client, raw, words):
    with client.websocket_connect("/ws") as ws:
        reply = send(ws, raw)
        assert reply["type"] == "error"
        assert words in reply["message"]
        assert "\n" not in reply["message"]
        assert send(ws, {"type": "hello"})["type"] == "frame"


def test_binary_message_is_an_error(client):
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(b'{"type": "hello"}')
        reply = json.loads(ws.receive_text())
        assert reply["type"] == "error" and "binary" in reply["message"]
        assert send(ws, {"type": "hello"})["type"] == "frame"


def test_step_trains_one_epoch(client):
    with client.websocket_connect("/ws") as ws:
        before = send(ws, {"type": "hello"})
        frame = send(ws, {"type": "step"})
    assert frame["epoch"] == 1
    assert frame["history"] == [[1, frame["train_loss"], frame["test_loss"]]]
    assert frame["weights"] != before["weights"]
    assert "points" not in frame  # points come only when they change


def test_two_connections_have_independent_sessions(client):
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
        send(a, {"type": "hello"})
        send(b, {"type": "hello"})
        assert client.get("/healthz").json()["sessions"] == 2
        changed = send(a, {"type": "set", "settings": {"hidden": [3], "dataset": "xor"}})
        assert changed["layers"] == [2, 3, 1]
        assert send(a, {"type": "step"})["epoch"] == 1
        other = send(b, {"type": "hello"})
        assert other["epoch"] == 0
        assert other["settings"]["hidden"] == [4, 2] and other["settings"]["dataset"] == "circle"
    # closing a tab frees its session
    deadline = time.monotonic() + 5
    while client.get("/healthz").json()["sessions"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get("/healthz").json()["sessions"] == 0


def test_a_busy_tab_does_not_stall_another(client):
    with client.websocket_connect("/ws") as busy, client.websocket_connect("/ws") as other:
        send(busy, {"type": "set", "settings": {"hidden": [8] * 6, "speed": 100}})
        send(busy, {"type": "play"})
        busy.receive_text()  # it trains
        start = time.perf_counter()
        frame = send(other, {"type": "step"})
        waited = time.perf_counter() - start
        assert frame["epoch"] == 1
        assert waited < 2.0, f"a step took {waited:.2f} s while another tab trained"
        send(busy, {"type": "pause"})


def test_play_streams_frames_and_handles_messages_between_them(client):
    with client.websocket_connect("/ws") as ws:
        send(ws, {"type": "set", "settings": {"speed": 3}})
        first = send(ws, {"type": "play"})
        assert first["playing"] is True
        epochs = [json.loads(ws.receive_text())["epoch"] for _ in range(5)]
        assert epochs == sorted(epochs) and epochs[-1] > epochs[0]
        assert all(b - a <= 3 for a, b in itertools.pairwise(epochs))  # at most `speed` a frame
        # a bad message while playing: an error, and the stream goes on
        ws.send_text("oops")
        replies = [json.loads(ws.receive_text()) for _ in range(3)]
        errors = [r for r in replies if r["type"] == "error"]
        assert len(errors) == 1 and "not JSON" in errors[0]["message"]
        assert any(r["type"] == "frame" and r["playing"] for r in replies)
        ws.send_text(json.dumps({"type": "pause"}))
        for _ in range(20):  # frames already on their way, then the pause's own frame
            frame = json.loads(ws.receive_text())
            if frame["type"] == "frame" and not frame["playing"]:
                break
        assert frame["playing"] is False


def test_history_reaches_the_page_once(client):
    """Frames carry only the loss points since the previous frame, so the page's curve has
    every epoch exactly once."""
    with client.websocket_connect("/ws") as ws:
        send(ws, {"type": "hello"})
        seen = []
        send(ws, {"type": "play"})
        while len(seen) < 6:
            frame = json.loads(ws.receive_text())
            seen += [h[0] for h in frame["history"]]
        frame = send(ws, {"type": "pause"})
        seen += [h[0] for h in frame["history"]]
        while frame["playing"]:  # frames sent before the pause was read
            frame = json.loads(ws.receive_text())
            seen += [h[0] for h in frame["history"]]
    assert seen == list(range(1, len(seen) + 1))


def test_a_page_from_another_site_cannot_open_the_socket(client):
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws", headers={"origin": "http://evil.example"}),
    ):
        pass
    host = client.base_url.netloc.decode()
    with client.websocket_connect("/ws", headers={"origin": f"http://{host}"}) as ws:
        assert send(ws, {"type": "hello"})["type"] == "frame"


def test_frames_are_json_the_browser_can_parse():
    text = pg._dumps({"type": "frame", "loss": float("nan"), "h": [[1, float("inf"), 2.0]]})
    assert json.loads(text) == {"type": "frame", "loss": None, "h": [[1, None, 2.0]]}
    assert "NaN" not in text and "Infinity" not in text


def test_a_taken_port_is_replaced_by_a_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sock = pg._bind("127.0.0.1", port)
        try:
            assert sock.getsockname()[0] == "127.0.0.1"
            assert sock.getsockname()[1] not in (port, 0)
        finally:
            sock.close()


def test_url_names_a_reachable_address():
    assert pg._url("127.0.0.1", 8000) == "http://127.0.0.1:8000/"
    assert pg._url("0.0.0.0", 8001) == "http://127.0.0.1:8001/"
    assert pg._url("::1", 8002) == "http://[::1]:8002/"
