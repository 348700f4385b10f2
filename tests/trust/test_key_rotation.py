"""Hub key rotation with no alert lost, real processes: three gateways pick up the new key at different times;
`dozor hub keys activate` refuses while an online gateway does not pin the key; after activation the hub
signs with it; the old key is retired. Every siren sounds for every alert along the way (counted at the
simulated controllers). The commands are the ones docs/operations.md shows under "Key rotation"."""

from __future__ import annotations

import json
import re

import jwt
import pytest

from tests.gateway.helpers import SirenRig
from tests.trust.harness import GatewayProc, HubProc, Tap, assert_docs_ran, dozor, wait

pytestmark = pytest.mark.integration
GWS = ("gw-1", "gw-2", "gw-3")


async def test_rotation_stage_activate_retire_with_three_gateways_and_no_alert_lost(mosquitto, tmp_path):
    hub = await HubProc(tmp_path, mosquitto.url, list(GWS)).start()
    cfg = str(hub.config)
    tap = Tap(mosquitto.port, "dozor/v1/#")
    rigs = [SirenRig(tmp_path, 1, name=f"rs485-{i}") for i in range(3)]
    for rig in rigs:
        await rig.__aenter__()
    gws = [await GatewayProc(tmp_path, g, mosquitto.url, hub, rig).setup() for g, rig in zip(GWS, rigs, strict=True)]
    alerts = 0

    async def alert_reaches_every_siren(kid: str) -> None:
        nonlocal alerts
        alert = await hub.start_alert("test", "exercise", duration_s=120)
        alerts += 1
        await wait(lambda: all(r.activations() == alerts for r in rigs), f"alert {alerts}: every siren sounding")
        await wait(lambda: _states(hub, alert, "sounding"), f"alert {alerts}: the hub shows all sounding")
        signed = {jwt.get_unverified_header(t.decode())["kid"] for g in GWS for t in tap.of(g, "cmd")
                  if _alert_of(t) == alert}
        assert signed == {kid}
        assert (await hub.stop_alert(alert)).returncode == 0
        await wait(lambda: not any(s.sounding for r in rigs for s in r.sirens), f"alert {alerts} stopped")

    async def repin(gw: GatewayProc) -> None:
        printed = (await dozor("hub", "pubkey", "--config", cfg)).stdout
        gw.pin(printed)  # pasted as printed
        kids = {k for k in re.findall(r'^"([^"]+)"\s*=', printed, re.M)}
        assert kids
        await gw.stop()
        gw.start()
        await wait(gw.online, f"{gw.id} back online")

        async def announced() -> bool:  # the restarted gateway's birth, not the hub's view of the last session
            return set((await pins())[gw.id]["keys"]) == kids

        await wait(announced, f"{gw.id}'s new pins at the hub")

    async def pins() -> dict[str, dict]:
        res = await dozor("gateways", "--json", env=hub.env)
        return {g["id"]: g for g in json.loads(res.stdout)}

    try:
        for gw in gws:
            await gw.enroll()
            gw.start()
        for gw in gws:
            await wait(gw.online, f"{gw.id} online")
        listed = json.loads((await dozor("hub", "keys", "list", "--config", cfg, "--json")).stdout)
        (old,) = [k["kid"] for k in listed if k["status"] == "active"]
        assert await hub.kid() == old
        await alert_reaches_every_siren(old)

        new = json.loads((await dozor("hub", "keys", "stage", "--config", cfg, "--json")).stdout)["kid"]
        await wait(lambda: _announced(hub, tap, new), "the staged key announced in the hub's state")
        await alert_reaches_every_siren(old)  # staged keys are announced, not used

        await repin(gws[0])  # gw-1 picks up the new key first
        now = await pins()
        assert set(now["gw-1"]["keys"]) == {old, new} and now["gw-2"]["keys"] == [old]
        assert all(now[g]["trusts_active_key"] for g in GWS)
        refused = await dozor("hub", "keys", "activate", new, "--config", cfg, check=False)
        assert refused.returncode == 1 and "gw-2" in refused.stderr and "gw-3" in refused.stderr
        await alert_reaches_every_siren(old)

        await repin(gws[1])  # then gw-2
        refused = await dozor("hub", "keys", "activate", new, "--config", cfg, "--json", check=False)
        assert refused.returncode == 1 and "gw-3" in json.loads(refused.stdout)["error"]
        await alert_reaches_every_siren(old)

        await repin(gws[2])  # gw-3 last: now every online gateway pins the new key
        # `keys list --config` reads the hub's saved registry, written on the hub's flush tick: it converges
        # (until then `activate` refuses, the safe side)
        async def nobody_left(kid=new) -> bool:
            listed = json.loads((await dozor("hub", "keys", "list", "--config", cfg, "--json")).stdout)
            return next(k for k in listed if k["kid"] == kid)["online_not_pinning"] == []

        await wait(nobody_left, "the hub's saved view: every online gateway pins the new key")
        await dozor("hub", "keys", "activate", new, "--config", cfg)
        await wait(lambda: _kid_is(hub, new), "the running hub signs with the new key")
        assert all(g["trusts_active_key"] for g in (await pins()).values())
        await alert_reaches_every_siren(new)

        await dozor("hub", "keys", "retire", old, "--config", cfg)
        printed = (await dozor("hub", "pubkey", "--config", cfg)).stdout
        assert old not in printed and new in printed
        await repin(gws[0])  # a gateway may now drop the old key
        assert (await pins())["gw-1"]["keys"] == [new]
        await alert_reaches_every_siren(new)
        assert alerts == 6 and all(r.activations() == 6 for r in rigs)
        assert await hub.metric("dozor_hub_gateway_messages_unverified_total") == 0
        assert_docs_ran("Key rotation")
    finally:
        tap.close()
        for gw in gws:
            await gw.stop()
        for rig in rigs:
            await rig.__aexit__(None, None, None)
        await hub.stop()


def _alert_of(token: bytes) -> str | None:
    from contract.command import peek

    return peek(token).get("alert")  # type: ignore[return-value]


async def _states(hub: HubProc, alert: str, state: str) -> bool:
    states = await hub.device_states(alert)
    return len(states) == 3 and set(states.values()) == {state}


async def _kid_is(hub: HubProc, kid: str) -> bool:
    return await hub.kid() == kid


async def _announced(hub: HubProc, tap: Tap, kid: str) -> bool:
    from contract.models import HubState

    states = [HubState.model_validate_json(p) for t, p, _ in tap.messages if t == "dozor/v1/hub/state" and p]
    return bool(states) and kid in states[-1].keys
