"""The OSC server, driven by a real python-osc client over UDP against a real ``stylesynth serve`` subprocess.

Every address in :mod:`stylesynth.params` is set and queried; every kind of bad input the server must survive is
sent and its ``/error`` reply checked. The server renders with the procedural ``gaver`` model (real audio, no
checkpoint needed), headless.
"""
from __future__ import annotations

import json
import math
import socket
import struct
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from conftest import OscClient, encode, launch_server, module_server
from stylesynth import params as P

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "osc")


@pytest.fixture
def client(udp):
    return udp


def _valid_value(param: P.Param):
    if param.type == P.FLOAT:
        return float(param.minimum + 0.25 * (param.maximum - param.minimum))
    if param.type == P.INT:
        return int(param.minimum + 1)
    if param.type == P.BOOL:
        return not param.default
    return {"prototype": "Hits", "start": "Knock - Wood", "model": "gaver"}[param.name]


def _bundle(timestamp, *messages) -> bytes:
    builder = OscBundleBuilder(timestamp)
    for address, *args in messages:
        m = OscMessageBuilder(address)
        for a in args:
            m.add_arg(a)
        builder.add_content(m.build())
    return builder.build().dgram


# -- every parameter -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("param", list(P.PARAMS.values()), ids=lambda p: p.name)
def test_every_param_set_and_query(client, param):
    value = _valid_value(param)
    client.send(param.osc_address, value)
    got = client.query(param.name)
    if param.type == P.FLOAT:
        assert got == pytest.approx(value, abs=1e-5)
    else:
        assert got == value
    if param.name != "model":
        # restore the default so later tests start from a known state
        client.send(param.osc_address, param.default)
        expected = pytest.approx(param.default) if param.is_number else param.default
        assert client.query(param.name) == expected


@pytest.mark.parametrize("param", [p for p in P.PARAMS.values() if p.is_number], ids=lambda p: p.name)
def test_out_of_range_is_clamped_and_reported(client, param):
    over = param.maximum + 1000
    client.send(param.osc_address, float(over) if param.type == P.FLOAT else int(over))
    err = client.wait_for("/error")
    assert err and err[0] == param.osc_address and "clamped" in err[1]
    assert client.query(param.name) == pytest.approx(param.maximum)
    client.send(param.osc_address, param.default)
    client.drain()


@pytest.mark.parametrize("param", [p for p in P.PARAMS.values() if p.type != P.STRING], ids=lambda p: p.name)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_refused_and_value_kept(client, param, bad):
    before = client.query(param.name)
    client.send(param.osc_address, bad)
    err = client.wait_for("/error")
    assert err and err[0] == param.osc_address and "finite" in err[1]
    assert client.query(param.name) == before


@pytest.mark.parametrize("name", ["brightness", "seed", "gain", "loop"])
def test_wrong_type_refused(client, name):
    param = P.get(name)
    before = client.query(name)
    client.send(param.osc_address, "loud")
    err = client.wait_for("/error")
    assert err and err[0] == param.osc_address and "number" in err[1]
    client.send(param.osc_address, b"\x00\x01")  # a blob
    assert "blob" in client.wait_for("/error")[1]
    assert client.query(name) == before


@pytest.mark.parametrize("name", ["prototype", "start", "model"])
def test_string_params_refuse_numbers_and_unknown_names(client, name):
    param = P.get(name)
    client.send(param.osc_address, 3.0)
    assert "string" in client.wait_for("/error")[1]
    if name != "model":
        client.send(param.osc_address, "No Such Thing")
        err = client.wait_for("/error")
        assert "not one of" in err[1], err


def test_wrong_argument_counts(client):
    client.send("/stylesynth/brightness", 1.0, 2.0)
    assert "argument" in client.wait_for("/error")[1]
    client.send("/stylesynth/brightness")
    assert "argument" in client.wait_for("/error")[1]
    client.send("/stylesynth/trigger", 1.0, 1.0)
    assert client.wait_for("/error")[0] == "/stylesynth/trigger"
    client.send("/sync")
    assert client.wait_for("/error")[0] == "/sync"


def test_bool_param_takes_pd_floats_and_bang(client):
    client.send("/stylesynth/query/burst", 1.0)
    assert client.query("query/burst") is True
    client.send("/stylesynth/query/burst", 0)
    assert client.query("query/burst") is False
    client.send("/stylesynth/query/burst")  # a bare message is a bang: on
    assert client.query("query/burst") is True
    client.send("/stylesynth/query/burst", False)
    assert client.query("query/burst") is False


