"""The control state: one immutable value holding every parameter of :mod:`stylesynth.params`.

A :class:`ControlState` is frozen and hashable, so the engine can swap whole states between threads without locks
and the renderer can tell "nothing changed" by equality. Every change goes through :meth:`ControlState.with_value`,
which validates against the params table: non-finite numbers, wrong types and unknown names are refused with a
:class:`ControlError` (a ``ValueError``) whose message says exactly what was wrong; out-of-range numbers are
clamped and a note says so. Pure: no I/O, no model knowledge (whether a prototype or start point exists in the
loaded model is the engine's check).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, fields, replace
from numbers import Integral, Real

from stylesynth import params as P


class ControlError(ValueError):
    """A control value was refused (unknown name, wrong type, NaN/inf, bad string)."""


def field_name(param_name: str) -> str:
    """The attribute of :class:`ControlState` holding a parameter: ``"sefa/3"`` -> ``"sefa_3"``."""
    return param_name.replace("/", "_")


@dataclass(frozen=True)
class ControlState:
    """Every control value (defaults from :data:`stylesynth.params.PARAMS`). Attribute names are the parameter
    names with ``/`` replaced by ``_``; use :meth:`get` / :meth:`with_value` with the parameter names."""

    brightness: float = 0.0
    rate: float = 0.0
    impact: float = 0.0
    sefa_1: float = 0.0
    sefa_2: float = 0.0
    sefa_3: float = 0.0
    sefa_4: float = 0.0
    sefa_5: float = 0.0
    sefa_6: float = 0.0
    sefa_7: float = 0.0
    sefa_8: float = 0.0
    sefa_9: float = 0.0
    sefa_10: float = 0.0
    start: str = ""
    seed: int = 0
    truncation: float = 0.7
    prototype: str = "none"
    strength: float = 0.7
    query_run: bool = False
    query_width: float = 0.1
    query_density: int = 3
    query_burst: bool = False
    query_band_lf: float = 500.0
    query_band_hf: float = 4000.0
    query_order: int = 4
    query_fade_in: float = 0.05
    query_fade_out: float = 0.9
    query_exponent: float = 2.0
    model: str = "hits"
    gain: float = 0.0
    loop: bool = True

    # -- access by parameter name ------------------------------------------------------------------------------

    def get(self, name: str):
        """The value of parameter ``name`` (e.g. ``"sefa/3"``); :class:`ControlError` if unknown."""
        _param(name)
        return getattr(self, field_name(name))

    @property
    def sefa(self) -> tuple[float, ...]:
        """The SeFa sliders as a tuple, strongest direction first."""
        return tuple(getattr(self, f"sefa_{k}") for k in range(1, P.SEFA_DIMENSIONS + 1))

    def as_dict(self) -> dict[str, float | int | str | bool]:
        """``{param name: value}`` in table order (what presets store)."""
        return {name: getattr(self, field_name(name)) for name in P.PARAMS}

    def render_key(self) -> tuple:
        """The values that change the rendered clip (not gain or loop): equal keys, equal clips."""
        return tuple(getattr(self, field_name(p.name)) for p in P.PARAMS.values() if p.regenerates)

    # -- validated updates -------------------------------------------------------------------------------------

    def with_value(self, name: str, value) -> tuple["ControlState", str | None]:
        """A copy with one parameter changed, and a note if the value was altered to fit.

        Parameters
        ----------
        name : str
            A parameter name from :data:`stylesynth.params.PARAMS` (``"brightness"``, ``"sefa/3"``, ...).
        value : float or int or bool or str
            The requested value. Numbers for ``f``/``i`` parameters (an ``i`` parameter takes an integral float,
            since Pd sends only floats; a fractional one is rounded with a note); a number or bool for ``T/F``
            parameters (0 is false, anything else true); a string for ``s`` parameters. A float that is a
            range end rounded to float32 (what every OSC client sends at its end stop) counts as that end.

        Returns
        -------
        state : ControlState
            The new state (``self`` unchanged).
        note : str or None
            ``None`` if the value was taken as given, else what was done (clamped, rounded).

        Raises
        ------
        ControlError
            Unknown name, wrong type, NaN or infinity, a string too long or with control characters.
        """
        param = _param(name)
        coerced, note = coerce(param, value)
        return replace(self, **{field_name(name): coerced}), note

    def with_values(self, values: dict) -> tuple["ControlState", list[str]]:
        """Apply several values at once (a preset): all validated first, so one bad value changes nothing.

        Returns the new state and the notes of values that were altered. Raises :class:`ControlError` naming the
        first refused value.
        """
        changes, notes = {}, []
        for name, value in values.items():
            coerced, note = coerce(_param(name), value)
            changes[field_name(name)] = coerced
            if note:
                notes.append(note)
        return replace(self, **changes), notes


def _param(name) -> P.Param:
    if not isinstance(name, str):
        raise ControlError(f"parameter name must be a string, got {type(name).__name__}")
    try:
        return P.get(name)
    except KeyError as exc:
        raise ControlError(exc.args[0]) from None


def coerce(param: P.Param, value):
    """Validate ``value`` for ``param``: ``(value of the right Python type, note or None)``; see
    :meth:`ControlState.with_value` for the rules. Raises :class:`ControlError`."""
    if param.type == P.STRING:
        return _coerce_string(param, value), None
    if param.type == P.BOOL:
        if isinstance(value, bool):
            return value, None
        number = _finite_number(param, value)
        return number != 0, None
    number = _finite_number(param, value)
    note = None
    if param.type == P.INT:
        rounded = int(round(number))
        if rounded != number:
            note = f"{param.name} takes whole numbers: {_fmt(number)} rounded to {rounded}"
        number = rounded
    else:
        number = float(number)
    if number < param.minimum or number > param.maximum:
        bound = param.minimum if number < param.minimum else param.maximum
        if param.type == P.FLOAT and _same_float32(number, bound):
            # OSC floats are float32: a fader at its end stop sends float32(0.02) = 0.0199999996. That is the
            # bound, not an out-of-range value: take the bound without a note.
            return float(bound), None
        side = "below the minimum" if number < param.minimum else "above the maximum"
        note = f"{param.name} {_fmt(number)} is {side} {_fmt(bound)}: clamped to {_fmt(bound)}"
        number = type(number)(bound)
    return number, note


def _same_float32(a: float, b: float) -> bool:
    try:
        return struct.pack("<f", a) == struct.pack("<f", b)
    except OverflowError:  # beyond float32's range: certainly not a rounded bound
        return False


def _finite_number(param: P.Param, value) -> float | int:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ControlError(f"{param.name} expects a number, got {type(value).__name__} {_short(value)}")
    if isinstance(value, Integral):
        return int(value)
    value = float(value)
    if not math.isfinite(value):
        raise ControlError(f"{param.name} refuses {value}: values must be finite numbers")
    return value


def _coerce_string(param: P.Param, value) -> str:
    if not isinstance(value, str):
        raise ControlError(f"{param.name} expects a string, got {type(value).__name__} {_short(value)}")
    if len(value) > P.STRING_MAX_LENGTH:
        raise ControlError(f"{param.name} string is {len(value)} characters long; the limit is "
                           f"{P.STRING_MAX_LENGTH}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ControlError(f"{param.name} string contains control characters")
    return value


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


DEFAULT = ControlState()


def _check_table() -> None:
    """The dataclass and the params table must agree (names and defaults); fail at import if someone edits one."""
    names = [f.name for f in fields(ControlState)]
    expected = [field_name(n) for n in P.PARAMS]
    if names != expected:
        raise RuntimeError(f"ControlState fields {names} do not match stylesynth.params {expected}")
    for p in P.PARAMS.values():
        if getattr(DEFAULT, field_name(p.name)) != p.default:
            raise RuntimeError(f"ControlState default of {p.name} differs from stylesynth.params")


_check_table()
