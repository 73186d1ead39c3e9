"""MIDI over a real JACK graph: a private ``jackd -d dummy``, ``stylesynth serve --midi-virtual`` (or ``--midi
PORT``) as a subprocess, MIDI sent from other JACK clients (mido's UNIX_JACK backend, raw bytes through JACK-Client,
a sender in a separate process), results read back over OSC (``/stylesynth/q/<param>``, ``/status``, ``/learn``).

One server serves most tests (starting one costs a few seconds); tests that need their own (a bad mapping, a
vanishing source port) start it themselves.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid

import mido
import pytest

from conftest import STYLESYNTH, launch_server

jack = pytest.importorskip("jack")

MAPPING = """\
name = "jack-test"
takeover = "jump"

[[control]]
cc = 20
target = "rate"
takeover = "pickup"

[[control]]
cc = 21                 # the marker: a jump control whose arrival proves earlier messages were handled
target = "sefa/1"

[[control]]
cc14 = 2
target = "brightness"

[[control]]
nrpn = 300
target = "impact"

[[control]]
cc = 22
target = "sefa/2"

[notes]
velocity_curve = "linear"

[program]
target = "start"
"""


def value_of(cc_value: int, lo: float = -5.0, hi: float = 5.0, top: int = 127) -> float:
    return lo + (hi - lo) * cc_value / top


@pytest.fixture(scope="module")
def server(jack_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("midi")
    (tmp / "map.toml").write_text(MAPPING)
    client_name = f"ssmidi{uuid.uuid4().hex[:6]}"
    srv = launch_server(tmp, "--midi-virtual", "--midi-client", client_name, "--midi-map", str(tmp / "map.toml"))
    srv.midi_port = f"{client_name}:midi_in"
    _wait_log(srv, f"MIDI input: {srv.midi_port} (jack)")   # serve answers OSC before MIDI is open
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def out(server):
    """A MIDI output of ours (a second JACK client) connected to the server's virtual input."""
    backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
    port = backend.open_output(server.midi_port)
    yield port
    port.close()


@pytest.fixture
def client(server, osc_client_factory):
    return osc_client_factory(server.port)


