"""Reconnect after a broker outage, every run: a real `dozor gateway run` process with the default reconnect
settings and a real Mosquitto that is stopped for several seconds and started again (twice), once with the gateway
kept running and once with the gateway killed (SIGKILL) and started again during the outage.

What is asserted comes from the gateway's own report, the "uplink up" line that ends an outage: "after N failed
attempts in X s; longest retry wait W s, cap C s". Each run:
- the gateway saw the outage (N >= 1) and came back by itself;
- every backoff wait it drew stayed within the cap (W <= C == reconnect_max_s = 1.5 s), the schedule that bounds
  the reconnect: while the broker is away the gateway tries again at least every C seconds;
- the protocol deadline: its "uplink up" is at most ``reconnect_max_s + connect_timeout_s`` after the broker's port
  accepts connections again (one capped wait, then one connect attempt within its timeout). Measured on the
  gateway's own log clock; on an idle machine it is well under 2 s (see `python -m bench.reconnect`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.gateway.helpers import HUB_KID, HUB_PUB

pytestmark = pytest.mark.integration
DOZOR = str(Path(sys.executable).with_name("dozor"))
CAP_S = 1.5  # gateway.config MqttSection.reconnect_max_s default: the test runs the defaults
CONNECT_TIMEOUT_S = 5.0  # MqttSection.connect_timeout_s default
OUTAGE_S = 6.0  # long enough for an uncapped doubling backoff (0.2, 0.4, 0.8, 1.6, 3.2 ...) to pass the cap
UP = re.compile(r"^(\S+ \S+) .*uplink up: \S+ session (\d+)(?: \(after (\d+) failed attempts in ([\d.]+) s; "
                r"longest retry wait ([\d.]+) s, cap ([\d.]+) s\))?")


def ups(log: Path) -> list[dict]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        m = UP.match(line)
        if m:
            stamp = dt.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, like the log
            out.append({"t": stamp, "session": int(m[2]), "failed": int(m[3] or 0), "down_s": float(m[4] or 0),
                        "longest_wait_s": float(m[5] or 0), "cap_s": float(m[6] or 0)})
    return out


async def until(pred, what: str, limit_s: float = 60.0) -> None:
    for _ in range(int(limit_s / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize("restart", [False, True], ids=["gateway-kept", "gateway-restarted"])
async def test_the_gateway_is_back_within_the_backoff_cap_after_every_outage(tmp_path, mosquitto, restart):
    cfg, log = tmp_path / "gateway.toml", tmp_path / "gateway.log"
    cfg.write_text(f'[gateway]\nid = "gw-reconnect"\nstate_dir = "{tmp_path / "state"}"\nheartbeat_s = 5\n'
                   f'[mqtt]\nurl = "{mosquitto.url}"\n[trust.hub_keys]\n"{HUB_KID}" = "{HUB_PUB}"\n')

    async def start() -> asyncio.subprocess.Process:
        fh = open(log, "ab")  # noqa: SIM115, ASYNC230 - handed to the child
        try:
            return await asyncio.create_subprocess_exec(DOZOR, "gateway", "run", "--config", str(cfg),
                                                        stdout=fh, stderr=fh)
        finally:
            fh.close()

    def downs() -> int:
        return log.read_text(errors="replace").count("uplink down")

    gw = await start()
    try:
        await until(lambda: len(ups(log)) >= 1, "the gateway's first uplink up")
        for run in range(2):
            before = len(ups(log))
            await asyncio.to_thread(mosquitto.stop)
            if restart:
                await asyncio.sleep(OUTAGE_S / 2)
                gw.send_signal(signal.SIGKILL)
                assert await gw.wait() == -signal.SIGKILL
                seen = downs()
                gw = await start()
                # the new process must itself meet the outage (its first connect fails), then keep retrying
                await until(lambda n=seen: downs() > n, "the restarted gateway's first failed attempt")
            await asyncio.sleep(OUTAGE_S / 2 if restart else OUTAGE_S)
            await asyncio.to_thread(mosquitto.start)  # returns once the port accepts connections
            back = time.time()
            await until(lambda n=before: len(ups(log)) > n, f"the gateway back after outage {run + 1}")
            up = ups(log)[-1]
            assert up["failed"] >= 1, f"run {run + 1}: the gateway did not see the outage: {up}"
            assert up["longest_wait_s"] <= CAP_S, f"run {run + 1}: a retry wait above the cap: {up}"
            assert up["cap_s"] == CAP_S
            assert up["t"] - back <= CAP_S + CONNECT_TIMEOUT_S, \
                f"run {run + 1}: back {up['t'] - back:.2f} s after the broker, deadline {CAP_S + CONNECT_TIMEOUT_S} s"
    finally:
        if gw.returncode is None:
            gw.terminate()
            await gw.wait()
