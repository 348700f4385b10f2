"""SSE fan-out benchmark: N browsers hold the live zone stream; one state change; how fast do all see it?

    python -m bench.sse --clients 5000 --json   ->  {"clients", "received", "p99_ms", ...}

The hub side (the real residents router on uvicorn, one process) runs in its own process; the clients are
raw HTTP/1.1 connections in this process (both on 127.0.0.1). Every client first gets the current state
(as browsers do on every connect); then the zone state changes once through ResidentNotifier, and each
client's receive time is compared with the publish time (same machine clock). Goal: p99 <= 1000 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

ZONE = "bench-zone"
MARK = b"event: state"


def _server(q: Any, stop: Any) -> None:
    from fastapi import FastAPI

    from contract.models import Mode, Signal, ZoneState, ZoneStatus
    from hub.residents import ResidentAlert, ResidentNotifier
    from hub.residents.loopback import serve_app
    from hub.residents.web import create_router

    notifier = ResidentNotifier()
    app = FastAPI()
    app.include_router(create_router(notifier=notifier, zones=[{"id": ZONE, "name": "Bench"}], token="t"))

    @app.post("/bench/trigger")
    async def trigger() -> dict[str, float | int]:
        now = datetime.now(UTC)
        alert = ResidentAlert(id="SSE-1", zones=(ZONE,), signal=Signal.AIR_RAID, mode=Mode.ACTUAL, sent=now,
                              expires=now + timedelta(hours=1), version=1)
        t = time.time()
        await notifier.on_zone_state(alert, [ZoneState(zone=ZONE, version=1, status=ZoneStatus.ACTIVE,
                                                       alert="SSE-1", signal=Signal.AIR_RAID, mode=Mode.ACTUAL,
                                                       ts=t)])
        return {"published": t, "listeners": notifier.store.listener_count()}

    async def main() -> None:
        async with serve_app(app, backlog=8192, limit_concurrency=None) as base:
            q.put(base)
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)

    asyncio.run(main())


async def client(host: str, port: int, got_first: list[int],
                 first_done: asyncio.Event, total: int, times: list[float]) -> None:
    r, w = await asyncio.open_connection(host, port)
    w.write(f"GET /api/v1/zones/{ZONE}/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await w.drain()
    seen, tail = 0, b""
    try:
        while seen < 2:
            data = await r.read(65536)
            if not data:
                return
            buf = tail + data
            n = buf.count(MARK)
            tail = buf[-len(MARK):]
            if n:
                before = seen
                seen += n
                if before == 0:
                    got_first[0] += 1
                    if got_first[0] == total:
                        first_done.set()
                if seen >= 2:
                    times.append(time.time())
    finally:
        w.close()


async def run(n: int, connect_parallel: int, wait_s: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_server, args=(q, stop), daemon=True)
    proc.start()
    try:
        base = q.get(timeout=60)
        host, port = base.removeprefix("http://").split(":")
        got_first, first_done, times = [0], asyncio.Event(), []
        sem = asyncio.Semaphore(connect_parallel)
        tasks = []

        async def start_one() -> None:
            async with sem:
                tasks.append(asyncio.create_task(client(host, int(port), got_first, first_done, n, times)))
                await asyncio.sleep(0)

        t_conn = time.perf_counter()
        await asyncio.gather(*(start_one() for _ in range(n)))
        async with asyncio.timeout(120):
            await first_done.wait()
        connect_s = time.perf_counter() - t_conn
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            trig = (await c.post("/bench/trigger")).json()
        await asyncio.wait(tasks, timeout=wait_s)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stop.set()
        proc.join(timeout=10)
    lat = sorted((t - trig["published"]) * 1000 for t in times)

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None

    return {"clients": n, "received": len(lat), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "max_ms": round(lat[-1], 1) if lat else None, "listeners_at_publish": trig["listeners"],
            "connect_s": round(connect_s, 2), "cpus": os.cpu_count(), "goal_p99_ms": 1000,
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--connect-parallel", type=int, default=200)
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for every client after publish")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = asyncio.run(run(args.clients, args.connect_parallel, args.wait))
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['received']}/{res['clients']} clients got the change: p50 {res['p50_ms']} ms, "
              f"p99 {res['p99_ms']} ms, max {res['max_ms']} ms")
    return 0 if res["received"] == res["clients"] else 1


if __name__ == "__main__":
    sys.exit(main())
