from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract import models as m
from contract import topics
from contract.codecs import siren_modbus as sm
from contract.errors import MalformedMessage

ALL_MODELS = [m.GatewayState, m.Heartbeat, m.Ack, m.ZoneState, m.HubState, m.TelemetryBatch, m.Event]


def test_topic_round_trip():
    t = topics.gw("gw-001", "ack")
    assert t == "dozor/v1/gw/gw-001/ack"
    p = topics.parse(t)
    assert (p.kind, p.ident, p.channel) == ("gw", "gw-001", "ack")
    assert topics.parse(topics.zone_state("kyiv-podil")).ident == "kyiv-podil"
    assert topics.parse(topics.HUB_STATE).kind == "hub"


@pytest.mark.parametrize("bad", ["a/b", "dozor/v1/gw/+/ack", "dozor/v1/gw/x/nope", "dozor/v1/zone//state",
                                 "dozor/v2/gw/x/ack", "dozor/v1/gw/x/ack/extra"])
def test_bad_topics_are_malformed(bad):
    with pytest.raises(MalformedMessage):
        topics.parse(bad)


@pytest.mark.parametrize("bad_id", ["", "a/b", "a+b", "#", "x" * 65, "-lead"])
def test_ids_reject_wildcards_and_separators(bad_id):
    with pytest.raises(ValueError):
        topics.gw(bad_id, "state")


def test_ack_round_trip():
    ack = m.Ack(gateway="gw-1", cmd="c-1", alert="A-1", stage=m.AckStage.SOUNDING, devices=("s1", "s2"), ts=1.5)
    assert m.decode(m.Ack, ack.to_bytes()) == ack


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda x: x.__name__)
@given(payload=st.binary(max_size=300))
def test_random_bytes_never_crash_decode(model, payload):
    try:
        m.decode(model, payload, topic="t")
    except MalformedMessage as exc:
        assert exc.reason in {"bad_json", "invalid", "too_large"}


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=8), ch, max_size=4),
                    max_leaves=12))
def test_random_json_never_crashes_decode(obj):
    for model in ALL_MODELS:
        try:
            m.decode(model, json.dumps(obj))
        except MalformedMessage:
            pass


def test_oversized_payload_is_refused():
    with pytest.raises(MalformedMessage, match="too_large"):
        m.decode(m.Ack, b"{" + b" " * m.MAX_PAYLOAD_BYTES + b"}")


def test_siren_register_vectors():
    from importlib import resources
    vec = json.loads(resources.files("contract").joinpath("vectors/siren_modbus.json").read_text())
    addr, regs = sm.encode_command(sm.Cmd.ACTIVATE, pattern=sm.Pattern.WAIL, duration_s=180, seq=7)
    assert {"address": addr, "registers": regs} == vec["activate_wail_180_seq7"]
    st_ = sm.decode_status(vec["status_sounding_ac_door"]["registers"])
    assert st_.state.value == "sounding" and list(st_.fault_names) == ["ac_power", "door_open"]
    assert st_.battery_v == 12.6 and st_.fw == "1.4"
    assert sm.decode_command(regs) == sm.CommandBlock(sm.Cmd.ACTIVATE, sm.Pattern.WAIL, 180, 7)


@pytest.mark.parametrize("kind", list(m.DeviceKind))
def test_every_device_kind_has_capabilities(kind):
    assert m.CAPABILITIES[kind]
