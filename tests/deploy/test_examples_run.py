"""The example city in examples/ runs together, as written: a real Mosquitto, `dozor hub run` on hub.toml (its
zones and shelters), both example gateways as `dozor gateway run` processes on simulated buses, and an exercise
that reaches every alerting device of both. Substituted: the broker's and API's ports, the store's URL, serial
ports (ptys of the simulators), state dirs, the speaker's player (a recording simulator) and the pinned hub key
(the README step: `dozor hub pubkey`). Enrollment is the documented `dozor gateways enroll`."""

from __future__ import annotations

import json
import shutil
import sys
import tomllib

import pytest

from dozor.client import HubClient
from simulators.brokers import free_port
from simulators.tsdb import VictoriaMetrics
from tests.deploy.helpers import ROOT, Procs, dozor, dozor_json, until

pytestmark = pytest.mark.integration


def test_the_example_city_runs_and_an_exercise_reaches_both_gateways(tmp_path, mosquitto):
    ex = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", ex)
    api = free_port()
    with VictoriaMetrics() as vm, Procs(tmp_path) as procs:
        hub_toml = ex / "hub.toml"
        text = hub_toml.read_text()
        for a, b in (("mqtt://127.0.0.1:1883", mosquitto.url), ("api_port = 8080", f"api_port = {api}"),
                     ('url = "http://127.0.0.1:8086"', f'url = "{vm.url}"')):
            assert a in text
            text = text.replace(a, b)
        hub_toml.write_text(text)
        dozor("hub", "check-config", str(hub_toml))
        token = dozor_json("users", "add", "admin", "--role", "admin", "--config", str(hub_toml))["token"]
        key = dozor_json("hub", "pubkey", "--config", str(hub_toml))
        procs.start("hub", "hub", "run", "--config", str(hub_toml), env={"INFLUX_TOKEN": "unused-by-victoria"})
        hub = HubClient(f"http://127.0.0.1:{api}", token)
        until(hub.health, "the hub", procs=procs)

        ttys = {"/dev/serial/by-id/usb-FTDI_FT232R_USB_UART-if00-port0": ("siren", 4), "/dev/ttyUSB0": ("siren", 2),
                "/dev/ttyAMA0": ("sds011", 0), "/dev/ttyACM0": ("noise_node", 0)}
        for name in ("gateway.toml", "gateway-obolon.toml"):
            conf = ex / name
            text = conf.read_text()
            ((kid, pub),) = tomllib.loads(text)["trust"]["hub_keys"].items()  # the placeholder, replaced as documented
            text = text.replace(f'"{kid}" = "{pub}"', f'"{key["kid"]}" = "{key["public_key"]}"')
            text = text.replace("mqtt://127.0.0.1:1883", mosquitto.url)
            text = text.replace('"/var/lib/dozor-gateway"', f'"{tmp_path / name}.state"')
            text = text.replace('player = ["aplay", "-q", "{file}"]',
                                f'player = ["{sys.executable}", "-m", "simulators.speaker", "--record", '
                                f'"{tmp_path / "played"}", "--no-wait", "{{file}}"]')
            for dev, (kind, count) in ttys.items():
                if f'"{dev}"' in text:
                    tty = tmp_path / f"{name}.{kind}.tty"
                    text = text.replace(f'"{dev}"', f'"{tty}"')
                    if kind == "siren":
                        procs.start(f"sim-{name}-{kind}", "sim", "siren", "--link", str(tty), "--count", str(count),
                                    "--spinup", "0")
                    else:
                        procs.start(f"sim-{name}-{kind}", "sim", kind.replace("_", "-"), "--pty", str(tty))
                    until(tty.exists, str(tty), procs=procs)
            conf.write_text(text)
            dozor("gateway", "check-config", str(conf))
            ident = dozor_json("gateway", "identity", str(conf))
            gw = "gw-podil-01" if name == "gateway.toml" else "gw-obolon-01"
            dozor("gateways", "enroll", gw, "--pubkey", ident["public_key"], "--config", str(hub_toml))
            procs.start(f"gateway-{gw}", "gateway", "run", "--config", str(conf))
        until(lambda: sorted(g.id for g in hub.gateways() if g.state == "online") == ["gw-obolon-01", "gw-podil-01"],
              "both example gateways online", procs=procs)
        zones = {z.id for z in hub.zones()}
        shelters = json.loads((ex / "shelters.geojson").read_text())["features"]
        assert {f["properties"]["zone"] for f in shelters} <= zones  # the shelters name real zones
        out = dozor("alert", "start", "--zone", "kyiv-city", "--signal", "air-raid", "--exercise", "--duration", "30",
                    "--wait", "30", "--json", env={"DOZOR_HUB_URL": f"http://127.0.0.1:{api}", "DOZOR_TOKEN": token})
        alert = json.loads(out.stdout)
        devices = sorted((d["gateway"], d["device"], d["state"]) for d in alert["devices"])
        assert alert["summary"]["confirmed"] == alert["summary"]["total"] == 7, devices
        assert {g for g, _, _ in devices} == {"gw-podil-01", "gw-obolon-01"}
