"""Obvious misuse of the operator/administrator commands, the way a tired person types them: every one ends with a
readable `error:` line and the exit code its docs promise, never a Python traceback."""

from __future__ import annotations

import json

import pytest

from simulators.brokers import free_port
from tests.identity.helpers import cli, hub_process


@pytest.fixture
async def hub_dir(tmp_path):
    rc, _, err = await cli("hub", "init", str(tmp_path / "h"), "--broker", "mqtt://127.0.0.1:1883")
    assert rc == 0, err
    return tmp_path / "h"


def readable(rc: int, out: str, err: str, code: int) -> None:
    assert "Traceback" not in out + err, out + err
    assert rc == code, f"exit {rc}, docs say {code}\n{out}\n{err}"
    assert "error" in (out + err).lower(), out + err


@pytest.mark.parametrize(("url", "code"), [
    ("garbage", 2),                           # not a broker URL: bad argument
    ("mqtt://127.0.0.1:99999", 2),            # no such port: bad argument
    (None, 1),                                # nothing listens there: cannot check, named
])
async def test_audit_verify_with_an_unusable_broker_is_a_readable_error(hub_dir, url, code):
    """docs/operations.md, audit chain: `dozor audit verify --config DIR/hub.toml --broker URL`; exit codes 0 intact,
    1 broken (or the broker's head unavailable), 2 bad config or arguments."""
    url = url or f"mqtt://127.0.0.1:{free_port()}"
    rc, out, err = await cli("audit", "verify", "--config", str(hub_dir / "hub.toml"), "--broker", url)
    readable(rc, out, err, code)
    assert url in err
    rc, out, err = await cli("audit", "verify", "--config", str(hub_dir / "hub.toml"), "--broker", url, "--json")
    readable(rc, out, err, code)
    assert json.loads(out)["error"]


@pytest.mark.parametrize("action", ["confirm", "stop", "all-clear", "cancel", "status"])
async def test_an_empty_alert_id_is_a_usage_error(action):
    """README daily flow: `ID=$(dozor alert start ...)` then `dozor alert confirm "$ID"` etc. When the start failed,
    "$ID" is empty: exit 2 with a sentence, not a request for /api/v1/alerts//confirm and a puzzling 404."""
    rc, out, err = await cli("alert", action, "", env={"DOZOR_HUB_URL": f"http://127.0.0.1:{free_port()}",
                                                        "DOZOR_TOKEN": "dzr_x_y"})
    readable(rc, out, err, 2)
    assert "empty alert id" in err and "not reachable" not in err


async def test_token_mistakes_name_the_mistake(mosquitto, tmp_path, token_leak_scanner):
    """README deployer step 4: `export DOZOR_HUB_URL=... DOZOR_TOKEN_FILE=/etc/dozor/city/hub/admin-token`. A token
    file that is missing or empty is exit 2 naming it (not a silent fall back and "token rejected"); no token at all
    says so and how to give one."""
    port = free_port()
    rc, _, err = await cli("hub", "init", str(tmp_path / "h"), "--broker", mosquitto.url, "--listen",
                           f"127.0.0.1:{port}")
    assert rc == 0, err
    (tmp_path / "empty").write_text("\n")
    async with hub_process(tmp_path / "h" / "hub.toml", port, tmp_path / "hub.log", scanner=token_leak_scanner):
        base = {"DOZOR_HUB_URL": f"http://127.0.0.1:{port}", "DOZOR_TOKEN": "", "DOZOR_HUB_TOKEN": ""}
        rc, out, err = await cli("gateways", env={**base, "DOZOR_TOKEN_FILE": str(tmp_path / "nope")}, cwd=tmp_path)
        readable(rc, out, err, 2)
        assert "DOZOR_TOKEN_FILE" in err and "No such file" in err
        rc, out, err = await cli("gateways", env={**base, "DOZOR_TOKEN_FILE": str(tmp_path / "empty")}, cwd=tmp_path)
        readable(rc, out, err, 2)
        assert "is empty" in err
        rc, out, err = await cli("gateways", env=base, cwd=tmp_path)
        readable(rc, out, err, 1)
        assert "no token given" in err and "DOZOR_TOKEN_FILE" in err
        rc, out, err = await cli("gateways", env={**base, "DOZOR_TOKEN_FILE": str(tmp_path / "h" / "admin-token")},
                                 cwd=tmp_path)
        assert rc == 0, err