class RawSender:
    """A JACK client writing arbitrary bytes as MIDI events (what rtmidi and mido refuse to send)."""

    def __init__(self, target: str):
        self.client = jack.Client(f"junk{uuid.uuid4().hex[:6]}", no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        self.pending: list[bytes] = []
        self.client.set_process_callback(self._process)
        self.client.activate()
        self.client.connect(self.port, target)

    def _process(self, frames):
        self.port.clear_buffer()
        if self.pending:                      # one event per period, as a device would spread them
            self.port.write_midi_event(0, self.pending.pop(0))

    def send(self, *packets: bytes, timeout: float = 2.0):
        self.pending.extend(packets)
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not self.pending, "the JACK process callback did not run"

    def close(self):
        self.client.deactivate()
        self.client.close()


def cc(control, value, channel=0):
    return mido.Message("control_change", control=control, value=value, channel=channel)


def wait_value(client, name, expected, timeout=3.0, abs_tol=1e-4):
    """Poll ``/stylesynth/q/<name>`` until it equals ``expected``; return the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = client.query(name)
        ok = value == pytest.approx(expected, abs=abs_tol) if isinstance(expected, float) else value == expected
        if ok or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


_marker = iter(range(1, 10_000))


def settle(out, client):
    """Send the marker CC and wait for it: everything sent before on this port has been handled."""
    v = next(_marker) % 128
    out.send(cc(21, v))
    assert wait_value(client, "sefa/1", value_of(v)) == pytest.approx(value_of(v), abs=1e-4)


# -- tests ---------------------------------------------------------------------------------------------------------

def test_cc_moves_a_parameter(out, client):
    out.send(cc(21, 127))
    assert wait_value(client, "sefa/1", 5.0) == pytest.approx(5.0)
    out.send(cc(21, 0, channel=9))                           # omni: any channel
    assert wait_value(client, "sefa/1", -5.0) == pytest.approx(-5.0)


def test_14_bit_cc_resolution(out, client):
    out.send(cc(2, 64))
    out.send(cc(34, 1))                                       # LSB: 64 * 128 + 1
    expected = value_of(64 * 128 + 1, top=16383)
    got = wait_value(client, "brightness", expected, abs_tol=1e-5)
    assert got == pytest.approx(expected, abs=1e-5)
    assert abs(got - value_of(64)) > 1e-3                     # finer than any 7-bit step could land


def test_nrpn_resolution(out, client):
    for control, value in ((99, 2), (98, 44), (6, 100), (38, 27)):   # NRPN 2 * 128 + 44 = 300
        out.send(cc(control, value))
    expected = value_of(100 * 128 + 27, top=16383)
    assert wait_value(client, "impact", expected, abs_tol=1e-5) == pytest.approx(expected, abs=1e-5)


def test_note_triggers_a_one_shot(out, client):
    client.sync()
    before = client.request("/status", reply="/status.reply")
    assert before is not None
    voices_at = 7                                            # /status.reply: model regen coalesced dropped xruns
    out.send(mido.Message("note_on", note=60, velocity=110))  # p50 p99 voices clients uptime
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        status = client.request("/status", reply="/status.reply")
        if status[voices_at] >= 1:
            break
        time.sleep(0.02)
    assert status[voices_at] >= 1, status
    out.send(mido.Message("note_off", note=60))


def test_program_change_selects_a_start_point(out, client):
    names = client.request("/stylesynth/q/start_points", reply="/stylesynth/start_points")
    assert len(names) >= 2
    out.send(mido.Message("program_change", program=1))
    assert wait_value(client, "start", names[1]) == names[1]
    out.send(mido.Message("program_change", program=100))   # past the list: refused, nothing changes
    settle(out, client)
    assert client.query("start") == names[1]


def test_cc_123_panics(out, client):
    client.send("/stylesynth/loop", 1)
    assert wait_value(client, "loop", True) is True
    out.send(cc(123, 0, channel=3))
    assert wait_value(client, "loop", False) is False


def test_soft_takeover_pickup(out, client):
    out.send(cc(20, 64))                                      # the knob takes rate near 0 ...
    assert wait_value(client, "rate", value_of(64)) == pytest.approx(value_of(64), abs=1e-4)
    client.send("/stylesynth/rate", 3.0)                      # ... then OSC moves it: 3.0 sits at 101.6 / 127
    assert wait_value(client, "rate", 3.0) == pytest.approx(3.0)
    for v in (70, 80, 95):                                    # below 3.0: no jump back
        out.send(cc(20, v))
    settle(out, client)
    assert client.query("rate") == pytest.approx(3.0)
    out.send(cc(20, 110))                                     # crossed 3.0: the knob has it again
    assert wait_value(client, "rate", value_of(110)) == pytest.approx(value_of(110), abs=1e-4)
    out.send(cc(20, 100))
    assert wait_value(client, "rate", value_of(100)) == pytest.approx(value_of(100), abs=1e-4)


def test_junk_bytes_and_sysex_are_survived(server, out, client):
    raw = RawSender(server.midi_port)
    try:
        raw.send(bytes([0x45, 0x20]),                         # data bytes with no status
                 bytes([0xB0, 22]),                           # truncated control change
                 bytes([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7]),  # a whole sysex (ignored)
                 bytes([0xF4]),                               # undefined status byte
                 bytes([0xB0, 22, 10, 22, 127]))              # running status inside one event
        assert wait_value(client, "sefa/2", 5.0) == pytest.approx(5.0)
        # An unterminated sysex with a CC after it in one event: rtmidi holds it until an F7 comes; the server's
        # flush F7 ends it. (Sent as two events, the flush's F7 could land between them and complete the sysex:
        # seen once in a full run.)
        raw.send(bytes([0xF0, 0x01, 0x02, 0xB0, 22, 0]))
        assert wait_value(client, "sefa/2", -5.0, timeout=3) == pytest.approx(-5.0)
    finally:
        raw.close()
    settle(out, client)
    log = server.log
    assert "2 data byte(s) with no status byte skipped (45 20)" in log
    assert "truncated message skipped (B0 16" in log
    assert "undefined or stray status byte 0xF4" in log
    assert "unterminated sysex of 3 bytes skipped (F0 01 02)" in log
    assert server.alive()


def test_learn_picks_the_moved_controller(out, client):
    client.send("/learn", "strength")
    time.sleep(0.3)                                           # armed
    out.send(cc(40, 60, channel=3))                           # a small nudge elsewhere ...
    for v in (10, 30, 50, 70, 90):                            # ... and the knob that really moves (mido's
        out.send(cc(41, v, channel=3))                        # channel 3 is MIDI channel 4)
    done = client.wait_for("/done", timeout=8, match=lambda a: a[:2] == ["/learn", "strength"])
    assert done is not None and "CC 41 ch 4 -> strength" in done[2]
    for v in (80, 100, 127):                                  # learnt with pickup: crosses 0.7 (88.9 / 127),
        out.send(cc(41, v, channel=3))                        # then spans strength's full range [0, 1]
    assert wait_value(client, "strength", 1.0) == pytest.approx(1.0)
    out.send(cc(41, 0, channel=4))                            # another channel: not this control
    settle(out, client)
    assert client.query("strength") == pytest.approx(1.0)


def test_learn_times_out_with_an_error(client):
    client.send("/learn", "sefa/9")
    err = client.wait_for("/error", timeout=8, match=lambda a: a[0] == "/learn")
    assert err is not None and "no controller moved within" in err[1]


def test_bad_mapping_refuses_to_start_with_its_line(jack_server, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n\n[[control]]\ncc = 74\ntarget = "brigthness"\n')
    proc = subprocess.run([str(STYLESYNTH), "serve", "--model", "gaver", "--no-audio", "--osc-port", "0",
                           "--oscquery-port", "0", "--midi-virtual", "--midi-client", "ssbad", "--midi-map", str(bad)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{bad} line 5: unknown parameter 'brigthness' (did you mean brightness?)" in proc.stderr
    assert "Traceback" not in proc.stderr


SENDER = textwrap.dedent("""
    import sys, time, rtmidi
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=sys.argv[1])
    out.open_virtual_port("out")
    print("ready", flush=True)
    for line in sys.stdin:                  # "cc value" per line
        control, value = map(int, line.split())
        out.send_message([0xB0, control, value])
        print("sent", flush=True)
