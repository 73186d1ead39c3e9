"""MIDI mapping logic on its own: TOML files and their errors, curves, 14-bit CC and NRPN decoding, relative
encoders, soft takeover, the strict byte parser and MIDI learn's choice. No ports here (see test_midi_jack.py)."""
from __future__ import annotations

from pathlib import Path

import mido
import pytest

from stylesynth import midi_mapping as mm
from stylesynth import params as P
from stylesynth.midi_in import ByteParser, match_port, MidiError, pick_learned

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"


def cc(control, value, channel=0):
    return mido.Message("control_change", control=control, value=value, channel=channel)


def parse(text):
    return mm.parse_mapping(text, "test.toml")


def control(target="brightness", **kw):
    kw.setdefault("kind", "cc")
    kw.setdefault("number", 74)
    param = P.get(target)
    kw.setdefault("range", mm.default_range(param))
    kw.setdefault("step", mm.default_step(param))
    return mm.Control(target=target, **kw)


# -- files ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(MAPPINGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_mappings_load_and_round_trip(path):
    mapping = mm.load_mapping(path)
    assert mapping.controls, "a mapping file with no controls"
    for c in mapping.controls:
        assert c.target in P.PARAMS or c.target in mm.ACTIONS
        assert c.line is not None and path.read_text().splitlines()[c.line - 1].strip().startswith("[[control]]")
    again = mm.parse_mapping(mm.to_toml(mapping), str(path))
    assert again == mapping


def test_default_mapping_follows_general_midi():
    mapping = mm.load_mapping(MAPPINGS / "default.toml")
    assert [c.target for c in mapping.controls_for("cc", 74, channel=5)] == ["brightness"]
    assert [c.target for c in mapping.controls_for("cc14", 1, channel=1)] == ["truncation"]
    assert mapping.notes is not None and mapping.program is not None


def test_save_mapping_writes_what_it_reads(tmp_path):
    mapping = mm.load_mapping(MAPPINGS / "korg-nanokontrol2.toml")
    learnt, replaced = mapping.with_control(mm.new_control("rate", "nrpn", 300, channel=2))
    # Slider 2 drove rate; slider 7 sits on CC 6, which now carries NRPN values.
    assert sorted((c.number, c.target) for c in replaced) == [(1, "rate"), (6, "sefa/4")]
    out = tmp_path / "mine.toml"
    mm.save_mapping(learnt, out)
    again = mm.load_mapping(out)
    assert again == learnt.__class__(**{**learnt.__dict__, "source": str(out)})
    assert again.controls_for("nrpn", 300, 2)[0].target == "rate"


BAD = [
    # (file text, line, words the message must contain)
    ('name = "x"\n[[control]]\ncc = 74\ntarget = "brightnes"\n', 4, ["unknown parameter", "brightness"]),
    ('[[control]]\ncc = 74\ntarget = "brightness"\n\n[[control]]\ncc = 75\ntarget = "rate"\nrange = [0, 9]\n',
     8, ["range [0, 9]", "[-5, 5]"]),
    ('[[control]]\ncc = 74\ntarget = "brightness"\nrange = [2, -2]\n', 4, ["reversed", "invert"]),
    ('[[control]]\ncc = 74\ntarget = "rate"\ncurve = "cubic"\n', 4, ["curve", "linear, exp, log"]),
    ('[[control]]\ncc = 140\ntarget = "rate"\n', 2, ["cc must be a whole number 0-127", "140"]),
    ('[[control]]\ncc = 74\ncc14 = 3\ntarget = "rate"\n', 3, ["exactly one of cc, cc14, nrpn"]),
    ('[[control]]\ncc = 74\ntarget = "rate"\nchannel = 17\n', 4, ["channel", "1-16", "omni"]),
    ('[[control]]\ncc = 74\ntarget = "rate"\nknob = 1\n', 4, ["unknown key 'knob'"]),
    ('[[control]]\ncc = 74\n', 1, ["needs a target"]),
    ('[[control]]\ncc = 74\ntarget = "start"\n', 3, ["takes a name", "program"]),
    ('[[control]]\ncc = 123\ntarget = "rate"\n', 2, ["channel mode", "panic"]),
    ('[[control]]\ncc14 = 1\ntarget = "rate"\n[[control]]\ncc = 33\ntarget = "impact"\n', 5,
     ["14-bit pair", "cc14 = 1"]),
    ('[[control]]\nnrpn = 5\ntarget = "rate"\n[[control]]\ncc = 6\ntarget = "impact"\n', 5, ["NRPN"]),
    ('[[control]]\ncc = 74\ntarget = "rate"\n[[control]]\ncc = 74\ntarget = "rate"\n', 5, ["duplicate"]),
    ('[[control]]\ncc = 74\ntarget = "rate"\nmode = "toggle"\n', 4, ["toggle", "on/off"]),
    ('[[control]]\ncc14 = 2\ntarget = "rate"\nmode = "relative-twos"\n', 4, ["7-bit encoders"]),
    ('[[control]]\ncc = 41\ntarget = "trigger"\nrange = [0, 1]\n', 4, ["trigger button"]),
    ('[notes]\nstart_points = { 200 = "x" }\n', 2, ["note number 0-127"]),
    ('[program]\ntarget = "model"\n', 1, ["needs names"]),
    ('[[controls]]\ncc = 74\n', 1, ["unknown key 'controls'"]),
    ('name = "x"\n[[control]]\ncc = 74\ntarget = "rate"\ninvert = "yes"\n', 5, ["invert must be true or false"]),
    ('name = "x"\n\n[[control]]\ncc = 74\ntarget = brightness\n', 5, ["TOML syntax error"]),
    ('[[control]]\ncc = 74\ntarget = "rate"\nrange = [0, 1\n', 4, ["TOML syntax error"]),
]


