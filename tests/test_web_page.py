"""The web control page in a real browser: Debian's Chromium, driven by Playwright, against a real ``stylesynth
serve``; values are checked on the server with python-osc over UDP.

Playwright drives the system browser (``executable_path``): ``playwright install`` would download a browser build,
which this project never does. The server renders with the procedural ``gaver`` model (the page is the point, not
the model), headless, except for the trigger test, which plays into a private JACK dummy server so that a voice can
be seen starting.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import OscClient, launch_server, module_server

pytestmark = pytest.mark.timeout(180)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _require_browser():
    missing = [what for what, ok in (("chromium (apt-get install chromium)", CHROMIUM.exists()),
                                      ("playwright (pip install -e .[test])", _has_playwright())) if not ok]
    if missing:
        message = "the browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):  # CI installs both (scripts/install.sh --test): missing there is a failure
            pytest.fail(message)
        pytest.skip(message)


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One Chromium for the module; each test opens its own page (a fresh context)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data-dir: nothing from earlier runs
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900})
        yield context
        context.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "web")


def open_page(browser, server):
    """The page, loaded, connected, listening, and free of script errors so far (checked again at teardown)."""
    page = browser.new_page()
    page.script_errors = []
    page.on("pageerror", lambda error: page.script_errors.append(str(error)))
    page.goto(f"http://127.0.0.1:{server.oscquery_port}/")  # a browser at the root is sent to /ui/
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    assert page.url.endswith("/ui/")
    return page


@pytest.fixture
def page(browser, server):
    page = open_page(browser, server)
    yield page
    errors = page.script_errors
    page.close()
    assert not errors, errors


def wait_until(predicate, timeout: float = 10.0, message: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, message or "condition not met in time"
        time.sleep(0.05)


def slider(page, name: str):
    return page.locator(f"input[type=range][data-path='/stylesynth/{name}']")


# -- tests -----------------------------------------------------------------------------------------------------

def test_every_parameter_has_a_control_built_from_the_tree(page):
    from stylesynth import params as P

    for param in P.PARAMS.values():
        assert page.locator(f".control[data-path='{param.osc_address}']").count() == 1, param.name
    assert slider(page, "seed").count() == 0  # 2^31 values: a box and a random button, not a slider
    options = page.locator("select[data-path='/stylesynth/prototype'] option").all_inner_texts()
    assert options == ["none", "Hits", "Scratches"]  # the loaded model's names, from RANGE VALS


def test_moving_a_slider_changes_the_server(page, udp):
    brightness = slider(page, "brightness")
    box = brightness.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.5 * box["width"], y)  # the thumb (brightness starts at 0, mid-range)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.8 * box["width"], y, steps=12)  # a drag: a dozen input events, sent latest-wins
    page.mouse.up()
    shown = float(brightness.input_value())
    assert shown > 1.0
    wait_until(lambda: abs(udp.query("brightness") - shown) < 1e-5,
               message=f"the server never reached the slider's {shown}")
    page.select_option("select[data-path='/stylesynth/prototype']", "Scratches")
    wait_until(lambda: udp.query("prototype") == "Scratches")
    page.click("details[data-group='query'] > summary")  # the query section starts folded
    page.locator("input[type=checkbox][data-path='/stylesynth/query/burst']").check()
    wait_until(lambda: udp.query("query/burst") is True)


def test_the_page_follows_changes_made_elsewhere(page, udp):
    udp.send("/stylesynth/rate", -3.5)
    udp.send("/stylesynth/seed", 4242)
    udp.send("/stylesynth/loop", 0)
    page.wait_for_function("document.querySelector(\"input[type=range][data-path='/stylesynth/rate']\").value"
                           " === '-3.5'", timeout=5_000)
    assert page.locator("input[data-value-of='/stylesynth/rate']").input_value() == "-3.5"
    page.wait_for_function("document.querySelector(\"input[data-value-of='/stylesynth/seed']\").value === '4242'",
                           timeout=5_000)
    page.wait_for_function("!document.querySelector(\"input[data-path='/stylesynth/loop']\").checked",
                           timeout=5_000)
    udp.send("/stylesynth/loop", 1)


def test_an_out_of_range_value_shows_the_servers_error(page, udp):
    box = page.locator("input[data-value-of='/stylesynth/impact']")
    box.fill("9")
    box.press("Enter")
    error = page.locator("#errors .error").first
    error.wait_for(timeout=5_000)
    assert "/stylesynth/impact" in error.inner_text() and "clamped to 5" in error.inner_text()
    assert udp.query("impact") == 5.0
    page.wait_for_function("document.querySelector(\"input[type=range][data-path='/stylesynth/impact']\").value"
                           " === '5'", timeout=5_000)
    # Already at 5: clamping changes nothing, so no value is pushed; the page asks and shows the truth anyway.
    box.fill("12")
    box.press("Enter")
    page.wait_for_function("document.querySelector(\"input[data-value-of='/stylesynth/impact']\").value === '5'",
                           timeout=5_000)
    # The /error and the answer to the page's query come separately: wait for the error too.
    page.wait_for_function("document.querySelectorAll('#errors .error').length >= 2", timeout=5_000)
    texts = page.locator("#errors .error").all_inner_texts()
    assert len(texts) == 2 and "impact 12" in texts[0] and "impact 9" in texts[1], texts  # one per Enter
    box.fill("loud")  # not a number: said on the page, nothing sent
    box.press("Enter")
    assert "is not a number" in page.locator("#errors .error").first.inner_text()
    assert udp.query("impact") == 5.0


def test_the_newest_clips_spectrogram_and_sound_load(page, udp, server):
    udp.send("/stylesynth/seed", 777)
    udp.sync()
    seq = int(page.evaluate("fetch('/clip/latest.wav', {method: 'GET'}).then(r => r.headers.get('X-Clip-Seq'))"))
    page.wait_for_function(f"document.getElementById('spectrogram').alt.endsWith('clip {seq}')", timeout=10_000)
    width = page.evaluate("document.getElementById('spectrogram').naturalWidth")
    assert width > 0
    src = page.evaluate("document.getElementById('player').src")
    assert src.endswith(f"/clip/latest.wav?seq={seq}")
    duration = page.evaluate("""() => new Promise((resolve, reject) => {
        const audio = new Audio(document.getElementById('player').src);
        audio.onloadedmetadata = () => resolve(audio.duration);
        audio.onerror = () => reject(new Error('the browser cannot decode the clip'));
    })""")
    assert abs(duration - 2.048) < 0.01  # the browser decoded the whole clip
    page.screenshot(path=str(server.log_path.with_name("web-page.png")), full_page=True)


def test_the_trigger_button_starts_a_voice(jack_server, browser, tmp_path):
    server = launch_server(tmp_path, "--no-zeroconf", env=jack_server.env)
    try:
        udp = OscClient(server.port)
        udp.send("/stylesynth/loop", 0)
        udp.sync()
        page = open_page(browser, server)
        assert udp.request("/status", reply="/status.reply")[7] == 0
        page.click("#trigger")
        wait_until(lambda: udp.request("/status", reply="/status.reply")[7] >= 1, timeout=5,
                   message="no voice started after the Trigger button")
        page.click("#panic")
        wait_until(lambda: udp.request("/status", reply="/status.reply")[7] == 0, timeout=5)
        assert not page.script_errors, page.script_errors
        page.close()
        udp.close()
    finally:
        assert server.stop() == 0
    assert "headless" not in next(line for line in server.log.splitlines() if "audio output:" in line)


def test_a_second_page_sees_the_first_pages_moves(browser, server, page):
    other = open_page(browser, server)
    try:
        page.locator("input[data-value-of='/stylesynth/truncation']").fill("0.25")
        page.locator("input[data-value-of='/stylesynth/truncation']").press("Enter")
        other.wait_for_function(
            "document.querySelector(\"input[type=range][data-path='/stylesynth/truncation']\").value === '0.25'",
            timeout=5_000)
    finally:
        other.close()

