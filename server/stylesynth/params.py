"""The control space: every parameter and every command address of the server, in one table.

This module is the single source of truth. The OSC server, the MIDI mapping checker, OSCQuery, presets, the Pd/Max
patches, the TouchOSC layout, the docs and the web page are all generated from it or checked against it, so a
parameter added here appears everywhere and a renamed one breaks loudly.

* :data:`PARAMS` -- values held in :class:`stylesynth.state.ControlState`, set with ``/stylesynth/<name> value``
  and queried with ``/stylesynth/q/<name>``.
* :data:`COMMANDS` -- actions and queries that are not values (trigger, status, presets, ...), with their
  arguments and replies.

Types use OSC type tags: ``f`` float32, ``i`` int32, ``s`` string, ``T/F`` boolean (OSC ``T``/``F``; 0/1 numbers
are accepted too, because Pd and TouchOSC send floats).
"""
from __future__ import annotations

from dataclasses import dataclass

PREFIX = "/stylesynth"

FLOAT = "f"
INT = "i"
STRING = "s"
BOOL = "T/F"
TYPES = (FLOAT, INT, STRING, BOOL)

INT32_MAX = 2**31 - 1
STRING_MAX_LENGTH = 256  # longest string value accepted (a model path may be long; a prototype name is short)


@dataclass(frozen=True)
class Param:
    """One controllable value.

    Parameters
    ----------
    name : str
        Key used everywhere (state, presets, MIDI mappings): e.g. ``"brightness"``, ``"sefa/3"``, ``"query/width"``.
    osc_address : str
        ``/stylesynth/<name>``.
    type : str
        One of :data:`TYPES`: ``"f"``, ``"i"``, ``"s"`` or ``"T/F"``.
    minimum, maximum : float or int or None
        Inclusive range for numbers (values outside are clamped, with a note); ``None`` for strings and booleans.
    default : float or int or str or bool
        Value at start-up and after a reset.
    unit : str
        Display unit (``"dB"``, ``"Hz"``, ``"s"``, ``""`` for unitless).
    description : str
        One sentence for people: shown in OSCQuery, docs, patches, layouts.
    group : str
        Section in layouts and docs: ``semantic``, ``sefa``, ``latent``, ``prior``, ``query``, ``model``,
        ``output``.
    step : float or None
        Suggested slider resolution for control surfaces (``None``: continuous or not a slider).
    regenerates : bool
        Whether a change needs a new clip from the model (``gain`` and ``loop`` act on playback only).
    """

    name: str
    osc_address: str
    type: str
    minimum: float | int | None
    maximum: float | int | None
    default: float | int | str | bool
    unit: str
    description: str
    group: str
    step: float | None = None
    regenerates: bool = True

    @property
    def is_number(self) -> bool:
        return self.type in (FLOAT, INT)

    @property
    def query_address(self) -> str:
        """``/stylesynth/q/<name>``: replies ``/stylesynth/<name> value``."""
        return f"{PREFIX}/q/{self.name}"


def _p(name, type, minimum, maximum, default, unit, description, group, step=None, regenerates=True) -> Param:
    return Param(name, f"{PREFIX}/{name}", type, minimum, maximum, default, unit, description, group,
                 step, regenerates)


SLIDER = 5.0        # semantic and SeFa sliders move w by s * unit direction, s in [-SLIDER, SLIDER] (the paper)
SEFA_DIMENSIONS = 10

