"""The OSC server: a defensive UDP loop that turns messages into engine calls and answers every one it refuses.

Addresses come from :mod:`stylesynth.params` (``/stylesynth/<param> value`` sets, ``/stylesynth/q/<param>`` asks;
commands in :data:`stylesynth.params.COMMANDS`). The loop is our own rather than python-osc's server so that no
packet can stop it: python-osc only parses, inside a ``try``, and anything it cannot parse is answered with
``/error``. Protection, in the order a datagram meets it:

* size: datagrams over :data:`MAX_DATAGRAM` bytes are refused (no control message is that large);
* rate: each sender has a token bucket (:data:`RATE` messages/s, burst :data:`BURST`); messages over it are dropped
  and counted, with at most one ``/error`` a second per sender so a flood is not answered by a flood;
* parsing: malformed packets, nesting deeper than :data:`MAX_DEPTH`, and more than :data:`MAX_BUNDLE` messages in a
  bundle are refused;
* time tags: late and immediate bundles apply at once; future ones wait in a bounded queue
  (:data:`MAX_SCHEDULED`); more than :data:`MAX_FUTURE` seconds ahead is refused;
* values: types, argument counts and NaN/inf are checked (``/error``); out-of-range values are clamped and the
  clamp is reported with ``/error`` too, so the sender knows what the server did.

Replies go to the sender's registered reply port (``/reply_port N``), else the server's ``--reply-port``, else back
to the sending address: Max's ``udpreceive`` cannot listen on ``udpsend``'s port.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import socket
import threading
import time
from typing import Callable

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing.osc_types import IMMEDIATELY, get_date

from stylesynth import __version__
from stylesynth import params as P
from stylesynth.state import ControlError

log = logging.getLogger(__name__)

MAX_DATAGRAM = 16 * 1024   # bytes; a control message is < 200, a full TouchOSC page bundle < 4 KB
RATE = 1000.0              # messages per second per sender, sustained
BURST = 1000.0             # ... and in one burst
MAX_FUTURE = 10.0          # seconds: bundles scheduled further ahead are refused
MAX_SCHEDULED = 1024       # messages waiting for their time tag, over all senders
MAX_DEPTH = 8              # nested bundles
MAX_BUNDLE = 256           # messages in one packet
MAX_SENDERS = 1024         # per-sender tables are bounded (a spoofed-source flood cannot grow them forever)
LOG_PER_SECOND = 20        # refusals logged per second; the rest are counted
#: Addresses the server sends. Receiving one means a loop (another server, or a reply port pointing back at a
#: server): it is dropped silently, never answered, so two servers cannot ping-pong errors forever.
REPLY_ADDRESSES = frozenset({"/error", "/done", "/synced", "/status.reply", "/version.reply"})

Address = tuple[str, int]


class _Refused(Exception):
    """A message is refused: ``/error <address> <reason>`` goes back."""


class TokenBucket:
    """One sender's allowance: :data:`RATE` messages/s sustained, :data:`BURST` at once (shared with the OSCQuery
    WebSocket relay, so a browser meets the same limit as a UDP client)."""

    __slots__ = ("tokens", "stamp", "dropped_unreported", "last_report")

    def __init__(self, now: float):
        self.tokens, self.stamp = BURST, now
        self.dropped_unreported, self.last_report = 0, 0.0

    def take(self, n: int, now: float) -> bool:
        self.tokens = min(BURST, self.tokens + (now - self.stamp) * RATE)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class OscServer:
    """Serves the control space over OSC/UDP.

    Parameters
    ----------
    engine : stylesynth.engine.Engine
        Where values, triggers and panics go.
    host, port : str, int
        Address to bind (``127.0.0.1`` by default: OSC has no authentication). Port 0 picks a free one
        (:attr:`port` tells which).
    reply_port : int or None
        Default reply port for every sender (``--reply-port``); a sender's ``/reply_port N`` overrides it.
    presets : stylesynth.presets.PresetStore or None
        For ``/preset/save`` and ``/preset/load``.
    cache_dir : path
        Where clip wavs for clients are written (:class:`stylesynth.clients.ClientHub`).
    learn : callable or None
        ``learn(param_name)`` arms MIDI learn (blocking until learnt or timed out; run on a thread of its own).
        ``None`` answers ``/learn`` with an ``/error`` saying MIDI is off.
    """

    def __init__(self, engine, host: str = "127.0.0.1", port: int = 9000, reply_port: int | None = None,
                 presets=None, cache_dir=None, learn: Callable[[str], object] | None = None):
        from stylesynth.clients import ClientHub

        self.engine = engine
        self.presets = presets
        self.learn = learn
        self.default_reply_port = reply_port or None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()
        self._reply_ports: dict[Address, int] = {}
        self._buckets: dict[Address, TokenBucket] = {}
        self._schedule: list = []            # heap of (due time, order, message, sender)
        self._order = itertools.count()
        self._running = False
        self._thread: threading.Thread | None = None
        self._log_window, self._log_count, self._log_suppressed = 0.0, 0, 0
        self.received = 0
        self.applied = 0
        self.errors = 0
        self.dropped = 0                     # rate-limited, queue full, or refused unparsed
        if cache_dir is None:
            import tempfile
            cache_dir = tempfile.mkdtemp(prefix="stylesynth-clips-")
        self.clients = ClientHub(self.send, cache_dir)
        engine.add_listener(self.clients.on_engine_event)
        if engine.last_clip is not None:  # rendered before we listened: clients can still find it on disk
            self.clients.on_engine_event("clip", engine.last_clip)

    # -- life cycle --------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self.serve, name="osc-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=3)
        self.clients.stop()
        self.sock.close()

    def serve(self) -> None:
        """Receive and handle datagrams until :meth:`stop`; runs the time-tag schedule between them."""
        while self._running:
            timeout = 0.1
            if self._schedule:
                timeout = min(timeout, max(0.0, self._schedule[0][0] - time.time()))
            self.sock.settimeout(timeout)
            try:
                data, sender = self.sock.recvfrom(MAX_DATAGRAM + 1)
            except socket.timeout:
                data = None
            except OSError as exc:  # e.g. ICMP port unreachable from an earlier reply on some systems
                if not self._running:
                    return
                log.debug("recvfrom: %s", exc)
                data = None
            if data is not None:
                try:
                    self.handle_datagram(data, sender)
                except Exception:  # the last line of defence: log, count, keep serving
                    self.errors += 1
                    log.exception("unexpected failure handling a datagram from %s", sender)
            self._run_due()

    # -- sending -----------------------------------------------------------------------------------------------

    def reply_address(self, sender: Address) -> Address:
        port = self._reply_ports.get(sender) or self.default_reply_port
        return (sender[0], port) if port else sender

    def send(self, address: Address, osc_address: str, *args) -> None:
        """Send one message; never raises (a client that went away is not the server's problem)."""
        try:
            builder = OscMessageBuilder(osc_address)
            for arg in args:
                builder.add_arg(arg)
            self.sock.sendto(builder.build().dgram, address)
        except Exception as exc:
            log.debug("could not send %s to %s: %s", osc_address, address, exc)

    def reply(self, sender: Address, osc_address: str, *args) -> None:
        self.send(self.reply_address(sender), osc_address, *args)

    def error(self, sender: Address, address: str, reason: str) -> None:
        self.errors += 1
        # Logged at info for people debugging a patch, but at most LOG_PER_SECOND a second: a flood of bad
        # packets must not become a flood of log lines.
        now = time.monotonic()
        if now - self._log_window >= 1.0:
            if self._log_suppressed:
                log.info("... %d more refusals not logged", self._log_suppressed)
            self._log_window, self._log_count, self._log_suppressed = now, 0, 0
        self._log_count += 1
        if self._log_count <= LOG_PER_SECOND:
            log.info("refused %s from %s:%s: %s", address, sender[0], sender[1], reason)
        else:
            self._log_suppressed += 1
        self.reply(sender, "/error", address, reason)

    # -- receiving ---------------------------------------------------------------------------------------------

    def handle_datagram(self, data: bytes, sender: Address) -> None:
        """Check, parse and apply (or schedule) one datagram."""
        self.received += 1
        if sender == (self.host, self.port):  # our own reply came back to us: never answer it
            self.dropped += 1
            return
        now = time.time()
        # One token per datagram before any work, so garbage floods are limited (and not answered by floods of
        # /error) just like valid ones; a bundle pays for its other messages once parsed.
        if not self._take_tokens(sender, 1, now):
            return
        if len(data) > MAX_DATAGRAM:
            self.dropped += 1
            self.error(sender, "", f"packet of more than {MAX_DATAGRAM} bytes refused")
            return
        try:
            timed = list(self._parse(data))
        except _Refused as exc:
            self.dropped += 1
            self.error(sender, _peek_address(data), str(exc))
            return
        except Exception as exc:  # python-osc raises several types on garbage
            self.dropped += 1
            self.error(sender, _peek_address(data), f"malformed OSC packet ({type(exc).__name__}: {exc})")
            return
        if len(timed) > 1 and not self._take_tokens(sender, len(timed) - 1, now):
            return
        for due, message in timed:
            if due is not None and due > now + 0.0005:
                if due > now + MAX_FUTURE:
                    self.dropped += 1
                    self.error(sender, message.address, f"time tag {due - now:.1f} s ahead refused: the limit is "
                               f"{MAX_FUTURE:g} s")
                elif len(self._schedule) >= MAX_SCHEDULED:
                    self.dropped += 1
                    self.error(sender, message.address, f"schedule full ({MAX_SCHEDULED} messages waiting): "
                               "message dropped")
                else:
                    heapq.heappush(self._schedule, (due, next(self._order), message, sender))
                continue
            self.dispatch(message.address, list(message.params), sender)

    def _parse(self, data: bytes) -> list:
        """``[(due time or None, OscMessage), ...]``; raises :class:`_Refused` on anything malformed.

        The structure is checked here, byte by byte, before python-osc decodes a message: python-osc is lenient
        (a float tag with no bytes after it decodes as 0.0, an unknown tag is skipped with a warning), and a
        control server must not act on a truncated packet.
        """
        items: list = []
        self._collect(data, None, 1, items)
        return items

    def _collect(self, data: bytes, due, depth: int, items: list) -> None:
        if data.startswith(b"#bundle\x00"):
            if depth > MAX_DEPTH:
                raise _Refused(f"bundles nested deeper than {MAX_DEPTH} refused")
            if len(data) < 16:
                raise _Refused("malformed OSC packet (bundle shorter than its header)")
            stamp, _ = get_date(data, 8)
            inner_due = None if stamp == IMMEDIATELY else float(stamp)
            index = 16
            while index < len(data):
                if index + 4 > len(data):
                    raise _Refused("malformed OSC packet (bundle element size cut short)")
                size = int.from_bytes(data[index:index + 4], "big", signed=True)
                index += 4
                if size <= 0 or size % 4 or index + size > len(data):
                    raise _Refused(f"malformed OSC packet (bundle element of size {size} does not fit)")
                self._collect(data[index:index + size], inner_due, depth + 1, items)
                index += size
                if len(items) > MAX_BUNDLE:
                    raise _Refused(f"bundle of more than {MAX_BUNDLE} messages refused")
            return
        if not data.startswith(b"/"):
            raise _Refused("not an OSC message or bundle (must start with '/' or '#bundle')")
        check_message(data)
        items.append((due, OscMessage(data)))

    def _take_tokens(self, sender: Address, n: int, now: float) -> bool:
        bucket = self._buckets.get(sender)
        if bucket is None:
            if len(self._buckets) >= MAX_SENDERS:
                self._buckets.clear()
            bucket = self._buckets[sender] = TokenBucket(now)
        if bucket.take(n, now):
            return True
        self.dropped += n
        bucket.dropped_unreported += n
        if now - bucket.last_report >= 1.0:
            self.error(sender, "", f"rate limit {RATE:g} messages/s exceeded: {bucket.dropped_unreported} "
                       "messages dropped")
            bucket.dropped_unreported, bucket.last_report = 0, now
        return False

    def _run_due(self) -> None:
        now = time.time()
        while self._schedule and self._schedule[0][0] <= now:
            _, _, message, sender = heapq.heappop(self._schedule)
            self.dispatch(message.address, list(message.params), sender)

    # -- dispatch ----------------------------------------------------------------------------------------------

    def dispatch(self, address: str, args: list, sender: Address) -> None:
        """Apply one message; every refusal is answered with ``/error address reason``."""
        try:
            handled = self._dispatch(address, args, sender)
        except _Refused as exc:
            self.error(sender, address, str(exc))
            return
        except ControlError as exc:
            self.error(sender, address, str(exc))
            return
        if handled:
            self.applied += 1

    def _dispatch(self, address: str, args: list, sender: Address) -> bool:
        if address in REPLY_ADDRESSES or address.startswith(f"{P.PREFIX}/audio/"):
            self.dropped += 1  # a reply sent to us: answering it could start a loop
            return False
        param = P.BY_ADDRESS.get(address)
        if param is not None:
            return self._set(param, args, sender)
        if address.startswith(P.PREFIX + "/q/"):
            return self._query(address[len(P.PREFIX) + 3:], args, sender)
        handler = self._COMMANDS.get(address)
        if handler is None:
            raise _Refused("unknown address (the address space is listed by OSCQuery and in the docs)")
        return handler(self, args, sender)

    def _set(self, param: P.Param, args: list, sender: Address) -> bool:
        if param.type == P.BOOL and not args:
            args = [True]  # a bare /stylesynth/query/run is a "bang"
        _expect_count(args, 1, 1)
        value = args[0]
        if isinstance(value, (bytes, bytearray)) or value is None or isinstance(value, tuple):
            raise _Refused(f"{param.name} expects {_type_word(param)}, got a {_osc_kind(value)}")
        def on_error(reason, sender=sender):  # refused later, on the engine's worker: the sender hears it too
            self.error(sender, param.osc_address, reason)

        note = self.engine.set_param(param.name, value, source="osc", on_error=on_error, origin=sender)
        if note and param.name != "model":
            self.error(sender, param.osc_address, note)  # clamped or rounded: tell the sender what happened
        return True

    def _query(self, name: str, args: list, sender: Address) -> bool:
        _expect_count(args, 0, 0)
        synth = self.engine.synth
        if name == "prototypes":
            self.reply(sender, f"{P.PREFIX}/prototypes", *(synth.prototypes if synth else []))
            return True
        if name == "start_points":
            self.reply(sender, f"{P.PREFIX}/start_points", *(synth.start_points if synth else []))
            return True
        if name not in P.PARAMS:
            raise _Refused(f"unknown parameter {name!r} to query")
        self.reply(sender, P.PARAMS[name].osc_address, self.engine.state.get(name))
        return True

    # -- commands ----------------------------------------------------------------------------------------------

    def _cmd_trigger(self, args, sender) -> bool:
        _expect_count(args, 0, 1)
        velocity = _number(args[0], "velocity") if args else 1.0
        note = self.engine.trigger(velocity)
        if note:
            self.error(sender, f"{P.PREFIX}/trigger", note)
        return True

    def _cmd_panic(self, args, sender) -> bool:
        self.engine.panic()
        self.reply(sender, "/done", f"{P.PREFIX}/panic")
        return True

    def _cmd_dump(self, args, sender) -> bool:
        _expect_count(args, 0, 0)
        for name, value in self.engine.state.as_dict().items():
            self.reply(sender, P.PARAMS[name].osc_address, value)
        return True

    def _cmd_status(self, args, sender) -> bool:
        s = self.engine.status()
        self.reply(sender, "/status.reply", s["model"], s["regenerations"], s["coalesced"], self.dropped,
                   s["xruns"], float(s["latency_p50_ms"]), float(s["latency_p99_ms"]), s["voices"],
                   self.clients.count, float(s["uptime_s"]))
        return True

    def _cmd_version(self, args, sender) -> bool:
        self.reply(sender, "/version.reply", "stylesynth", __version__)
        return True

    def _cmd_sync(self, args, sender) -> bool:
        _expect_count(args, 1, 1)
        token = args[0]
        if isinstance(token, (bytes, bytearray, tuple)) or token is None:
            raise _Refused("/sync expects an id (int, float or string)")
        self.engine.when_applied(lambda: self.reply(sender, "/synced", token))
        return True

    def _cmd_notify(self, args, sender) -> bool:
        _expect_count(args, 1, 2)
        on = _flag(args[0], "notify flag")
        chunks = _flag(args[1], "chunks flag") if len(args) > 1 else False
        target = self.reply_address(sender)
        if on:
            try:
                self.clients.subscribe(target, chunks=chunks)
            except ValueError as exc:
                raise _Refused(str(exc)) from None
        else:
            self.clients.unsubscribe(target)
        self.reply(sender, "/done", "/notify", int(on))
        return True

    def _cmd_reply_port(self, args, sender) -> bool:
        _expect_count(args, 1, 1)
        port = _number(args[0], "port")
        if port != int(port) or not 0 <= port <= 65535:
            raise _Refused(f"reply port must be an integer in 0..65535, got {port:g}")
        if int(port) == self.port and sender[0] == self.host:
            raise _Refused(f"reply port {int(port)} is this server's own port: replies would loop")
        if int(port) == 0:
            self._reply_ports.pop(sender, None)
        else:
            if len(self._reply_ports) >= MAX_SENDERS:
                self._reply_ports.clear()
            self._reply_ports[sender] = int(port)
        self.reply(sender, "/done", "/reply_port", int(port))
        return True

    def _cmd_preset_save(self, args, sender) -> bool:
        from stylesynth.presets import PresetError
        name = _string_arg(args, "preset name")
        if self.presets is None:
            raise _Refused("presets are disabled on this server")
        try:
            self.presets.save(name, self.engine.state.as_dict())
        except (PresetError, OSError) as exc:
            raise _Refused(str(exc)) from None
        self.reply(sender, "/done", "/preset/save", name)
        return True

    def _cmd_preset_load(self, args, sender) -> bool:
        from stylesynth.presets import PresetError
        name = _string_arg(args, "preset name")
        if self.presets is None:
            raise _Refused("presets are disabled on this server")
        try:
            values = self.presets.load(name)
        except (PresetError, OSError) as exc:
            raise _Refused(str(exc)) from None
        notes = self.engine.set_values(values, source="preset",
                                       on_error=lambda reason: self.error(sender, "/preset/load", reason))
        for note in notes:
            if note and not note.startswith("loading model"):
                self.error(sender, "/preset/load", note)
        self.reply(sender, "/done", "/preset/load", name)
        return True

    def _cmd_learn(self, args, sender) -> bool:
        name = _string_arg(args, "parameter name")
        if name not in P.PARAMS:
            raise _Refused(f"unknown parameter {name!r} to learn")
        if self.learn is None:
            raise _Refused("MIDI is not enabled: start the server with --midi PORT or --midi-virtual")

        def run():
            try:
                result = self.learn(name)
            except Exception as exc:
                self.error(sender, "/learn", f"learn {name}: {exc}")
                return
            if result is None or result is False:
                self.error(sender, "/learn", f"learn {name}: no controller moved before the timeout")
            else:
                self.reply(sender, "/done", "/learn", name, str(result))

        threading.Thread(target=run, name=f"learn-{name}", daemon=True).start()
        return True

    _COMMANDS = {
        f"{P.PREFIX}/trigger": _cmd_trigger,
        f"{P.PREFIX}/panic": _cmd_panic,
        f"{P.PREFIX}/dump": _cmd_dump,
        "/status": _cmd_status,
        "/version": _cmd_version,
        "/sync": _cmd_sync,
        "/notify": _cmd_notify,
        "/reply_port": _cmd_reply_port,
        "/preset/save": _cmd_preset_save,
        "/preset/load": _cmd_preset_load,
        "/learn": _cmd_learn,
    }

    def status(self) -> dict:
        """Engine figures plus the server's own counters."""
        return {**self.engine.status(), "received": self.received, "applied": self.applied, "errors": self.errors,
                "dropped": self.dropped, "clients": self.clients.count, "scheduled": len(self._schedule)}


# -- argument helpers ----------------------------------------------------------------------------------------

def _expect_count(args: list, low: int, high: int) -> None:
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise _Refused(f"expects {want} argument{'s' if high != 1 else ''}, got {len(args)}")


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Refused(f"{what} must be a number, got a {_osc_kind(value)}")
    if not math.isfinite(value):
        raise _Refused(f"{what} {value} refused: must be a finite number")
    return value


def _flag(value, what: str) -> bool:
    if isinstance(value, bool):
        return value
    number = _number(value, what)
    if number not in (0, 1):
        raise _Refused(f"{what} must be 0 or 1, got {number:g}")
    return bool(number)


def _string_arg(args: list, what: str) -> str:
    _expect_count(args, 1, 1)
    if not isinstance(args[0], str):
        raise _Refused(f"{what} must be a string, got a {_osc_kind(args[0])}")
    return args[0]


def _osc_kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (bytes, bytearray)):
        return "blob"
    if value is None:
        return "nil"
    if isinstance(value, tuple):
        return "MIDI/colour/time tag argument"
    if isinstance(value, list):
        return "array"
    return {int: "int", float: "float", str: "string"}.get(type(value), type(value).__name__)


