"""Web Push fan-out benchmark: N subscribers of one zone, one alert, real encryption, real HTTP on loopback.

    python -m bench.fanout --webpush 100000 --json   ->  {"subscribers", "delivered", "seconds", ...}

Every subscriber has its own browser key pair and auth secret (generated in setup, not timed); every
message is encrypted on its own (ephemeral ECDH per message). The receiver runs in its own process,
counts every request and decrypts a sample. ``seconds`` runs from the notifier hook call to the last
delivery counted by the channel. Goal: 100,000 within 15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from contract.models import Mode, Signal, ZoneState, ZoneStatus
from hub.residents import ResidentAlert, ResidentNotifier
from hub.residents.channels import SubscriptionStore, VapidSigner, WebPushChannel
from hub.residents.channels.webpush import Subscriber

# ---- a lean push-service stand-in: raw HTTP/1.1 keep-alive on 127.0.0.1, in its own process ----

class _Proto(asyncio.Protocol):
    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end]
            low = head.lower()
            i = low.find(b"\r\ncontent-length:")
            j = head.find(b"\r\n", i + 2)
            length = int(head[i + 17:j if j > 0 else None]) if i >= 0 else 0
            path = head.split(b" ", 2)[1].decode("latin-1") if b" " in head else ""
            end = head_end + 4 + length
            if len(self.buf) < end:
                return
            body = self.buf[head_end + 4:end]
            self.buf = self.buf[end:]
            self.state["count"] += 1
            sid = path.split("/")[2] if path.count("/") >= 3 else ""
            if sid[1:].isdigit() and (int(sid[1:]) + 1) % self.state["sample"] == 0:
                self.state["samples"].append((sid, body, head.decode("latin-1")))
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nLocation: /m\r\n\r\n")


def _serve(port_q: Any, stop_ev: Any, result_q: Any, key_q: Any, sample: int) -> None:
    import http_ece
    from cryptography.hazmat.primitives import serialization

    async def main() -> None:
        state: dict[str, Any] = {"count": 0, "sample": sample, "samples": []}
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Proto(state), "127.0.0.1", 0, backlog=4096)
        port_q.put(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, stop_ev.wait)
        server.close()
        keys: dict[str, tuple[bytes, bytes]] = key_q.get()
        ok = bad = 0
        for kid, body, head in state["samples"]:
            if kid not in keys:
                bad += 1
                continue
            pem, auth = keys[kid]
            priv = serialization.load_pem_private_key(pem, None)
            try:
                doc = json.loads(http_ece.decrypt(body, private_key=priv, auth_secret=auth, version="aes128gcm"))
                ok += doc.get("type") == "zone-state" and "urgency: high" in head.lower() and "ttl:" in head.lower()
            except Exception:  # noqa: BLE001 - counted as a bad sample
                bad += 1
        result_q.put({"received": state["count"], "verified": ok, "bad": bad})

    asyncio.run(main())


class PushReceiver:
    """Context manager: start the receiver process, give its base URL, collect counts on exit."""

    def __init__(self, sample: int = 1000) -> None:
        ctx = mp.get_context("spawn")
        self._port_q, self._result_q, self._key_q = ctx.Queue(), ctx.Queue(), ctx.Queue()
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_serve, args=(self._port_q, self._stop, self._result_q, self._key_q,
                                                      sample), daemon=True)
        self.result: dict[str, int] = {}
        self.base = ""
        self.keys: dict[str, tuple[bytes, bytes]] = {}  # private keys of the sampled subscribers

    def __enter__(self) -> PushReceiver:
        self._proc.start()
        self.base = f"http://127.0.0.1:{self._port_q.get(timeout=30)}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._key_q.put(self.keys)
        self._stop.set()
        self.result = self._result_q.get(timeout=120)
        self._proc.join(timeout=10)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def make_subscribers(n: int, base: str, sample: int) -> tuple[list[Subscriber], dict[str, tuple[bytes, bytes]]]:
    """n subscribers with their own keys; the receiver gets the private keys of every ``sample``-th one."""
    subs, private = [], {}
    for i in range(n):
        k = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        pub = _b64(k.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint))
        subs.append(Subscriber(f"{base}/push/s{i}/x", pub, _b64(auth), frozenset({"bench-zone"})))
        if (i + 1) % sample == 0:
            private[f"s{i}"] = (k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()), auth)
    return subs, private


async def run(n: int, *, concurrency: int, workers: int, chunk: int) -> dict[str, object]:
    sample = max(1, n // 100)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    main0 = time.process_time()
    with PushReceiver(sample=sample) as rx:
        subs, rx.keys = make_subscribers(n, rx.base, sample)
        store = SubscriptionStore()
        store.add_many(subs)
        ch = WebPushChannel(store, VapidSigner.generate("mailto:bench@dozor.example"), concurrency=concurrency,
                            workers=workers, chunk=chunk, timeout_s=30, retries=1)
        notifier = ResidentNotifier([ch])
        now = datetime.now(UTC)
        alert = ResidentAlert(id="BENCH-1", zones=("bench-zone",), signal=Signal.AIR_RAID, mode=Mode.ACTUAL,
                              sent=now, expires=now + timedelta(hours=1), version=1)
        state = ZoneState(zone="bench-zone", version=1, status=ZoneStatus.ACTIVE, alert="BENCH-1",
                          signal=Signal.AIR_RAID, mode=Mode.ACTUAL, ts=now.timestamp())
        await ch.start()  # spawn the worker processes, as the hub does at start-up
        t0 = time.perf_counter()
        await notifier.on_zone_state(alert, [state])
        await notifier.drain()
        seconds = time.perf_counter() - t0
        main_cpu = time.process_time() - main0
        stats = ch.stats
        await notifier.aclose()
    await asyncio.sleep(0.5)  # let the worker processes exit so their CPU time is counted
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return {"subscribers": n, "delivered": stats.delivered, "seconds": round(seconds, 3),
            "failed": stats.failed, "retries": stats.retries, "received": rx.result.get("received"),
            "sample_verified": rx.result.get("verified"), "sample_bad": rx.result.get("bad"),
            "rate_per_s": round(stats.delivered / seconds) if seconds else None, "cpus": os.cpu_count(),
            "goal_s": 15, "load_avg_1m": round(os.getloadavg()[0], 2),
            # CPU spent by workers + receiver (incl. their start-up) and by this process (incl. key setup):
            "cpu_s_workers_and_receiver": round(children_cpu, 1), "cpu_s_main": round(main_cpu, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--webpush", type=int, default=10_000, help="subscribers in the alerted zone")
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2, help="encryption worker processes")
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = asyncio.run(run(args.webpush, concurrency=args.concurrency, workers=args.workers,
                          chunk=args.chunk))
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['delivered']}/{res['subscribers']} delivered in {res['seconds']} s "
              f"({res['rate_per_s']}/s), receiver counted {res['received']}, "
              f"sample decrypted ok {res['sample_verified']} bad {res['sample_bad']}")
    return 0 if res["delivered"] == res["subscribers"] else 1


if __name__ == "__main__":
    sys.exit(main())