""")


def _sender(name, env=None):
    proc = subprocess.Popen([sys.executable, "-c", SENDER, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _send(proc, control, value):
    proc.stdin.write(f"{control} {value}\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "sent"


def _wait_log(server, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while text not in server.log:
        assert time.monotonic() < deadline, f"{text!r} not in the log:\n{server.log[-1500:]}"
        time.sleep(0.05)


def test_vanished_port_is_reopened(jack_server, tmp_path, osc_client_factory):
    name = f"ctl{uuid.uuid4().hex[:6]}"
    (tmp_path / "map.toml").write_text(MAPPING)
    sender = _sender(name)
    server = launch_server(tmp_path, "--no-audio", "--midi", name, "--midi-client", f"ss{name}",
                           "--midi-map", str(tmp_path / "map.toml"))
    try:
        client = osc_client_factory(server.port)
        _wait_log(server, f"MIDI input: {name}:out (jack)")   # serve answers OSC before MIDI is open
        _send(sender, 21, 127)
        assert wait_value(client, "sefa/1", 5.0) == pytest.approx(5.0)
        sender.terminate()
        sender.wait(timeout=5)
        _wait_log(server, f"MIDI port {name}:out vanished")
        sender = _sender(name)                               # the device comes back
        _wait_log(server, f"MIDI port {name}:out is back: reconnected")
        _send(sender, 21, 0)
        assert wait_value(client, "sefa/1", -5.0) == pytest.approx(-5.0)
        assert server.alive()
    finally:
        sender.kill()
        sender.wait()
        server.stop()


def test_default_client_names_are_clear_and_stable(tmp_path, osc_client_factory):
    """With audio and MIDI both on JACK, the audio client is ``stylesynth`` and the MIDI client
    ``stylesynth-midi`` (never a JACK-made ``stylesynth-01``); a second server asking for the same MIDI name is
    refused in one line instead of being renamed. Its own jackd (the module's server already owns ``stylesynth``),
    so every JACK client here lives in a subprocess: libjack serves one JACK server per process."""
    from conftest import start_jackd, stop_jackd

    private = start_jackd()
    (tmp_path / "map.toml").write_text(MAPPING)
    server = sender = None
    try:
        server = launch_server(tmp_path, "--midi-virtual", "--midi-map", str(tmp_path / "map.toml"),
                               env=private.env)
        _wait_log(server, "MIDI input: stylesynth-midi:midi_in (jack)")
        ports = private.ports().split()
        assert "stylesynth:out_0" in ports and "stylesynth-midi:midi_in" in ports, ports
        assert not [p for p in ports if p.startswith("stylesynth-0")], ports   # no renamed clients
        sender = _sender("ctlnames", env=private.env)
        subprocess.run(["jack_connect", "ctlnames:out", "stylesynth-midi:midi_in"], env=private.env, check=True,
                       timeout=10)
        client = osc_client_factory(server.port)
        _send(sender, 21, 127)
        assert wait_value(client, "sefa/1", 5.0) == pytest.approx(5.0)
        time.sleep(1.5)   # past a liveness check: our own port is found under its name, not reported vanished
        assert "vanished" not in server.log and "cannot find our own port" not in server.log
        second = subprocess.run([str(STYLESYNTH), "serve", "--model", "gaver", "--no-audio", "--osc-port", "0",
                                 "--oscquery-port", "0", "--midi-virtual", "--midi-map", str(tmp_path / "map.toml")],
                                capture_output=True, text=True, timeout=60, cwd=tmp_path, env=private.env)
        assert second.returncode == 2, second.stderr[-1500:]
        assert "a JACK client named 'stylesynth-midi' already exists" in second.stderr
        assert "Traceback" not in second.stderr
        assert not [p for p in private.ports().split() if p.startswith("stylesynth-midi-0")]
    finally:
        if sender is not None:
            sender.kill()
            sender.wait()
        if server is not None:
            server.stop()
        stop_jackd(private)
