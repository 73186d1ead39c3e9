"""MIDI input: a port (JACK, ALSA, CoreMIDI or WinMM through python-rtmidi), raw bytes parsed into mido messages,
the active mapping applied through the engine's public functions, MIDI learn, and survival of bad input.

What this module owns is the transport and the wiring; what a message *means* is :mod:`stylesynth.midi_mapping`
(pure). Every parameter change goes through ``engine.set_param(name, value, source="midi")``, notes through
``engine.trigger(velocity)``, CC 120/123 through ``engine.panic()`` -- the same path OSC uses.

Robustness, by design:

* Raw bytes are parsed here (not by rtmidi or mido's lenient parsers, which drop junk silently): stray data bytes,
  truncated messages and unterminated sysex are logged with their bytes and skipped; running status is honoured;
  sysex is ignored (logged at debug level).
* The port is read by polling from a Python thread, never in rtmidi's callback: with JACK that callback runs in the
  real-time process thread, where taking the GIL could stall the whole audio graph.
* A port that disappears (device unplugged, sending client quit, JACK restarted) is noticed within
  ``retry_interval`` seconds, logged, and reopened as soon as it is back.
* rtmidi's JACK input glues every event after a sysex start to that sysex until some event ends with F7 (it
  reassembles sysex split over JACK events). One unterminated sysex would make the input deaf. So with JACK a
  small output client (``<client>-flush``, e.g. ``stylesynth-midi-flush``) connected to our input sends a lone F7 every ``flush_interval``
  seconds: the glued packet is then delivered, its sysex part reported as junk and the messages behind it applied
  (late by at most ``flush_interval``). A lone F7 is otherwise ignored.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import mido

from stylesynth import midi_mapping as mm
from stylesynth import params as P

log = logging.getLogger(__name__)

DEFAULT_MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "default.toml"
# Not the audio client's name (``stylesynth``): JACK client names are unique, and JACK renames a second client of
# the same name to ``stylesynth-01``, a name no patchbay or saved session can rely on.
CLIENT_NAME = "stylesynth-midi"
PORT_NAME = "midi_in"
API_NAMES = ("jack", "alsa", "coremidi", "winmm")


class MidiError(RuntimeError):
    """A MIDI port could not be opened (no such port, API not available, ...): the message says which and why."""


class LearnTimeout(TimeoutError):
    """MIDI learn saw no controller move before its timeout."""


# -----------------------------------------------------------------------------------------------------------------
# Choosing the rtmidi API and finding ports
# -----------------------------------------------------------------------------------------------------------------

def _api_ids() -> dict[str, int]:
    import rtmidi
    return {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA, "coremidi": rtmidi.API_MACOSX_CORE,
            "winmm": rtmidi.API_WINDOWS_MM}


def jack_server_running() -> bool:
    """Whether a JACK server answers, without starting one (libjack missing counts as no)."""
    try:
        import jack
    except OSError:       # JACK-Client raises OSError when libjack is not installed
        return False
    quiet = lambda message: None   # noqa: E731 -- libjack would print "Cannot connect to server socket" lines
    jack.set_error_function(quiet)
    jack.set_info_function(quiet)
    try:
        client = jack.Client("stylesynth-probe", no_start_server=True)
    except jack.JackError:
        return False
    finally:
        jack.set_error_function(None)
        jack.set_info_function(None)
    client.close()
    return True


def jack_client_exists(name: str) -> bool:
    """Whether the running JACK server has a client called ``name`` (one with at least one port)."""
    import re

    import jack
    try:
        probe = jack.Client("stylesynth-probe", no_start_server=True)
    except jack.JackError as exc:
        raise MidiError(f"cannot start jack MIDI: {exc} (is a JACK server running? check with jack_lsp)") from None
    try:
        return bool(probe.get_ports(f"^{re.escape(name)}:"))
    finally:
        probe.close()


def available_apis() -> list[str]:
    """The MIDI APIs python-rtmidi was built with, by our names (``jack``, ``alsa``, ``coremidi``, ``winmm``)."""
    import rtmidi
    compiled = set(rtmidi.get_compiled_api())
    return [name for name, api in _api_ids().items() if api in compiled]


def choose_api(requested: str | None = None) -> str:
    """The MIDI API to use: ``requested`` if given (checked), else by platform -- CoreMIDI on macOS, WinMM on
    Windows, and on Linux JACK when a JACK server is running, else ALSA.

    Raises
    ------
    MidiError
        The requested API is unknown or not built into python-rtmidi.
    """
    compiled = available_apis()
    if requested is not None:
        if requested not in API_NAMES:
            raise MidiError(f"unknown MIDI API {requested!r} (expected one of {', '.join(API_NAMES)})")
        if requested not in compiled:
            raise MidiError(f"MIDI API {requested!r} is not built into python-rtmidi here "
                            f"(available: {', '.join(compiled) or 'none'})")
        return requested
    if sys.platform == "darwin":
        return "coremidi"
    if sys.platform.startswith("win"):
        return "winmm"
    if "jack" in compiled and jack_server_running():
        return "jack"
    return "alsa"


def _midi_in(api: str, client_name: str):
    """An rtmidi input client; :class:`MidiError` with rtmidi's reason if the API cannot start."""
    import rtmidi
    os.environ.setdefault("JACK_NO_START_SERVER", "1")   # never spawn a JACK server as a side effect
    try:
        rt = rtmidi.MidiIn(_api_ids()[api], name=client_name)
    except rtmidi.RtMidiError as exc:
        hint = {"jack": " (is a JACK server running? check with jack_lsp)",
                "alsa": " (no ALSA sequencer: is /dev/snd/seq present? modprobe snd-seq)"}.get(api, "")
        raise MidiError(f"cannot start {api} MIDI: {str(exc).splitlines()[0]}{hint}") from None
    rt.ignore_types(sysex=False, timing=True, active_sense=True)   # sysex reaches us so we can log it
    return rt