def test_int_param_takes_integral_floats(client):
    client.send("/stylesynth/seed", 42.0)  # what Pd sends
    assert client.query("seed") == 42
    client.send("/stylesynth/seed", 0)


# -- commands ---------------------------------------------------------------------------------------------------

def test_status_version_sync(client):
    status = client.request("/status", reply="/status.reply")
    model, regenerations, coalesced, dropped, xruns, p50, p99, voices, clients, uptime = status
    assert model == "gaver" and regenerations >= 1 and p99 >= p50 > 0 and uptime > 0
    assert all(isinstance(x, int) for x in (coalesced, dropped, xruns, voices, clients))
    assert client.request("/version", reply="/version.reply")[0] == "stylesynth"
    assert client.request("/sync", 77, reply="/synced") == [77]
    assert client.request("/sync", "abc", reply="/synced") == ["abc"]


def test_trigger_and_panic(client):
    client.send("/stylesynth/trigger")
    client.send("/stylesynth/trigger", 0.5)
    client.send("/stylesynth/trigger", 3.0)
    err = client.wait_for("/error")
    assert err[0] == "/stylesynth/trigger" and "clamped" in err[1]
    client.send("/stylesynth/trigger", math.nan)
    assert "finite" in client.wait_for("/error")[1]
    assert client.request("/stylesynth/panic", reply="/done") == ["/stylesynth/panic"]
    assert client.query("loop") is False
    client.send("/stylesynth/loop", 1)
    assert client.query("loop") is True


def test_queries_of_model_lists(client):
    assert client.request("/stylesynth/q/prototypes", reply="/stylesynth/prototypes") == ["Hits", "Scratches"]
    starts = client.request("/stylesynth/q/start_points", reply="/stylesynth/start_points")
    assert "Knock - Wood" in starts
    client.send("/stylesynth/q/nothing")
    assert "unknown parameter" in client.wait_for("/error")[1]


def test_dump_sends_every_param(client):
    client.send("/stylesynth/dump")
    got = {}
    while len(got) < len(P.PARAMS):
        msg = client.recv(2.0)
        assert msg is not None, f"dump incomplete: {sorted(set(P.BY_ADDRESS) - set(got))}"
        got[msg[0]] = msg[1]
    assert set(got) == set(P.BY_ADDRESS)


def test_unknown_address_and_malformed_packets(client):
    client.send("/stylesynth/volume", 1.0)
    err = client.wait_for("/error")
    assert err[0] == "/stylesynth/volume" and "unknown address" in err[1]
    client.send_raw(b"hello")
    assert "not an OSC" in client.wait_for("/error")[1]
    client.send_raw(b"/stylesynth/gain\x00\x00\x00\x00,f\x00\x00\x00")  # a float tag with no float
    err = client.wait_for("/error")
    assert err[0] == "/stylesynth/gain" and "malformed" in err[1]
    client.send_raw(b"#bundle\x00\x00\x00")  # truncated bundle header
    assert "malformed" in client.wait_for("/error")[1]
    client.send_raw(b"/a" + b"\xff" * 30)
    assert client.wait_for("/error") is not None


def test_oversized_packet_refused(client):
    client.send_raw(encode("/stylesynth/start", "x" * 20000))
    err = client.wait_for("/error")
    assert "bytes refused" in err[1]
    assert client.query("start") == ""


def test_notify_values_and_audio_files(client, server):
    assert client.request("/notify", 1, reply="/done") == ["/notify", 1]
    client.send("/stylesynth/rate", 1.5)
    assert client.wait_for("/stylesynth/rate") == [pytest.approx(1.5)]
    path, seq = client.wait_for("/stylesynth/audio/file", timeout=10)
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and len(audio) == 32768 and np.abs(audio).max() > 0.01
    assert str(server.cache_dir.resolve()) in path
    assert client.request("/notify", 0, reply="/done") == ["/notify", 0]
    client.send("/stylesynth/rate", 0.0)
    client.sync()
    assert not [m for m in client.drain() if m[0] == "/stylesynth/audio/file"]


def test_audio_chunks_reassemble_to_the_wav(client):
    assert client.request("/notify", 1, 1, reply="/done") == ["/notify", 1]
    client.send("/stylesynth/seed", 5)
    chunks, count, path, seq = {}, None, None, None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (path is None or count is None or len(chunks) < count):
        msg = client.recv(2.0)
        if msg is None:
            break
        address, args = msg
        if address == "/stylesynth/audio/file":
            path, seq = args
        elif address == "/stylesynth/audio/chunk":
            s, index, count, blob = args
            chunks[index] = (s, blob)
    client.request("/notify", 0, reply="/done")
    assert len(chunks) == count and all(s == seq for s, _ in chunks.values())
    samples = np.frombuffer(b"".join(chunks[i][1] for i in range(count)), dtype="<f4")
    wav, _ = sf.read(path, dtype="float32")
    np.testing.assert_array_equal(samples, wav)
    # every chunk packet fits one MTU
    assert max(len(encode("/stylesynth/audio/chunk", seq, 0, count, b)) for _, b in chunks.values()) <= 1400
    client.send("/stylesynth/seed", 0)


