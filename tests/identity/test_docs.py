"""The users/roles/audit commands shown in README.md and docs/operations.md, executed as written (with the
deployment folder, broker and port of this test substituted), in order, against real processes."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from simulators.brokers import free_port
from tests.identity.helpers import cli, hub_process
from tests.tokens import record

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def commands(doc: str, heading: str) -> list[str]:
    """`dozor ...` lines of the code blocks (fenced or indented) under ``heading`` up to the next heading."""
    text = (ROOT / doc).read_text()
    start = text.index(heading)
    end = min((i for i in (text.find("\n## ", start + 1), text.find("\n### ", start + 1)) if i > 0),
              default=len(text))
    out = []
    for line in text[start:end].splitlines():
        line = line.strip()
        if re.match(r"(?:[A-Z_]+=\S+\s+)*dozor ", line):  # optionally after environment assignments
            out.append(re.sub(r"\s+#.*$", "", line))
    assert out, f"no commands under {heading} in {doc}"
    return out


async def test_documented_user_and_audit_commands_run(mosquitto, tmp_path, token_leak_scanner):
    port = free_port()
    deploy = tmp_path / "etc-dozor"
    subst = {"/etc/dozor": str(deploy), "DIR/": f"{deploy}/", "mqtt://127.0.0.1:1883": mosquitto.url,
             "127.0.0.1:8080": f"127.0.0.1:{port}"}
    lines = [*commands("README.md", "### Users, roles and the audit log"),
             *commands("docs/operations.md", "### Users and roles"),
             *commands("docs/operations.md", "### Audit chain")]
    assert any(c.startswith("dozor hub init") for c in lines) and any("verify-export" in c for c in lines)
    env: dict[str, str] = {}
    hub = None
    ran = 0
    try:
        for line in lines:
            for a, b in subst.items():
                line = line.replace(a, b)
            if "HUB_PUBLIC_KEY" in line:
                _, out, _ = await cli("hub", "pubkey", "--config", str(deploy / "hub.toml"), "--json")
                line = line.replace("HUB_PUBLIC_KEY", json.loads(out)["public_key"])
            args = shlex.split(line)[1:]
            if args[:2] == ["hub", "run"]:
                hub = hub_process(deploy / "hub.toml", port, tmp_path / "hub.log", scanner=token_leak_scanner)
                await hub.__aenter__()
                ran += 1
                continue
            if args[:2] == ["audit", "verify"] and "--broker" in args and hub is None:
                continue  # (never happens: the README starts the hub before)
            rc, out, err = await cli(*args, env=env, scanner=token_leak_scanner, cwd=tmp_path)
            assert rc == 0, f"{line}\n{out}\n{err}"
            ran += 1
            if args[:2] == ["hub", "init"]:
                env = {"DOZOR_HUB_URL": f"http://127.0.0.1:{port}", "DOZOR_TOKEN": record(out.strip())}
            elif args[:2] in (["users", "add"], ["users", "rotate-token"]):
                record(out.strip())
            if args[:2] == ["audit", "log"]:  # what the user did (nothing yet), not what was done to them
                assert out.strip() == "no audit records match" or "alert." in out, out
    finally:
        if hub is not None:
            await hub.__aexit__(None, None, None)
    assert ran == len(lines)
    rc, out, _ = await cli("audit", "log", "--config", str(deploy / "hub.toml"), "--json")
    assert {"hub.init", "user.add", "user.rotate_token", "user.disable"} <= {r["action"] for r in json.loads(out)}
    assert (tmp_path / "audit.jsonl").exists()