def list_input_ports(api: str | None = None) -> list[str]:
    """Names of the MIDI sources ``--midi`` can open with ``api`` (default: :func:`choose_api`)."""
    rt = _midi_in(api or choose_api(), CLIENT_NAME + "-list")
    try:
        return rt.get_ports()
    finally:
        rt.delete()


def match_port(wanted: str, ports: list[str]) -> int:
    """Index of the port named ``wanted``: an exact name, else the one port containing it (case-insensitive).

    Raises
    ------
    MidiError
        No port matches, or several do (the message lists them).
    """
    if wanted in ports:
        return ports.index(wanted)
    hits = [i for i, name in enumerate(ports) if wanted.lower() in name.lower()]
    if len(hits) == 1:
        return hits[0]
    listed = ", ".join(repr(p) for p in ports) or "none"
    if not hits:
        raise MidiError(f"no MIDI input port matches {wanted!r} (available: {listed})")
    raise MidiError(f"MIDI port {wanted!r} is ambiguous: it matches {', '.join(repr(ports[i]) for i in hits)}")


# -----------------------------------------------------------------------------------------------------------------
# Raw bytes -> messages
# -----------------------------------------------------------------------------------------------------------------

_DATA_LENGTH = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_COMMON_LENGTH = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0}


class ByteParser:
    """MIDI 1.0 byte stream -> mido messages, reporting junk instead of hiding it.

    Each :meth:`feed` is one packet from the port (one JACK/ALSA/CoreMIDI event, which should hold whole
    messages). Within a packet, running status is honoured (data bytes after a channel message repeat its status);
    it does not carry over to the next packet, where a packet of bare data bytes is junk, not a message. Real-time
    bytes (clock, start, ...) may sit anywhere; sysex runs from F0 to F7. Stray data bytes, a message cut short by
    a new status byte or by the end of the packet, undefined status bytes and unterminated sysex are reported as
    problems and skipped.
    """

    def __init__(self):
        self._running: int | None = None

    def feed(self, data) -> tuple[list[mido.Message], list[str]]:
        """Parse one packet; returns ``(messages, problems)`` where each problem is a precise sentence."""
        messages, problems = [], []
        self._running = None
        data = list(data)
        i, n = 0, len(data)
        while i < n:
            b = data[i]
            if not 0 <= b <= 0xFF:
                problems.append(f"byte {b!r} is not a MIDI byte (0-255)")
                i += 1
                continue
            if b >= 0xF8:                       # real-time: a byte of its own, does not touch running status
                i += 1
                if b in (0xF9, 0xFD):
                    problems.append(f"undefined real-time byte 0x{b:02X} skipped")
                continue
            if b == 0xF0:
                end = next((j for j in range(i + 1, n) if data[j] >= 0x80 and data[j] < 0xF8), None)
                if end is None or data[end] != 0xF7:
                    upto = n if end is None else end
                    problems.append(f"unterminated sysex of {upto - i} bytes skipped ({_hex(data[i:upto])})")
                    i = upto
                else:
                    body = [x for x in data[i + 1:end] if x < 0x80]
                    messages.append(mido.Message("sysex", data=body))
                    i = end + 1
                self._running = None
                continue
            if b == 0xF7:                       # end of a sysex whose start is gone, or our flush marker
                i += 1
                self._running = None
                continue
            if b >= 0x80:
                status, i = b, i + 1
                if status < 0xF0:
                    self._running = status
                else:
                    self._running = None        # system common messages cancel running status
                    if status not in _COMMON_LENGTH:
                        problems.append(f"undefined or stray status byte 0x{status:02X} skipped")
                        continue
            elif self._running is not None:
                status = self._running          # running status: this data byte starts a new message
            else:
                j = i
                while j < n and data[j] < 0x80:
                    j += 1
                problems.append(f"{j - i} data byte(s) with no status byte skipped ({_hex(data[i:j])})")
                i = j
                continue
            need = _DATA_LENGTH.get(status & 0xF0) if status < 0xF0 else _COMMON_LENGTH[status]
            body = []
            while len(body) < need and i < n:
                if data[i] >= 0xF8:              # real-time bytes may interleave with data
                    i += 1
                    continue
                if data[i] >= 0x80:
                    break
                body.append(data[i])
                i += 1
            if len(body) < need:
                problems.append(f"truncated message skipped ({_hex([status, *body])}: status 0x{status:02X} "
                                f"needs {need} data byte(s), got {len(body)})")
                continue
            try:
                messages.append(mido.Message.from_bytes([status, *body]))
            except (ValueError, TypeError) as exc:
                problems.append(f"unparsable message {_hex([status, *body])} skipped ({exc})")
        return messages, problems