@pytest.mark.parametrize("text,line,words", BAD, ids=[w[0] for _, _, w in BAD])
def test_bad_mappings_are_refused_with_their_line(text, line, words):
    with pytest.raises(mm.MappingError) as info:
        parse(text)
    err = info.value
    assert err.line == line, str(err)
    assert str(err).startswith(f"test.toml line {line}: ")
    for word in words:
        assert word in str(err)


def test_missing_file_is_a_mapping_error(tmp_path):
    with pytest.raises(mm.MappingError, match="no such file"):
        mm.load_mapping(tmp_path / "nope.toml")


# -- values --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("curve", mm.CURVES)
def test_curves_keep_ends_are_monotonic_and_invert(curve):
    xs = [i / 100 for i in range(101)]
    ys = [mm.apply_curve(x, curve) for x in xs]
    assert ys[0] == pytest.approx(0.0) and ys[-1] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(ys, ys[1:]))
    assert [mm.invert_curve(y, curve) for y in ys] == pytest.approx(xs, abs=1e-9)


def test_exp_is_fine_at_the_bottom_and_log_at_the_top():
    assert mm.apply_curve(0.5, "exp") < 0.2 < 0.8 < mm.apply_curve(0.5, "log")


def test_absolute_cc_spans_the_range_and_inverts():
    c = control("gain", range=(-60.0, 6.0), takeover="jump")
    memory = mm.TakeoverState()
    ev = lambda v: mm.ControllerEvent("cc", 74, v, 1)
    assert mm.resolve(c, ev(0), 0.0, memory) == -60.0
    assert mm.resolve(c, ev(127), 0.0, memory) == 6.0
    flipped = control("gain", range=(-60.0, 6.0), takeover="jump", invert=True)
    assert mm.resolve(flipped, ev(0), 0.0, memory) == 6.0


def test_integer_and_boolean_targets_are_typed():
    density = control("query/density", takeover="jump")
    value = mm.resolve(density, mm.ControllerEvent("cc", 74, 64, 1), 3, mm.TakeoverState())
    assert isinstance(value, int) and 1 <= value <= 12
    loop = control("loop")
    assert mm.resolve(loop, mm.ControllerEvent("cc", 74, 127, 1), False, mm.TakeoverState()) is True
    assert mm.resolve(loop, mm.ControllerEvent("cc", 74, 0, 1), True, mm.TakeoverState()) is False
    toggle = control("loop", mode="toggle")
    assert mm.resolve(toggle, mm.ControllerEvent("cc", 74, 127, 1), True, mm.TakeoverState()) is False
    assert mm.resolve(toggle, mm.ControllerEvent("cc", 74, 0, 1), True, mm.TakeoverState()) is None


def test_relative_encoders_step_from_the_current_value():
    twos = control("brightness", mode="relative-twos", step=0.1)
    offset = control("brightness", mode="relative-offset", step=0.1)
    ev = lambda v: mm.ControllerEvent("cc", 74, v, 1)
    assert mm.resolve(twos, ev(1), 1.0, mm.TakeoverState()) == pytest.approx(1.1)
    assert mm.resolve(twos, ev(127), 1.0, mm.TakeoverState()) == pytest.approx(0.9)
    assert mm.resolve(twos, ev(3), 1.0, mm.TakeoverState()) == pytest.approx(1.3)
    assert mm.resolve(offset, ev(65), 1.0, mm.TakeoverState()) == pytest.approx(1.1)
    assert mm.resolve(offset, ev(62), 1.0, mm.TakeoverState()) == pytest.approx(0.8)
    assert mm.resolve(offset, ev(64), 1.0, mm.TakeoverState()) is None
    assert mm.resolve(twos, ev(1), 5.0, mm.TakeoverState()) == 5.0   # held at the top of the range