_PARAMS: list[Param] = [
    # Perceptually guided directions (prototype(A) - prototype(B), unit length), applied to all style layers.
    _p("brightness", FLOAT, -SLIDER, SLIDER, 0.0, "",
       "Perceptual brightness: + towards tinny (bands up to ~8 kHz), - towards muffled (below ~1.7 kHz).",
       "semantic", 0.1),
    _p("rate", FLOAT, -SLIDER, SLIDER, 0.0, "",
       "Event rate: + more events per clip, - fewer.", "semantic", 0.1),
    _p("impact", FLOAT, -SLIDER, SLIDER, 0.0, "",
       "Impact type: + short sharp hits, - long scratches.", "semantic", 0.1),
    # Unsupervised directions (SeFa eigenvectors, strongest first).
    *[_p(f"sefa/{k}", FLOAT, -SLIDER, SLIDER, 0.0, "",
         f"SeFa direction {k} of {SEFA_DIMENSIONS} (closed-form factorisation of the generator; "
         f"1 is the strongest).", "sefa", 0.1)
      for k in range(1, SEFA_DIMENSIONS + 1)],
    # Where the latent starts.
    _p("start", STRING, None, None, "", "",
       "Named start point of the model (its list: /stylesynth/q/start_points); empty = the latent drawn from seed.",
       "latent"),
    _p("seed", INT, 0, INT32_MAX, 0, "",
       "Seed of the Gaussian latent z used when start is empty (same seed, same sound).", "latent", 1),
    _p("truncation", FLOAT, 0.0, 1.0, 0.7, "",
       "Truncation psi: w = mean + psi (w - mean); lower is more typical, 1 is the raw latent.", "latent", 0.01),
    # Soft prior: pull the start latent towards a class prototype.
    _p("prototype", STRING, None, None, "none", "",
       "Class prototype to pull the latent towards (one of the model's, see /stylesynth/q/prototypes), or none.",
       "prior"),
    _p("strength", FLOAT, 0.0, 1.0, 0.7, "",
       "Pull towards the prototype: w <- (1 - strength) w + strength p (the paper uses 0.7).", "prior", 0.01),
    # Query GAN with soft prior: a synthetic Gaver reference built from these, inverted by the encoder.
    _p("query/run", BOOL, None, None, False, "",
       "1 = start from the soft-prior query built from the query/* controls (inverted, then pulled towards "
       "prototype by strength); 0 = start from start/seed.", "query"),
    _p("query/width", FLOAT, 0.02, 1.5, 0.1, "s",
       "Length of each impulse of the query reference (hits 0.05-0.4 s, scratches 0.15-1.2 s).", "query", 0.01),
    _p("query/density", INT, 1, 12, 3, "",
       "Number of impulses in the query reference clip (the paper's Very Low..Very High = 1, 2, 3, 5, 7).",
       "query", 1),
    _p("query/burst", BOOL, None, None, False, "",
       "1 = irregular, bursty impulse placement; 0 = evenly spaced impulses.", "query"),
    _p("query/band_lf", FLOAT, 20.0, 8000.0, 500.0, "Hz",
       "Low edge of the query's noise band (swapped with band_hf if above it).", "query", 10.0),
    _p("query/band_hf", FLOAT, 20.0, 8000.0, 4000.0, "Hz",
       "High edge of the query's noise band (8000 Hz = Nyquist at 16 kHz).", "query", 10.0),
    _p("query/order", INT, 1, 8, 4, "",
       "Band-pass filter order of the query's noise bands (higher = steeper).", "query", 1),
    _p("query/fade_in", FLOAT, 0.0, 1.0, 0.05, "",
       "Attack of each impulse as a fraction of its width.", "query", 0.01),
    _p("query/fade_out", FLOAT, 0.0, 1.0, 0.9, "",
       "Part of each impulse's trail that fades out, as a fraction of its width.", "query", 0.01),
    _p("query/exponent", FLOAT, 0.1, 10.0, 2.0, "",
       "Damping exponent of the fade-out ramp (higher = faster initial decay).", "query", 0.1),
    # Model and output.
    _p("model", STRING, None, None, "hits", "",
       "Model to load: a name in checkpoints/ (hits, water, ...) or a checkpoint path. A model that fails to "
       "load is refused with /error and the old one keeps playing.", "model"),
    _p("gain", FLOAT, -60.0, 12.0, 0.0, "dB",
       "Output gain, smoothed per audio block (clips are loudness-normalised to -14 LUFS before it).",
       "output", 0.5, regenerates=False),
    _p("loop", BOOL, None, None, True, "",
       "1 = the current clip loops continuously; 0 = silent until /stylesynth/trigger (one-shots).",
       "output", regenerates=False),
]

#: Every parameter by name, in display order.
PARAMS: dict[str, Param] = {p.name: p for p in _PARAMS}
#: Every parameter by OSC address.
BY_ADDRESS: dict[str, Param] = {p.osc_address: p for p in _PARAMS}

GROUPS = ("semantic", "sefa", "latent", "prior", "query", "model", "output")


