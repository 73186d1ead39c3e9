"""The params table is the one source of truth: check it is complete, consistent and well-formed."""
import re

import pytest

from stylesynth import params as P
from stylesynth.state import DEFAULT, ControlState, field_name


def test_covers_the_agreed_control_space():
    expected = {"brightness", "rate", "impact", *(f"sefa/{k}" for k in range(1, 11)), "prototype", "strength",
                "start", "seed", "truncation", "model", "gain", "loop", "query/width", "query/density",
                "query/burst", "query/band_lf", "query/band_hf", "query/order", "query/fade_in", "query/fade_out",
                "query/exponent", "query/run"}
    assert set(P.PARAMS) == expected


@pytest.mark.parametrize("param", list(P.PARAMS.values()), ids=lambda p: p.name)
def test_each_param_is_well_formed(param):
    assert param.osc_address == f"/stylesynth/{param.name}"
    assert re.fullmatch(r"[a-z_]+(/[a-z0-9_]+)?", param.name)
    assert param.type in P.TYPES
    assert param.group in P.GROUPS
    assert param.description.endswith(".") and len(param.description) > 20
    if param.is_number:
        assert param.minimum < param.maximum
        assert param.minimum <= param.default <= param.maximum
        expected_type = float if param.type == P.FLOAT else int
        assert type(param.default) is expected_type
    else:
        assert param.minimum is None and param.maximum is None
        assert type(param.default) is (bool if param.type == P.BOOL else str)
    # the state holds it, with the same default
    assert DEFAULT.get(param.name) == param.default
    assert hasattr(ControlState, field_name(param.name))


def test_sliders_follow_the_paper():
    for name in ["brightness", "rate", "impact", *(f"sefa/{k}" for k in range(1, 11))]:
        p = P.get(name)
        assert (p.minimum, p.maximum, p.default, p.type) == (-5.0, 5.0, 0.0, "f")
    assert P.get("strength").default == 0.7
    assert (P.get("gain").minimum, P.get("gain").maximum, P.get("gain").unit) == (-60.0, 12.0, "dB")


def test_only_playback_params_skip_regeneration():
    assert {p.name for p in P.PARAMS.values() if not p.regenerates} == {"gain", "loop"}


def test_addresses_do_not_collide():
    addresses = [p.osc_address for p in P.PARAMS.values()] + list(P.COMMANDS)
    assert len(addresses) == len(set(addresses))
    assert P.BY_ADDRESS[P.get("sefa/3").osc_address].name == "sefa/3"


def test_unknown_name_suggests_close_ones():
    with pytest.raises(KeyError, match="did you mean brightness"):
        P.get("brightnes")


def test_commands_listed():
    for address in ["/stylesynth/trigger", "/stylesynth/panic", "/status", "/version", "/sync", "/notify",
                    "/preset/save", "/preset/load", "/learn", "/reply_port"]:
        assert address in P.COMMANDS


def test_describe_lists_every_address():
    text = P.describe()
    for p in P.PARAMS.values():
        assert p.osc_address in text