async def test_hub_init_where_it_cannot_write_or_with_a_bad_broker(tmp_path):
    """docs/operations.md, Hub: `dozor hub init DIR [--broker URL]`; exit 1 when DIR cannot be written (as a
    non-root user for /etc/dozor), 2 for bad arguments, each with one sentence (no traceback, no pydantic framing)."""
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    rc, out, err = await cli("hub", "init", str(blocked / "hub"))
    readable(rc, out, err, 1)
    assert str(blocked) in err and not (blocked.parent / "hub").exists()
    rc, out, err = await cli("hub", "init", str(tmp_path / "h"), "--broker", "garbage")
    readable(rc, out, err, 2)
    assert "mqtt://HOST:PORT" in err and "pydantic" not in err and not (tmp_path / "h").exists()


async def test_audit_export_to_an_unwritable_place(hub_dir, tmp_path):
    """`dozor audit export --config DIR/hub.toml --since 7d --out audit.jsonl` with an --out it cannot write."""
    rc, out, err = await cli("audit", "export", "--config", str(hub_dir / "hub.toml"), "--out",
                             str(tmp_path / "no" / "such" / "audit.jsonl"))
    readable(rc, out, err, 2)
    assert "--out" in err


@pytest.mark.parametrize("args", [["users", "add", "olena", "--role", "operator"], ["users", "list"],
                                  ["hub", "pubkey"], ["hub", "run"]])
async def test_a_state_dir_it_cannot_open_is_a_bad_config(tmp_path, args):
    """README: `dozor users add olena --role operator --config /etc/dozor/hub.toml` "on the hub machine"; run as a
    user who cannot open the hub's state dir (or with a state_dir that is not a folder) it is exit 2 ("bad config",
    docs/operations.md) naming the path, not a traceback."""
    (tmp_path / "not-a-dir").write_text("")
    (tmp_path / "zones.json").write_text('[{"id": "a", "gateways": ["g"]}]')
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\nstate_dir = "not-a-dir/state"\nzones = "zones.json"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n')
    rc, out, err = await cli(*args, "--config", str(config))
    readable(rc, out, err, 2)
    assert "not-a-dir" in err


async def test_check_config_names_a_broker_host_that_cannot_be_one(tmp_path):
    """`dozor provision init DIR --broker-host "mqtt example"` (a typo) writes that host into hub.toml and every
    gateway.toml; `dozor hub check-config` ("every mistake at once, with its line") must name it, not say ok."""
    (tmp_path / "zones.json").write_text('[{"id": "a", "gateways": ["g"]}]')
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\nzones = "zones.json"\n[mqtt]\nurl = "mqtts://mqtt example!:8883"\n')
    rc, out, err = await cli("hub", "check-config", str(config))
    assert rc == 2 and "Traceback" not in out + err, out + err
    assert "hub.toml:4: mqtt.url" in out + err and "not a host name" in out + err


async def test_check_config_names_a_signing_key_others_can_read(hub_dir):
    """README: "the services refuse to start if [a private key] is readable by anyone else" and `dozor hub
    check-config FILE` lists every mistake at once: so it names the hub's signing key at 0644 instead of "ok"."""
    key = hub_dir / "state" / "hub-signing-key"
    key.chmod(0o644)
    rc, out, err = await cli("hub", "check-config", str(hub_dir / "hub.toml"))
    assert rc == 2 and "Traceback" not in out + err, out + err
    assert "hub.state_dir" in err and "chmod 600" in err and str(key) in err
    key.chmod(0o600)
    rc, out, err = await cli("hub", "check-config", str(hub_dir / "hub.toml"))
    assert rc == 0 and out.startswith("ok "), out + err