def test_pickup_waits_for_the_knob_to_reach_the_value():
    c = control("brightness", takeover="pickup")     # [-5, 5]: the middle of the knob is 0
    memory = mm.TakeoverState()
    ev = lambda v: mm.ControllerEvent("cc", 74, v, 1)
    current = 0.0
    # The knob sits at the top while the parameter is at 0: nothing happens until it comes down past 0.
    for v in (127, 110, 90, 70):
        assert mm.resolve(c, ev(v), current, memory) is None
    value = mm.resolve(c, ev(60), current, memory)    # crossed 0 (travel 70/127 -> 60/127)
    assert value == pytest.approx(-5 + 10 * 60 / 127)
    current = value
    assert mm.resolve(c, ev(61), current, memory) == pytest.approx(-5 + 10 * 61 / 127)   # follows from now on
    current = 4.0                                     # OSC moved it: the knob must catch up again
    for v in (62, 100, 112):                          # 4.0 sits at 114.3 / 127
        assert mm.resolve(c, ev(v), current, memory) is None
    assert mm.resolve(c, ev(117), current, memory) == pytest.approx(-5 + 10 * 117 / 127)  # crossed it


def test_jump_acts_at_once():
    c = control("brightness", takeover="jump")
    assert mm.resolve(c, mm.ControllerEvent("cc", 74, 127, 1), 0.0, mm.TakeoverState()) == 5.0


def test_velocity_curve():
    assert mm.velocity_gain(127) == 1.0
    assert mm.velocity_gain(64, "exp") < mm.velocity_gain(64) < mm.velocity_gain(64, "log")


# -- decoding ------------------------------------------------------------------------------------------------------

def test_14_bit_cc_pairs_msb_then_lsb():
    dec = mm.ControllerDecoder()
    msb = dec.feed(cc(1, 64, channel=2))
    assert mm.ControllerEvent("cc", 1, 64, 3) in msb
    coarse = [e for e in msb if e.kind == "cc14"][0]
    assert coarse.value == round(64 * 16383 / 127) and not coarse.fine
    fine = [e for e in dec.feed(cc(33, 5, channel=2)) if e.kind == "cc14"][0]
    assert (fine.number, fine.value, fine.channel, fine.fine) == (1, 64 * 128 + 5, 3, True)
    top = [e for e in dec.feed(cc(1, 127)) if e.kind == "cc14"][0]
    assert top.travel == 1.0                           # a 7-bit sender still reaches the end


def test_nrpn_select_and_data_entry():
    dec = mm.ControllerDecoder()
    for m in (cc(99, 2), cc(98, 44)):                  # NRPN 2 * 128 + 44 = 300
        assert not [e for e in dec.feed(m) if e.kind == "nrpn"]
    coarse = [e for e in dec.feed(cc(6, 100)) if e.kind == "nrpn"]
    fine = [e for e in dec.feed(cc(38, 27)) if e.kind == "nrpn"]
    assert coarse[0].number == 300 and fine[0] == mm.ControllerEvent("nrpn", 300, 100 * 128 + 27, 1, fine=True)
    dec.feed(cc(101, 0))                               # an RPN selection: data entry is no longer ours
    assert not [e for e in dec.feed(cc(6, 1)) if e.kind == "nrpn"]


def test_panics_notes_and_programs():
    dec = mm.ControllerDecoder()
    assert dec.feed(cc(120, 0)) == [mm.PanicEvent(1, 120)]
    assert dec.feed(cc(123, 0, channel=9)) == [mm.PanicEvent(10, 123)]
    assert dec.feed(mido.Message("note_on", note=36, velocity=90, channel=9)) == [mm.NoteEvent(10, 36, 90)]
    assert dec.feed(mido.Message("note_on", note=36, velocity=0)) == []      # a note-off in disguise
    assert dec.feed(mido.Message("program_change", program=4)) == [mm.ProgramEvent(1, 4)]


def test_channels_filter_controls():
    mapping = parse('[[control]]\ncc = 20\ntarget = "rate"\nchannel = 3\n[[control]]\ncc = 20\ntarget = "impact"\n')
    assert [c.target for c in mapping.controls_for("cc", 20, 3)] == ["rate", "impact"]
    assert [c.target for c in mapping.controls_for("cc", 20, 4)] == ["impact"]


# -- bytes ---------------------------------------------------------------------------------------------------------

def test_byte_parser_running_status_and_realtime():
    parser = ByteParser()
    msgs, problems = parser.feed([0xB0, 74, 10, 74, 20, 0xF8, 74, 0xF8, 30])
    assert [m.value for m in msgs] == [10, 20, 30] and not problems
    msgs, problems = parser.feed([74, 40])            # not into the next packet: bare data bytes are junk there
    assert not msgs and problems == ["2 data byte(s) with no status byte skipped (4A 28)"]


