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

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

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
def server_url():
    """`serve(port=0)` in a subprocess; yields the URL it printed."""
    pytest.importorskip("uvicorn", reason="the playground extra (uvicorn) is not installed")
    pytest.importorskip("starlette", reason="the playground extra (starlette) is not installed")
    code = "from handgrad.playground.server import serve; serve(port=0, open_browser=False)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
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
