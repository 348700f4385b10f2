"""The clustered-broker docs and deploy files are executable claims: the commands in docs/operations.md
("A clustered broker") run as written, the deployed NATS config starts a 3-node cluster that answers MQTT on every
node, and deploy/emqx/acl.conf grants exactly what the Mosquitto ACL from `dozor provision` grants."""

from __future__ import annotations

import json
import re
import shlex
import shutil

import pytest
from typer.testing import CliRunner

from dozor.cli import app
from dozor.provision import templates
from simulators.nats import CONFIG, NatsCluster
from tests.deploy.helpers import ROOT
from tests.gateway.helpers import config_text

runner = CliRunner()
SECTION = "## A clustered broker"


def section() -> str:
    text = (ROOT / "docs" / "operations.md").read_text()
    start = text.index(SECTION)
    return text[start:text.index("\n## ", start + 1)]


def blocks(kind: str) -> list[str]:
    """The fenced blocks of the section whose info string is ``kind`` ("" for a bare fence)."""
    out, current, lang = [], None, ""
    for line in section().splitlines(keepends=True):
        if line.startswith("```") and current is None:
            current, lang = [], line[3:].strip()
        elif line.startswith("```"):
            if lang == kind:
                out.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return out


def test_the_documented_commands_run_as_written(tmp_path, monkeypatch):
    (toml,) = blocks("toml")
    commands = [line.strip() for b in blocks("") for line in b.splitlines() if line.strip()]
    assert commands == ["dozor hub check-config hub.toml", "dozor gateway check-config gateway.toml",
                        "nats-server -c deploy/nats/nats.conf"]
    for f in ("hub.toml", "zones.json", "shelters.geojson"):
        shutil.copy(ROOT / "examples" / f, tmp_path / f)
    hub = (tmp_path / "hub.toml").read_text()
    hub = re.sub(r"(?ms)^\[mqtt\]\n.*?(?=^\[)", "", hub, count=1)  # the example's [mqtt] replaced by the documented one
    (tmp_path / "hub.toml").write_text(hub + "\n" + toml)
    gateway = re.sub(r"(?ms)^\[mqtt\]\n.*?(?=^\[)", lambda _: toml + "\n", config_text(tmp_path / "state"), count=1)
    (tmp_path / "gateway.toml").write_text(gateway)
    for f in ("hub.toml", "gateway.toml"):
        (tmp_path / f).chmod(0o600)  # as the doc says: the password is inline
    monkeypatch.chdir(tmp_path)
    for cmd in commands[:2]:
        res = runner.invoke(app, [*shlex.split(cmd)[1:], "--json"])
        assert res.exit_code == 0, (cmd, res.output)
        shown = json.loads(res.stdout)["mqtt"]
        assert shown == ",".join(f"mqtt://mq{i}.city.example:1883" for i in (1, 2, 3)), shown
    argv = shlex.split(commands[2])
    assert argv[1:] == ["-c", "deploy/nats/nats.conf"] and CONFIG == ROOT / argv[2]
    with NatsCluster() as cluster:  # runs exactly that command on each node, with the node's environment
        assert cluster.meta_leader() is not None
        assert all(cluster.mqtt_answers(i) for i in range(3))
        wrong = NatsCluster.__new__(NatsCluster)  # the same users, a wrong password: refused
        wrong.username, wrong.password, wrong.nodes = cluster.username, "wrong", cluster.nodes
        assert not NatsCluster.mqtt_answers(wrong, 0)


def mosquitto_rules() -> set[tuple[str, str, str]]:
    rules, who = set(), None
    for line in templates.acl().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if parts[0] == "user":
            who = parts[1]
        elif parts[0] in ("topic", "pattern"):
            access, topic = parts[1], parts[2].replace("%u", "${username}")
            subject = who if parts[0] == "topic" else "all"
            rules.add((subject, {"read": "subscribe", "write": "publish", "readwrite": "all"}[access], topic))
    return rules


def emqx_rules() -> set[tuple[str, str, str]]:
    rules = set()
    text = (ROOT / "deploy" / "emqx" / "acl.conf").read_text()
    for m in re.finditer(r'^\{allow, (all|\{username, "([^"]+)"\}), (\w+), \[([^\]]*)\]\}\.$', text, re.M):
        who = m.group(2) or "all"
        for topic in re.findall(r'"([^"]+)"', m.group(4)):
            if not topic.startswith("$share/"):  # the shared-subscription form of the same read
                rules.add((who, m.group(3), topic))
    assert text.rstrip().endswith("{deny, all}.")
    return rules


def test_the_emqx_acl_grants_what_the_provisioned_mosquitto_acl_grants():
    assert emqx_rules() == mosquitto_rules()


@pytest.mark.parametrize("line", ["verify = verify_peer", "fail_if_no_peer_cert = true",
                                  "peer_cert_as_username = cn", "peer_cert_as_clientid = cn",
                                  "listeners.tcp.default.enable = false", "no_match = deny", "storage_type = disc",
                                  "discovery_strategy = static", "max_qos_allowed = 1"])
def test_the_emqx_config_is_mutual_tls_only_with_the_acl(line):
    assert line in (ROOT / "deploy" / "emqx" / "emqx.conf").read_text()
