"""OSCQuery over HTTP and its WebSocket, against a real ``stylesynth serve`` with real clients.

The WebSocket client is ``websockets``' own synchronous client; values are set and checked with python-osc over UDP,
so every test crosses both transports. The server renders with the procedural ``gaver`` model, headless.
"""
from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request

import pytest
import soundfile as sf
from pythonosc.osc_message import OscMessage
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import encode, module_server
from stylesynth import params as P

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "oscquery")


@pytest.fixture
def ws(server):
    with connect(f"ws://127.0.0.1:{server.oscquery_port}/", open_timeout=5) as conn:
        yield conn


def get(server, path: str, accept: str | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{server.oscquery_port}{path}")
    if accept:
        request.add_header("Accept", accept)
    return urllib.request.urlopen(request, timeout=10)


def listen(conn, *paths: str, command: str = "LISTEN") -> None:
    """Send the commands and return once the server has taken them: frames of one connection are handled in
    order, so the reply to an OSC message sent after them means they are in effect."""
    for path in paths:
        conn.send(json.dumps({"COMMAND": command, "DATA": path}))
    conn.send(encode("/version"))
    wait_for(conn, "/version.reply")


def messages(conn, timeout: float = 1.0, until=None) -> list[tuple[str, list]]:
    """Binary frames decoded as OSC, until ``until(address, args)`` is true or ``timeout`` seconds of quiet."""
    out = []
    while True:
        try:
            frame = conn.recv(timeout=timeout)
        except TimeoutError:
            return out
        assert isinstance(frame, bytes), f"the server sent a text frame: {frame!r}"
        msg = OscMessage(frame)
        out.append((msg.address, list(msg.params)))
        if until is not None and until(msg.address, msg.params):
            return out


def wait_for(conn, address: str, timeout: float = 5.0, match=None) -> list:
    got = messages(conn, timeout, until=lambda a, p: a == address and (match is None or match(list(p))))
    assert got and got[-1][0] == address, f"no {address} over the WebSocket; got {got}"
    return got[-1][1]


# -- HTTP ------------------------------------------------------------------------------------------------------

def test_host_info_offers_listen_on_the_same_port(server):
    info = json.load(get(server, "/?HOST_INFO"))
    assert info["EXTENSIONS"]["LISTEN"] is True
    assert info["WS_PORT"] == server.oscquery_port and info["OSC_PORT"] == server.port
    assert info["OSC_TRANSPORT"] == "UDP"


def test_tree_carries_groups_and_the_clip_number(server):
    tree = json.load(get(server, "/"))
    node = tree["CONTENTS"]["stylesynth"]["CONTENTS"]
    assert node["brightness"]["TAGS"] == [P.PARAMS["brightness"].group]
    assert node["audio"]["CONTENTS"]["seq"]["ACCESS"] == 1 and node["audio"]["CONTENTS"]["seq"]["VALUE"][0] >= 1
    assert set(tree["CONTENTS"]) == {"stylesynth"}  # nothing shadows /ui/ and /clip/


def test_root_gives_json_to_clients_and_the_page_to_browsers(server):
    assert get(server, "/").headers["Content-Type"] == "application/json"
    page = get(server, "/", accept="text/html,application/xhtml+xml,*/*;q=0.8")  # urllib follows the redirect
    assert page.url.endswith("/ui/") and page.headers["Content-Type"].startswith("text/html")
    assert b"<html" in page.read()
    for bad in ("/ui/../oscquery.py", "/ui/.hidden", "/ui/nothing.js", "/clip/other.wav"):
        with pytest.raises(urllib.error.HTTPError) as exc:
            get(server, bad)
        assert exc.value.code == 404, bad


def test_latest_clip_as_wav_and_png_follows_the_newest_clip(server, udp):
    udp.send("/stylesynth/seed", 11)
    udp.sync()
    first = get(server, "/clip/latest.wav")
    seq = int(first.headers["X-Clip-Seq"])
    audio, rate = sf.read(io.BytesIO(first.read()))
    assert rate == 16000 and audio.shape == (32768,) and abs(audio).max() > 0.01
    png = get(server, "/clip/latest.png")
    assert png.headers["Content-Type"] == "image/png" and int(png.headers["X-Clip-Seq"]) == seq
    assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    udp.send("/stylesynth/seed", 12)
    udp.sync()
    assert int(get(server, "/clip/latest.png").headers["X-Clip-Seq"]) > seq


# -- WebSocket -------------------------------------------------------------------------------------------------

def test_listen_pushes_changes_from_udp_and_ignore_stops_them(server, udp, ws):
    listen(ws, "/stylesynth/brightness", "/stylesynth/rate", "/stylesynth/audio/seq")
    udp.send("/stylesynth/brightness", 1.5)
    assert wait_for(ws, "/stylesynth/brightness") == [1.5]
    assert wait_for(ws, "/stylesynth/audio/seq")[0] >= 1  # the change made a new clip
    listen(ws, "/stylesynth/brightness", command="IGNORE")
    udp.send("/stylesynth/brightness", -2.0)
    udp.send("/stylesynth/rate", 0.5)  # pushed after brightness would be, from the same thread
    got = messages(ws, 5.0, until=lambda a, p: a == "/stylesynth/rate")
    assert ("/stylesynth/rate", [0.5]) in got
    assert not [m for m in got if m[0] == "/stylesynth/brightness"], got
    assert udp.query("brightness") == -2.0


def test_binary_frames_are_osc_with_the_servers_checks_and_replies(server, udp, ws):
    ws.send(encode("/stylesynth/gain", 3.0))
    ws.send(encode("/stylesynth/q/gain"))
    assert wait_for(ws, "/stylesynth/gain") == [3.0]
    assert udp.query("gain") == 3.0
    ws.send(encode("/stylesynth/brightness", 9.0))
    error = wait_for(ws, "/error")
    assert error[0] == "/stylesynth/brightness" and "clamped to 5" in error[1]
    ws.send(encode("/stylesynth/nothing", 1))
    assert wait_for(ws, "/error")[0] == "/stylesynth/nothing"
    ws.send(encode("/sync", 42))
    assert wait_for(ws, "/synced") == [42]


def test_junk_frames_get_errors_and_the_connection_stays_usable(server, udp, ws):
    junk = [b"junk", b"\x00" * 64, b"/stylesynth/brightness\x00\x00,f\x00", "not json", "[1, 2]",
            json.dumps({"COMMAND": "LISTEN"}), json.dumps({"COMMAND": "EXPLODE", "DATA": "/stylesynth/rate"}),
            json.dumps({"COMMAND": "LISTEN", "DATA": "/stylesynth/nothing"}), "x" * 10_000]
    for frame in junk:
        ws.send(frame)
    got = messages(ws, 2.0)
    errors = [args for address, args in got if address == "/error"]
    assert len(errors) == len(junk), got
    reasons = " | ".join(reason for _, reason in errors)
    for words in ("not an OSC message", "not an OSCQuery command", "unknown OSCQuery command 'EXPLODE'",
                  "has no value to listen to", "text frame of 10000 characters refused"):
        assert words in reasons
    listen(ws, "/stylesynth/truncation")
    udp.send("/stylesynth/truncation", 0.5)
    assert wait_for(ws, "/stylesynth/truncation") == [0.5]


def test_a_flood_and_a_client_that_never_reads_do_not_hurt_the_server(server, udp):
    with connect(f"ws://127.0.0.1:{server.oscquery_port}/") as lazy, \
            connect(f"ws://127.0.0.1:{server.oscquery_port}/") as flooder:
        listen(lazy, *P.BY_ADDRESS)  # listens to everything, reads nothing until the end
        for i in range(5000):
            flooder.send(encode("/stylesynth/rate", (i % 100) / 25.0))
        for i in range(500):
            udp.send("/stylesynth/impact", (i % 50) / 10.0)
        udp.send("/stylesynth/impact", 1.25)
        assert udp.request("/status", reply="/status.reply", timeout=5) is not None
        flooder.send(encode("/version"))
        assert wait_for(flooder, "/version.reply", timeout=10)[0] == "stylesynth"
        # The lazy client's pushes were coalesced per path: its newest impact is the last one set.
        got = messages(lazy, 2.0)
        impacts = [args[0] for address, args in got if address == "/stylesynth/impact"]
        assert impacts and impacts[-1] == 1.25
        assert len(got) < 1000, "pushes were queued, not coalesced"
    assert server.alive()


def test_notify_through_the_websocket_is_undone_when_it_closes(server, udp):
    def clients() -> int:
        return udp.request("/status", reply="/status.reply")[8]

    before = clients()
    with connect(f"ws://127.0.0.1:{server.oscquery_port}/") as conn:
        conn.send(encode("/notify", 1))
        assert wait_for(conn, "/done") == ["/notify", 1]
        assert clients() == before + 1
        udp.send("/stylesynth/seed", 77)
        path, _ = wait_for(conn, "/stylesynth/audio/file", timeout=10)  # /notify's own pushes come too
        assert path.endswith(".wav")
    deadline = time.monotonic() + 5
    while clients() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert clients() == before


def test_websocket_from_another_sites_page_is_refused(server):
    with pytest.raises(InvalidStatus) as exc:
        connect(f"ws://127.0.0.1:{server.oscquery_port}/", origin="http://evil.example")
    assert exc.value.response.status_code == 403
    own = f"http://127.0.0.1:{server.oscquery_port}"
    with connect(f"ws://127.0.0.1:{server.oscquery_port}/", origin=own) as conn:
        conn.send(encode("/version"))
        assert wait_for(conn, "/version.reply")[0] == "stylesynth"