def test_reply_port_message_and_explicit_port(server, client, osc_client_factory):
    listener = osc_client_factory(server.port)  # a separate socket: where replies should go
    assert client.request("/reply_port", listener.port, reply="/done", timeout=3) is None  # went to listener
    assert listener.wait_for("/done") == ["/reply_port", listener.port]
    client.send("/version")
    assert listener.wait_for("/version.reply") is not None
    assert client.recv(0.3) is None
    client.send("/reply_port", 0)  # back to the sender's own port, from this reply on
    assert client.wait_for("/done") == ["/reply_port", 0]
    assert client.request("/version", reply="/version.reply") is not None
    assert listener.recv(0.2) is None
    client.send("/reply_port", 70000)
    assert "0..65535" in client.wait_for("/error")[1]


def test_reply_port_flag(tmp_path, osc_client_factory):
    reply = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reply.bind(("127.0.0.1", 0))
    reply_port = reply.getsockname()[1]
    reply.close()
    srv = launch_server(tmp_path, "--no-audio", "--reply-port", str(reply_port), "--oscquery-port", "0",
                        probe_port=reply_port)
    try:
        sender = osc_client_factory(srv.port)
        listener = osc_client_factory(srv.port, bind_port=reply_port)
        sender.send("/version")
        assert listener.wait_for("/version.reply") is not None
        assert sender.recv(0.2) is None
    finally:
        assert srv.stop() == 0


def test_presets_round_trip_and_refusals(client, server):
    client.send("/stylesynth/brightness", 2.5)
    client.send("/stylesynth/query/order", 6)
    assert client.request("/preset/save", "bright", reply="/done") == ["/preset/save", "bright"]
    saved = json.loads((server.presets_dir / "bright.json").read_text())
    assert saved["params"]["brightness"] == 2.5 and saved["params"]["query/order"] == 6
    client.send("/stylesynth/brightness", -1.0)
    client.send("/stylesynth/query/order", 2)
    assert client.request("/preset/load", "bright", reply="/done") == ["/preset/load", "bright"]
    assert client.query("brightness") == 2.5 and client.query("query/order") == 6
    for bad in ["../etc/passwd", "", "a b", "x" * 65]:
        client.send("/preset/save", bad)
        assert "refused" in client.wait_for("/error")[1]
    client.send("/preset/load", "missing")
    assert "no preset" in client.wait_for("/error")[1]
    (server.presets_dir / "broken.json").write_text("{not json")
    client.send("/preset/load", "broken")
    assert "not valid JSON" in client.wait_for("/error")[1]
    (server.presets_dir / "alien.json").write_text(json.dumps(
        {"format": "stylesynth-preset", "version": 1, "params": {"brightness": 1.0, "volume": 3}}))
    client.send("/preset/load", "alien")
    assert "unknown parameters: volume" in client.wait_for("/error")[1]
    (server.presets_dir / "nan.json").write_text(
        '{"format": "stylesynth-preset", "version": 1, "params": {"brightness": NaN, "rate": 1.0}}')
    client.send("/preset/load", "nan")
    assert "finite" in client.wait_for("/error")[1]
    assert client.query("brightness") == 2.5 and client.query("rate") == 0.0  # nothing changed
    client.send("/stylesynth/brightness", 0.0)
    client.send("/stylesynth/query/order", 4)


def test_learn_without_midi_says_so(client):
    client.send("/learn", "brightness")
    assert "MIDI is not enabled" in client.wait_for("/error")[1]
    client.send("/learn", "nope")
    assert "unknown parameter" in client.wait_for("/error")[1]


# -- bundles and time tags -------------------------------------------------------------------------------------

