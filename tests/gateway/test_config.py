"""Gateway config: every example loads; mistakes give messages naming the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import load_config, parse_config
from gateway.errors import ConfigError
from tests.gateway.helpers import HUB_KID, HUB_PUB, config_text

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("gateway*.toml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads(path):
    cfg = load_config(path)
    assert cfg.trust.public_keys()
    assert cfg.device_infos()


def problems(text: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, file="cab.toml", base=tmp_path)
    msg = str(exc.value)
    assert msg.startswith("cab.toml:")
    return msg


def base(tmp_path, **kw) -> str:
    return config_text(tmp_path / "state", buses={"rs485-1": "/dev/ttyUSB0"}, sirens=[("siren-1", "rs485-1", 1)], **kw)


def test_a_good_config_loads_with_defaults(tmp_path):
    cfg = parse_config(base(tmp_path), file="cab.toml", base=tmp_path)
    assert cfg.gateway.id == "gw-test" and cfg.trust.max_activation_s == 900
    assert cfg.bus[0].baudrate == 19200 and cfg.device[0].address == 1


CASES = [
    ("typo in a key", lambda t: t.replace("heartbeat_s", "heartbeat_sec"), "gateway.heartbeat_sec: unknown key"),
    ("missing id", lambda t: t.replace('id = "gw-test"\n', ""), "gateway.id: required key is missing"),
    ("bad id", lambda t: t.replace('id = "gw-test"', 'id = "gw/1"'), "gateway.id"),
    ("unknown kind", lambda t: t.replace('kind = "siren"', 'kind = "horn"'),
     "kind must be one of: siren, speaker"),
    ("address out of range", lambda t: t.replace("address = 1", "address = 300"),
     "line 30: device[0].address: must be at most 247 (got 300)"),
    ("unknown bus", lambda t: t.replace('bus = "rs485-1"', 'bus = "rs485-9"'),
     "bus 'rs485-9' is not defined; defined buses: rs485-1"),
    ("bad kid", lambda t: t.replace(f'"{HUB_KID}" =', '"not-the-kid" ='), "does not match its key"),
    ("bad key", lambda t: t.replace(HUB_PUB, "AAAA"), "32 bytes"),
    ("bad url", lambda t: t.replace("mqtt://127.0.0.1:1", "http://x"), "mqtt.url: use mqtt://HOST:PORT"),
    ("bad toml", lambda t: t + "\n[gateway\n", "not valid TOML"),
    ("bad bus kind", lambda t: t.replace('kind = "modbus"', 'kind = "can"'), "bus[0].kind"),
    ("duplicate device", lambda t: t + '\n[[device]]\nid = "siren-1"\nkind = "siren"\nbus = "rs485-1"\naddress = 2\n',
     "repeated: siren-1"),
    ("duplicate address", lambda t: t + '\n[[device]]\nid = "siren-2"\nkind = "siren"\nbus = "rs485-1"\naddress = 1\n',
     "address 1 is already used on bus 'rs485-1'"),
    ("player without file", lambda t: t + '\n[[device]]\nid = "sp"\nkind = "speaker"\nplayer = ["aplay"]\n',
     'must contain "{file}"'),
    ("bad signal asset", lambda t: t + '\n[[device]]\nid = "sp"\nkind = "speaker"\n'
     '[device.assets]\n"boom" = { file = "x.wav", sha256 = "' + "0" * 64 + '" }\n', "device[1].assets.boom"),
]


@pytest.mark.parametrize(("name", "edit", "expect"), CASES, ids=[c[0] for c in CASES])
def test_mistakes_are_explained(tmp_path, name, edit, expect):
    assert expect in problems(edit(base(tmp_path)), tmp_path)


def test_asset_pins_are_checked_at_load(tmp_path):
    (tmp_path / "msg.wav").write_bytes(b"RIFF....not really")
    text = base(tmp_path) + ('\n[[device]]\nid = "sp"\nkind = "speaker"\n'
                             '[device.assets]\n"air-raid" = { file = "msg.wav", sha256 = "' + "a" * 64 + '" }\n')
    msg = problems(text, tmp_path)
    assert "device[1].assets.air-raid.sha256" in msg and "update the pin" in msg
    missing = text.replace('"msg.wav"', '"gone.wav"')
    assert "cannot read" in problems(missing, tmp_path)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.toml")

_TOML_BITS = ["[gateway]", "[mqtt]", "[trust]", "[trust.hub_keys]", "[[bus]]", "[[device]]", 'id = "gw-1"',
              'id = "siren-1"', 'kind = "siren"', 'kind = "speaker"', 'bus = "b"', 'name = "b"', 'port = "/dev/x"',
              "address = 1", "address = -3", 'state_dir = "s"', "heartbeat_s = 0", 'url = "mqtt://h:1"',
              f'"{HUB_KID}" = "{HUB_PUB}"', 'hub_keys = { a = "b" }', "max_activation_s = 99999", "x = [1,",
              'player = ["{file}"]', "assets = { }", '"air-raid" = { file = "f", sha256 = "00" }']


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_TOML_BITS), max_size=25) | st.lists(st.text(max_size=30), max_size=5))
def test_any_text_gives_a_config_or_a_config_error(tmp_path_factory, lines):
    try:
        parse_config("\n".join(lines), file="fuzz.toml", base=tmp_path_factory.getbasetemp())
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml:") and exc.problems
