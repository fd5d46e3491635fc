"""The playground in a real headless Chromium (Debian's, driven by Playwright from PyPI).

The server runs as `handgrad playground` would run it (``serve(port=0)`` in a subprocess, on
127.0.0.1 and a free port); each test opens its own tab, which is its own session.

Without Playwright or Chromium the tests skip, saying why; with HANDGRAD_REQUIRE_BROWSER=1
(CI sets it) they fail instead. HANDGRAD_SCREENSHOTS=1 copies the screenshot to
docs/img/playground.png. The frame rate measured is printed (``pytest -s``) and must be at
least HANDGRAD_MIN_FPS: default 10, a floor that holds on a 2-core machine shared with other
jobs (measured there: 25-27 frames per second at load 2-4, 14-20 at load 10-11); 20 on a
dedicated machine.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("HANDGRAD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
REQUIRE_BROWSER = os.environ.get("HANDGRAD_REQUIRE_BROWSER") == "1"
MIN_FPS = float(os.environ.get("HANDGRAD_MIN_FPS", "10"))
VIEWPORT = {"width": 1440, "height": 900}
TIMEOUT_MS = 20_000


def unavailable(reason: str) -> None:
    """Skip (or, when CI demands the browser, fail) saying why."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (HANDGRAD_REQUIRE_BROWSER=1: the browser test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """`serve(port=0)` in a subprocess, in a folder of its own (where "reproduce" writes drawn
    points); yields the URL it printed."""
    pytest.importorskip("uvicorn", reason="the playground extra (uvicorn) is not installed")
    pytest.importorskip("starlette", reason="the playground extra (starlette) is not installed")
    code = "from handgrad.playground.server import serve; serve(port=0, open_browser=False)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path_factory.mktemp("playground-server"),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert proc.poll() is None, "the playground server exited at start"
                continue
            if m := re.search(r"http://127\.0\.0\.1:\d+/", line):
                url = m.group(0)
        assert url, "the server printed no URL within 30 s"
        while time.monotonic() < deadline:  # the URL is printed just before uvicorn listens
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as e:  # a broken install: say what went wrong
            unavailable(f"chromium at {CHROMIUM} did not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture
def page(browser, server_url):
    """A new tab (a new session) showing its first frame; no JavaScript error on the way."""
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("console", lambda m: m.type == "error" and errors.append(m.text))
    tab.goto(server_url)
    tab.wait_for_function("() => window.playgroundStats && window.playgroundStats.framesDrawn > 0")
    yield tab
    context.close()
    assert errors == [], errors


def frame(page, expr: str):
    """``expr`` evaluated on the page's last frame ``f``."""
    return page.evaluate(f"() => {{ const f = window.playground.view.frame; return {expr}; }}")


def wait_frame(page, condition: str, timeout: float = TIMEOUT_MS) -> None:
    page.wait_for_function(
        f"() => {{ const f = window.playground.view.frame; return !!f && ({condition}); }}",
        timeout=timeout,
    )


def set_range(page, selector: str, value: float) -> None:
    page.eval_on_selector(
        selector,
        "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', {bubbles: true}));"
        " el.dispatchEvent(new Event('change', {bubbles: true})); }",
        value,
    )


def canvas_samples(page, selector: str = "#decision") -> list[int]:
    """RGB of a 32x32 grid of pixels of a canvas."""
    return page.eval_on_selector(
        selector,
        """c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const out = [];
            for (let j = 0; j < 32; j++) for (let i = 0; i < 32; i++) {
                const x = Math.floor((i + 0.5) * c.width / 32);
                const y = Math.floor((j + 0.5) * c.height / 32);
                const k = 4 * (y * c.width + x);
                out.push(d[k], d[k + 1], d[k + 2]);
            }
            return out;
        }""",
    )


def changed_fraction(a: list[int], b: list[int]) -> float:
    pixels = [sum(abs(a[i + j] - b[i + j]) for j in range(3)) for i in range(0, len(a), 3)]
    return sum(d > 24 for d in pixels) / len(pixels)


