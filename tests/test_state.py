"""ControlState: immutable, hashable, validated through the params table."""
import math

import pytest

from stylesynth import params as P
from stylesynth.state import DEFAULT, ControlError, ControlState


def test_frozen_and_hashable():
    with pytest.raises(Exception):
        DEFAULT.brightness = 1.0
    a, _ = DEFAULT.with_value("brightness", 1.5)
    b, _ = DEFAULT.with_value("brightness", 1.5)
    assert a == b and hash(a) == hash(b) and a != DEFAULT
    assert DEFAULT.brightness == 0.0  # the original is untouched


def test_in_range_value_taken_without_note():
    s, note = DEFAULT.with_value("sefa/3", -2.5)
    assert s.sefa_3 == -2.5 and s.get("sefa/3") == -2.5 and note is None
    assert s.sefa == (0, 0, -2.5, 0, 0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("name,value,expected", [
    ("brightness", 7.0, 5.0), ("rate", -100, -5.0), ("gain", 40.0, 12.0), ("gain", -1e9, -60.0),
    ("seed", -3, 0), ("strength", 1.2, 1.0), ("query/order", 99, 8)])
def test_out_of_range_clamped_with_note(name, value, expected):
    s, note = DEFAULT.with_value(name, value)
    assert s.get(name) == expected
    assert note and name in note and "clamped" in note


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_refused(bad):
    for name in ["brightness", "gain", "seed", "loop"]:
        with pytest.raises(ControlError, match="finite"):
            DEFAULT.with_value(name, bad)


def test_types_checked_and_coerced():
    s, note = DEFAULT.with_value("seed", 7.0)      # Pd sends floats
    assert s.seed == 7 and type(s.seed) is int and note is None
    s, note = DEFAULT.with_value("seed", 7.6)
    assert s.seed == 8 and "rounded" in note
    s, _ = DEFAULT.with_value("brightness", 2)
    assert type(s.brightness) is float
    s, _ = DEFAULT.with_value("loop", 0.0)
    assert s.loop is False
    s, _ = s.with_value("loop", 1)
    assert s.loop is True
    with pytest.raises(ControlError, match="expects a number"):
        DEFAULT.with_value("gain", "loud")
    with pytest.raises(ControlError, match="expects a number"):
        DEFAULT.with_value("gain", True)
    with pytest.raises(ControlError, match="expects a string"):
        DEFAULT.with_value("prototype", 3.0)
    with pytest.raises(ControlError, match="control characters"):
        DEFAULT.with_value("start", "a\x00b")
    with pytest.raises(ControlError, match="limit"):
        DEFAULT.with_value("model", "x" * 1000)


def test_unknown_name_refused():
    with pytest.raises(ControlError, match="unknown parameter 'volume'"):
        DEFAULT.with_value("volume", 1.0)
    with pytest.raises(ControlError):
        DEFAULT.get("nope")


def test_with_values_is_all_or_nothing():
    s, notes = DEFAULT.with_values({"brightness": 1.0, "gain": 99.0})
    assert s.brightness == 1.0 and s.gain == 12.0 and len(notes) == 1
    with pytest.raises(ControlError):
        DEFAULT.with_values({"brightness": 1.0, "gain": math.nan})


def test_as_dict_round_trips():
    s, _ = DEFAULT.with_values({"rate": 2.0, "start": "Hit - Metal", "query/burst": True})
    d = s.as_dict()
    assert list(d) == list(P.PARAMS)
    assert ControlState().with_values(d)[0] == s


def test_render_key_ignores_playback_params():
    a, _ = DEFAULT.with_value("gain", -6.0)
    b, _ = a.with_value("loop", False)
    assert b.render_key() == DEFAULT.render_key()
    c, _ = DEFAULT.with_value("rate", 1.0)
    assert c.render_key() != DEFAULT.render_key()


def test_float32_rounded_range_ends_are_the_range_ends():
    import numpy as np
    for name in ["query/width", "query/exponent", "strength", "truncation", "gain"]:
        p = P.get(name)
        for bound in (p.minimum, p.maximum):
            s, note = DEFAULT.with_value(name, float(np.float32(bound)))
            assert note is None and s.get(name) == pytest.approx(bound, rel=1e-6)
    s, note = DEFAULT.with_value("query/width", 0.0199)  # really below: clamped, with a note
    assert s.query_width == 0.02 and "clamped" in note
    s, note = DEFAULT.with_value("gain", 3.4e39)  # beyond float32 range
    assert s.gain == 12.0 and "clamped" in note
