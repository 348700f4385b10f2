"""Config, zones and keys: every example loads; mistakes get messages a deployer can act on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.command import key_id, public_key_from_b64
from contract.models import DeviceKind
from hub.config import load_config
from hub.errors import ConfigError, UnknownZone
from hub.keys import KEY_FILE, load_or_create
from hub.zones import Zones

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("hub*.toml")), ids=lambda p: p.name)
def test_every_example_hub_config_loads(path):
    cfg = load_config(path)
    assert cfg.hub.api_host == "127.0.0.1"
    assert cfg.hub.zones.is_absolute() and cfg.hub.state_dir.is_absolute()
    assert len(Zones.load(cfg.hub.zones)) >= 1


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("zones*.json")), ids=lambda p: p.name)
def test_every_example_zones_file_loads(path):
    assert len(Zones.load(path)) >= 1


def test_defaults_and_readable_errors(tmp_path):
    cfg_file = tmp_path / "hub.toml"
    cfg_file.write_text("[hub]\n[mqtt]\n")
    cfg = load_config(cfg_file)
    assert (cfg.hub.command_ttl_s, cfg.hub.confirm_deadline_s, cfg.hub.max_retries) == (30, 3.0, 3)
    assert cfg.hub.state_dir == tmp_path / "state/hub"

    cfg_file.write_text('[hub]\ncomand_ttl_s = 30\nmax_retries = -1\n[mqtt]\nurl = "http://x"\n')
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file)
    text = str(err.value)
    assert "[hub] comand_ttl_s: unknown key (typo?)" in text
    assert "[hub] max_retries" in text and "[mqtt] url" in text and "mqtt://HOST:PORT" in text

    cfg_file.write_text("[hub]\ncommand_ttl_s = 3600\n")
    with pytest.raises(ConfigError, match="command_ttl_s"):
        load_config(cfg_file)
    cfg_file.write_text("[hub\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(cfg_file)
    with pytest.raises(ConfigError, match="cannot read hub config"):
        load_config(tmp_path / "missing.toml")


def test_zone_errors_are_readable(tmp_path):
    f = tmp_path / "zones.json"
    f.write_text(json.dumps([{"id": "a", "gateways": []}]))
    with pytest.raises(ConfigError, match="needs 'gateways' and/or 'devices'"):
        Zones.load(f)
    f.write_text(json.dumps([{"id": "a", "devices": ["siren-1"]}]))
    with pytest.raises(ConfigError, match="gateway/device"):
        Zones.load(f)
    f.write_text(json.dumps([{"id": "a", "gateways": ["g"]}, {"id": "a", "gateways": ["h"]}]))
    with pytest.raises(ConfigError, match="defined twice"):
        Zones.load(f)
    f.write_text(json.dumps([{"id": "a", "gateways": ["g"], "polygon": {"type": "Polygon",
                                                                         "coordinates": [[[0, 0], [1, 0], [1, 1]]]}}]))
    with pytest.raises(ConfigError, match="closed"):
        Zones.load(f)
    f.write_text("[{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Zones.load(f)


def test_resolve_and_point_in_polygon():
    ring = [[30.0, 50.0], [31.0, 50.0], [31.0, 51.0], [30.0, 51.0], [30.0, 50.0]]
    hole = [[30.4, 50.4], [30.6, 50.4], [30.6, 50.6], [30.4, 50.6], [30.4, 50.4]]
    zones = Zones.from_list([
        {"id": "z1", "gateways": ["g1"], "polygon": {"type": "Polygon", "coordinates": [ring, hole]}},
        {"id": "z2", "gateways": ["g2"], "devices": ["g1/spk", "g1/pm", "g3/new"]},
    ])
    known = {"g1": {"s1": DeviceKind.SIREN, "spk": DeviceKind.SPEAKER, "pm": DeviceKind.SDS011},
             "g2": {"s1": DeviceKind.SIREN}}
    lookup = lambda gw: known.get(gw, {})  # noqa: E731
    assert zones.resolve(["z1"], lookup) == {"g1": {"s1": DeviceKind.SIREN, "spk": DeviceKind.SPEAKER}}
    assert zones.resolve(["z2"], lookup) == {"g2": {"s1": DeviceKind.SIREN}, "g1": {"spk": DeviceKind.SPEAKER},
                                             "g3": {"new": None}}
    assert zones.zones_of_device("g1", "spk") == ["z1", "z2"]
    assert zones.at(30.2, 50.2) == ["z1"]
    assert zones.at(30.5, 50.5) == []  # in the hole
    assert zones.at(29.9, 50.5) == []
    with pytest.raises(UnknownZone, match="known: z1, z2"):
        zones.get("z3")


def test_signing_key_created_once_0600_and_rotation_keys(tmp_path):
    keys = load_or_create(tmp_path)
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    again = load_or_create(tmp_path)
    assert again.kid == keys.kid == key_id(keys.private.public_key())
    assert key_id(public_key_from_b64(keys.public_b64)) == keys.kid
    other = load_or_create(tmp_path / "old")
    rotated = load_or_create(tmp_path, (other.public_b64,))
    assert rotated.all_kids == (keys.kid, other.kid)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / KEY_FILE).write_text("short")
    with pytest.raises(ConfigError, match="damaged"):
        load_or_create(tmp_path / "bad")