def test_play_trains_and_the_views_follow(page):
    initial = float(page.text_content("#test-loss"))
    before = canvas_samples(page)
    set_range(page, "#speed", 10)
    wait_frame(page, "f.settings.speed === 10")
    page.click("#play")
    wait_frame(page, "f.playing && f.epoch > 0")
    assert "playing" in page.get_attribute("#play", "class")
    wait_frame(page, "f.epoch >= 300")
    page.click("#play")  # pause
    wait_frame(page, "!f.playing")
    page.wait_for_timeout(100)  # the last frame drawn
    loss = float(page.text_content("#test-loss"))
    assert loss < 0.6 * initial, (initial, loss)
    assert changed_fraction(before, canvas_samples(page)) > 0.2
    epoch = frame(page, "f.epoch")
    assert page.text_content("#epoch").replace(",", "").lstrip("0") == str(epoch)
    assert frame(page, "window.playground.view.history.length") == epoch  # every epoch once
    page.wait_for_timeout(300)
    assert frame(page, "f.epoch") == epoch  # paused means paused

    page.click("#reset")
    wait_frame(page, "f.epoch === 0")
    assert float(page.text_content("#test-loss")) == initial  # the seed's weights again
    page.click("#step")
    wait_frame(page, "f.epoch === 1")


def test_layers_and_data_set_changes_redraw_the_network(page):
    assert page.text_content("#layer-count") == "2"
    page.click("#add-layer")
    wait_frame(page, "f.layers.length === 5")
    page.wait_for_function("() => window.playground.view.layout.columns.length === 5")
    assert page.text_content("#layer-count") == "3"
    assert page.locator("#layers li").count() == 3
    assert page.text_content("#network-summary").startswith("2 → 4 → 2 → 2 → 1")

    page.click("#add-neuron-0")
    wait_frame(page, "f.settings.hidden.join() === '5,2,2'")
    page.click("#remove-layer")
    wait_frame(page, "f.settings.hidden.join() === '5,2'")
    page.click("#remove-layer")
    wait_frame(page, "f.settings.hidden.join() === '5'")
    page.wait_for_function("() => window.playground.view.layout.columns.length === 3")

    before = canvas_samples(page)
    page.select_option("#dataset", "gaussians")
    wait_frame(page, "f.settings.dataset === 'gaussians'")
    page.select_option("#classes", "4")
    wait_frame(page, "f.settings.classes === 4 && f.layers[f.layers.length - 1] === 4")
    page.wait_for_function("() => window.playground.view.layout.columns[2].length === 4")
    assert page.locator("#legend .dot:not(.plain)").count() == 4
    assert changed_fraction(before, canvas_samples(page)) > 0.2  # new points, new regions

    page.click("#feature-x1sq")
    wait_frame(page, "f.feature_names.join() === 'x1,x2,x1^2'")
    page.select_option("#dataset", "xor")
    wait_frame(page, "f.settings.dataset === 'xor' && f.settings.classes === 2")
    assert page.is_disabled("#classes")


def test_hover_shows_a_weight_and_a_neuron_map(page):
    box = page.locator("#network").bounding_box()
    # the edge from input x1 to the first neuron of layer 1: a symmetric Bezier curve whose
    # middle is the midpoint of its ends
    x, y = page.evaluate(
        """() => { const L = window.playground.view.layout, a = L.columns[0][0],
                   b = L.columns[1][0], s = L.size;
                   return [(a.x + s / 2 + b.x - s / 2) / 2, (a.y + b.y) / 2]; }"""
    )
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_selector("#tooltip", state="visible")
    weight = frame(page, "f.weights[0][0][0]")
    tip = page.text_content("#tooltip")
    assert tip == f"weight {weight:+.3f} · x₁ → neuron 1.1 (0.weight[0][0])", tip
    # over a neuron: its bias, and the decision canvas shows that neuron's map
    before = canvas_samples(page)
    x, y = page.evaluate(
        "() => { const p = window.playground.view.layout.columns[1][1]; return [p.x, p.y]; }"
    )
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_function("() => document.getElementById('tooltip').textContent.includes('bias')")
    assert page.text_content("#tooltip").startswith("neuron 1.2 · bias ")
    page.wait_for_timeout(100)
    assert changed_fraction(before, canvas_samples(page)) > 0.2
    page.mouse.move(box["x"] - 20, box["y"] - 20)
    page.wait_for_selector("#tooltip", state="hidden")


