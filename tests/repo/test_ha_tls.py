"""Hub to hub is a trust boundary: a follower forwards an operator's request *with the operator's token* to the
leader. Three real `dozor hub run` processes on one PostgreSQL: the leader serves its API over HTTPS itself
([hub] tls_cert_file/tls_key_file, a throwaway CA) and advertises https://; one follower trusts that CA
([hub] peer_ca_file) and forwards; the other cannot verify the leader's certificate (only the system's CAs), so
it must not send the request, and the token, anywhere: 503 no_leader with reached_leader false, and the leader
never sees it. A follower also authenticates before it forwards, so strangers' failed logins through it cannot
lock operators out at the leader (where every forwarded request comes from the follower's address)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from contract.command import public_key_from_b64
from contract.models import DeviceKind
from hub.config import load_config
from hub.gwtrust import enroll
from simulators.brokers import free_port, make_test_pki, wait_port
from tests.gwident import public_b64
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import ZONES
from tests.repo.test_failover import kill_pair, wait_text
from tests.repo.test_hub_postgres import start
from tests.repo.test_migrate import dozor, pg_section
from tests.tokens import record

pytestmark = pytest.mark.integration


def config(tmp, name: str, port: int, broker_url: str, database: str, extra: str = "") -> object:
    path = tmp / f"{name}.toml"
    path.write_text(f'[hub]\nstate_dir = "state-{name}"\nzones = "zones.json"\napi_port = {port}\n'
                    f'leader_lease_s = 2\n{extra}[mqtt]\nurl = "{broker_url}"\nclient_id = "hub-tls"\n' + database)
    return path


def alert_body() -> dict:
    return {"zones": ["north"], "signal": "air-raid", "mode": "exercise", "duration_s": 60}


async def test_a_follower_forwards_only_to_a_leader_it_can_verify(postgres_server, mosquitto, tmp_path):
    pki = make_test_pki(tmp_path)
    pki["key"].chmod(0o600)  # the hub refuses a private key others can read
    (tmp_path / "zones.json").write_text(json.dumps(ZONES))
    database = pg_section(postgres_server, postgres_server.database())
    ports = free_port(), free_port(), free_port()
    lead_url = f"https://127.0.0.1:{ports[0]}"
    cfgs = [config(tmp_path, "a", ports[0], mosquitto.url, database,
                   f'tls_cert_file = "{pki["cert"]}"\ntls_key_file = "{pki["key"]}"\nadvertise_url = "{lead_url}"\n'
                   'trusted_proxies = ["192.0.2.1"]\n'),  # the leader does not believe the followers' X-Forwarded-For
            config(tmp_path, "b", ports[1], mosquitto.url, database, f'peer_ca_file = "{pki["ca"]}"\n'),
            config(tmp_path, "c", ports[2], mosquitto.url, database)]  # the system's CAs only
    assert dozor("hub", "migrate", "--config", str(cfgs[0])).returncode == 0
    token = record(json.loads(dozor("users", "add", "olena", "--role", "admin", "--config", str(cfgs[0]),
                                    "--json").stdout)["token"])
    auth = {"Authorization": f"Bearer {token}"}
    enroll(load_config(cfgs[0]).backend(), "gw-a", public_b64("gw-a"), actor="test")
    logs = [tmp_path / f"{n}.log" for n in "abc"]
    procs, fakes = [], []
    try:
        procs.append(start(cfgs[0], logs[0]))
        wait_port(ports[0], timeout=30)
        for cfg, port, log in zip(cfgs[1:], ports[1:], logs[1:], strict=True):
            procs.append(start(cfg, log))
            wait_port(port, timeout=30)
            await wait_text(log, "standby: hub")
        leader_ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        async with httpx.AsyncClient(timeout=30) as plain, httpx.AsyncClient(verify=leader_ctx, timeout=30) as tls:
            health = (await tls.get(f"{lead_url}/healthz")).json()  # the leader answers over HTTPS only
            assert health["role"] == "leader"
            fakes.append(FakeGateway(mosquitto.port, "gw-a", {health["kid"]: public_key_from_b64(health["public_key"])},
                                     [("siren-1", DeviceKind.SIREN)]).start())
            await wait_text(logs[0], "gateway gw-a online")
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{ports[0]}/healthz")

            r = await plain.post(f"http://127.0.0.1:{ports[1]}/api/v1/alerts", json=alert_body(), headers=auth)
            assert r.status_code == 201, r.text  # forwarded over verified HTTPS, run by the leader
            created = r.json()["id"]

            r = await plain.post(f"http://127.0.0.1:{ports[2]}/api/v1/alerts", json=alert_body(), headers=auth)
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "no_leader" and r.json()["reached_leader"] is False

            alerts = (await tls.get(f"{lead_url}/api/v1/alerts", headers=auth)).json()
            assert [(a["id"], a["requested_by"]["name"]) for a in alerts] == [(created, "olena")]

            # a stranger's failed logins through the follower count against the stranger (X-Forwarded-For from
            # the trusted front, here loopback), at the follower: they never lock the operator out
            stranger = {"Authorization": "Bearer dzr_nope.nope", "X-Forwarded-For": "203.0.113.9"}
            codes = [(await plain.post(f"http://127.0.0.1:{ports[1]}/api/v1/alerts", json=alert_body(),
                                       headers=stranger)).status_code for _ in range(12)]
            assert codes[:10] == [401] * 10 and codes[10:] == [429, 429], codes
            r = await plain.post(f"http://127.0.0.1:{ports[1]}/api/v1/alerts/{created}/stop",
                                 headers={**auth, "X-Forwarded-For": "198.51.100.7"})
            assert r.status_code == 200, r.text
            metrics = (await plain.get(f"http://127.0.0.1:{ports[2]}/metrics", headers=auth)).text
            assert 'dozor_hub_publish_errors_total{kind="forward"} 1.0' in metrics
        assert "plain HTTP" not in logs[0].read_text()  # an https advertise_url: no clear-text warning
    finally:
        kill_pair(procs, logs, fakes)


def test_plain_advertise_url_to_another_machine_is_warned_about(caplog):
    from hub.config import parse_config
    from hub.serving import warn_plain_forwarding

    cfg = parse_config({"hub": {"advertise_url": "http://10.0.0.2:8080"}}, base=Path("."))
    warn_plain_forwarding(cfg, cfg.hub.advertise_url)
    assert "clear text" in caplog.text
    caplog.clear()
    for url in ("https://10.0.0.2:8443", "http://127.0.0.1:8080", "http://localhost:8080"):
        warn_plain_forwarding(cfg, url)
    assert caplog.text == ""


@pytest.mark.parametrize("hub", [{"tls_cert_file": "api.crt"}, {"tls_key_file": "api.key"}])
def test_tls_cert_and_key_go_together(tmp_path, hub):
    from hub.config import parse_config
    from hub.errors import ConfigError

    with pytest.raises(ConfigError, match="go together"):
        parse_config({"hub": hub}, base=tmp_path)
