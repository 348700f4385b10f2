"""The systemd units: hardened (systemd-analyze security goals: hub <= 2.0, gateway <= 3.0), and consistent with
what `dozor provision` and deploy/install-gateway.sh write (state dirs, config paths, credential names)."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from dozor.provision import city as provision_city
from runtime import credentials
from tests.deploy.helpers import ROOT, city_dir, dozor, needs

UNITS = ROOT / "deploy" / "systemd"
GOALS = {"dozor-hub.service": 2.0, "dozor-gateway.service": 3.0}
REQUIRED = {"ProtectSystem": "strict", "PrivateTmp": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
            "Type": "notify", "ProtectHome": "yes"}


def unit(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = None
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


@pytest.mark.parametrize("name", sorted(GOALS))
def test_exposure_meets_the_goal(name):
    needs(bool(shutil.which("systemd-analyze")), "systemd-analyze is not installed here")
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNITS / name)],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    assert float(m.group(1)) <= GOALS[name], out.stdout


@pytest.mark.parametrize("name", sorted(GOALS))
def test_hardening_directives(name):
    u = unit(name)
    for key, value in REQUIRED.items():
        assert u.get(f"Service.{key}") == [value], key
    assert u["Service.SystemCallFilter"][0] == "@system-service"
    assert set(u["Service.RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert int(u["Service.WatchdogSec"][0]) > 0
    assert u["Service.User"][0].startswith("dozor-") and u["Service.User"][0] != "root"
    assert u["Service.LoadCredential"]


def test_gateway_devices_are_only_serial_and_audio():
    u = unit("dozor-gateway.service")
    assert u["Service.DevicePolicy"] == ["closed"]
    assert {d.split()[0] for d in u["Service.DeviceAllow"]} == {"char-ttyUSB", "char-ttyACM", "char-ttyAMA",
                                                                 "char-ttyS", "char-alsa"}


def test_units_match_what_provision_and_the_installer_write(tmp_path):
    city = city_dir()
    try:
        # a scratch hub state dir: a test never writes into the host's /var/lib (the default is checked below)
        dozor("provision", "init", str(city), "--broker-host", "mqtt.example.city",
              "--hub-state-dir", str(tmp_path / "hub-state"), "--store-url", "")
        dozor("provision", "gateway", "gw-1", "--zone", "z", str(city))
        gw = tomllib.loads((city / "gateways/gw-1/gateway.toml").read_text())
        hub = tomllib.loads((city / "hub/hub.toml").read_text())
    finally:
        shutil.rmtree(city.parent, ignore_errors=True)
    g, h = unit("dozor-gateway.service"), unit("dozor-hub.service")
    assert gw["gateway"]["state_dir"] == f"/var/lib/{g['Service.StateDirectory'][0]}"
    assert hub["hub"]["state_dir"] == str(tmp_path / "hub-state")
    default = inspect.signature(provision_city.init).parameters["hub_state_dir"].default
    assert str(default) == f"/var/lib/{h['Service.StateDirectory'][0]}"
    assert "/var/lib/dozor-hub" in dozor("provision", "init", "--help").stdout
    assert [c.split(":")[0] for c in g["Service.LoadCredential"]] == [gw["mqtt"]["key_file"]]
    assert sorted(c.split(":")[0] for c in h["Service.LoadCredential"]) == sorted(
        [hub["mqtt"]["key_file"], hub["mqtt"]["ingest_key_file"]])
    installer = (ROOT / "deploy/install-gateway.sh").read_text()
    assert "ETC=$ROOT/etc/dozor/gateway" in installer and "VENV=$ROOT/opt/dozor/venv" in installer
    assert g["Service.ExecStart"] == ["/opt/dozor/venv/bin/dozor gateway run --config /etc/dozor/gateway/gateway.toml"]
    assert g["Service.LoadCredential"] == ["client.key:/etc/dozor/gateway/client.key"]
    assert h["Service.ExecStart"] == ["/opt/dozor/venv/bin/dozor hub run --config /etc/dozor/city/hub/hub.toml"]


def test_a_loaded_credential_replaces_the_configured_key_file(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "client.key").write_text("k")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert credentials.resolve(Path("/etc/dozor/gateway/client.key")) == Path("/etc/dozor/gateway/client.key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert credentials.resolve(Path("/etc/dozor/gateway/client.key")) == creds / "client.key"
    assert credentials.resolve(Path("/etc/dozor/gateway/ca.crt")) == Path("/etc/dozor/gateway/ca.crt")
