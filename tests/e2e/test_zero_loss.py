"""Zero loss, counted exactly: readings a field node produced against readings stored in the time-series
store, through five faults with real processes. The gateway (`dozor gateway run`) reads a simulated noise node
on a pty, reaches the broker through a relay that can cut the uplink, and the hub (`dozor hub run`) writes to a
real VictoriaMetrics. Faults: uplink cut for 15 s, gateway kill -9 in the middle of draining the backlog, broker
restart, hub kill -9 mid-stream and restart, store down for 15 s; then the central site's power cut (the hub down,
the broker killed with -9 holding what it had acknowledged in memory only) with a gateway kill -9 at the same time. Counted as RAW stored samples:
produced == stored with zero duplicates after every fault."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import httpx
import pytest

from dozor.client import HubClient, HubClientError
from dozor.commands.sim_city import hub_keys_from
from simulators.brokers import Mosquitto, free_port
from simulators.netcut import NetCut
from simulators.pty_link import PtyLink
from simulators.sensors import SimNoiseNode
from simulators.tsdb import VictoriaMetrics
from tests.tokens import admin_token

pytestmark = pytest.mark.integration
DOZOR = str(Path(sys.executable).with_name("dozor"))
GW = "gw-zl"


async def spawn(*args: str, log: Path) -> asyncio.subprocess.Process:
    fh = open(log, "ab")  # noqa: SIM115, ASYNC230 - handed to the child
    try:
        return await asyncio.create_subprocess_exec(DOZOR, *args, stdout=fh, stderr=fh)
    finally:
        fh.close()


async def run_dozor(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(DOZOR, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def until(predicate, what: str, attempts: int = 600, every: float = 0.1, explain=None):
    """Poll ``predicate``; on timeout fail, with ``explain()`` (what the state was) in the message."""
    for _ in range(attempts):
        with contextlib.suppress(httpx.TransportError, OSError, HubClientError):  # not up yet
            value = await asyncio.to_thread(predicate)
            if value:
                return value
        await asyncio.sleep(every)
    detail = await asyncio.to_thread(explain) if explain is not None else None
    pytest.fail(f"timed out waiting for {what}" + (f": {detail}" if detail else ""))


def samples(vm: VictoriaMetrics) -> list[int]:
    """RAW stored samples, one LAeq sample per reading (VictoriaMetrics keeps a duplicate sample: no dedup flag)."""
    vm.flush()
    return [ts for series in vm.export('noise_node_laeq{device="noise-1"}') for ts in series["timestamps"]]


def stored(vm: VictoriaMetrics) -> int:
    return len(samples(vm))


def settled(vm: VictoriaMetrics, produced: int) -> int:
    """RAW count once nothing is in flight any more (a late duplicate would show up as more than produced).
    Distinct timestamps are no identity here: readings the gateway reads back-to-back after a restart can share
    a millisecond."""
    import time

    time.sleep(1.5)
    return stored(vm)


async def test_no_reading_is_lost_through_five_faults(tmp_path):
    produced = 0

    async def produce(sim: SimNoiseNode, n: int, every: float = 0.05) -> None:
        nonlocal produced
        for _ in range(n):
            assert sim.send_levels()  # the frame left the node
            produced += 1
            await asyncio.sleep(every)

    with Mosquitto(persistence=True) as broker, VictoriaMetrics() as vm:
        cut = await NetCut(broker.port).start()
        link = await PtyLink().start()
        sim = SimNoiseNode(link.b, period_s=3600)  # frames only when the test sends them
        await sim.__aenter__()
        api_port = free_port()
        (tmp_path / "zones.json").write_text(json.dumps([{"id": "z1", "gateways": [GW]}]))
        (tmp_path / "hub.toml").write_text(
            f'[hub]\nstate_dir = "hub"\napi_port = {api_port}\nzones = "zones.json"\n'
            f'[mqtt]\nurl = "{broker.url}"\n[store]\nkind = "v2"\nurl = "{vm.url}"\nflush_interval_s = 0.2\n'
            'backoff_cap_s = 2\n')  # retries while the store is down: at most 2 s apart
        hub_args = ("hub", "run", "--config", str(tmp_path / "hub.toml"))
        token = admin_token(tmp_path / "hub")
        hub = await spawn(*hub_args, log=tmp_path / "hub.log")
        gw = None
        try:
            await until(lambda: (tmp_path / "hub" / "hub-signing-key").exists(), "the hub's signing key")
            client = HubClient(f"http://127.0.0.1:{api_port}", token)
            (kid, pub), = hub_keys_from(tmp_path / "hub", []).items()
            (tmp_path / "gw.toml").write_text(
                f'[gateway]\nid = "{GW}"\nzone = "z1"\nstate_dir = "{tmp_path / "gw"}"\nheartbeat_s = 1\n'
                f'[mqtt]\nurl = "mqtt://127.0.0.1:{cut.port}"\nreconnect_min_s = 0.2\nreconnect_max_s = 1\n'
                f'[trust.hub_keys]\n"{kid}" = "{pub}"\n'
                "[telemetry]\nflush_s = 0.3\ndrain_rate = 40\ndrain_burst = 40\n"  # a backlog drains slowly
                f'[[bus]]\nname = "uart-1"\nport = "{link.a}"\nkind = "uart"\nbaudrate = 115200\n'
                '[[device]]\nid = "noise-1"\nkind = "noise_node"\nbus = "uart-1"\nstale_s = 86400\n')
            # the gateway's identity key, enrolled on the hub as docs/operations.md shows
            ident = json.loads(await run_dozor("gateway", "identity", str(tmp_path / "gw.toml"), "--json"))
            await run_dozor("gateways", "enroll", GW, "--pubkey", ident["public_key"], "--config",
                            str(tmp_path / "hub.toml"))
            gw_args = ("gateway", "run", "--config", str(tmp_path / "gw.toml"))
            gw = await spawn(*gw_args, log=tmp_path / "gw.log")
            await until(lambda: any(g.id == GW and g.state == "online" for g in client.gateways()), "gateway online")

            await produce(sim, 60)  # normal operation
            await until(lambda: stored(vm) >= produced, "the first readings stored")
            assert settled(vm, produced) == produced  # raw: nothing lost, nothing twice

            # 1. uplink cut for 15 s (longer than the receipt timeout, 10 s, and the reconnect cap, 1 s): readings
            # wait in the gateway's outbox; the backlog (300) and its drain (7.5 s at 40/s) do not depend on the window
            cut.cut()
            await produce(sim, 300)
            cut.restore()

            # 2. gateway kill -9 while it drains that backlog (40 readings/s): the rest drains after restart
            await until(lambda: stored(vm) > produced - 300, "the drain to start", every=0.05)
            assert stored(vm) < produced, "the kill must land in the middle of the drain"
            gw.kill()
            await gw.wait()
            gw = await spawn(*gw_args, log=tmp_path / "gw.log")
            await until(lambda: stored(vm) >= produced, "the backlog drained after the restart", attempts=900)
            assert settled(vm, produced) == produced  # raw: nothing lost, nothing twice

            # 3. broker restart in the middle of a stream
            task = asyncio.create_task(produce(sim, 100))
            await asyncio.sleep(2)
            broker.restart(down_s=1)
            await task
            await until(lambda: stored(vm) >= produced, "readings across the broker restart")
            assert settled(vm, produced) == produced  # raw: nothing lost, nothing twice

            # 4. hub kill -9 mid-stream and restart: the broker keeps its persistent session meanwhile and
            # redelivers what was spooled but not yet PUBACKed; the spool's durable keys store it once
            task = asyncio.create_task(produce(sim, 100))
            await asyncio.sleep(2)
            hub.kill()
            await hub.wait()
            await task
            hub = await spawn(*hub_args, log=tmp_path / "hub.log")
            await until(lambda: stored(vm) >= produced, "readings across the hub restart")
            assert settled(vm, produced) == produced  # raw: nothing lost, nothing twice

            # 5. the store down for 15 s: the hub spools durably and retries (backing off to its 2 s cap)
            vm.stop()
            await produce(sim, 150, every=0.1)
            vm.start()
            await until(lambda: stored(vm) >= produced, "readings spooled while the store was down", attempts=900)
            assert settled(vm, produced) == produced  # raw: nothing lost, nothing twice

            # 6. the central site loses power: the hub is down, the broker acknowledges what the gateway sends and
            # queues it for the hub's session in memory, then dies with -9 before saving it (Mosquitto autosaves
            # every 30 min). Only the hub's receipts (docs/protocol.md "Receipts") make the gateway send it again,
            # and the gateway is killed too in the meantime: what it held without a receipt is in its outbox.
            hub.kill()
            await hub.wait()
            await produce(sim, 40)
            await asyncio.sleep(2)  # slack for the last batches' PUBACKs (either way nothing may be lost)
            gw.kill()
            await gw.wait()
            broker.kill()
            broker.start()
            gw = await spawn(*gw_args, log=tmp_path / "gw.log")
            hub = await spawn(*hub_args, log=tmp_path / "hub.log")
            await until(lambda: stored(vm) >= produced, "readings the broker acknowledged and lost, sent again",
                        attempts=1200)
            assert settled(vm, produced) == produced  # raw: nothing lost, nothing twice

            assert produced == 750
            assert settled(vm, produced) == produced
            hub_log = (tmp_path / "hub.log").read_text()
            assert "HTTP Request" not in hub_log  # httpx's per-request lines are DEBUG: none per TSDB write
        finally:
            for proc in (gw, hub):
                if proc is not None and proc.returncode is None:
                    proc.terminate()
                    await proc.wait()
            await sim.__aexit__(None, None, None)
            await link.close()
            await cut.close()