def _hex(data) -> str:
    shown = " ".join(f"{x:02X}" for x in list(data)[:12])
    return shown + (" ..." if len(data) > 12 else "")


# -----------------------------------------------------------------------------------------------------------------
# MIDI learn
# -----------------------------------------------------------------------------------------------------------------

@dataclass
class _LearnSession:
    target: str
    events: list = field(default_factory=list)


def pick_learned(target: str, events: list[mm.ControllerEvent]) -> mm.Control | None:
    """The control MIDI learn creates for ``target`` from the controller events seen while armed.

    The controller that moved most wins (sum of its value changes, in knob travel). An NRPN or a 14-bit pair that
    carried real LSBs is preferred over the plain CCs that transport it. Encoders are recognised by repeating
    the same value (absolute knobs only send changes): values near 64 mean offset-64, near 0/127 two's
    complement. A button (only 0 and 127) learnt for an on/off parameter becomes a toggle.
    """
    if not events:
        return None
    groups: dict[tuple, list[mm.ControllerEvent]] = {}
    for e in events:
        groups.setdefault((e.kind, e.number, e.channel), []).append(e)

    def movement(evs):
        travel = [e.travel for e in evs]
        return sum(abs(b - a) for a, b in zip(travel, travel[1:])) + 1e-3 * len(evs)

    nrpn = {k: v for k, v in groups.items() if k[0] == "nrpn"}
    cc14 = {k: v for k, v in groups.items() if k[0] == "cc14" and any(e.fine for e in v)}
    cc = {k: v for k, v in groups.items() if k[0] == "cc" and not (nrpn and k[1] in mm.NRPN_CCS)
          and not any(k[1] in (n, n + 32) for (_, n, _) in cc14)}
    pool = nrpn or cc14 or cc
    if not pool:
        return None
    kind, number, channel = max(pool, key=lambda k: movement(pool[k]))
    values = [e.value for e in pool[(kind, number, channel)]]
    mode = "absolute"
    if kind == "cc" and len(values) >= 3:
        repeats = sum(a == b for a, b in zip(values, values[1:]))
        if repeats * 2 >= len(values) - 1:
            mode = "relative-offset" if all(abs(v - 64) < 32 for v in values) else "relative-twos"
    is_bool = target in P.PARAMS and P.PARAMS[target].type == P.BOOL
    if is_bool and kind == "cc" and set(values) <= {0, 127} and 0 in values and 127 in values:
        mode = "toggle"
    if is_bool and mode.startswith("relative"):
        mode = "absolute"
    return mm.new_control(target, kind, number, channel, mode=mode)


