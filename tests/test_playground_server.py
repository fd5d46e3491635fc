"""The playground's web side without a browser: routes, static files, the WebSocket protocol.

Starlette's TestClient drives the ASGI app in-process; the page itself is tested in a real
browser by tests/e2e/test_playground_browser.py.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import shlex
import socket
import time
import warnings
from pathlib import Path

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


# -- the second half: uploads, the backward pass, reproduce, downloads, the URL ------------------
@pytest.fixture
def work_client(tmp_path):
    with TestClient(pg.create_app(workdir=tmp_path / "work")) as c:
        yield c


def receive(ws) -> dict:
    return json.loads(ws.receive_text())


def test_hello_with_a_url_query_and_the_downloads(work_client):
    with work_client.websocket_connect("/ws") as ws:
        frame = send(ws, {"type": "hello", "query": "?hidden=3&features=x1,x2,x1x2"})
        assert frame["layers"] == [3, 3, 1] and frame["query"] == "features=x1,x2,x1x2&hidden=3"
        sid = frame["session_id"]
        assert frame["downloads"]["weights"] == f"/download/{sid}/weights.npz"
        assert frame["downloads"]["points"] == f"/download/{sid}/points.csv"
        send(ws, {"type": "step"})
        response = work_client.get(frame["downloads"]["weights"])
        assert response.status_code == 200
        assert response.headers["content-disposition"] == (
            'attachment; filename="handgrad-playground-weights.npz"'
        )
        assert response.content[:2] == b"PK"  # an .npz is a zip file
        points = work_client.get(frame["downloads"]["points"])
        assert points.text.startswith("x1,x2,label\n") and points.text.count("\n") == 501
        if frame["downloads"]["torch_py"] is not None:
            assert "torch.nn.Sequential(" in work_client.get(frame["downloads"]["torch_py"]).text
            assert work_client.get(frame["downloads"]["torch_state"]).status_code == 200
        # refused: an unknown file, an unknown session, anything that looks like a path
        for url in (
            f"/download/{sid}/secret.txt",
            f"/download/{sid}/..%2F..%2Fpyproject.toml",
            f"/download/{sid}/../../pyproject.toml",
            "/download/nobody/weights.npz",
            f"/download/{sid}/weights.npz/x",
        ):
            assert work_client.get(url).status_code == 404, url
        replies = [send(ws, {"type": "hello", "query": "lr=0"}), receive(ws)]
        assert [r["type"] for r in replies] == ["frame", "error"]
    # the session (and its downloads) go with the page
    deadline = time.monotonic() + 5
    while work_client.get("/healthz").json()["sessions"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert work_client.get(f"/download/{sid}/weights.npz").status_code == 404


def test_a_csv_upload_over_the_socket(work_client):
    rows = "".join(f"{i % 97 / 97:.6f},{i % 89 / 89:.6f},{'abc'[i % 3]}\n" for i in range(4000))
    encoded = base64.b64encode(("x1,x2,label\n" + rows).encode()).decode()
    assert len(encoded) > pg.MAX_MESSAGE_CHARS  # only an upload may be this long
    with work_client.websocket_connect("/ws") as ws:
        frame = send(ws, {"type": "load_csv", "name": "big.csv", "base64": encoded})
        assert frame["type"] == "frame" and frame["settings"]["classes"] == 3
        assert len(frame["points"]["train"]) + len(frame["points"]["test"]) == 4000
        bad = base64.b64encode(b"1,2,a\n1,2\n").decode()
        reply = send(ws, {"type": "load_csv", "name": "bad.csv", "base64": bad})
        assert reply == {"type": "error", "message": "bad.csv line 2: expected 3 columns "
                         "(x1,x2,label), got 2"}  # fmt: skip
        long = json.dumps({"type": "set", "settings": {"x": "y" * pg.MAX_MESSAGE_CHARS}})
        assert "at most 65536" in send(ws, long)["message"]
        frame = send(ws, {"type": "add_point", "x1": 0.5, "x2": 0.5, "label": 2})
        assert len(frame["points"]["train"]) + len(frame["points"]["test"]) == 4001


def test_explain_gradcheck_and_reproduce_over_the_socket(work_client, tmp_path):
    with work_client.websocket_connect("/ws") as ws:
        frame = send(ws, {"type": "hello", "settings": {"dataset": "custom", "classes": 2}})
        assert len(frame["points"]["train"]) == 250  # the circle shown, now your own points
        assert send(ws, {"type": "clear_points"})["points"] == {"train": [], "test": []}
        for i in range(8):
            send(ws, {"type": "add_point", "x1": i / 8, "x2": 0.3, "label": i % 2})
        send(ws, {"type": "step"})
        frame = send(ws, {"type": "explain_step", "point": 1})
        table = receive(ws)
        assert frame["type"] == "frame" and table["type"] == "explain"
        assert table["indices"] == [1] and len(table["backward"]) == 3
        check = send(ws, {"type": "gradcheck"})
        assert check["type"] == "gradcheck" and check["status"] == "PASSED"
        reply = send(ws, {"type": "reproduce"})
        assert reply["type"] == "reproduce" and not reply["exact"]  # a step was explained
        path = Path(reply["csv"])
        assert path.parent == (tmp_path / "work").resolve() and path.is_file()
        assert shlex.split(reply["command"]) == reply["argv"]
        error = send(ws, {"type": "explain_step", "point": 99})
        assert error["type"] == "error" and "point" in error["message"]
