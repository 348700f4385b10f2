"""Every hub instance serves (issue 14 §2): two `dozor hub run` processes on one PostgreSQL and one Mosquitto. The
follower serves the API, the resident page and the CAP feed from the shared database, and forwards alert requests
to the leader with the caller's credentials. The operator's CLI starts an alert through the follower and follows it
there; the leader is killed with SIGKILL mid-alert, the follower takes over, and the CLI completes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess

import httpx

from contract.command import public_key_from_b64
from contract.models import AckStage, DeviceKind
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import eventually
from tests.repo.test_failover import kill_pair, setup_pair, wait_text
from tests.repo.test_hub_postgres import until
from tests.repo.test_migrate import DOZOR


def operator_cli(hub: int | str, token: str, *args: str) -> subprocess.Popen:
    """`dozor ...` as an operator runs it, against the hub API on port ``hub`` (or the hub URLs ``hub``; the
    token in the environment)."""
    url = hub if isinstance(hub, str) else f"http://127.0.0.1:{hub}"
    return subprocess.Popen([DOZOR, *args, "--hub", url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "DOZOR_TOKEN": token})


async def test_cli_follows_an_alert_through_the_follower_across_a_leader_kill(postgres_server, mosquitto, tmp_path):
    a, b, a_log, b_log, (pa, pb), token = await setup_pair(postgres_server, mosquitto, tmp_path, retries=20)
    fakes: list[FakeGateway] = []
    cli = None
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pb}", timeout=10, headers=headers) as follower:
            health = (await follower.get("/healthz")).json()
            assert health["role"] == "follower"
            keys = {health["kid"]: public_key_from_b64(health["public_key"])}
            fakes = [FakeGateway(mosquitto.port, "gw-a", keys, [("siren-1", DeviceKind.SIREN)]).start(),
                     FakeGateway(mosquitto.port, "gw-b", keys, [("siren-1", DeviceKind.SIREN)],
                                 behaviour="silent").start()]
            gw_a, gw_b = fakes

            async def both_online() -> bool:  # the leader heard the births; the follower reads them from the database
                return sum(g["state"] == "online" for g in (await follower.get("/api/v1/gateways")).json()) == 2
            await until(both_online, "both gateways online on the follower")
            # an alert action without credentials is refused by the leader the follower forwards it to
            r = await follower.post("/api/v1/alerts", headers={"Authorization": ""},
                                    json={"zones": ["all"], "signal": "air-raid", "mode": "exercise"})
            assert r.status_code == 401, r.text
            cli = operator_cli(pb, token, "alert", "start", "--zone", "all", "--signal", "air-raid", "--exercise",
                               "--duration", "300", "--wait", "90", "--json")
            await eventually(lambda: gw_b.commands, 30, what="a command to the silent gateway")
            alert_id = gw_b.commands[0].alert
            alerts = (await follower.get("/api/v1/alerts")).json()  # from the database the leader wrote
            assert [x["id"] for x in alerts] == [alert_id] and alerts[0]["requested_by"]["name"] == "boss", alerts

            async def half() -> bool:
                return (await follower.get(f"/api/v1/alerts/{alert_id}")).json()["summary"]["confirmed"] == 1
            await until(half, "the answering gateway confirmed (read on the follower)")

            async def page() -> bool:  # the follower's resident page, live view and CAP feed show the alert
                texts = [(await follower.get(path)).text for path in ("/api/v1/zones/all/state?tester=1", "/cap/feed.xml")]
                return all(alert_id in text for text in texts)
            await until(page, "the alert on the follower's resident page and CAP feed")
            zones = {z["id"]: z for z in (await follower.get("/api/v1/zones")).json()}
            assert zones["all"]["alert"] == alert_id and zones["all"]["status"] == "active", zones
            assert (await follower.get("/healthz")).json()["role"] == "follower"
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        first = gw_b.commands_for(alert_id)[0]  # acked while no hub leads: the broker queues it for the session
        gw_b._ack(first.jti, alert_id, AckStage.ACCEPTED, ("siren-1",))
        gw_b._ack(first.jti, alert_id, AckStage.SOUNDING, ("siren-1",))
        await wait_text(b_log, "leads (lease term 2)")
        out, err = await asyncio.to_thread(cli.communicate, timeout=120)
        assert cli.returncode == 0, (out, err)
        done = json.loads(out)
        assert done["id"] == alert_id and done["summary"]["confirmed"] == 2, out[:600]
        jtis = [c.jti for c in gw_a.commands_for(alert_id) + gw_b.commands_for(alert_id)]
        assert len(jtis) == len(set(jtis))  # no command id was sent twice
        # the operator lists both hubs: the dead one is skipped, the new leader takes the stop and shows it
        both = f"http://127.0.0.1:{pa},http://127.0.0.1:{pb}"
        for args in (("alert", "stop", alert_id, "--no-wait"), ("alert", "status", alert_id, "--json")):
            proc = operator_cli(both, token, *args)
            out, err = await asyncio.to_thread(proc.communicate, timeout=60)
            assert proc.returncode == 0, (args, out, err)
        assert json.loads(out)["status"] == "stopped", out[:300]
        b.terminate()
        assert b.wait(20) == 0
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.wait(10)
        kill_pair((a, b), (a_log, b_log), fakes)


async def test_an_alert_action_during_a_takeover_waits_for_the_new_leader(postgres_server, mosquitto, tmp_path):
    """The leader is killed; before the follower's lease wait is over (10 s here) an operator stops the alert
    through the follower. The follower cannot reach a leader and answers 503 no_leader, saying the request reached
    no one; the CLI says so, sends it again, and the hub that took over stops the alert."""
    a, b, a_log, b_log, (pa, pb), token = await setup_pair(postgres_server, mosquitto, tmp_path, lease_s=10)
    fakes: list[FakeGateway] = []
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(timeout=10, headers=headers) as http:
            keys = {(h := (await http.get(f"http://127.0.0.1:{pb}/healthz")).json())["kid"]:
                    public_key_from_b64(h["public_key"])}
            fakes = [FakeGateway(mosquitto.port, gw, keys, [("siren-1", DeviceKind.SIREN)]).start()
                     for gw in ("gw-a", "gw-b")]
            r = await http.post(f"http://127.0.0.1:{pa}/api/v1/alerts",
                                json={"zones": ["all"], "signal": "air-raid", "mode": "exercise", "duration_s": 600})
            assert r.status_code in (200, 201), r.text
            alert_id = r.json()["id"]
            a.send_signal(signal.SIGKILL)
            a.wait(10)
            refused = await http.post(f"http://127.0.0.1:{pb}/api/v1/alerts/{alert_id}/stop")
            assert refused.status_code == 503, refused.text  # no one leads yet: the follower says so ...
            assert refused.json()["error"] == "no_leader" and refused.json()["reached_leader"] is False
            proc = operator_cli(pb, token, "alert", "stop", alert_id, "--no-wait")  # ... and the CLI waits it out
            out, err = await asyncio.to_thread(proc.communicate, timeout=90)
            assert proc.returncode == 0, (out, err)
            assert "no hub leads right now" in err, err
            assert "leads (lease term 2)" in b_log.read_text()
            status = (await http.get(f"http://127.0.0.1:{pb}/api/v1/alerts/{alert_id}")).json()["status"]
            assert status == "stopped", status
    finally:
        kill_pair((a, b), (a_log, b_log), fakes)


def test_a_costly_mirror_re_read_waits_longer_but_never_leaves_the_mirror_stale():
    """hub.ha.next_wait: a follower's re-read of the shared state takes at most a tenth of its time (a large city's
    re-read every 0.5 s slowed the leader's dispatch on a shared machine ~2.6x), never less often than every 5 s."""
    from hub.ha import FOLLOWER_DUTY, FOLLOWER_MAX_WAIT_S, next_wait

    assert next_wait(0.5, 0.01) == 0.5  # cheap: the configured interval
    for took in (0.1, 0.2, 0.4):
        wait = next_wait(0.5, took)
        assert wait > 0.5 and took / (took + wait) <= FOLLOWER_DUTY + 1e-9
    assert next_wait(0.5, 3.0) == FOLLOWER_MAX_WAIT_S
    assert next_wait(10.0, 3.0) == 10.0  # a longer configured interval stays