@pytest.mark.parametrize("packet,problem", [
    ([0x45, 0x20], "2 data byte(s) with no status byte"),
    ([0xB0, 74], "truncated message"),
    ([0x90, 60, 0xB0, 74, 5], "truncated message"),
    ([0xF0, 1, 2, 0xB0, 74, 5], "unterminated sysex"),
    ([0xF4], "undefined or stray status byte 0xF4"),
    ([0xFD], "undefined real-time byte"),
    ([300], "not a MIDI byte"),
])
def test_byte_parser_reports_junk_and_keeps_going(packet, problem):
    parser = ByteParser()
    msgs, problems = parser.feed(packet)
    assert any(problem in p for p in problems), problems
    after, more = parser.feed([0xB1, 7, 99])
    assert [(m.channel, m.control, m.value) for m in after] == [(1, 7, 99)] and not more
    if packet[-3:] == [0xB0, 74, 5]:
        assert [(m.control, m.value) for m in msgs] == [(74, 5)]   # the good message after the junk survives


def test_byte_parser_sysex_and_lone_f7():
    msgs, problems = ByteParser().feed([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7, 0xF7, 0xC0, 5])
    assert [m.type for m in msgs] == ["sysex", "program_change"] and not problems


# -- learn and ports -----------------------------------------------------------------------------------------------

def _events(kind, number, values, channel=1, fine=False):
    return [mm.ControllerEvent(kind, number, v, channel, fine) for v in values]


def test_learn_picks_the_controller_that_moved_most():
    events = _events("cc", 20, [60, 61]) + _events("cc", 74, [10, 40, 80, 120], channel=4)
    learnt = pick_learned("rate", events)
    assert (learnt.kind, learnt.number, learnt.channel, learnt.mode) == ("cc", 74, 4, "absolute")
    assert learnt.range == (-5.0, 5.0) and learnt.curve == "linear" and not learnt.invert


def test_learn_prefers_14_bit_and_nrpn_over_their_carriers():
    dec = mm.ControllerDecoder()
    events = [e for m in (cc(2, 10), cc(34, 5), cc(2, 70), cc(34, 99)) for e in dec.feed(m)
              if isinstance(e, mm.ControllerEvent)]
    assert (pick_learned("rate", events).kind, pick_learned("rate", events).number) == ("cc14", 2)
    events = [e for m in (cc(99, 0), cc(98, 9), cc(6, 3), cc(38, 1), cc(6, 90), cc(38, 2)) for e in dec.feed(m)
              if isinstance(e, mm.ControllerEvent)]
    assert (pick_learned("rate", events).kind, pick_learned("rate", events).number) == ("nrpn", 9)


def test_learn_recognises_encoders_and_buttons():
    assert pick_learned("rate", _events("cc", 30, [1, 1, 1, 2, 1])).mode == "relative-twos"
    assert pick_learned("rate", _events("cc", 30, [65, 65, 65, 66, 65])).mode == "relative-offset"
    assert pick_learned("loop", _events("cc", 46, [127, 0])).mode == "toggle"
    assert pick_learned("rate", _events("cc", 30, [60, 61, 62, 63])).mode == "absolute"
    assert pick_learned("rate", []) is None


def test_match_port_by_name_or_unique_substring():
    ports = ["Midi Through:Port-0", "nanoKONTROL2:out", "MPK mini 3:MIDI 1"]
    assert match_port("nanoKONTROL2:out", ports) == 1
    assert match_port("mpk", ports) == 2
    with pytest.raises(MidiError, match="no MIDI input port matches 'launch'"):
        match_port("launch", ports)
    with pytest.raises(MidiError, match="ambiguous"):
        match_port(":", ports)


def test_a_bad_mapping_file_keeps_the_mapping_in_use(tmp_path):
    """Loading a broken file raises with its line and leaves the active mapping working (bytes fed directly:
    the port side is in test_midi_jack.py)."""
    from stylesynth.engine import Engine
    from stylesynth.gaver_synth import GaverSynth
    from stylesynth.midi_in import MidiInput

    engine = Engine(lambda name: GaverSynth())            # not started: set_param still validates and stores
    midi = MidiInput(engine, mm.load_mapping(MAPPINGS / "default.toml"), virtual=True)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[control]]\ncc = 74\ntarget = "brightness"\nrange = [-9, 0]\n')
    with pytest.raises(mm.MappingError, match=r"bad.toml line 5: range \[-9, 0\] leaves"):
        midi.load_mapping(bad)
    assert midi.mapping.name == "default"
    midi.handle_packet([0xB0, 74, 64, 74, 127])            # CC 74 -> brightness, pickup from 0 then up
    assert engine.state.brightness == 5.0
    midi.handle_packet([0xB0, 120, 0])
    assert engine.state.loop is False                       # CC 120 panics whatever the mapping
