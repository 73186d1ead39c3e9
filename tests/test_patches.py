"""The generated clients (README table, Pd, Max, TouchOSC) match stylesynth.params and work.

* Drift: every generated file equals what ``stylesynth.patchgen`` produces from the table now.
* Pure Data, for real: ``pd -nogui`` runs the generated patch (only its ports changed to free ones); a harness patch
  moves every control through its receive name, so each message goes through the patch's own objects
  (slider -> oscformat -> list prepend send -> list trim -> netsend) to a python-osc server here, which checks
  address, type and value. Then the test sends ``/stylesynth/audio/file`` with a real wav to the patch's
  ``netreceive`` and reads Pd's own log line proving ``soundfiler`` loaded it.
* Max (cannot run here): static checks of the JSON (ids, lines, inlet/outlet indices, ports, dial ranges, addresses).
* TouchOSC (cannot run here): py2tosc loads and validates the layout; every control's OSC path and scaling agree
  with the table, and python-osc can encode exactly what each control sends.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import socket
import subprocess
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from stylesynth import params, patchgen
from stylesynth.params import BOOL, FLOAT, INT, STRING

ADDRESSES = set(params.BY_ADDRESS) | {a for a in params.COMMANDS if "<" not in a} | \
    {f"{params.PREFIX}/q/{name}" for name in params.PARAMS}


# --- Drift ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", list(patchgen.generated_files()), ids=lambda p: p.name)
def test_generated_file_is_up_to_date(path):
    expected = patchgen.generated_files()[path]
    assert path.is_file(), f"{path} is missing: run python -m stylesynth.patchgen"
    assert path.read_bytes() == expected, f"{path.name} differs from the params table: run python -m stylesynth.patchgen"


def test_readme_table_lists_every_address():
    section = patchgen.README.read_text().split(patchgen.BEGIN)[1].split(patchgen.END)[0]
    for p in params.PARAMS.values():
        assert f"| `{p.osc_address}` | {p.type} |" in section
    for address in params.COMMANDS:
        assert f"| `{address}` |" in section


def test_readme_replacement_refuses_a_readme_without_markers():
    with pytest.raises(ValueError, match="markers"):
        patchgen.readme_with_table("# no markers here\n")


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    # --check must fail on a drifted file and write nothing.
    fake = tmp_path / "stylesynth.pd"
    fake.write_text("#N canvas 0 50 100 100 10;\n")
    real = patchgen.generated_files
    monkeypatch.setattr(patchgen, "generated_files", lambda: {fake: real()[patchgen.PATCH_DIR / "stylesynth.pd"]})
    monkeypatch.setattr(patchgen, "ROOT", tmp_path)
    assert patchgen.main(["--check"]) == 1
    assert "out of date: stylesynth.pd" in capsys.readouterr().err
    assert fake.read_text() == "#N canvas 0 50 100 100 10;\n"


# --- Pure Data: static ---------------------------------------------------------------------------------------------

def pd_records(text: str) -> list[str]:
    """The records of a .pd file (split on unescaped semicolons)."""
    return [r.strip() for r in re.split(r"(?<!\\);\n", text) if r.strip()]


def pd_objects(text: str) -> list[str]:
    """Every object-like record (boxes, comments, atoms, subpatch boxes), on every canvas."""
    return [r for r in pd_records(text) if r.startswith("#X ") and not r.startswith("#X connect")]


@pytest.mark.parametrize("name", ["stylesynth.pd", "stylesynth-help.pd"])
def test_pd_connections_are_in_range(name):
    # Pd numbers objects per canvas (a subpatch is one object of its parent); a connection may only name objects
    # already created on its own canvas.
    counts = []
    connections = 0
    for record in pd_records((patchgen.PATCH_DIR / name).read_text()):
        if record.startswith("#N canvas"):
            counts.append(0)
        elif record.startswith("#X restore"):
            counts.pop()
            counts[-1] += 1
        elif record.startswith("#X connect"):
            source, _, sink, _ = map(int, record.split()[2:6])
            assert 0 <= source < counts[-1] and 0 <= sink < counts[-1] and source != sink, record
            connections += 1
        elif record.startswith("#X "):
            counts[-1] += 1
    assert len(counts) == 1 and connections > 0


def test_pd_patch_has_a_control_for_every_parameter():
    text = patchgen.pd_patch()
    for p in params.PARAMS.values():
        assert f" {patchgen.receive_name(p)} " in text, f"no control receives {patchgen.receive_name(p)}"
        flag = "-f i " if p.type in (INT, BOOL) else ""
        assert f"oscformat {flag}{' '.join(patchgen.address_parts(p.osc_address))};" in text
    vanilla = {"loadbang", "t", "r", "s", "list", "netsend", "netreceive", "oscformat", "oscparse", "route",
               "unpack", "pack", "soundfiler", "expr", "vline~", "tabread4~", "*~", "dac~", "table", "print",
               "hsl", "tgl", "bng"}
    used = {r.split()[4] for r in pd_objects(text) if r.startswith("#X obj")}
    assert used <= vanilla, f"non-vanilla objects: {used - vanilla}"


# --- Pure Data: for real -------------------------------------------------------------------------------------------

class OscCollector:
    """A python-osc UDP server on a free port that records (address, typetags, args) of what it receives."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.messages: list[tuple[str, str, tuple]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            message = OscMessage(data)
            tags = message.dgram[len(message.address) // 4 * 4 + 4:].split(b"\0", 1)[0].decode()[1:]
            self.messages.append((message.address, tags, tuple(message.params)))

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_value(p):
    """A value for ``p`` other than its default, exactly representable in Pd's 32-bit floats."""
    if p.type == FLOAT:
        return p.minimum + 0.75 * (p.maximum - p.minimum)
    if p.type == INT:
        return 123456 if p.maximum >= 2**24 else (p.minimum + p.maximum) // 2 + 1
    if p.type == BOOL:
        return 0 if p.default else 1
    return {"prototype": patchgen.layout_prototypes()[-1], "model": "water", "start": "Knock"}[p.name]


def harness(lines: list[str]) -> str:
    """A Pd patch that, 300 ms after loading, sends each ``"receive-name message"`` line (stylesynth.pd's own receive
    names), with a 20 s watchdog that quits Pd."""
    message = " \\; ".join(lines)
    return ("#N canvas 0 50 400 300 10;\n#X obj 10 10 loadbang;\n#X obj 10 35 delay 300;\n"
            f"#X msg 10 60 \\; {message};\n#X obj 10 120 delay 20000;\n#X msg 10 145 \\; pd quit;\n"
            "#X connect 0 0 1 0;\n#X connect 1 0 2 0;\n#X connect 0 0 3 0;\n#X connect 3 0 4 0;\n")


def control_lines(values: dict) -> list[str]:
    """Harness lines setting every parameter to ``values[name]``."""
    return [f"{patchgen.receive_name(p)} " + (f"symbol {values[p.name]}" if p.type == STRING else f"{values[p.name]}")
            for p in params.PARAMS.values()]


@contextmanager
def running_pd(pd: str, tmp_path: Path, server_port: int, listen: int, lines: list[str]):
    """Run the generated stylesynth.pd headless, its two ports moved to ``server_port`` (where it sends) and
    ``listen`` (where it receives), beside a harness sending ``lines``. Yields Pd's stderr lines as they come."""
    text = patchgen.pd_patch()
    text = text.replace(f"connect 127.0.0.1 {patchgen.SERVER_PORT};", f"connect 127.0.0.1 {server_port};")
    text = text.replace(f"netreceive -u -b {patchgen.PD_REPLY_PORT};", f"netreceive -u -b {listen};")
    text = re.sub(rf"(#X msg \d+ \d+) {patchgen.PD_REPLY_PORT};", rf"\1 {listen};", text)
    assert text.count(f" {server_port};") == 1 and text.count(f" {listen};") == 2, "the patch's ports moved"
    (tmp_path / "stylesynth.pd").write_text(text)
    (tmp_path / "harness.pd").write_text(harness(lines))
    proc = subprocess.Popen([pd, "-nogui", "-nosound", "-nomidi", "-noprefs", "-stderr",
                             "-open", str(tmp_path / "stylesynth.pd"), "-open", str(tmp_path / "harness.pd")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        yield log
    finally:
        proc.terminate()
        proc.wait(5)


def pd_log(log: list[str]) -> str:
    return "".join(log).replace("\\ ", " ")  # Pd prints a symbol's spaces escaped


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def send_osc(port: int, address: str, *args) -> None:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(builder.build().dgram, ("127.0.0.1", port))


@pytest.fixture
def pd():
    exe = shutil.which("pd")
    if exe is None:
        pytest.fail("Pure Data is not installed: run 'bash scripts/install.sh --test' (puredata-core)")
    return exe


def test_pd_patch_sends_every_control_and_loads_the_servers_audio(pd, tmp_path):
    collector = OscCollector()
    listen = free_udp_port()
    values = {p.name: sample_value(p) for p in params.PARAMS.values()}
    lines = control_lines(values) + ["stylesynth-trigger bang", "stylesynth-panic bang"]
    wav = tmp_path / "clip.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(32768) * 0.05)).astype(np.float32), 16000, subtype="FLOAT")
    try:
        with running_pd(pd, tmp_path, collector.port, listen, lines) as log:
            expected = len(params.PARAMS) + 4  # every parameter, trigger, panic, and /reply_port + /notify at load
            wait_for(lambda: len(collector.messages) >= expected, 15)
            assert len(collector.messages) == expected, (collector.messages, log)
            got = {address: (tags, args) for address, tags, args in collector.messages}
            assert got["/reply_port"] == ("i", (listen,))
            assert got["/notify"] == ("i", (1,))
            assert got[f"{params.PREFIX}/trigger"] == ("", ())
            assert got[f"{params.PREFIX}/panic"] == ("", ())
            for p in params.PARAMS.values():
                tags, args = got[p.osc_address]
                want = values[p.name]
                if p.type == FLOAT:
                    assert tags == "f" and math.isclose(args[0], want, rel_tol=1e-6), (p.name, args)
                    assert p.minimum <= args[0] <= p.maximum
                elif p.type in (INT, BOOL):
                    assert (tags, args) == ("i", (want,)), p.name
                else:
                    assert (tags, args) == ("s", (want,)), p.name
            assert set(got) <= ADDRESSES

            # The reply side: an audio file announcement and an error, through netreceive -> oscparse -> route.
            send_osc(listen, f"{params.PREFIX}/audio/file", str(wav), 1)
            send_osc(listen, "/error", "/stylesynth/rate", "out of range")
            wait_for(lambda: "stylesynth-error" in pd_log(log), 10)
            text = pd_log(log)
            assert "stylesynth: loaded 32768 samples at 16000 Hz" in text, text
            assert "stylesynth-error: /stylesynth/rate out of range" in text, text
            assert "couldn't create" not in text, text
    finally:
        collector.close()


def test_pd_patch_drives_the_real_server(pd, tmp_path, start_server, osc_client_factory):
    # The whole loop with real programs: Pd's slider -> stylesynth serve -> new clip -> wav path back to Pd, read
    # by soundfiler; and a value the server refuses comes back as /error, printed by the patch.
    server = start_server("--no-audio")
    listen = free_udp_port()
    lines = ["stylesynth-brightness 2.5", "stylesynth-prototype symbol no-such-prototype"]
    with running_pd(pd, tmp_path, server.port, listen, lines) as log:
        assert wait_for(lambda: "stylesynth: loaded" in pd_log(log) and "stylesynth-error" in pd_log(log), 30), \
            f"Pd log:\n{pd_log(log)}\nserver log:\n{server.log[-3000:]}"
        text = pd_log(log)
        samples, rate = map(int, re.search(r"stylesynth: loaded (\d+) samples at (\d+) Hz", text).groups())
        assert samples > 0 and rate > 0
        assert "stylesynth-error: /stylesynth/prototype" in text, text
        assert osc_client_factory(server.port).query("brightness") == pytest.approx(2.5)
    assert server.alive()


def test_pd_help_patch_loads_cleanly(pd, tmp_path):
    quitter = tmp_path / "quit.pd"
    quitter.write_text("#N canvas 0 50 200 100 10;\n#X obj 10 10 loadbang;\n#X msg 10 35 \\; pd quit;\n"
                       "#X connect 0 0 1 0;\n")
    result = subprocess.run([pd, "-nogui", "-nosound", "-nomidi", "-noprefs", "-stderr",
                             "-open", str(patchgen.PATCH_DIR / "stylesynth-help.pd"), "-open", str(quitter)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "couldn't create" not in result.stderr and "error" not in result.stderr.lower(), result.stderr


# --- Max -----------------------------------------------------------------------------------------------------------

def max_json() -> dict:
    return json.loads((patchgen.PATCH_DIR / "stylesynth.maxpat").read_text())["patcher"]


def test_max_patch_is_well_formed():
    patcher = max_json()
    boxes = [b["box"] for b in patcher["boxes"]]
    ids = [b["id"] for b in boxes]
    assert len(ids) == len(set(ids)), "duplicate box ids"
    by_id = {b["id"]: b for b in boxes}
    for line in patcher["lines"]:
        (source, outlet), (sink, inlet) = line["patchline"]["source"], line["patchline"]["destination"]
        assert source in by_id and sink in by_id, f"dangling line {line}"
        assert 0 <= outlet < by_id[source]["numoutlets"], f"outlet {outlet} of {by_id[source].get('text')}"
        assert 0 <= inlet < by_id[sink]["numinlets"], f"inlet {inlet} of {by_id[sink].get('text')}"
    for box in boxes:
        assert len(box.get("outlettype", [])) == box["numoutlets"], box


def test_max_patch_addresses_ports_and_ranges_match_the_table():
    boxes = [b["box"] for b in max_json()["boxes"]]
    texts = [b.get("text", "") for b in boxes]
    assert f"udpsend 127.0.0.1 {patchgen.SERVER_PORT}" in texts
    assert f"udpreceive {patchgen.MAX_REPLY_PORT}" in texts
    assert f"/reply_port {patchgen.MAX_REPLY_PORT}" in texts, "Max needs an explicit reply port"
    sent = [t.split()[1] for t in texts if t.startswith("prepend /")]
    sent += [t.split()[0] for b, t in zip(boxes, texts) if b["maxclass"] == "message" and t.startswith("/")]
    assert set(sent) <= ADDRESSES, set(sent) - ADDRESSES
    assert {p.osc_address for p in params.PARAMS.values()} <= set(sent)
    dials = {b["varname"]: b["saved_attribute_attributes"]["valueof"] for b in boxes if b["maxclass"] == "live.dial"}
    for p in params.PARAMS.values():
        if not p.is_number:
            continue
        dial = dials[patchgen.receive_name(p)]
        assert dial["parameter_mmin"] == p.minimum
        assert dial["parameter_mmax"] == (p.maximum if p.maximum < 2**24 else 999)
        assert dial["parameter_type"] == (1 if p.type == INT else 0)
        assert dial["parameter_mmin"] <= dial["parameter_initial"][0] <= dial["parameter_mmax"]


# --- TouchOSC ------------------------------------------------------------------------------------------------------

def tosc():
    import py2tosc
    return py2tosc.load(patchgen.PATCH_DIR / "stylesynth.tosc")


def test_touchosc_layout_validates():
    doc = tosc()
    issues = doc.validate()
    assert not issues, "\n".join(map(str, issues))
    # The file is what TouchOSC opens: zlib-compressed lexml.
    assert zlib.decompress((patchgen.PATCH_DIR / "stylesynth.tosc").read_bytes()).startswith(b"<?xml")


def osc_bindings(doc):
    """(control, address, argument partials) for every OSC binding, plus the radio's scripted sends."""
    from py2tosc import OscMessage as ToscOsc
    out = []
    for control in doc.walk():
        for message in control.messages:
            if isinstance(message, ToscOsc):
                assert all(part.type == "CONSTANT" for part in message.path)
                out.append((control, "".join(part.value for part in message.path), message.arguments))
        if control.has("script"):
            for address in re.findall(r"sendOSC\('([^']+)'", control.get("script")):
                out.append((control, address, None))
    return out


def test_touchosc_controls_send_table_addresses_with_table_ranges():
    doc = tosc()
    bindings = osc_bindings(doc)
    addresses = {address for _, address, _ in bindings}
    assert addresses <= ADDRESSES, addresses - ADDRESSES
    faders = {c.get("name") for c in doc.walk() if c.control_type.value == "FADER"}
    assert faders == {p.name for p in params.PARAMS.values() if p.is_number}
    for control, address, arguments in bindings:
        p = params.BY_ADDRESS.get(address)
        if p is None or arguments is None:
            continue
        (argument,) = arguments
        assert argument.type == "VALUE" and argument.value == "x"
        if p.type == FLOAT:
            assert argument.conversion == "FLOAT"
            assert (argument.scale_min, argument.scale_max) == (p.minimum, p.maximum)
        else:
            assert argument.conversion == "INTEGER", address
            assert p.minimum is None or p.minimum <= argument.scale_min < argument.scale_max <= p.maximum
    for name in ("trigger", "panic", "loop"):
        assert doc.find(name) is not None and doc.find(name).control_type.value == "BUTTON"
    radio = doc.find("prototype")
    assert radio.control_type.value == "RADIO" and radio.get("steps") == len(patchgen.layout_prototypes())
    for name in patchgen.layout_prototypes():
        assert json.dumps(name) in radio.get("script")


def test_touchosc_messages_encode_as_osc():
    # What each control would send, built with python-osc at both ends of its range: a contract a server test
    # (once serve exists) replays against the real server.
    for control, address, arguments in osc_bindings(tosc()):
        values = [None] if not arguments else [arguments[0].scale_min, arguments[0].scale_max]
        for value in values:
            builder = OscMessageBuilder(address)
            if value is not None:
                builder.add_arg(int(value) if arguments[0].conversion == "INTEGER" else float(value))
            assert OscMessage(builder.build().dgram).address == address


def test_touchosc_controls_fit_their_page_without_overlapping():
    # py2tosc validates structure, not geometry: a control past its page's edge is cut off on the tablet, and two
    # overlapping controls steal each other's touches.
    doc = tosc()
    pages = [c for c in doc.walk() if c.control_type.value == "PAGER"][0].children
    assert [p.get("name") for p in pages] == ["play", "sefa", "latent", "query"]
    for page in pages:
        _, _, width, height = page.frame
        frames = [(c.get("name"), tuple(c.frame)) for c in page.children]
        for name, (x, y, w, h) in frames:
            assert 0 <= x and 0 <= y and x + w <= width and y + h <= height, f"{name} leaves page {page.get('name')}"
        for i, (a, (ax, ay, aw, ah)) in enumerate(frames):
            for b, (bx, by, bw, bh) in frames[i + 1:]:
                assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, f"{a} overlaps {b}"


# --- Contract with the real server ---------------------------------------------------------------------------------

def _number(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return "" if text == '""' else text


def touchosc_messages() -> list[tuple[str, tuple]]:
    """What each TouchOSC control sends, at both ends of its range (the radio: every prototype name)."""
    out = []
    for _, address, arguments in osc_bindings(tosc()):
        if arguments is None:
            out += [(address, (name,)) for name in patchgen.layout_prototypes()]
        elif not arguments:
            out.append((address, ()))
        else:
            cast = int if arguments[0].conversion == "INTEGER" else float
            out += [(address, (cast(arguments[0].scale_min),)), (address, (cast(arguments[0].scale_max),))]
    return out


def max_messages() -> list[tuple[str, tuple]]:
    """What each Max control sends: dials at both ends, toggles 0 and 1, message boxes as written."""
    boxes = {b["box"]["id"]: b["box"] for b in max_json()["boxes"]}
    sources = {}
    for line in max_json()["lines"]:
        sources.setdefault(line["patchline"]["destination"][0], []).append(boxes[line["patchline"]["source"][0]])
    out = []
    for box in boxes.values():
        text = box.get("text", "")
        if box["maxclass"] == "message" and text.startswith("/"):
            address, *args = text.split()
            out.append((address, tuple(_number(a) for a in args)))
        elif text.startswith("prepend /"):
            address = text.split()[1]
            for source in sources[box["id"]]:
                if source["maxclass"] == "live.dial":
                    dial = source["saved_attribute_attributes"]["valueof"]
                    cast = int if dial["parameter_type"] == 1 else float
                    out += [(address, (cast(dial["parameter_mmin"]),)), (address, (cast(dial["parameter_mmax"]),))]
                elif source["maxclass"] == "toggle":
                    out += [(address, (0,)), (address, (1,))]
                else:
                    out.append((address, (_number(source["text"]),)))
    return out


def shipped_or_gaver() -> str:
    """The shipped model once it ships its semantic controls (without them its sliders are refused, by design),
    else the model-free ``gaver`` renderer."""
    shipped = patchgen.ROOT / "checkpoints" / "hits"
    return "hits" if (shipped / "model.json").is_file() and (shipped / "controls.json").is_file() else "gaver"


def test_touchosc_and_max_messages_are_all_accepted_by_the_server(start_server, osc_client_factory):
    # Replays, over real UDP, exactly what every TouchOSC and Max control sends against a real 'stylesynth serve':
    # nothing may be refused, and each parameter ends at the last value sent.
    server = start_server("--no-audio", model=shipped_or_gaver())
    client = osc_client_factory(server.port)
    prototypes = client.request(f"{params.PREFIX}/q/prototypes", reply=f"{params.PREFIX}/prototypes")
    assert prototypes, "no answer to /stylesynth/q/prototypes"
    # Not replayed: /reply_port would send our replies elsewhere; /stylesynth/model needs the shipped checkpoint;
    # prototypes the running model lacks (the gaver stand-in has only some of the shipped model's).
    skipped = {"/reply_port", f"{params.PREFIX}/model"}
    messages = [m for m in touchosc_messages() + max_messages() if m[0] not in skipped
                and (m[0] != params.PARAMS["prototype"].osc_address or m[1][0] in ["none", *prototypes])]
    assert len(messages) > 2 * len(params.PARAMS)
    assert len([m for m in messages if m[0] == params.PARAMS["prototype"].osc_address]) >= 2
    last = {}
    for address, args in messages:
        client.send(address, *args)
        if address in params.BY_ADDRESS:
            last[params.BY_ADDRESS[address].name] = args[0]
        time.sleep(0.002)  # stay far below the server's per-sender rate limit
    client.send("/sync", 7)
    errors = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = client.recv(deadline - time.monotonic())
        if got is None or got == ("/synced", [7]):
            break
        if got[0] == "/error":
            errors.append(got[1])
    assert got == ("/synced", [7]), "the server did not answer /sync"
    assert errors == []
    for name, value in last.items():
        answer = client.query(name)
        if params.PARAMS[name].type == FLOAT:
            assert answer == pytest.approx(value, rel=1e-6), name
        elif params.PARAMS[name].type == BOOL:
            assert bool(answer) == bool(value), name
        else:
            assert answer == value, name



def test_range_ends_sent_as_float32_are_not_refused(start_server, osc_client_factory):
    # A range end that float32 cannot hold (query/width's 0.02) arrives just below it: still the range end, so no
    # /error saying it was clamped (each fader's end stop used to draw one).
    server = start_server("--no-audio")
    client = osc_client_factory(server.port)
    p = params.PARAMS["query/width"]
    client.send(p.osc_address, float(np.float32(p.minimum)))  # what Pd, Max and TouchOSC send at the end stop
    client.send("/sync", 3)
    replies = []
    while (got := client.recv(10)) not in (None, ("/synced", [3])):
        replies.append(got)
    assert [r for r in replies if r[0] == "/error"] == []
