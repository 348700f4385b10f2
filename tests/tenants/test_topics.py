"""The tenant segment of the topic grammar (contract/topics.py): the default tenant keeps dozor/v1/..., a named
tenant lives under dozor/v1/<tenant>/..., and a parser bound to one tenant refuses every other tenant's topics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract import topics
from contract.errors import MalformedMessage
from contract.topics import Topics
from hub.ingest.tenant import TenantTagged, with_tenant

ids = st.from_regex(topics.ID_RE, fullmatch=True)
tenants = st.from_regex(topics.TENANT_RE, fullmatch=True).filter(lambda t: t not in topics.RESERVED_TENANTS)
channels = st.sampled_from(list(topics.GwChannel))


def test_default_tenant_is_todays_layout():
    assert Topics() == topics.DEFAULT
    assert Topics().gw("gw-1", "cmd") == topics.gw("gw-1", "cmd") == "dozor/v1/gw/gw-1/cmd"
    assert Topics().zone_state("podil") == "dozor/v1/zone/podil/state"
    assert Topics().hub_state == topics.HUB_STATE == "dozor/v1/hub/state"
    assert Topics().hub_audit_head == "dozor/v1/hub/audit/head"
    assert Topics().sub_gateways("ack") == "dozor/v1/gw/+/ack"


def test_named_tenant_layout():
    t = Topics("bucha")
    assert t.gw("gw-1", "cmd") == "dozor/v1/bucha/gw/gw-1/cmd"
    assert t.zone_state("center") == "dozor/v1/bucha/zone/center/state"
    assert t.hub_state == "dozor/v1/bucha/hub/state"
    assert t.hub_audit_head == "dozor/v1/bucha/hub/audit/head"
    assert t.sub_gateways() == "dozor/v1/bucha/gw/+/+" and t.sub_zones == "dozor/v1/bucha/zone/+/state"


@pytest.mark.parametrize("bad", ["gw", "zone", "hub", "Bucha", "-x", "a/b", "a+b", "#", "x" * 33, "a b", "a_b"])
def test_bad_tenant_names_are_refused(bad):
    with pytest.raises(ValueError, match="invalid tenant"):
        Topics(bad)


@given(tenant=tenants, other=tenants, gw=ids, channel=channels)
def test_round_trip_and_no_crossing(tenant, other, gw, channel):
    mine = Topics(tenant)
    topic = mine.gw(gw, channel)
    assert mine.parse(topic) == topics.ParsedTopic("gw", gw, channel.value)
    assert topics.tenant_of(topic) == tenant
    with pytest.raises(MalformedMessage) as default_refused:
        topics.parse(topic)  # the default tenant never takes a named tenant's message
    assert default_refused.value.reason == "foreign_topic"
    with pytest.raises(MalformedMessage):
        mine.parse(topics.gw(gw, channel))  # nor a named tenant the default's
    if other != tenant:
        with pytest.raises(MalformedMessage):
            Topics(other).parse(topic)
    assert topics.tenant_of(topics.gw(gw, channel)) == ""


@given(tenant=tenants, topic=st.text(max_size=80))
def test_parse_fuzz_only_raises_malformed(tenant, topic):
    for t in (Topics(), Topics(tenant)):
        try:
            parsed = t.parse(topic)
        except MalformedMessage:
            continue
        assert topic.startswith(t.root + "/") and parsed.kind in ("gw", "zone", "hub")


def test_tenant_tag_goes_after_the_measurement():
    assert with_tenant("sds011,device=d1,gateway=g pm2_5=1.0 5", "bucha") == \
        "sds011,tenant=bucha,device=d1,gateway=g pm2_5=1.0 5"
    assert with_tenant("count v=1 5", "bucha") == "count,tenant=bucha v=1 5"
    assert with_tenant(r"we\,ird\ name,a=b v=1 5", "bucha") == r"we\,ird\ name,tenant=bucha,a=b v=1 5"
    assert with_tenant("a,x=1 v=1 1\nb v=2 2", "odesa") == "a,tenant=odesa,x=1 v=1 1\nb,tenant=odesa v=2 2"


def test_tagged_writer_tags_every_line():
    class Keep:
        name = "keep"

        def __init__(self):
            self.got = []

        def write(self, lines):
            self.got += lines

        def close(self):
            pass

    inner = Keep()
    TenantTagged(inner, "odesa").write(["a v=1 1", "b,x=y v=2 2"])
    assert inner.got == ["a,tenant=odesa v=1 1", "b,tenant=odesa,x=y v=2 2"]
    with pytest.raises(ValueError):
        TenantTagged(inner, "")


def test_configs_take_a_tenant_and_explain_a_bad_one(tmp_path):
    from gateway.config import parse_config as gateway_config
    from gateway.errors import ConfigError as GatewayConfigError
    from hub.config import parse_config as hub_config
    from hub.errors import ConfigError as HubConfigError

    assert hub_config({}, base=tmp_path).hub.topics == topics.DEFAULT  # no tenant: today's layout
    bucha = hub_config({"hub": {"tenant": "bucha"}}, base=tmp_path)
    assert bucha.hub.topics.root == "dozor/v1/bucha"
    assert bucha.mqtt.client_id == "dozor-hub@bucha"  # not the default city's session
    assert hub_config({}, base=tmp_path).mqtt.client_id == "dozor-hub"
    assert hub_config({"hub": {"tenant": "bucha"}, "mqtt": {"client_id": "x"}}, base=tmp_path).mqtt.client_id == "x"
    with pytest.raises(HubConfigError, match="invalid tenant 'zone'"):
        hub_config({"hub": {"tenant": "zone"}}, base=tmp_path)
    from contract.command import b64url, key_id, public_raw
    from tests.gwident import test_key

    pub = test_key("a hub").public_key()
    gw = ('[gateway]\nid = "gw-1"\nstate_dir = "s"\n{}[trust.hub_keys]\n'
          f'{key_id(pub)} = "{b64url(public_raw(pub))}"\n')
    assert gateway_config(gw.format(""), base=tmp_path).gateway.topics == topics.DEFAULT
    assert gateway_config(gw.format('tenant = "bucha"\n'), base=tmp_path).gateway.topics.gw("gw-1", "cmd") == \
        "dozor/v1/bucha/gw/gw-1/cmd"
    with pytest.raises(GatewayConfigError, match="invalid tenant 'Bucha'"):
        gateway_config(gw.format('tenant = "Bucha"\n'), base=tmp_path)
