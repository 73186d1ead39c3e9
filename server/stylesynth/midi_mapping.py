"""MIDI mappings: what a controller message means, read from a TOML file and checked against the params table.

This module is pure (no ports, no threads, no engine): it parses and writes mapping files, turns MIDI messages into
controller events (7-bit CC, 14-bit CC pairs, NRPN, notes, program changes, panics), and turns a controller value
into a parameter value (curve, range, invert, absolute or relative mode, soft takeover). :mod:`stylesynth.midi_in`
owns the ports and feeds the engine with what this module computes.

A mapping file (see ``mappings/default.toml``)::

    name = "default"
    takeover = "pickup"            # default for every [[control]]: "pickup" or "jump"

    [[control]]
    cc = 74                        # exactly one of: cc = N (7-bit), cc14 = N (MSB N 0-31 + LSB N+32), nrpn = N
    target = "brightness"          # a parameter name of stylesynth.params
    channel = "omni"               # 1-16 or "omni" (default)
    curve = "linear"               # linear, exp, log
    range = [-5, 5]                # in the parameter's units (default: its full range)
    invert = false
    mode = "absolute"              # absolute, relative-twos, relative-offset (encoders), toggle (booleans)
    step = 0.1                     # relative modes: units per encoder tick (default: the parameter's step)

    [notes]                        # note-on plays a one-shot; velocity sets its gain
    velocity_curve = "linear"
    start_points = { 36 = "Hit - Metal-Surface" }   # optional: note number selects a start point first

    [program]                      # program change selects a start point, prototype or model
    target = "start"
    names = ["", "Hit - Metal-Surface"]             # program n -> names[n]

Errors are :class:`MappingError` and carry the file and the line of the offending key.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from stylesynth import params as P

CURVES = ("linear", "exp", "log")
MODES = ("absolute", "relative-twos", "relative-offset", "toggle")
TAKEOVERS = ("pickup", "jump")
KINDS = ("cc", "cc14", "nrpn")
PROGRAM_TARGETS = ("start", "prototype", "model")
# Besides parameters, a control may fire these commands (buttons: any non-zero value fires).
ACTIONS = ("trigger", "panic")

# CC numbers with a fixed meaning that mappings may not take over.
CC_BANK_MSB, CC_BANK_LSB = 0, 32
CC_DATA_MSB, CC_DATA_LSB = 6, 38
CC_DATA_INCREMENT, CC_DATA_DECREMENT = 96, 97
CC_NRPN_LSB, CC_NRPN_MSB = 98, 99
CC_RPN_LSB, CC_RPN_MSB = 100, 101
NRPN_CCS = (CC_DATA_MSB, CC_DATA_LSB, CC_DATA_INCREMENT, CC_DATA_DECREMENT, CC_NRPN_LSB, CC_NRPN_MSB,
            CC_RPN_LSB, CC_RPN_MSB)
CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF = 120, 123
CHANNEL_MODE_CCS = range(120, 128)   # channel mode messages (120 and 123 are the panics)

# Steepness of the exp/log curves: exp(K x) rescaled to [0, 1]. K = 4 gives about 1/50 of the range at mid travel.
CURVE_STEEPNESS = 4.0
# A knob under pickup takes over when it comes within this much of the parameter (in [0, 1] knob travel), or
# crosses it between two messages: about 1.5 steps of a 7-bit knob.
PICKUP_TOLERANCE = 1.5 / 127


class MappingError(ValueError):
    """A mapping file or entry was refused; ``str()`` is ``"<file> line <n>: <reason>"``."""

    def __init__(self, reason: str, source: str = "<mapping>", line: int | None = None):
        self.reason, self.source, self.line = reason, source, line
        where = f"{source} line {line}" if line else source
        super().__init__(f"{where}: {reason}")


# -----------------------------------------------------------------------------------------------------------------
# The mapping model
# -----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Control:
    """One controller (CC, 14-bit CC or NRPN) driving one parameter.

    Parameters
    ----------
    kind : str
        ``"cc"`` (7-bit, 0-127), ``"cc14"`` (MSB on CC ``number`` 0-31, LSB on ``number + 32``) or ``"nrpn"``
        (parameter number 0-16383 selected with CC 99/98, value on CC 6/38).
    number : int
        The CC or NRPN number.
    target : str
        A parameter name of :data:`stylesynth.params.PARAMS` (numbers and booleans; strings are set by notes and
        program changes), or one of :data:`ACTIONS` (``trigger``, ``panic``) for a button.
    channel : int or None
        MIDI channel 1-16, or ``None`` for omni (any channel).
    curve : str
        ``"linear"``, ``"exp"`` (fine control at the low end) or ``"log"`` (fine control at the high end).
    range : tuple of float
        ``(low, high)`` in the parameter's units, reached at the knob's two ends.
    invert : bool
        Swap the knob's ends.
    mode : str
        ``"absolute"`` (the knob's position is the value), ``"relative-twos"`` (encoder: 1..63 up, 127..65 down),
        ``"relative-offset"`` (encoder: 65.. up, 63.. down, 64 still) or ``"toggle"`` (booleans: each press flips).
    takeover : str
        ``"pickup"``: when the parameter was moved elsewhere (OSC, a preset), the knob acts only once it reaches or
        crosses the current value. ``"jump"``: the knob always acts at once.
    step : float
        Relative modes: how far one encoder tick moves, in the parameter's units (along the curve).
    line : int or None
        Line of the entry in its file (for messages; not part of equality).
    """

    kind: str
    number: int
    target: str
    channel: int | None = None
    curve: str = "linear"
    range: tuple[float, float] = (0.0, 1.0)
    invert: bool = False
    mode: str = "absolute"
    takeover: str = "pickup"
    step: float = 0.0
    line: int | None = field(default=None, compare=False)

    @property
    def bits(self) -> int:
        return 7 if self.kind == "cc" else 14

    @property
    def is_relative(self) -> bool:
        return self.mode.startswith("relative")

    @property
    def is_action(self) -> bool:
        return self.target in ACTIONS

    def label(self) -> str:
        """Short human description: ``"CC 74 ch omni -> brightness"``."""
        name = {"cc": "CC", "cc14": "CC14", "nrpn": "NRPN"}[self.kind]
        return f"{name} {self.number} ch {self.channel or 'omni'} -> {self.target}"


@dataclass(frozen=True)
class NoteMap:
    """What note-ons do: trigger a one-shot with a velocity-scaled gain, optionally selecting a start point first.

    Parameters
    ----------
    channel : int or None
        1-16 or ``None`` (omni).
    velocity_curve : str
        Curve from velocity (1-127) to the trigger's velocity 0..1 (its gain): one of :data:`CURVES`.
    start_points : dict of int to str
        Note number -> start point name set before the trigger; notes not listed just trigger.
    """

    channel: int | None = None
    velocity_curve: str = "linear"
    start_points: dict[int, str] = field(default_factory=dict)

    def __hash__(self):  # frozen with a dict inside: hash by content
        return hash((self.channel, self.velocity_curve, tuple(sorted(self.start_points.items()))))


@dataclass(frozen=True)
class ProgramMap:
    """What program changes do: set ``target`` (``start``, ``prototype`` or ``model``) to ``names[program]``.

    An empty ``names`` means "the loaded model's own list" (start points or prototypes, in the order
    ``/stylesynth/q/<list>`` gives them); ``model`` needs explicit names.
    """

    channel: int | None = None
    target: str = "start"
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mapping:
    """A whole mapping file: controls, note and program behaviour."""

    name: str = "empty"
    description: str = ""
    controls: tuple[Control, ...] = ()
    notes: NoteMap | None = None
    program: ProgramMap | None = None
    source: str = "<mapping>"

    def controls_for(self, kind: str, number: int, channel: int) -> list[Control]:
        """The controls listening to ``kind``/``number`` on MIDI ``channel`` (1-16)."""
        return [c for c in self.controls
                if c.kind == kind and c.number == number and (c.channel is None or c.channel == channel)]

    def cc14_numbers(self) -> frozenset[int]:
        """MSB numbers (0-31) declared as 14-bit pairs: their LSB CC (n + 32) is not a 7-bit control."""
        return frozenset(c.number for c in self.controls if c.kind == "cc14")

    def with_control(self, control: Control) -> tuple["Mapping", list[Control]]:
        """A copy with ``control`` added, and the controls it replaced: those on the same target, on the same
        controller, or on a CC the new one needs (an NRPN needs CC 6/38; a 14-bit pair both of its CCs; a 7-bit
        CC inside a 14-bit pair breaks that pair)."""
        def clashes(c: Control) -> bool:
            if c.target == control.target:
                return True
            if (c.kind, c.number, c.channel) == (control.kind, control.number, control.channel):
                return True
            if control.kind == "nrpn" and c.kind == "cc" and c.number in (CC_DATA_MSB, CC_DATA_LSB):
                return True
            if control.kind == "cc" and control.number in (CC_DATA_MSB, CC_DATA_LSB) and c.kind == "nrpn":
                return True
            pair_of = lambda x, y: x.kind == "cc14" and y.kind == "cc" and y.number in (x.number, x.number + 32)
            return pair_of(control, c) or pair_of(c, control)
        replaced = [c for c in self.controls if clashes(c)]
        kept = tuple(c for c in self.controls if not clashes(c))
        return replace(self, controls=kept + (control,)), replaced


def default_range(param: P.Param) -> tuple[float, float]:
    """A parameter's full range as floats (``(0, 1)`` for booleans)."""
    if param.type in (P.BOOL, P.STRING):
        return (0.0, 1.0)
    return (float(param.minimum), float(param.maximum))


def default_step(param: P.Param) -> float:
    """Units per encoder tick: the table's slider step, else 1/127 of the range."""
    lo, hi = default_range(param)
    return float(param.step) if param.step else (hi - lo) / 127


def new_control(target: str, kind: str, number: int, channel: int | None = None, mode: str = "absolute",
                takeover: str = "pickup") -> Control:
    """A control with the parameter's defaults (full range, linear, its step): what MIDI learn creates.

    ``target`` may be a parameter name or one of :data:`ACTIONS`; a button learnt for an on/off parameter jumps
    (pickup means nothing for a switch).
    """
    if target in ACTIONS:
        return Control(kind=kind, number=number, target=target, channel=channel, range=(0.0, 1.0),
                       takeover="jump", step=1 / 127)
    param = P.get(target)
    if param.type == P.BOOL and mode == "absolute":
        takeover = "jump"
    return Control(kind=kind, number=number, target=target, channel=channel, range=default_range(param),
                   mode=mode, takeover=takeover, step=default_step(param))


# -----------------------------------------------------------------------------------------------------------------
# Values: curves, scaling, inverse (for pickup and encoders), relative decoding
# -----------------------------------------------------------------------------------------------------------------

def apply_curve(x: float, curve: str) -> float:
    """Shape knob travel ``x`` in [0, 1]: ``linear`` as is, ``exp`` slow then fast, ``log`` fast then slow.

    ``exp`` is ``(e^(Kx) - 1) / (e^K - 1)`` and ``log`` its inverse, so both keep 0 -> 0 and 1 -> 1.
    """
    x = min(1.0, max(0.0, x))
    if curve == "linear":
        return x
    k = CURVE_STEEPNESS
    if curve == "exp":
        return math.expm1(k * x) / math.expm1(k)
    if curve == "log":
        return math.log1p(math.expm1(k) * x) / k
    raise ValueError(f"unknown curve {curve!r} (expected one of {', '.join(CURVES)})")


def invert_curve(y: float, curve: str) -> float:
    """The knob travel that :func:`apply_curve` maps to ``y`` (``exp`` and ``log`` undo each other)."""
    if curve == "linear":
        return min(1.0, max(0.0, y))
    return apply_curve(y, {"exp": "log", "log": "exp"}[curve])


def value_at(control: Control, x: float) -> float:
    """The parameter value at knob travel ``x`` in [0, 1] (invert, then curve, then range)."""
    if control.invert:
        x = 1.0 - x
    lo, hi = control.range
    return lo + apply_curve(x, control.curve) * (hi - lo)


def travel_of(control: Control, value: float) -> float:
    """Where on the knob (travel in [0, 1]) ``value`` sits; values outside the range give the nearer end."""
    lo, hi = control.range
    y = 0.0 if hi == lo else (float(value) - lo) / (hi - lo)
    x = invert_curve(y, control.curve)
    return 1.0 - x if control.invert else x


def relative_ticks(raw: int, mode: str) -> int:
    """Encoder ticks in one 7-bit relative message: ``relative-twos`` 1..63 up / 127..64 down (two's complement),
    ``relative-offset`` 64 + n (64 is no movement)."""
    if mode == "relative-twos":
        return raw - 128 if raw >= 64 else raw
    if mode == "relative-offset":
        return raw - 64
    raise ValueError(f"mode {mode!r} is not relative")


# -----------------------------------------------------------------------------------------------------------------
# Decoding MIDI messages into controller events
# -----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ControllerEvent:
    """A controller moved: ``kind`` cc/cc14/nrpn, ``number``, ``value`` (0..127 or 0..16383), MIDI ``channel``
    1-16. ``fine`` is true when the value carries a real LSB (a 14-bit controller, not just its MSB)."""

    kind: str
    number: int
    value: int
    channel: int
    fine: bool = False

    @property
    def travel(self) -> float:
        """The value as knob travel in [0, 1]."""
        return self.value / (127 if self.kind == "cc" else 16383)


@dataclass(frozen=True)
class NoteEvent:
    channel: int
    note: int
    velocity: int


@dataclass(frozen=True)
class ProgramEvent:
    channel: int
    program: int


@dataclass(frozen=True)
class PanicEvent:
    channel: int
    cc: int   # 120 all sound off, 123 all notes off


class ControllerDecoder:
    """Turns mido messages into events, keeping the per-channel state 14-bit CC and NRPN need.

    Every control change yields a plain ``cc`` event. In addition, CC 0-31 and their LSBs 32-63 yield ``cc14``
    events (an MSB resets the LSB to 0, as the MIDI spec says; the LSB then refines it), and CC 6/38 after an NRPN
    selection (CC 99/98) yield ``nrpn`` events (an RPN selection, CC 101/100, switches them off). CC 120 and 123
    yield a panic. The router decides which of these a mapping listens to.
    """

    def __init__(self):
        self._msb: dict[tuple[int, int], int] = {}       # (channel, cc 0-31) -> last MSB
        self._nrpn: dict[int, list[int | None]] = {}      # channel -> [nrpn msb, nrpn lsb]
        self._rpn_active: dict[int, bool] = {}            # channel -> data entry belongs to an RPN
        self._data_msb: dict[int, int] = {}               # channel -> last data entry MSB

    def feed(self, msg) -> list:
        """Events for one mido message (an empty list for messages that mean nothing here)."""
        kind = msg.type
        if kind == "control_change":
            return self._control(msg.channel + 1, msg.control, msg.value)
        if kind == "note_on" and msg.velocity > 0:
            return [NoteEvent(msg.channel + 1, msg.note, msg.velocity)]
        if kind == "program_change":
            return [ProgramEvent(msg.channel + 1, msg.program)]
        return []   # note-off, aftertouch, pitch wheel, clock, sysex...: not mapped

    def _control(self, ch: int, cc: int, value: int) -> list:
        if cc in (CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF):
            return [PanicEvent(ch, cc)]
        events = [ControllerEvent("cc", cc, value, ch)]
        if cc < 32:
            self._msb[(ch, cc)] = value
            events.append(ControllerEvent("cc14", cc, _coarse(value), ch))
        elif cc < 64 and (ch, cc - 32) in self._msb:
            events.append(ControllerEvent("cc14", cc - 32, (self._msb[(ch, cc - 32)] << 7) | value, ch, fine=True))
        if cc in (CC_NRPN_MSB, CC_NRPN_LSB):
            sel = self._nrpn.setdefault(ch, [None, None])
            sel[0 if cc == CC_NRPN_MSB else 1] = value
            self._rpn_active[ch] = False
        elif cc in (CC_RPN_MSB, CC_RPN_LSB):
            self._rpn_active[ch] = True
        elif cc in (CC_DATA_MSB, CC_DATA_LSB):
            sel = self._nrpn.get(ch)
            if sel and not self._rpn_active.get(ch) and sel[0] is not None:
                number = (sel[0] << 7) | (sel[1] or 0)
                if cc == CC_DATA_MSB:
                    self._data_msb[ch] = value
                    events.append(ControllerEvent("nrpn", number, _coarse(value), ch))
                else:
                    events.append(ControllerEvent("nrpn", number, (self._data_msb.get(ch, 0) << 7) | value, ch,
                                                  fine=True))
        return events


def _coarse(msb: int) -> int:
    """A 14-bit value from an MSB alone, spread over the whole range so a 7-bit sender still reaches both ends
    (127 -> 16383, not 16256); the LSB that may follow replaces it with the exact value."""
    return round(msb * 16383 / 127)


# -----------------------------------------------------------------------------------------------------------------
# From an event to a parameter value
# -----------------------------------------------------------------------------------------------------------------

@dataclass
class TakeoverState:
    """What soft takeover remembers per control: the value it last sent and the knob's last travel."""

    last_sent: float | None = None
    last_travel: float | None = None


def resolve(control: Control, event: ControllerEvent, current, memory: TakeoverState):
    """The value ``control`` sets for ``event``, or ``None`` when it must not act (pickup not reached yet).

    Parameters
    ----------
    control : Control
        The mapping entry the event matched.
    event : ControllerEvent
        The controller message (its value is 7- or 14-bit as ``control.kind`` says).
    current : float or int or bool
        The parameter's current value in the engine (moved by OSC, presets or this knob).
    memory : TakeoverState
        This control's takeover memory; updated in place.

    Returns
    -------
    value : float or int or bool or None
        The new parameter value, typed for the parameter (ints rounded, booleans for ``T/F``), or ``None``.
    """
    param = P.get(control.target)
    if control.mode == "toggle":
        # A button: press (non-zero) flips, release does nothing.
        return (not bool(current)) if event.value > 0 else None
    if control.is_relative:
        ticks = relative_ticks(event.value & 0x7F, control.mode)
        if ticks == 0:
            return None
        lo, hi = control.range
        span = abs(hi - lo) or 1.0
        direction = -1 if control.invert else 1
        travel = travel_of(control, current) + direction * ticks * control.step / span
        return _typed(param, value_at(control, min(1.0, max(0.0, travel))))
    travel = event.travel
    value = _typed(param, value_at(control, travel))
    if control.takeover == "pickup" and param.type != P.BOOL and not _picked_up(control, travel, current, memory):
        memory.last_travel = travel
        return None
    memory.last_travel, memory.last_sent = travel, value
    return value


def _picked_up(control: Control, travel: float, current, memory: TakeoverState) -> bool:
    span = abs(control.range[1] - control.range[0]) or 1.0
    if memory.last_sent is not None and abs(float(current) - memory.last_sent) <= 1e-6 * span:
        return True    # nobody else moved the parameter since this knob set it
    here = travel_of(control, current)
    if abs(travel - here) <= PICKUP_TOLERANCE:
        return True
    before = memory.last_travel
    return before is not None and (before - here) * (travel - here) <= 0   # crossed the current value


def _typed(param: P.Param, value: float):
    if param.type == P.BOOL:
        return value >= 0.5
    if param.type == P.INT:
        return int(round(value))
    return float(value)


def velocity_gain(velocity: int, curve: str = "linear") -> float:
    """Note velocity 1..127 -> trigger velocity 0..1 through ``curve``."""
    return apply_curve(velocity / 127, curve)


# -----------------------------------------------------------------------------------------------------------------
# Reading TOML
# -----------------------------------------------------------------------------------------------------------------

_CONTROL_KEYS = {"cc", "cc14", "nrpn", "target", "channel", "curve", "range", "invert", "mode", "takeover", "step"}
_NOTES_KEYS = {"channel", "velocity_curve", "start_points"}
_PROGRAM_KEYS = {"channel", "target", "names"}
_TOP_KEYS = {"name", "description", "takeover", "control", "notes", "program"}

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*[=.]""")


class _Lines:
    """Finds the line of a key in TOML text: ``(table, index, key) -> line`` (tomllib reports syntax errors with
    their line, but a schema error needs us to find the offending key ourselves)."""

    def __init__(self, text: str):
        self.keys: dict[tuple[str, int, str], int] = {}
        self.tables: dict[tuple[str, int], int] = {}
        counts: dict[str, int] = {}
        table, index = "", 0
        for n, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                table = header.group(2).strip().strip('"')
                index = counts.get(table, -1) + 1 if header.group(1) == "[[" else 0
                counts[table] = index
                self.tables[(table, index)] = n
                continue
            key = _KEY.match(line)
            if key:
                self.keys.setdefault((table, index, key.group(1).strip("\"'")), n)

    def of(self, table: str, index: int = 0, key: str | None = None) -> int | None:
        if key is not None and (table, index, key) in self.keys:
            return self.keys[(table, index, key)]
        if key is not None and not table and (key, 0) in self.tables:   # a top-level table: its header
            return self.tables[(key, 0)]
        return self.tables.get((table, index))


def parse_mapping(text: str, source: str = "<mapping>") -> Mapping:
    """Parse and check mapping TOML text.

    Parameters
    ----------
    text : str
        The TOML document.
    source : str
        Name used in error messages (the file's path).

    Returns
    -------
    Mapping

    Raises
    ------
    MappingError
        Syntax errors (line from tomllib) and schema errors (line of the offending key): unknown keys, a target
        that is not a parameter, a value out of range, two controllers in one entry, a CC reserved for 14-bit or
        NRPN use, ...
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        line = int(match.group(1)) if match else None
        if line is None and "end of document" in str(exc):
            line = max(1, len(text.splitlines()))
        col = f", column {match.group(2)}" if match else ""
        raise MappingError(f"TOML syntax error{col}: {reason}", source, line) from None
    lines = _Lines(text)

    def fail(reason: str, table: str = "", index: int = 0, key: str | None = None):
        raise MappingError(reason, source, lines.of(table, index, key))

    for key in doc:
        if key not in _TOP_KEYS:
            fail(f"unknown key {key!r} (expected {', '.join(sorted(_TOP_KEYS))})", key=key)
    name = doc.get("name", Path(source).stem)
    description = doc.get("description", "")
    for key, val in (("name", name), ("description", description)):
        if not isinstance(val, str):
            fail(f"{key} must be a string", key=key)
    default_takeover = _choice(doc.get("takeover", "pickup"), TAKEOVERS, "takeover",
                               lambda r: fail(r, key="takeover"))
    entries = doc.get("control", [])
    if not isinstance(entries, list):
        fail("control must be an array of tables: write each entry as [[control]]", "control", key=None)
    controls = tuple(_parse_control(e, default_takeover, lines.of("control", i),
                                    lambda r, k=None, i=i: fail(r, "control", i, k))
                     for i, e in enumerate(entries))
    _check_clashes(controls, lambda r, i, k=None: fail(r, "control", i, k))
    notes = _parse_notes(doc["notes"], lambda r, k=None: fail(r, "notes", 0, k)) if "notes" in doc else None
    program = (_parse_program(doc["program"], lambda r, k=None: fail(r, "program", 0, k))
               if "program" in doc else None)
    return Mapping(name=name, description=description, controls=controls, notes=notes, program=program,
                   source=source)


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; :class:`MappingError` (with the line) if it is not valid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError("no such file", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read: {exc}", str(path)) from None
    return parse_mapping(text, str(path))


def _parse_control(entry, default_takeover: str, line: int | None, fail) -> Control:
    if not isinstance(entry, dict):
        fail("each [[control]] must be a table")
    for key in entry:
        if key not in _CONTROL_KEYS:
            fail(f"unknown key {key!r} in [[control]] (expected {', '.join(sorted(_CONTROL_KEYS))})", key)
    sources = [k for k in KINDS if k in entry]
    if len(sources) != 1:
        what = "none" if not sources else " and ".join(sources)
        fail(f"each [[control]] needs exactly one of cc, cc14, nrpn (found {what})",
             sources[1] if len(sources) > 1 else None)
    kind = sources[0]
    limit = {"cc": 127, "cc14": 31, "nrpn": 16383}[kind]
    number = _int(entry[kind], 0, limit, kind, lambda r: fail(r, kind))
    if kind == "cc" and number in CHANNEL_MODE_CCS:
        fail(f"CC {number} is a channel mode message (120 and 123 are the panics) and cannot be mapped", kind)
    if kind == "cc" and number in (CC_NRPN_MSB, CC_NRPN_LSB, CC_RPN_MSB, CC_RPN_LSB):
        fail(f"CC {number} selects NRPN/RPN parameters and cannot be mapped as a knob", kind)
    if "target" not in entry:
        fail("[[control]] needs a target (a parameter name, or trigger/panic)")
    target = entry["target"]
    if not isinstance(target, str):
        fail("target must be a string (a parameter name, or trigger/panic)", "target")
    if target in ACTIONS:
        return _parse_action(entry, kind, number, target, line, fail)
    try:
        param = P.get(target)
    except KeyError as exc:
        fail(exc.args[0] + f" (targets are parameters of stylesynth.params or {', '.join(ACTIONS)})", "target")
    if param.type == P.STRING:
        fail(f"{target} takes a name, not a number: set it with [notes] start_points or [program]", "target")
    channel = _channel(entry.get("channel", "omni"), lambda r: fail(r, "channel"))
    curve = _choice(entry.get("curve", "linear"), CURVES, "curve", lambda r: fail(r, "curve"))
    mode = _choice(entry.get("mode", "absolute"), MODES, "mode", lambda r: fail(r, "mode"))
    if mode == "toggle" and param.type != P.BOOL:
        fail(f"mode toggle is for on/off parameters; {target} is a number", "mode")
    if mode.startswith("relative") and kind != "cc":
        fail(f"mode {mode} is for 7-bit encoders (cc), not {kind}", "mode")
    takeover = _choice(entry.get("takeover", default_takeover), TAKEOVERS, "takeover",
                       lambda r: fail(r, "takeover"))
    rng = _range(entry.get("range"), param, lambda r: fail(r, "range"))
    invert = entry.get("invert", False)
    if not isinstance(invert, bool):
        fail("invert must be true or false", "invert")
    step = entry.get("step", default_step(param))
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0:
        fail(f"step must be a positive number, got {step!r}", "step")
    return Control(kind=kind, number=number, target=target, channel=channel, curve=curve, range=rng,
                   invert=invert, mode=mode, takeover=takeover, step=float(step), line=line)


def _parse_action(entry, kind: str, number: int, target: str, line: int | None, fail) -> Control:
    for key in ("curve", "range", "invert", "step", "takeover"):
        if key in entry:
            fail(f"{key} means nothing for a {target} button (it fires on any non-zero value)", key)
    if entry.get("mode", "absolute") != "absolute":
        fail(f"a {target} button takes no mode", "mode")
    channel = _channel(entry.get("channel", "omni"), lambda r: fail(r, "channel"))
    return Control(kind=kind, number=number, target=target, channel=channel, range=(0.0, 1.0), takeover="jump",
                   step=1 / 127, line=line)


def _check_clashes(controls: tuple[Control, ...], fail) -> None:
    pairs = {c.number for c in controls if c.kind == "cc14"}
    has_nrpn = any(c.kind == "nrpn" for c in controls)
    seen: dict[tuple, int] = {}
    for i, c in enumerate(controls):
        if c.kind == "cc" and (c.number in pairs or c.number - 32 in pairs):
            msb = c.number if c.number in pairs else c.number - 32
            fail(f"CC {c.number} is part of the 14-bit pair cc14 = {msb} (CC {msb} + CC {msb + 32})", i, "cc")
        if c.kind == "cc" and has_nrpn and c.number in (CC_DATA_MSB, CC_DATA_LSB):
            fail(f"CC {c.number} carries NRPN values in this mapping and cannot also be a knob", i, "cc")
        key = (c.kind, c.number, c.channel, c.target)
        if key in seen:
            fail(f"duplicate of control entry {seen[key] + 1} ({c.label()})", i, c.kind)
        seen[key] = i


def _parse_notes(table, fail) -> NoteMap:
    if not isinstance(table, dict):
        fail("notes must be a table: [notes]")
    for key in table:
        if key not in _NOTES_KEYS:
            fail(f"unknown key {key!r} in [notes] (expected {', '.join(sorted(_NOTES_KEYS))})", key)
    channel = _channel(table.get("channel", "omni"), lambda r: fail(r, "channel"))
    curve = _choice(table.get("velocity_curve", "linear"), CURVES, "velocity_curve",
                    lambda r: fail(r, "velocity_curve"))
    raw = table.get("start_points", {})
    if not isinstance(raw, dict):
        fail("start_points must be a table of note number = start point name", "start_points")
    start_points = {}
    for note, name in raw.items():
        if not re.fullmatch(r"\d{1,3}", note) or int(note) > 127:
            fail(f"start_points key {note!r} is not a note number 0-127", "start_points")
        if not isinstance(name, str) or not name:
            fail(f"start_points {note} must name a start point (a non-empty string)", "start_points")
        start_points[int(note)] = name
    return NoteMap(channel=channel, velocity_curve=curve, start_points=start_points)


def _parse_program(table, fail) -> ProgramMap:
    if not isinstance(table, dict):
        fail("program must be a table: [program]")
    for key in table:
        if key not in _PROGRAM_KEYS:
            fail(f"unknown key {key!r} in [program] (expected {', '.join(sorted(_PROGRAM_KEYS))})", key)
    channel = _channel(table.get("channel", "omni"), lambda r: fail(r, "channel"))
    target = _choice(table.get("target", "start"), PROGRAM_TARGETS, "target", lambda r: fail(r, "target"))
    names = table.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        fail("names must be a list of strings", "names")
    if len(names) > 128:
        fail(f"names has {len(names)} entries; program numbers go to 127", "names")
    if target == "model" and not names:
        fail("program target model needs names (the models to load, in program order)", "names")
    return ProgramMap(channel=channel, target=target, names=tuple(names))


def _int(value, lo: int, hi: int, what: str, fail) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        fail(f"{what} must be a whole number {lo}-{hi}, got {value!r}")
    return value


def _channel(value, fail) -> int | None:
    if value == "omni":
        return None
    return _int(value, 1, 16, "channel", lambda r: fail(r + ' (or "omni")'))


def _choice(value, choices: tuple[str, ...], what: str, fail) -> str:
    if value not in choices:
        fail(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _range(value, param: P.Param, fail) -> tuple[float, float]:
    full = default_range(param)
    if value is None:
        return full
    if param.type == P.BOOL:
        fail(f"{param.name} is on/off: it takes no range")
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in value)):
        fail(f"range must be [low, high] (two numbers), got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo == hi:
        fail(f"range [{lo:g}, {hi:g}] is empty: use invert = true to reverse a knob, not a reversed range")
    if lo > hi:
        fail(f"range [{lo:g}, {hi:g}] is reversed: write [{hi:g}, {lo:g}] and invert = true")
    if lo < full[0] or hi > full[1]:
        fail(f"range [{lo:g}, {hi:g}] leaves {param.name}'s range [{full[0]:g}, {full[1]:g}]"
             + (f" {param.unit}" if param.unit else ""))
    return (lo, hi)


# -----------------------------------------------------------------------------------------------------------------
# Writing TOML (tomllib only reads; the schema is small enough to write by hand)
# -----------------------------------------------------------------------------------------------------------------

def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(mapping: Mapping) -> str:
    """The mapping as TOML text that :func:`parse_mapping` reads back to an equal mapping (comments are not kept)."""
    out = ["# stylesynth MIDI mapping (written by stylesynth; see mappings/default.toml for the format)",
           f"name = {_toml_value(mapping.name)}"]
    if mapping.description:
        out.append(f"description = {_toml_value(mapping.description)}")
    for c in mapping.controls:
        out += ["", "[[control]]", f"{c.kind} = {c.number}", f"target = {_toml_value(c.target)}",
                f"channel = {_toml_value(c.channel or 'omni')}"]
        if c.is_action:
            continue
        out.append(f"curve = {_toml_value(c.curve)}")
        if P.get(c.target).type != P.BOOL:
            out.append(f"range = {_toml_value(list(c.range))}")
        out += [f"invert = {_toml_value(c.invert)}", f"mode = {_toml_value(c.mode)}",
                f"takeover = {_toml_value(c.takeover)}", f"step = {_toml_value(c.step)}"]
    if mapping.notes:
        n = mapping.notes
        out += ["", "[notes]", f"channel = {_toml_value(n.channel or 'omni')}",
                f"velocity_curve = {_toml_value(n.velocity_curve)}"]
        if n.start_points:
            pairs = ", ".join(f"{k} = {_toml_value(v)}" for k, v in sorted(n.start_points.items()))
            out.append(f"start_points = {{ {pairs} }}")
    if mapping.program:
        p = mapping.program
        out += ["", "[program]", f"channel = {_toml_value(p.channel or 'omni')}",
                f"target = {_toml_value(p.target)}", f"names = {_toml_value(list(p.names))}"]
    return "\n".join(out) + "\n"


def save_mapping(mapping: Mapping, path: str | Path) -> None:
    """Write ``mapping`` to ``path`` atomically (a temporary file renamed over it), after checking it reads back."""
    path = Path(path)
    text = to_toml(mapping)
    parse_mapping(text, str(path))   # never write a file we would refuse to read
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