def test_bundle_immediate_late_future_and_far_future(client):
    client.send_raw(_bundle(IMMEDIATELY, ("/stylesynth/rate", 1.0), ("/stylesynth/impact", -1.0)))
    assert client.query("rate") == 1.0 and client.query("impact") == -1.0
    client.send_raw(_bundle(time.time() - 5.0, ("/stylesynth/rate", 2.0)))  # late: applied at once
    assert client.query("rate") == 2.0
    client.send_raw(_bundle(time.time() + 0.6, ("/stylesynth/rate", 3.0)))
    assert client.query("rate") == 2.0  # not yet
    time.sleep(0.8)
    assert client.query("rate") == 3.0
    client.send_raw(_bundle(time.time() + 60.0, ("/stylesynth/rate", 4.0)))
    err = client.wait_for("/error")
    assert err[0] == "/stylesynth/rate" and "ahead refused" in err[1]
    assert client.query("rate") == 3.0
    client.send_raw(_bundle(IMMEDIATELY, ("/stylesynth/rate", 0.0), ("/stylesynth/impact", 0.0)))
    client.sync()


def test_deeply_nested_and_huge_bundles_refused(client):
    inner = _bundle(IMMEDIATELY, ("/stylesynth/rate", 1.0))
    for _ in range(12):
        inner = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", len(inner)) + inner
    client.send_raw(inner)
    assert "nested" in client.wait_for("/error")[1]
    many = _bundle(IMMEDIATELY, *[("/stylesynth/rate", 1.0)] * 300)
    client.send_raw(many)
    assert "messages refused" in client.wait_for("/error")[1]
    assert client.query("rate") == 0.0


def test_flood_is_rate_limited_and_counted(server, osc_client_factory):
    flooder = osc_client_factory(server.port)
    packet = encode("/stylesynth/brightness", 0.5)
    for _ in range(3000):
        flooder.send_raw(packet)
    errors = [m for m in flooder.drain(0.3) if m[0] == "/error" and "rate limit" in m[1][1]]
    assert errors, "no rate-limit /error"
    assert len(errors) <= 3  # at most one a second, not one per dropped message
    observer = osc_client_factory(server.port)  # another sender is not affected
    status = observer.request("/status", reply="/status.reply")
    assert status[3] >= 1000  # dropped
    flooder.send("/stylesynth/brightness", 0.0)
    time.sleep(1.1)
    flooder.send("/stylesynth/brightness", 0.0)
    observer.sync()


# -- models ----------------------------------------------------------------------------------------------------

def test_missing_and_corrupt_model_keep_the_old_one(client, server, tmp_path):
    client.send("/stylesynth/model", "no-such-model")
    err = client.wait_for("/error", timeout=30)
    assert err[0] == "/stylesynth/model" and "no-such-model" in err[1] and "still playing 'gaver'" in err[1]
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.json").write_text('{"format": "stylesynth-generator", "version": 1}')
    (corrupt / "generator.safetensors").write_bytes(b"\x80\x04garbage-pickle" * 10)
    client.send("/stylesynth/model", str(corrupt))
    err = client.wait_for("/error", timeout=30)
    assert err[0] == "/stylesynth/model" and "still playing 'gaver'" in err[1]
    assert client.query("model") == "gaver"
    status = client.request("/status", reply="/status.reply")
    assert status[0] == "gaver"
    client.send("/stylesynth/seed", 9)  # still renders
    client.sync()
    assert client.request("/status", reply="/status.reply")[1] > status[1]
    client.send("/stylesynth/seed", 0)


# -- binding and OSCQuery ---------------------------------------------------------------------------------------

def test_binds_loopback_by_default(server):
    local = f"0100007F:{server.port:04X}"
    with open("/proc/net/udp") as f:
        rows = [line.split()[1] for line in f.readlines()[1:]]
    assert local in rows, "OSC socket is not bound to 127.0.0.1"
    assert f"00000000:{server.port:04X}" not in rows


def test_oscquery_tree_matches_params(server):
    base = f"http://127.0.0.1:{server.oscquery_port}"
    tree = json.load(urllib.request.urlopen(base + "/", timeout=5))
    node = tree["CONTENTS"]["stylesynth"]["CONTENTS"]
    for param in P.PARAMS.values():
        parts = param.name.split("/")
        leaf = node[parts[0]] if len(parts) == 1 else node[parts[0]]["CONTENTS"][parts[1]]
        assert leaf["FULL_PATH"] == param.osc_address
        assert leaf["TYPE"] == ("T" if param.type == P.BOOL else param.type)
        assert leaf["ACCESS"] == 3 and leaf["DESCRIPTION"] == param.description
        assert "VALUE" in leaf
        if param.is_number:
            assert leaf["RANGE"] == [{"MIN": param.minimum, "MAX": param.maximum}]
    assert node["prototype"]["RANGE"] == [{"VALS": ["none", "Hits", "Scratches"]}]
    info = json.load(urllib.request.urlopen(base + "/?HOST_INFO", timeout=5))
    assert info["OSC_PORT"] == server.port and info["OSC_TRANSPORT"] == "UDP"
    value = json.load(urllib.request.urlopen(base + "/stylesynth/gain?VALUE", timeout=5))
    assert value == {"VALUE": [0.0]}
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(base + "/stylesynth/nothing", timeout=5)
    assert exc.value.code == 404