# -----------------------------------------------------------------------------------------------------------------
# The input
# -----------------------------------------------------------------------------------------------------------------

class MidiInput:
    """A MIDI input port driving an engine through a mapping.

    Parameters
    ----------
    engine : stylesynth.engine.Engine
        Anything with ``state`` (a ControlState), ``set_param(name, value, source)``, ``trigger(velocity)``,
        ``panic()`` and ``synth`` (``start_points``, ``prototypes``).
    mapping : Mapping, optional
        The active mapping (default: ``mappings/default.toml``).
    port : str, optional
        Open this existing source port (exact name or a unique substring, see :func:`match_port`).
    virtual : bool
        Create a virtual input ``<client_name>:<port_name>`` that other programs connect to. Exactly one of
        ``port`` and ``virtual`` must be given.
    api : str, optional
        ``jack``, ``alsa``, ``coremidi`` or ``winmm``; default :func:`choose_api`.
    client_name, port_name : str
        Our MIDI client and port names (``stylesynth-midi:midi_in``; the audio client is ``stylesynth``).
    poll_interval : float
        Seconds between reads of the port when it is idle (messages queue in rtmidi meanwhile).
    retry_interval : float
        Seconds between checks that the port still exists, and between reconnection attempts.
    flush_interval : float
        JACK only: seconds between the F7 bytes that end a stuck sysex (see the module docstring).

    Call :meth:`start` (or use it as a context manager) to open the port and begin; :meth:`close` to stop.
    """

    def __init__(self, engine, mapping: mm.Mapping | None = None, *, port: str | None = None,
                 virtual: bool = False, api: str | None = None, client_name: str = CLIENT_NAME,
                 port_name: str = PORT_NAME, poll_interval: float = 0.001, retry_interval: float = 1.0,
                 flush_interval: float = 0.2):
        if bool(port) == bool(virtual):
            raise MidiError("give either a port to open or virtual=True (not both, not neither)")
        self.engine = engine
        self._mapping = mapping if mapping is not None else mm.load_mapping(DEFAULT_MAPPING)
        self.wanted_port, self.virtual = port, virtual
        self.api = choose_api(api)
        self.client_name, self.port_name = client_name, port_name
        self.poll_interval, self.retry_interval, self.flush_interval = poll_interval, retry_interval, flush_interval
        self.port_label = ""            # what is open now: "stylesynth-midi:midi_in" or the source's name
        self._rt = None
        self._flush = None              # JACK: output client connected to our input (sysex flush, liveness)
        self._parser = mm.ControllerDecoder()
        self._bytes = ByteParser()
        self._memory: dict[mm.Control, mm.TakeoverState] = {}
        self._lock = threading.RLock()  # mapping, decoder and learn session: touched by the reader and by callers
        self._learn: _LearnSession | None = None
        self._learn_event = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = {"messages": 0, "applied": 0, "ignored": 0, "junk": 0, "sysex": 0, "refused": 0,
                      "reconnects": 0, "vanished": 0}

    # -- life cycle --------------------------------------------------------------------------------------------

    def start(self) -> "MidiInput":
        """Open the port (raises :class:`MidiError` if it cannot) and start reading it on a thread."""
        self._open()
        m = self._mapping
        log.info("MIDI mapping %r from %s: %d controls%s%s", m.name, m.source, len(m.controls),
                 "; notes trigger one-shots" if m.notes else "",
                 f"; program change sets {m.program.target}" if m.program else "")
        self._thread = threading.Thread(target=self._run, name="midi-in", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop reading and close the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_port()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def connected(self) -> bool:
        return self._rt is not None

    # -- mapping -----------------------------------------------------------------------------------------------

    @property
    def mapping(self) -> mm.Mapping:
        return self._mapping

    def set_mapping(self, mapping: mm.Mapping) -> None:
        """Make ``mapping`` active (takeover memory starts afresh)."""
        with self._lock:
            self._mapping = mapping
            self._memory.clear()
        log.info("MIDI mapping %r active: %d controls%s%s", mapping.name, len(mapping.controls),
                 ", notes trigger" if mapping.notes else "", ", program change -> " + mapping.program.target
                 if mapping.program else "")

    def load_mapping(self, path: str | Path) -> mm.Mapping:
        """Load a mapping file and make it active. On any error the mapping in use stays, and
        :class:`~stylesynth.midi_mapping.MappingError` (file, line, reason) is raised."""
        mapping = mm.load_mapping(path)
        self.set_mapping(mapping)
        return mapping

    def save_mapping(self, path: str | Path) -> None:
        """Write the active mapping (with anything learnt) to a TOML file."""
        with self._lock:
            mapping = self._mapping
        mm.save_mapping(mapping, path)
        log.info("MIDI mapping saved to %s", path)

    # -- learn -------------------------------------------------------------------------------------------------

    def learn(self, param_name: str, timeout: float = 5.0, window: float = 0.5,
              save_to: str | Path | None = None) -> mm.Control:
        """MIDI learn: arm ``param_name``, wait for a controller to move, map the one that moved most.

        Blocks until done (run it on a thread to keep a caller responsive). While armed, controller messages are
        collected instead of applied; notes and panics act as usual.

        Parameters
        ----------
        param_name : str
            A parameter of :data:`stylesynth.params.PARAMS` (number or on/off), or ``trigger`` / ``panic``.
        timeout : float
            Seconds to wait for the first controller message.
        window : float
            Seconds to keep collecting after the first message, to see which controller moves most.
        save_to : str or Path, optional
            Also write the updated mapping to this TOML file.

        Returns
        -------
        Control
            The new entry (full range, linear; channel, controller, relative/toggle mode as detected). It replaces
            earlier entries for the same target, the same controller or a CC it needs (logged).

        Raises
        ------
        ValueError
            ``param_name`` is not a learnable target.
        LearnTimeout
            No controller moved within ``timeout``.
        """
        if param_name not in mm.ACTIONS:
            try:
                param = P.get(param_name)
            except KeyError as exc:
                raise ValueError(exc.args[0]) from None
            if param.type == P.STRING:
                raise ValueError(f"{param_name} takes a name, not a knob: map it with [notes] or [program]")
        session = _LearnSession(param_name)
        with self._lock:
            self._learn = session
            self._learn_event.clear()
        log.info("MIDI learn armed for %s: move a controller within %.1f s", param_name, timeout)
        try:
            if not self._learn_event.wait(timeout):
                raise LearnTimeout(f"MIDI learn for {param_name}: no controller moved within {timeout:g} s")
            time.sleep(window)
        finally:
            with self._lock:
                self._learn = None
        control = pick_learned(param_name, session.events)
        if control is None:
            raise LearnTimeout(f"MIDI learn for {param_name}: only NRPN/RPN selections arrived, no value")
        with self._lock:
            self._mapping, replaced = self._mapping.with_control(control)
            self._memory.clear()
        log.info("MIDI learn: %s (%s%s)%s", control.label(), control.mode,
                 "" if control.is_action else f", range {control.range[0]:g}..{control.range[1]:g}",
                 "; replaces " + "; ".join(c.label() for c in replaced) if replaced else "")
        if save_to is not None:
            self.save_mapping(save_to)
        return control

    # -- handling bytes (public so other transports and tests can feed packets) --------------------------------

    def handle_packet(self, data) -> None:
        """Parse one packet of raw MIDI bytes and act on it; never raises (problems are logged and counted)."""
        with self._lock:
            messages, problems = self._bytes.feed(data)
        for problem in problems:
            self.stats["junk"] += 1
            log.warning("MIDI input %s: %s", self.port_label or "?", problem)
        for msg in messages:
            self.stats["messages"] += 1
            try:
                self.handle_message(msg)
            except Exception:   # a bug or a failing engine must not kill the input thread
                self.stats["refused"] += 1
                log.exception("MIDI message %s could not be handled", msg)

    def handle_message(self, msg: mido.Message) -> None:
        """Act on one parsed message through the mapping and the engine."""
        if msg.type == "sysex":
            self.stats["sysex"] += 1
            log.debug("MIDI sysex of %d bytes ignored", len(msg.data) + 2)
            return
        with self._lock:
            events = self._parser.feed(msg)
            learning = self._learn
            mapping = self._mapping
        if not events:
            self.stats["ignored"] += 1
        for event in events:
            if isinstance(event, mm.PanicEvent):
                log.info("MIDI CC %d on channel %d: panic", event.cc, event.channel)
                self.engine.panic(source="midi")
            elif isinstance(event, mm.NoteEvent):
                self._note(mapping, event)
            elif isinstance(event, mm.ProgramEvent):
                self._program(mapping, event)
            elif learning is not None:
                with self._lock:
                    learning.events.append(event)
                    self._learn_event.set()
            else:
                self._controller(mapping, event)

    def _controller(self, mapping: mm.Mapping, event: mm.ControllerEvent) -> None:
        for control in mapping.controls_for(event.kind, event.number, event.channel):
            if control.is_action:
                if event.value > 0:
                    self._act(control.target)
                continue
            with self._lock:
                memory = self._memory.setdefault(control, mm.TakeoverState())
                value = mm.resolve(control, event, self.engine.state.get(control.target), memory)
            if value is None:
                continue
            self._set(control.target, value)

    def _note(self, mapping: mm.Mapping, event: mm.NoteEvent) -> None:
        notes = mapping.notes
        if notes is None or (notes.channel is not None and notes.channel != event.channel):
            self.stats["ignored"] += 1
            return
        start = notes.start_points.get(event.note)
        if start is not None and not self._set("start", start):
            return   # an unknown start point: say so, do not play the wrong sound
        self._guard("trigger", lambda: self.engine.trigger(mm.velocity_gain(event.velocity, notes.velocity_curve)))

    def _program(self, mapping: mm.Mapping, event: mm.ProgramEvent) -> None:
        prog = mapping.program
        if prog is None or (prog.channel is not None and prog.channel != event.channel):
            self.stats["ignored"] += 1
            return
        names = list(prog.names)
        if not names:
            synth = self.engine.synth
            names = list(getattr(synth, "start_points" if prog.target == "start" else "prototypes", []))
        if event.program >= len(names):
            self.stats["refused"] += 1
            log.warning("MIDI program change %d: the %s list has only %d entries (0-%d)", event.program,
                        prog.target, len(names), len(names) - 1)
            return
        self._set(prog.target, names[event.program])

    def _act(self, action: str) -> None:
        if action == "trigger":
            self._guard("trigger", lambda: self.engine.trigger(1.0))
        else:
            log.info("MIDI panic button")
            self.engine.panic(source="midi")

    def _set(self, name: str, value) -> bool:
        return self._guard(name, lambda: self.engine.set_param(name, value, source="midi"))

    def _guard(self, what: str, call) -> bool:
        """Run an engine call; a refusal (ValueError: unknown start point, ...) is logged, not raised."""
        try:
            note = call()
        except ValueError as exc:
            self.stats["refused"] += 1
            log.warning("MIDI -> %s refused: %s", what, exc)
            return False
        self.stats["applied"] += 1
        if note:
            log.info("MIDI -> %s: %s", what, note)
        return True

    # -- the port ----------------------------------------------------------------------------------------------

    @property
    def own_port(self) -> str:
        """Our input port's full name (``stylesynth-midi:midi_in``), what senders connect to."""
        return f"{self.client_name}:{self.port_name}"

    def _open(self) -> None:
        if self.api == "jack" and jack_client_exists(self.client_name):
            # JACK would quietly call us "<name>-01": refuse instead, so the name is always the one asked for.
            raise MidiError(f"a JACK client named {self.client_name!r} already exists (another stylesynth "
                            "server?): choose another MIDI client name (--midi-client)")
        flush = self._flush_client() if self.api == "jack" else None
        rt = _midi_in(self.api, self.client_name)
        try:
            if self.virtual:
                try:
                    rt.open_virtual_port(self.port_name)
                except Exception as exc:   # rtmidi: NotImplementedError on WinMM, RtMidiError otherwise
                    raise MidiError(f"cannot create a virtual MIDI port with {self.api}: {exc}") from None
                label = self.own_port
            else:
                ports = rt.get_ports()
                index = match_port(self.wanted_port, ports)
                label = ports[index]
                rt.open_port(index, self.port_name)
            if flush is not None:
                targets = flush.get_ports()
                if self.own_port in targets:
                    flush.open_port(targets.index(self.own_port), "sysex_flush")
                else:
                    log.warning("MIDI: cannot find our own port %s to attach the sysex flush", self.own_port)
        except BaseException:
            rt.delete()
            if flush is not None:
                flush.delete()
            raise
        self._rt, self._flush, self.port_label = rt, flush, label
        self._next_flush = time.monotonic() + self.flush_interval
        log.info("MIDI input: %s (%s)", label, self.api)

    def _flush_client(self):
        """A JACK output client (see the module docstring); ``None`` if it cannot be made."""
        import rtmidi
        try:
            return rtmidi.MidiOut(_api_ids()["jack"], name=self.client_name + "-flush")
        except rtmidi.RtMidiError:
            return None

    def _close_port(self) -> None:
        for obj in (self._rt, self._flush):
            if obj is not None:
                try:
                    obj.close_port()
                    obj.delete()
                except Exception:   # closing a client whose server died: nothing more to do
                    pass
        self._rt = self._flush = None

    def _port_alive(self) -> bool:
        try:
            if self.virtual:
                return self._flush is None or self.own_port in self._flush.get_ports()
            return self.port_label in self._rt.get_ports()
        except Exception:
            return False

    def _send_flush(self, now: float) -> None:
        if self._flush is None or now < self._next_flush:
            return
        self._next_flush = now + self.flush_interval
        try:
            self._flush.send_message([0xF7])
        except Exception as exc:   # a dead server: the liveness check will notice
            log.debug("MIDI sysex flush failed: %s", exc)

    def _run(self) -> None:
        next_check = time.monotonic() + self.retry_interval
        while not self._stop.is_set():
            if self._rt is None:
                self._reconnect()
                next_check = time.monotonic() + self.retry_interval
                continue
            got = False
            while True:
                try:
                    item = self._rt.get_message()
                except Exception as exc:
                    log.warning("MIDI input %s: read failed (%s)", self.port_label, exc)
                    item = None
                if not item:
                    break
                got = True
                self.handle_packet(item[0])
            now = time.monotonic()
            self._send_flush(now)
            if now >= next_check:
                next_check = now + self.retry_interval
                if not self._port_alive():
                    self.stats["vanished"] += 1
                    log.warning("MIDI port %s vanished; trying to reconnect every %g s", self.port_label,
                                self.retry_interval)
                    self._close_port()
                    continue
            if not got:
                self._stop.wait(self.poll_interval)

    def _reconnect(self) -> None:
        while not self._stop.wait(self.retry_interval):
            try:
                self._open()
            except MidiError as exc:
                log.debug("MIDI reconnect: %s", exc)
                continue
            self.stats["reconnects"] += 1
            log.info("MIDI port %s is back: reconnected", self.port_label)
            return


# -----------------------------------------------------------------------------------------------------------------
# Command-line wiring for `stylesynth serve`
# -----------------------------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The MIDI options of ``stylesynth serve``: ``--midi PORT``, ``--midi-virtual``, ``--midi-map``,
    ``--midi-api``, ``--midi-client``."""
    group = parser.add_argument_group("MIDI")
    group.add_argument("--midi", metavar="PORT",
                       help="open this MIDI source (exact name or a unique part of it; see 'stylesynth doctor')")
    group.add_argument("--midi-virtual", action="store_true",
                       help=f"create a virtual MIDI input ({CLIENT_NAME}:{PORT_NAME}) for other programs to connect "
                            "to")
    group.add_argument("--midi-map", metavar="FILE", type=Path, default=DEFAULT_MAPPING,
                       help="MIDI mapping TOML (controller layouts in mappings/)")
    group.add_argument("--midi-api", choices=("auto", *API_NAMES), default="auto",
                       help="MIDI system; auto: JACK if a JACK server runs, else ALSA; CoreMIDI on macOS, WinMM "
                            "on Windows")
    group.add_argument("--midi-client", default=CLIENT_NAME, metavar="NAME",
                       help=f"MIDI client name, default {CLIENT_NAME} (our port is NAME:{PORT_NAME}; the audio client is "
                            "stylesynth)")


def from_args(args: argparse.Namespace, engine) -> MidiInput | None:
    """Open the MIDI input the options ask for (``None`` if neither ``--midi`` nor ``--midi-virtual``).

    Raises :class:`stylesynth.cli.CliError` with a one-line reason for a bad mapping or a port that cannot be
    opened, so ``serve`` refuses to start rather than running deaf.
    """
    from stylesynth.cli import CliError

    if not getattr(args, "midi", None) and not getattr(args, "midi_virtual", False):
        return None
    if args.midi and args.midi_virtual:
        raise CliError("give --midi PORT or --midi-virtual, not both")
    try:
        mapping = mm.load_mapping(args.midi_map or DEFAULT_MAPPING)
        api = None if args.midi_api == "auto" else args.midi_api
        midi = MidiInput(engine, mapping, port=args.midi, virtual=args.midi_virtual, api=api,
                         client_name=args.midi_client)
        return midi.start()
    except (mm.MappingError, MidiError) as exc:
        raise CliError(str(exc)) from None