def test_a_bad_value_shows_the_error_and_the_page_goes_on(page):
    assert page.is_hidden("#error")
    page.fill("#lr", "-1")
    page.press("#lr", "Enter")
    page.wait_for_selector("#error", state="visible")
    text = page.text_content("#error-text")
    assert text.startswith("lr:") and "-1" in text
    assert frame(page, "f.settings.lr") == 0.03  # refused: nothing changed
    page.click("#step")  # the session is still there
    wait_frame(page, "f.epoch === 1")
    assert page.is_hidden("#error")
    assert page.input_value("#lr") == "0.03"  # leaving the field shows the session's value

    page.fill("#n-points", "0")
    page.press("#n-points", "Enter")
    page.wait_for_selector("#error", state="visible")
    assert "n_points" in page.text_content("#error-text")
    page.click("#error-close")
    assert page.is_hidden("#error")

    # no feature at all is refused, and the page shows the session's features again
    page.click("#feature-x1")
    wait_frame(page, "f.feature_names.join() === 'x2'")
    page.click("#feature-x2")
    page.wait_for_selector("#error", state="visible")
    assert page.text_content("#error-text").startswith("features: ")
    assert page.is_checked("#feature-x2")

    # a divergence: training stops and the banner names the epoch and the layer
    page.select_option("#activation", "linear")
    page.select_option("#optimizer", "momentum")
    wait_frame(page, "f.settings.optimizer === 'momentum'")
    page.evaluate("window.playground.send({type: 'set', settings: {hidden: [8, 8, 8, 8, 8, 8]}})")
    page.fill("#lr", "10")
    page.press("#lr", "Enter")
    wait_frame(page, "f.settings.lr === 10 && f.layers.length === 8")
    page.click("#step")
    page.wait_for_selector("#error", state="visible")
    assert page.text_content("#error-text").startswith("diverged at epoch 1: ")
    assert frame(page, "f.playing") is False
    page.click("#reset")
    page.wait_for_selector("#error", state="hidden")


def test_frame_rate_while_training_6_layers_of_8_at_full_speed(page):
    page.evaluate(
        "window.playground.send({type: 'set', settings: {hidden: [8, 8, 8, 8, 8, 8], speed: 100}})"
    )
    wait_frame(page, "f.layers.length === 8 && f.settings.speed === 100")
    page.click("#play")
    wait_frame(page, "f.playing && f.epoch > 0")
    page.wait_for_timeout(1000)  # warm up
    count = "() => [window.playgroundStats.framesDrawn, performance.now(), window.playground.view.frame.epoch]"  # noqa: E501
    n0, t0, e0 = page.evaluate(count)
    page.wait_for_timeout(4000)
    n1, t1, e1 = page.evaluate(count)
    page.click("#play")
    wait_frame(page, "!f.playing")
    fps = (n1 - n0) / ((t1 - t0) / 1000.0)
    epochs_per_s = (e1 - e0) / ((t1 - t0) / 1000.0)
    print(f"\nplayground frame rate, 6x8 tanh, speed 100: {fps:.1f} frames drawn/s, "
          f"{epochs_per_s:.0f} epochs/s")  # fmt: skip
    assert epochs_per_s > fps  # full speed: several epochs per frame
    assert fps >= MIN_FPS, f"{fps:.1f} frames per second, wanted {MIN_FPS}"