def test_server_survived_everything(server, client):
    assert server.alive()
    assert client.request("/status", reply="/status.reply") is not None
    assert "Traceback" not in server.log


# -- the serve command -----------------------------------------------------------------------------------------

def test_no_sound_card_no_jack_falls_back_to_headless_and_stops_cleanly(tmp_path):
    import os
    import signal

    env = dict(os.environ, JACK_DEFAULT_SERVER="no-such-jack-server", JACK_NO_START_SERVER="1")
    srv = launch_server(tmp_path, "--oscquery-port", "0", env=env)  # no --no-audio: it must find out itself
    try:
        lines = [line for line in srv.log.splitlines() if "audio output:" in line]
        assert len(lines) == 1 and "headless" in lines[0] and "still serving OSC" in lines[0], srv.log
        client = OscClient(srv.port)
        assert client.request("/notify", 1, reply="/done") == ["/notify", 1]
        client.send("/stylesynth/seed", 4)
        path, _ = client.wait_for("/stylesynth/audio/file", timeout=10)
        assert sf.info(path).frames == 32768  # clips still reach clients
        client.close()
        srv.proc.send_signal(signal.SIGINT)
        assert srv.proc.wait(timeout=10) == 0
        assert "SIGINT received" in srv.log and "stopped" in srv.log and "Traceback" not in srv.log
    finally:
        srv.stop()


@pytest.mark.parametrize("args,message", [
    (["--model", "no-such-model"], "cannot load model 'no-such-model'"),
    (["--osc-port", "70000"], "is not a UDP/TCP port"),
    (["--block-size", "3"], "outside 16..8192"),
    (["--audio-device", "no-such-card"], "audio device 'no-such-card' cannot be opened"),
])
def test_serve_refuses_bad_options_in_one_line(args, message):
    import subprocess
    import sys
    from pathlib import Path

    cmd = [str(Path(sys.executable).with_name("stylesynth")), "serve", "--model", "gaver", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


# -- refusals that happen later, on the engine's worker --------------------------------------------------------

def test_renderer_refusals_reach_the_sender_and_the_old_sound_plays_on(start_server, tmp_path):
    """Values the state accepts but the loaded model refuses later (while rendering, or when a model switch resets
    them) are answered with /error to the sender's reply port; the old clip keeps playing."""
    import shutil

    from conftest import REPO, free_port

    bare = tmp_path / "bare"  # the shipped generator without its semantic controls: brightness cannot act
    bare.mkdir()
    for name in ("model.json", "generator.safetensors"):
        shutil.copy(REPO / "checkpoints" / "hits" / name, bare / name)
    server = start_server("--no-audio")
    sender = OscClient(server.port)
    replies = OscClient(server.port, bind_port=free_port())
    try:
        sender.send("/reply_port", replies.port)  # every answer goes to the reply port from here on
        assert replies.wait_for("/done") == ["/reply_port", replies.port]
        # A start point gaver has, sent while the new model loads: reset when it arrives.
        sender.send("/stylesynth/model", str(bare))
        sender.send("/stylesynth/start", "Knock - Wood")
        err = replies.wait_for("/error", timeout=60, match=lambda a: a[0] == "/stylesynth/start")
        assert err is not None and "'Knock - Wood' is not in model" in err[1] and "reset to seed" in err[1]
        sender.send("/sync", 1)
        assert replies.wait_for("/synced", timeout=30) == [1]
        sender.send("/status")
        status = replies.wait_for("/status.reply")
        assert status[0] == "hits"
        sender.send("/stylesynth/brightness", 2.0)
        err = replies.wait_for("/error", timeout=30)
        assert err[0] == "/stylesynth/brightness" and "ships no semantic controls" in err[1], err
        assert "previous clip keeps playing" in err[1]
        sender.send("/stylesynth/q/brightness")
        assert replies.wait_for("/stylesynth/brightness") == [0.0]  # put back: the state says what is heard
        sender.send("/status")
        after = replies.wait_for("/status.reply")
        assert after[1] == status[1], "a refused render must not count as a regeneration"
        sender.send("/stylesynth/seed", 5)  # and the server still renders what the model can do
        sender.send("/sync", 7)
        assert replies.wait_for("/synced", timeout=30) == [7]
        sender.send("/status")
        assert replies.wait_for("/status.reply")[1] == status[1] + 1
    finally:
        sender.close()
        replies.close()
