"""README "For deployers", run as written and in order: provision, the central stack (started natively from the
generated files, as tests/deploy/test_compose.py checks compose does), two cabinets from their bundles on
simulated sirens, the first exercise through mutual TLS, a revocation. Substituted: the scratch folder for
/etc/dozor/city, loopback for the host names, free ports, and the cabinets' state dirs."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest

from dozor.client import HubClient
from simulators.brokers import free_port
from tests.deploy.helpers import DOZOR, ROOT, GeneratedBroker, Procs, city_dir, start_cabinet, until

pytestmark = pytest.mark.integration


def deployer_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("## For deployers")
    section = text[start:text.index("\n## ", start + 1)]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        lines += [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return lines


def test_the_deployer_section_runs_as_written(tmp_path):
    lines = deployer_commands()
    kinds = [ln.split()[0] + " " + ln.split()[1] for ln in lines]
    assert kinds[:5] == ["dozor provision"] * 4 + ["dozor hub"]  # provision first ...
    assert kinds.index("docker compose") < kinds.index("sudo deploy/install-gateway.sh") \
        < kinds.index("dozor alert")  # ... then the stack, the gateways, the first exercise
    root, port, api = city_dir(), free_port(), free_port()
    subst = {"/etc/dozor/city": str(root), "mqtt.example.city": "127.0.0.1", "--api-host 0.0.0.0": "--api-host 127.0.0.1",
             "https://alerts.example.city": f"http://127.0.0.1:{api}"}
    test_only = ["--port", str(port), "--bind", "127.0.0.1", "--api-port", str(api), "--hub-state-dir",
                 str(tmp_path / "hub-state"), "--store-url", ""]
    env = dict(os.environ)
    ran: list[str] = []
    broker = None
    try:
        with Procs(tmp_path) as procs:
            for line in lines:
                for a, b in subst.items():
                    line = line.replace(a, b)
                args = shlex.split(line)
                if args[0] == "export":
                    env.update(a.split("=", 1) for a in args[1:])
                elif args[:2] == ["docker", "compose"]:
                    assert args[2:4] == ["--env-file", str(root / "compose.env")] and (root / "compose.env").exists()
                    if args[4:] == ["up", "-d"]:
                        broker = GeneratedBroker(root, port).start()
                        procs.start("hub", "hub", "run", "--config", str(root / "hub" / "hub.toml"))
                        token = (root / "hub" / "admin-token").read_text().strip()
                        hub = HubClient(f"http://127.0.0.1:{api}", token)
                        until(hub.health, "the hub", procs=procs)
                    else:  # kill -s HUP mosquitto: the reload after a revocation
                        assert args[4:] == ["kill", "-s", "HUP", "mosquitto"]
                elif args[0] == "sudo":
                    assert args[1] == "deploy/install-gateway.sh" and (ROOT / args[1]).is_file()
                    # The installer itself is exercised in a throwaway root by test_install_gateway.py; here every
                    # provisioned cabinet runs natively from its copied bundle, with the state dir made local.
                    for gw in sorted(p.name for p in (root / "gateways").iterdir()):
                        bundle = tmp_path / gw
                        shutil.copytree(root / "gateways" / gw, bundle)
                        conf = bundle / "gateway.toml"
                        conf.write_text(conf.read_text().replace("/var/lib/dozor-gateway", str(tmp_path / f"{gw}-state")))
                        start_cabinet(procs, bundle, tmp_path / f"{gw}.tty")
                    until(lambda h=hub: sorted(g.id for g in h.gateways() if g.state == "online")
                          == ["gw-obolon-01", "gw-podil-01"], "both cabinets online", procs=procs)
                else:
                    assert args[0] == "dozor", line
                    if args[1:3] == ["provision", "init"]:
                        args += test_only
                    out = subprocess.run([DOZOR, *args[1:]], capture_output=True, text=True, env=env, timeout=120,
                                         cwd=tmp_path)
                    assert out.returncode == 0, f"{line}\n{out.stdout}\n{out.stderr}"
                    if args[1:3] == ["alert", "start"]:
                        assert "coverage: 4 confirmed" in out.stdout, out.stdout
                    if args[1:3] == ["provision", "revoke"]:
                        broker.reload()
                ran.append(line)
        assert len(ran) == len(lines)
    finally:
        if broker is not None:
            broker.close()
        shutil.rmtree(root.parent, ignore_errors=True)