def test_screenshot(page, tmp_path):
    """The picture of docs/playground.md: a 3-class spiral learnt by a small ReLU network."""
    page.evaluate(
        "window.playground.send({type: 'set', settings: {dataset: 'spiral', classes: 3, "
        "hidden: [8, 8, 6], activation: 'relu', optimizer: 'adam', lr: 0.01, speed: 20}})"
    )
    wait_frame(page, "f.settings.dataset === 'spiral' && f.layers.length === 5")
    page.click("#play")
    wait_frame(page, "f.epoch >= 400 || (f.epoch >= 150 && f.test_accuracy > 0.97)")
    page.click("#play")
    wait_frame(page, "!f.playing")
    page.mouse.move(0, 0)
    page.wait_for_timeout(200)
    assert frame(page, "f.test_accuracy") > 0.8
    path = tmp_path / "playground.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 20_000
    if os.environ.get("HANDGRAD_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "img" / "playground.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


# ---------------------------------------------------------------------------- issue 12


def click_plane(page, x1: float, x2: float, *, shift: bool = False) -> None:
    """Click the decision plane at the data point (x1, x2)."""
    px, py = page.evaluate(
        """([x1, x2]) => { const P = window.playground.view.plot, [a, b, c, d] = P.extent;
            return [P.x + (x1 - a) / (b - a) * P.w, P.y + (d - x2) / (d - c) * P.h]; }""",
        [x1, x2],
    )
    page.locator("#decision").click(
        position={"x": px, "y": py}, modifiers=["Shift"] if shift else []
    )


def n_points(page) -> int:
    return page.evaluate(
        "() => { const p = window.playground.view.points; return p.train.length + p.test.length; }"
    )


def test_draw_three_classes_by_clicking_and_train_on_them(page):
    page.click("#clear-points")
    wait_frame(page, "f.settings.dataset === 'custom'")
    page.wait_for_function("() => window.playground.view.points.train.length === 0")
    centres = [(-0.6, -0.5), (0.6, -0.5), (0.0, 0.6)]
    drawn = 0
    for label, (cx, cy) in enumerate(centres):
        page.click(f"#draw-class-{label}")
        for j in range(7 if label < 2 else 6):
            angle = 2.4 * j
            click_plane(page, cx + 0.15 * math.cos(angle), cy + 0.15 * math.sin(angle))
            drawn += 1
            page.wait_for_function(
                "n => { const p = window.playground.view.points;"
                " return p.train.length + p.test.length === n; }",
                arg=drawn,
            )
    assert frame(page, "f.settings.classes") == 3  # the first point of class 2 added the class
    labels = page.evaluate(
        "() => { const p = window.playground.view.points; return p.train.concat(p.test)"
        ".map(q => q[2]); }"
    )
    assert sorted(labels) == [0] * 7 + [1] * 7 + [2] * 6

    page.select_option("#optimizer", "adam")
    page.fill("#lr", "0.1")
    page.press("#lr", "Enter")
    wait_frame(page, "f.settings.optimizer === 'adam' && f.settings.lr === 0.1")
    set_range(page, "#speed", 20)
    wait_frame(page, "f.settings.speed === 20")
    page.click("#play")
    wait_frame(page, "f.epoch >= 30 && f.train_accuracy > 0.9 && f.test_accuracy > 0.9")
    # the network keeps training while you draw: a point more, a shift-click less
    epoch = frame(page, "f.epoch")
    page.click("#draw-class-1")
    click_plane(page, 0.6, -0.5)
    page.wait_for_function("() => { const p = window.playground.view.points;"
                           " return p.train.length + p.test.length === 21; }")  # fmt: skip
    click_plane(page, 0.6, -0.5, shift=True)
    page.wait_for_function("() => { const p = window.playground.view.points;"
                           " return p.train.length + p.test.length === 20; }")  # fmt: skip
    wait_frame(page, f"f.playing && f.epoch > {epoch}")
    page.click("#play")
    wait_frame(page, "!f.playing")
    assert frame(page, "f.train_accuracy") > 0.9 and frame(page, "f.test_accuracy") > 0.9


CSV = (
    b"x1,x2,label\n-0.5,-0.5,cat\n0.5,0.5,dog\n-0.5,0.5,bird\n"
    b"0.5,-0.5,cat\n0.1,0.1,dog\n0.2,-0.7,bird\n"
)


def test_csv_upload_a_malformed_file_and_the_download(page):
    page.set_input_files("#csv-file", {"name": "pets.csv", "mimeType": "text/csv", "buffer": CSV})
    wait_frame(page, "f.settings.dataset === 'custom' && f.settings.classes === 3")
    page.wait_for_function("() => window.playground.view.points.train.length"
                           " + window.playground.view.points.test.length === 6")  # fmt: skip
    assert frame(page, "f.class_names") == ["cat", "dog", "bird"]
    assert page.get_attribute("#draw-class-2", "title") == "draw class 2 ('bird')"
    before = frame(page, "window.playground.view.points")

    bad = CSV + b"0.3\n"  # line 8: one column
    page.set_input_files("#csv-file", {"name": "bad.csv", "mimeType": "text/csv", "buffer": bad})
    page.wait_for_selector("#error", state="visible")
    text = page.text_content("#error-text")
    assert "line 8" in text and "3 columns" in text, text
    assert frame(page, "window.playground.view.points") == before  # nothing was lost
    bad = b"x1,x2,label\n1,abc,0\n"  # line 2: x2 is not a number
    page.set_input_files("#csv-file", {"name": "bad.csv", "mimeType": "text/csv", "buffer": bad})
    page.wait_for_function(
        "() => document.getElementById('error-text').textContent.includes('line 2')"
    )
    assert frame(page, "window.playground.view.points") == before

    big = b"0,0,0\n" * 400_000  # 2.4 MB: refused before it is sent
    page.set_input_files("#csv-file", {"name": "big.csv", "mimeType": "text/csv", "buffer": big})
    page.wait_for_function("() => document.getElementById('error-text').textContent"
                           " === 'big.csv: 2400000 bytes; at most 2 MiB'")  # fmt: skip
    assert frame(page, "window.playground.view.points") == before

    # the download is the same CSV back (labels by name, train then test in list order)
    href = page.get_attribute("#download-csv", "href")
    body = page.request.get(urljoin(page.url, href)).text()
    rows = [line.split(",") for line in body.strip().splitlines()]
    assert rows[0] == ["x1", "x2", "label"]
    sent = [line.split(",") for line in CSV.decode().strip().splitlines()[1:]]
    assert sorted((float(a), float(b), c) for a, b, c in rows[1:]) == sorted(
        (float(a), float(b), c) for a, b, c in sent
    )


def edge_colour_counts(page) -> list[int]:
    """Pixels of the network drawing in the weights' colours and in the gradients' colours."""
    return page.eval_on_selector(
        "#network",
        """c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const near = (k, rgb) => Math.abs(d[k] - rgb[0]) + Math.abs(d[k + 1] - rgb[1])
                                   + Math.abs(d[k + 2] - rgb[2]) < 40;
            let weights = 0, grads = 0;
            for (let k = 0; k < d.length; k += 4) {
                if (near(k, [192, 48, 107]) || near(k, [47, 158, 110])) grads++;
                if (near(k, [8, 119, 189]) || near(k, [245, 147, 34])) weights++;
            }
            return [weights, grads];
        }""",
    )


def test_gradients_view_redraws_the_edges_by_dl_dw(page):
    page.click("#step")
    wait_frame(page, "f.epoch === 1")
    page.wait_for_timeout(100)
    w_before, g_before = edge_colour_counts(page)
    page.click("#view-gradients")
    wait_frame(page, "f.settings.view === 'gradients' && !!f.gradients")
    page.wait_for_function("() => !document.getElementById('gradients-hint').hidden")
    page.wait_for_timeout(100)
    w_after, g_after = edge_colour_counts(page)
    assert g_before < 50 and g_after > 500, (g_before, g_after)  # edges by dL/dw
    assert w_after < w_before  # the weights' edges are gone (the heat maps stay)
    assert "view=gradients" in page.url  # a setting, so in the link too

    # hover: an edge's dL/dw, a neuron's delta (captured from the next step on), as the frame
    # has them
    page.click("#step")
    wait_frame(page, "f.epoch === 2 && !!f.gradients && !!f.gradients.delta[0]")
    box = page.locator("#network").bounding_box()
    x, y = page.evaluate(
        """() => { const L = window.playground.view.layout, a = L.columns[0][0],
                   b = L.columns[1][0], s = L.size;
                   return [(a.x + s / 2 + b.x - s / 2) / 2, (a.y + b.y) / 2]; }"""
    )
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_function(
        "() => document.getElementById('tooltip').textContent.startsWith('dL/dw')"
    )
    x, y = page.evaluate(
        "() => { const p = window.playground.view.layout.columns[1][2]; return [p.x, p.y]; }"
    )
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_function("() => document.getElementById('tooltip').textContent.includes('δ')")
    tip = page.text_content("#tooltip")
    delta = frame(page, "f.gradients.delta[0][2]")
    shown = float(re.search(r"δ = dL/dz ([-+0-9.e]+)", tip).group(1))
    assert shown == pytest.approx(delta, rel=5e-3, abs=1e-12), (tip, delta)
    if os.environ.get("HANDGRAD_SCREENSHOTS") == "1":  # a livelier network for the docs
        page.evaluate(
            "window.playground.send({type: 'set', settings: {dataset: 'moons', noise: 0.1,"
            " hidden: [6, 6, 4], activation: 'relu', optimizer: 'adam', lr: 0.01, speed: 5}})"
        )
        wait_frame(page, "f.settings.dataset === 'moons' && f.layers.length === 5")
        page.click("#play")
        wait_frame(page, "f.epoch >= 25")
        page.click("#play")
        wait_frame(page, "!f.playing")
        page.click("#step")
        wait_frame(page, "!!f.gradients && !!f.gradients.delta[0]")
        x, y = page.evaluate(
            "() => { const p = window.playground.view.layout.columns[2][1]; return [p.x, p.y]; }"
        )
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(300)
        page.screenshot(path=str(ROOT / "docs" / "img" / "playground-gradients.png"))
    page.click("#view-weights")
    wait_frame(page, "f.settings.view === 'weights' && f.gradients === undefined")


def numpy_step(e: dict) -> dict:
    """The explained step's forward and backward, again, in NumPy float64 (tanh, BCE)."""
    a = np.array(e["input"], dtype=np.float64)
    acts, zs = [a], []
    layers = e["layers"]
    for layer in layers:
        z = a @ np.array(layer["weight"]).T + np.array(layer["bias"])
        zs.append(z)
        a = np.tanh(z) if layer["activation"] == "tanh" else z
        acts.append(a)
    p = 1 / (1 + np.exp(-zs[-1]))
    t = np.array(e["targets"], dtype=np.float64).reshape(-1, 1)
    loss = float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))
    delta = (p - t) / len(t)
    deltas, grads = [None] * len(layers), [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        deltas[i], grads[i] = delta, delta.T @ acts[i]
        if i:
            delta = (delta @ np.array(layers[i]["weight"])) * (1 - acts[i] ** 2)
    return {"loss": loss, "delta": deltas, "grad": grads}


def test_one_step_explained_matches_numpy_and_handgrad(page):
    """Pick a training point with the explain tool; the table's numbers are the step's."""
    import handgrad.nn as nn

    page.click("#tool-pick")
    x1, x2 = frame(page, "window.playground.view.points.train[3].slice(0, 2)")
    click_plane(page, x1, x2)
    page.wait_for_function("() => window.playground.view.explain !== null")
    e = frame(page, "window.playground.view.explain")
    assert e["point"] == 3 and e["indices"] == [3] and e["batch"] == 1
    assert page.input_value("#explain-point") == "3"
    assert frame(page, "f.playing") is False and frame(page, "f.epoch") == 0

    ref = numpy_step(e)
    # the delta of neuron 1.2 (the 2nd neuron of hidden layer 1), as the table shows it
    cell = page.locator("#explain-delta-1-1")
    shown, full = float(cell.text_content()), float(cell.get_attribute("data-value"))
    want = ref["delta"][0][0, 1]
    assert shown == pytest.approx(want, rel=1e-4), (shown, want)  # 5 significant digits
    assert full == pytest.approx(want, rel=1e-4, abs=1e-7)  # float32 against float64
    assert float(page.text_content("#explain-loss")) == pytest.approx(ref["loss"], rel=1e-4)

    # the same with handgrad.nn itself (float64 copies of the weights the table shows)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2), nn.Tanh(), nn.Linear(2, 1))
    model = model.to(np.float64)
    for lin, layer in zip([model[0], model[2], model[4]], e["layers"], strict=True):
        lin.weight.data[...] = layer["weight"]
        lin.bias.data[...] = layer["bias"]
    loss_fn = nn.BCEWithLogitsLoss()
    out = model(np.array(e["input"], dtype=np.float64))
    loss = loss_fn(out, np.array(e["targets"], dtype=np.float64).reshape(-1, 1))
    model.backward(loss_fn.backward())
    assert float(loss) == pytest.approx(ref["loss"], rel=1e-12)
    np.testing.assert_allclose(model[0].weight.grad, ref["grad"][0], rtol=1e-10, atol=1e-14)
    g = np.array(e["backward"][-1]["grad_weight"])  # the first Linear (backward: output first)
    np.testing.assert_allclose(g, model[0].weight.grad, rtol=1e-4, atol=1e-7)
    # the update the table shows: w - lr * g, and the frame's weights after it
    upd = next(u for u in e["update"] if u["name"] == "0.weight")
    np.testing.assert_allclose(
        np.array(upd["after"]), np.array(upd["before"]) - e["lr"] * np.array(upd["grad"]), rtol=1e-5
    )
    np.testing.assert_allclose(frame(page, "f.weights[0]"), upd["after"], atol=6e-5)
    if os.environ.get("HANDGRAD_SCREENSHOTS") == "1":
        page.mouse.move(0, 0)
        shot = ROOT / "docs" / "img" / "playground-explain.png"
        page.locator("#inspector").screenshot(path=str(shot))

    # a mini-batch from the button: rows to choose, gradients over the batch
    page.click("#tool-pick")  # the tool off again
    page.fill("#explain-point", "")
    page.click("#explain-step")
    page.wait_for_function("() => window.playground.view.explain.point === null")
    e = frame(page, "window.playground.view.explain")
    assert e["batch"] == 10 and len(e["indices"]) == 10
    ref = numpy_step(e)
    page.select_option("#explain-row", "4")
    want = ref["delta"][1][4, 0]
    page.wait_for_function(
        "v => Math.abs(parseFloat(document.getElementById('explain-delta-2-0').textContent) - v)"
        " <= 1e-4 * Math.abs(v) + 1e-9",
        arg=want,
    )
    np.testing.assert_allclose(
        np.array(e["backward"][0]["grad_weight"]), ref["grad"][-1], rtol=1e-4, atol=1e-7
    )


def test_check_gradients_passes(page):
    page.click("#tab-gradcheck")
    page.click("#gradcheck")
    page.wait_for_selector("#gradcheck-verdict")
    assert page.text_content("#gradcheck-verdict").startswith("PASSED")
    rows = page.locator("#gradcheck-table tbody tr")
    assert rows.count() >= 6  # input, 3 weights, 3 biases, the loss
    assert page.locator("#gradcheck-table td.fail").count() == 0


def test_lr_100_stops_training_and_names_the_nan_origin(page):
    page.evaluate(
        "window.playground.send({type: 'set', settings: {activation: 'linear',"
        " optimizer: 'momentum', hidden: [8, 8, 8, 8, 8, 8]}})"
    )
    wait_frame(page, "f.layers.length === 8 && f.settings.activation === 'linear'")
    page.fill("#lr", "100")
    page.press("#lr", "Enter")
    wait_frame(page, "f.settings.lr === 100")
    page.click("#play")
    page.wait_for_selector("#nan-origin", state="visible")
    wait_frame(page, "!f.playing && !!f.nan_origin")
    origin = frame(page, "f.nan_origin")
    text = page.text_content("#nan-origin")
    assert text.startswith(f"NaN origin: {origin['tensor']} is {origin['value']} first, at epoch ")
    assert page.is_visible("#error") and page.text_content("#error-text").startswith(
        "diverged at epoch"
    )
    epoch = frame(page, "f.epoch")
    page.wait_for_timeout(300)
    assert frame(page, "f.epoch") == epoch  # stopped, and the page still answers:
    page.click("#reset")
    wait_frame(page, "f.epoch === 0 && !f.nan_origin")
    page.wait_for_selector("#nan-origin", state="hidden")


def test_settings_live_in_the_url(page, server_url):
    page.select_option("#activation", "relu")
    wait_frame(page, "f.settings.activation === 'relu'")
    page.wait_for_function("() => location.search.includes('activation=relu')")
    page.goto(server_url + "?dataset=spiral&classes=3&hidden=8,6&lr=0.01")
    wait_frame(page, "f.settings.dataset === 'spiral' && f.settings.hidden.join() === '8,6'")
    assert frame(page, "[f.settings.classes, f.settings.lr]") == [3, 0.01]
    assert page.input_value("#lr") == "0.01" and page.text_content("#layer-count") == "2"
    # a bad value: the message, and the defaults
    page.goto(server_url + "?lr=abc&hidden=8")
    page.wait_for_selector("#error", state="visible")
    assert page.text_content("#error-text").startswith("lr:")
    wait_frame(page, "f.settings.lr === 0.03 && f.settings.hidden.join() === '4,2'")
    page.wait_for_function("() => location.search === ''")


def test_reproduce_command_and_downloads(page, tmp_path):
    """Your own points, trained 3 epochs on the page, then by the command: the same loss."""
    rng = np.random.default_rng(1)
    xy = np.concatenate([rng.normal(-0.4, 0.25, (30, 2)), rng.normal(0.4, 0.25, (30, 2))])
    rows = [f"{a:.3f},{b:.3f},{'ab'[i >= 30]}" for i, (a, b) in enumerate(xy)]
    csv = "\n".join(["x1,x2,label", *rows]).encode()
    page.set_input_files("#csv-file", {"name": "two.csv", "mimeType": "text/csv", "buffer": csv})
    wait_frame(page, "f.settings.dataset === 'custom' && f.class_names.join() === 'a,b'")
    page.evaluate(
        "window.playground.send({type: 'set', settings: {hidden: [5], activation: 'relu',"
        " optimizer: 'adam', lr: 0.02}})"
    )
    wait_frame(page, "f.settings.hidden.join() === '5' && f.settings.optimizer === 'adam'")
    for n in range(1, 4):
        page.click("#step")
        wait_frame(page, f"f.epoch === {n}")
    page.click("#tab-reproduce")
    page.click("#reproduce")
    page.wait_for_function("() => window.playground.view.reproduce !== null")
    r = frame(page, "window.playground.view.reproduce")
    assert r["exact"] and r["epochs"] == 3
    assert r["csv"] and Path(r["csv"]).is_file() and f"data={r['csv']}" in r["argv"]
    assert page.text_content("#reproduce-command") == r["command"]
    assert r["command"] == shlex.join(r["argv"])
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#copy-command")
    page.wait_for_function("() => document.getElementById('copy-command').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == r["command"]

    page_loss = frame(page, "f.train_loss")
    out = tmp_path / "runs"
    argv = [*r["argv"], "--out", str(out), "--quiet"]
    assert argv[:3] == ["handgrad", "run", "boundary"]
    command = [sys.executable, "-m", "handgrad", *argv[1:]]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(next(out.glob("boundary-*/results.json")).read_text())
    assert results["train_loss"] == r["train_loss"]  # bit for bit
    assert results["train_loss"] == pytest.approx(page_loss, rel=1e-6)

    # the weights as handgrad's checkpoint, and (with torch) as a PyTorch state dict
    href = page.get_attribute("#download-npz", "href")
    blob = page.request.get(urljoin(page.url, href)).body()
    (tmp_path / "weights.npz").write_bytes(blob)
    from handgrad.train import load_checkpoint

    state = load_checkpoint(tmp_path / "weights.npz")["model"]
    np.testing.assert_allclose(state["0.weight"], frame(page, "f.weights[0]"), atol=6e-5)
    torch_url = frame(page, "window.playground.view.downloads.torch_state")
    if torch_url is None:
        assert page.get_attribute("#download-pt", "aria-disabled") == "true"
        return
    torch = pytest.importorskip("torch")
    (tmp_path / "model.pt").write_bytes(page.request.get(urljoin(page.url, torch_url)).body())
    sd = torch.load(tmp_path / "model.pt")
    np.testing.assert_allclose(sd["0.weight"].numpy(), state["0.weight"], rtol=1e-6)