def get(name: str) -> Param:
    """The parameter called ``name``; raises ``KeyError`` naming the closest valid names."""
    try:
        return PARAMS[name]
    except KeyError:
        import difflib
        close = difflib.get_close_matches(name, list(PARAMS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KeyError(f"unknown parameter {name!r}{hint}") from None


@dataclass(frozen=True)
class Command:
    """One command address (an action or query, not a stored value).

    Parameters
    ----------
    address : str
        OSC address, e.g. ``/stylesynth/trigger``.
    args : str
        OSC type tags of the arguments it takes; ``[...]`` marks optional ones (``"[f]"``: an optional float).
    reply : str
        What the server sends back (to the reply port if one is set, else to the sender); ``""`` for nothing.
    description : str
        One sentence for people.
    """

    address: str
    args: str
    reply: str
    description: str


COMMANDS: dict[str, Command] = {c.address: c for c in [
    Command(f"{PREFIX}/trigger", "[f]", "",
            "Play the current clip once as a one-shot voice; optional velocity 0..1 (default 1) scales its gain."),
    Command(f"{PREFIX}/panic", "", "/done /stylesynth/panic",
            "Silence everything at once: stop all one-shot voices and the loop (loop is set to 0)."),
    Command(f"{PREFIX}/q/<name>", "", "/stylesynth/<name> value",
            "Query a parameter's value; the reply uses the parameter's own address so control surfaces update."),
    Command(f"{PREFIX}/q/prototypes", "", "/stylesynth/prototypes name ...",
            "The loaded model's prototype names (valid values of prototype, besides none)."),
    Command(f"{PREFIX}/q/start_points", "", "/stylesynth/start_points name ...",
            "The loaded model's named start points (valid values of start, besides the empty string)."),
    Command(f"{PREFIX}/dump", "", "/stylesynth/<name> value, for every parameter",
            "Bulk dump of every parameter value, one message each (to sync a control surface)."),
    Command("/status", "", "/status.reply model regenerations coalesced dropped xruns p50_ms p99_ms voices "
            "clients uptime_s",
            "Server status: model name, regenerations done and skipped by coalescing, dropped messages, audio "
            "xruns, regeneration latency p50/p99 in ms, active voices, subscribed clients, uptime."),
    Command("/version", "", "/version.reply stylesynth version",
            "Program name and version."),
    Command("/sync", "i", "/synced id",
            "Reply once every message received before it has been applied and a clip including it has gone to the "
            "player (it does not wait for a storm of later changes to end)."),
    Command("/notify", "i [i]", "/done /notify",
            "1 subscribes the reply address to value changes and new-audio events, 0 unsubscribes; an optional "
            "second argument 1 also sends each clip as chunked blobs (/stylesynth/audio/chunk)."),
    Command("/reply_port", "i", "/done /reply_port",
            "Send replies for this sender to this UDP port on the sender's host (Max's udpreceive cannot listen "
            "on udpsend's port); 0 = back to the sender's own port."),
    Command("/preset/save", "s", "/done /preset/save name",
            "Save every parameter to presets/<name>.json (name: letters, digits, - and _, up to 64)."),
    Command("/preset/load", "s", "/done /preset/load name",
            "Load presets/<name>.json; unknown keys refused, out-of-range values clamped with an /error note."),
    Command("/learn", "s", "/done /learn name",
            "Arm MIDI learn for a parameter: the next controller moved is mapped to it."),
]}

#: Messages the server pushes (to subscribers, or as replies to refused messages).
OUTGOING: dict[str, str] = {
    "/error": "address reason -- a message was refused or altered (clamped) and why",
    "/done": "address [args] -- a command completed",
    f"{PREFIX}/audio/file": "path seq -- a new clip was written as a 32-bit float wav at path (sequence number seq)",
    f"{PREFIX}/audio/chunk": "seq index count blob -- part index of count of clip seq, float32 little-endian "
                             "samples at the clip's sample rate, each packet under 1400 bytes",
    f"{PREFIX}/<name>": "value -- a parameter changed (sent to /notify subscribers and as /q replies)",
    f"{PREFIX}/audio/seq": "seq -- number of the newest clip (OSCQuery: LISTEN to it over the WebSocket; the clip "
                           "itself is at /clip/latest.wav and its spectrogram at /clip/latest.png)",
}


def describe() -> str:
    """The whole control space as a plain-text table (used by ``stylesynth controls`` and the docs)."""
    lines = [f"{'address':30} {'type':4} {'range':>18} {'default':>8} {'unit':4}  description"]
    for p in PARAMS.values():
        rng = f"[{p.minimum:g}, {p.maximum:g}]" if p.is_number else ""
        lines.append(f"{p.osc_address:30} {p.type:4} {rng:>18} {str(p.default):>8} {p.unit:4}  {p.description}")
    lines.append("")
    for c in COMMANDS.values():
        lines.append(f"{c.address:30} {c.args:8} -> {c.reply or '(nothing)'}: {c.description}")
    return "\n".join(lines)