def _type_word(param: P.Param) -> str:
    return {P.FLOAT: "a number", P.INT: "a number", P.STRING: "a string", P.BOOL: "0/1 or T/F"}[param.type]


_FIXED_SIZES = {"i": 4, "f": 4, "r": 4, "m": 4, "c": 4, "h": 8, "d": 8, "t": 8, "T": 0, "F": 0, "N": 0,
                "I": 0, "[": 0, "]": 0}


def _string_end(data: bytes, start: int, what: str) -> int:
    """Index just past the null-terminated, 4-byte padded string at ``start``."""
    end = data.find(b"\x00", start)
    if end < 0:
        raise _Refused(f"malformed OSC packet ({what} has no terminating null)")
    return start + ((end - start) // 4 + 1) * 4


def check_message(data: bytes) -> None:
    """Raise :class:`_Refused` unless ``data`` is exactly one well-formed OSC message: padded address and type
    tags, every argument present, no trailing bytes, only type tags python-osc decodes faithfully."""
    index = _string_end(data, 0, "address")
    if index > len(data):
        raise _Refused("malformed OSC packet (address padding cut short)")
    if index == len(data):
        return  # no type tag string: no arguments (old OSC 1.0 senders)
    if data[index:index + 1] != b",":
        raise _Refused("malformed OSC packet (type tag string must start with ',')")
    tag_end = data.find(b"\x00", index)
    tags = data[index + 1:tag_end if tag_end >= 0 else len(data)]
    index = _string_end(data, index, "type tag string")
    depth = 0
    for tag in tags.decode("latin-1"):
        if tag in _FIXED_SIZES:
            index += _FIXED_SIZES[tag]
            depth += (tag == "[") - (tag == "]")
            if depth < 0:
                raise _Refused("malformed OSC packet (']' without '[')")
        elif tag in "sS":
            index = _string_end(data, index, "string argument")
        elif tag == "b":
            if index + 4 > len(data):
                raise _Refused("malformed OSC packet (blob size cut short)")
            size = int.from_bytes(data[index:index + 4], "big", signed=True)
            if size < 0:
                raise _Refused("malformed OSC packet (negative blob size)")
            index += 4 + -(-size // 4) * 4
        else:
            raise _Refused(f"unsupported OSC type tag {tag!r}")
        if index > len(data):
            raise _Refused(f"malformed OSC packet (argument {tag!r} cut short)")
    if depth != 0:
        raise _Refused("malformed OSC packet ('[' without ']')")
    if index != len(data):
        raise _Refused(f"malformed OSC packet ({len(data) - index} bytes after the last argument)")
    if "c" in tags.decode("latin-1") or "S" in tags.decode("latin-1") or "I" in tags.decode("latin-1"):
        raise _Refused("unsupported OSC type tag (c, S or I)")


def _peek_address(data: bytes) -> str:
    """The address of a packet we could not parse, if it has a readable one (for the /error reply)."""
    if not data.startswith(b"/"):
        return ""
    end = data.find(b"\x00")
    raw = data[:end if end > 0 else 64][:64]
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return ""
    return text if text.isprintable() else ""
