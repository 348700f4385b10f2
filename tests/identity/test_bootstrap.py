"""`dozor hub init`, `dozor hub run` and `dozor users ...` as a deployer runs them: real processes, a real
Mosquitto, the token shown once and never logged, user changes taking effect on the running hub at once."""

from __future__ import annotations

import json
import stat

import httpx
import pytest

from hub.audit import AuditLog, verify
from simulators.brokers import free_port
from tests.identity.helpers import cli, hub_process
from tests.tokens import record

pytestmark = pytest.mark.integration


def whoami(port: int, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"http://127.0.0.1:{port}/api/v1/whoami", headers=headers, timeout=10)


async def test_init_run_and_users_on_a_running_hub(mosquitto, tmp_path, token_leak_scanner):
    port = free_port()
    zones = tmp_path / "my-zones.json"
    zones.write_text(json.dumps([{"id": "centre", "gateways": ["gw-1"]}]))
    deploy = tmp_path / "city"
    rc, out, err = await cli("hub", "init", str(deploy), "--broker", mosquitto.url, "--listen", f"127.0.0.1:{port}",
                             "--zones", str(zones), scanner=token_leak_scanner)
    assert rc == 0, err
    admin = record(out.strip())
    assert out.count("\n") == 1 and admin.startswith("dzr_")  # the token alone on stdout, once
    token_file = deploy / "admin-token"
    assert token_file.read_text().strip() == admin
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert (deploy / "state").is_dir() and (deploy / "hub.toml").is_file()
    assert admin not in (deploy / "hub.toml").read_text()
    # the state holds a hash only
    assert admin.encode() not in (deploy / "state" / "users.sqlite").read_bytes()
    rc, _, err = await cli("hub", "init", str(deploy), scanner=token_leak_scanner)
    assert rc == 1 and "already exists" in err

    config = deploy / "hub.toml"
    async with hub_process(config, port, tmp_path / "hub.log", scanner=token_leak_scanner):
        assert whoami(port, admin).json() == {"name": "admin", "role": "admin", "via": "token"}
        assert whoami(port, None).status_code == 401
        # a user added while the hub runs works at once; the token is printed once on stdout
        rc, out, err = await cli("users", "add", "alice", "--role", "operator", "--config", str(config),
                                 scanner=token_leak_scanner)
        assert rc == 0 and "shown once" in err, err
        alice = record(out.strip())
        assert whoami(port, alice).json() == {"name": "alice", "role": "operator", "via": "token"}
        rc, out, err = await cli("users", "add", "bob", "--role", "supervisor", "--config", str(config), "--json",
                                 scanner=token_leak_scanner)
        bob = record(json.loads(out)["token"])
        assert json.loads(out)["role"] == "supervisor"
        rc, _, err = await cli("users", "add", "alice", "--role", "viewer", "--config", str(config),
                               scanner=token_leak_scanner)
        assert rc == 1 and "already exists" in err
        rc, _, err = await cli("users", "add", "eve", "--role", "god", "--config", str(config),
                               scanner=token_leak_scanner)
        assert rc == 1 and "unknown role 'god'" in err and "noise-reviewer" in err
        rc, out, _ = await cli("users", "list", "--config", str(config), "--json", scanner=token_leak_scanner)
        assert [(u["name"], u["role"], u["disabled"]) for u in json.loads(out)] == [
            ("admin", "admin", False), ("alice", "operator", False), ("bob", "supervisor", False)]
        assert "dzr_" not in out
        rc, out, _ = await cli("users", "list", "--config", str(config), scanner=token_leak_scanner)
        assert rc == 0 and "alice" in out and "operator" in out and "enabled" in out
        # rotate: the old token stops at once, the new one works
        rc, out, err = await cli("users", "rotate-token", "alice", "--config", str(config),
                                 scanner=token_leak_scanner)
        assert rc == 0, err
        alice2 = record(out.strip())
        assert whoami(port, alice).status_code == 401
        assert whoami(port, alice2).json()["name"] == "alice"
        # disable: refused from the next request on
        rc, out, _ = await cli("users", "disable", "bob", "--config", str(config), "--json",
                               scanner=token_leak_scanner)
        assert rc == 0 and json.loads(out)["disabled"] is True
        r = whoami(port, bob)
        assert r.status_code == 401 and "disabled" in r.json()["detail"]
        rc, _, err = await cli("users", "disable", "nobody", "--config", str(config), scanner=token_leak_scanner)
        assert rc == 1 and "no user 'nobody'" in err
        # the CLI takes the token from DOZOR_TOKEN or --token, as before
        rc, out, err = await cli("gateways", "--hub", f"http://127.0.0.1:{port}", "--json",
                                 env={"DOZOR_TOKEN": alice2}, scanner=token_leak_scanner)
        assert rc == 0, err
        rc, _, err = await cli("gateways", "--hub", f"http://127.0.0.1:{port}", "--token", "dzr_nope",
                               scanner=token_leak_scanner)
        assert rc != 0 and "token rejected" in err

    # every user change is in the audit chain, by the local user who ran the command, and the chain verifies
    log = AuditLog.in_state_dir(deploy / "state")
    records = log.records()
    assert [(r.action, r.subject) for r in records if r.action.startswith("user.")] == [
        ("user.add", "admin"), ("user.add", "alice"), ("user.add", "bob"), ("user.rotate_token", "alice"),
        ("user.disable", "bob")]
    assert all(r.actor["via"] == "local" and r.actor["name"].startswith("local:") for r in records
               if r.action != "key.activate")  # the hub itself records the key it signs with
    assert verify(records, [], {}).ok
    log.close()


async def test_a_hub_without_users_refuses_to_start(mosquitto, tmp_path, token_leak_scanner):
    (tmp_path / "zones.json").write_text("[]")
    (tmp_path / "hub.toml").write_text(f'[hub]\nstate_dir = "state"\napi_port = {free_port()}\n'
                                       f'zones = "zones.json"\n[mqtt]\nurl = "{mosquitto.url}"\n')
    rc, out, err = await cli("hub", "run", "--config", str(tmp_path / "hub.toml"), scanner=token_leak_scanner)
    assert rc == 2
    assert "no users" in err and "dozor users add NAME --role admin --config" in err and "dozor hub init" in err


async def test_init_refuses_bad_arguments(tmp_path, token_leak_scanner):
    rc, _, err = await cli("hub", "init", str(tmp_path / "a"), "--listen", "nowhere", scanner=token_leak_scanner)
    assert rc == 2 and "HOST:PORT" in err
    rc, _, err = await cli("hub", "init", str(tmp_path / "b"), "--broker", "http://x", scanner=token_leak_scanner)
    assert rc == 2 and "mqtt://" in err
    rc, _, err = await cli("hub", "init", str(tmp_path / "c"), "--zones", str(tmp_path / "missing.json"),
                           scanner=token_leak_scanner)
    assert rc == 2 and "no such file" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "c" / "hub.toml").exists()
