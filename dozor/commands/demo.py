"""`dozor demo`: an embedded broker, the hub and a simulated city; an air-raid drill, then the all-clear.

Everything runs in this one process with no servers to install: amqtt is the broker (MQTT 3.1.1) unless
``--broker`` points at a real one. The drill goes through the real path: HTTP API -> signed commands over MQTT
-> gateway verification -> Modbus RTU on ptys -> acks -> coverage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from dozor.commands._common import console, emit_json
from runtime.supervise import reap

CONFIRMED = {"sounding", "playing", "done"}


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


class Demo:
    def __init__(self, *, broker: str | None, gateways: int, sirens: int, speakers: int, spinup_s: float,
                 state_dir: Path, quiet: bool) -> None:
        self.broker_url = broker
        self.gateways, self.sirens, self.speakers, self.spinup_s = gateways, sirens, speakers, spinup_s
        self.state_dir = state_dir
        self.quiet = quiet
        self.embedded = None
        self.hub = None
        self.hub_task: asyncio.Task | None = None
        self.city = None
        self.client = None

    def say(self, text: str) -> None:
        if not self.quiet:
            console.print(text)

    async def start(self) -> None:
        from dozor.client import HubClient
        from dozor.commands.sim_city import enrolling_factory
        from hub.app import Hub
        from hub.config import parse_config
        from simulators.brokers import EmbeddedBroker, free_port
        from simulators.city import City, CityPlan

        if self.broker_url is None:
            self.embedded = await EmbeddedBroker().start()
            self.broker_url = self.embedded.url
            self.say(f"broker: embedded amqtt at {self.broker_url}")
        else:
            self.say(f"broker: {self.broker_url}")
        plan = CityPlan(self.gateways, self.sirens, self.speakers)
        self.plan = plan
        zones_file = self.state_dir / "zones.json"
        zones_file.write_text(json.dumps(plan.zones_config(), indent=2))
        port = free_port()
        cfg = parse_config({
            "hub": {"state_dir": str(self.state_dir / "hub"), "api_port": port, "zones": str(zones_file),
                    "confirm_deadline_s": 3, "max_retries": 2},
            "mqtt": {"url": self.broker_url, "client_id": "dozor-demo-hub"},
        }, base=self.state_dir, source="demo")
        self.token = demo_users(self.state_dir / "hub")
        self.hub = Hub(cfg)
        self.hub_task = asyncio.create_task(self.hub.run(), name="hub")
        await asyncio.wait_for(self.hub.started.wait(), 15)
        self.client = HubClient(f"http://127.0.0.1:{port}", self.token)
        self.api_url = f"http://127.0.0.1:{port}"
        self.say(f"hub: API on {self.api_url}, signing key {self.hub.keys.kid}")
        self.city = await City(plan, self.broker_url, self.hub.keys.public_keys_b64(), self.state_dir / "city",
                               enrolling_factory(cfg.hub.state_dir), spinup_s=self.spinup_s,
                               heartbeat_s=2.0).start()
        self.say(f"city: {plan.gateways} gateways, {plan.sirens_total} sirens, "
                 f"{plan.gateways * plan.speakers_per_gateway} loudspeakers in {plan.zone_count} zones "
                 f"({', '.join(z['id'] for z in plan.zones_config())})")
        deadline = time.monotonic() + 30
        while True:
            gws = await asyncio.to_thread(self.client.gateways)
            online = sum(1 for g in gws if g.state == "online")
            if online == plan.gateways:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {online}/{plan.gateways} gateways came online within 30 s")
            await asyncio.sleep(0.2)
        self.say(f"fleet: {online}/{plan.gateways} gateways online")

    async def follow(self, alert_id: str, label: str, timeout_s: float = 30.0) -> dict[str, Any]:
        t0 = time.monotonic()
        last = None
        while True:
            detail = (await asyncio.to_thread(self.client.alert, alert_id)).model_dump(mode="json")
            s = detail["summary"]
            line = f"  {label}: {s['confirmed']}/{s['total']} confirmed"
            if line != last:
                self.say(f"{line} after {time.monotonic() - t0:.2f} s")
                last = line
            if s["pending"] == 0 or time.monotonic() - t0 > timeout_s:
                return detail
            await asyncio.sleep(0.05)

    @staticmethod
    def stats(detail: dict[str, Any]) -> dict[str, Any]:
        sirens = [d for d in detail["devices"] if d.get("kind") == "siren"]
        speakers = [d for d in detail["devices"] if d.get("kind") == "speaker"]
        ms = [d["confirm_ms"] for d in sirens if d["state"] in CONFIRMED and d.get("confirm_ms") is not None]
        return {
            "sirens_total": len(sirens),
            "sirens_confirmed": sum(1 for d in sirens if d["state"] in CONFIRMED),
            "speakers_total": len(speakers),
            "speakers_confirmed": sum(1 for d in speakers if d["state"] in CONFIRMED),
            "first_confirm_ms": min(ms) if ms else None,
            "p50_confirm_ms": _pct(ms, 0.50),
            "p99_confirm_ms": _pct(ms, 0.99),
            "last_confirm_ms": max(ms) if ms else None,
            "problems": [{"device": f"{d['gateway']}/{d['device']}", "state": d["state"], "reason": d.get("reason")}
                         for d in detail["devices"] if d["state"] not in CONFIRMED],
        }

    async def drill(self) -> dict[str, Any]:
        zones = [z["id"] for z in self.plan.zones_config()]
        self.say(f"\n[bold]EXERCISE air-raid drill[/] in {', '.join(zones)}")
        alert = await asyncio.to_thread(
            self.client.create_alert, zones, "air-raid", "exercise", duration_s=120,
            message={"uk": "НАВЧАННЯ. Повітряна тривога.", "en": "EXERCISE. Air raid."})
        detail = await self.follow(alert.id, "air-raid")
        drill = self.stats(detail)
        sounding_now = self.city.sounding()
        self.say(f"  sirens confirmed {drill['sirens_confirmed']}/{drill['sirens_total']} "
                 f"(simulated controllers sounding: {sounding_now}); first {drill['first_confirm_ms']:.0f} ms, "
                 f"p99 {drill['p99_confirm_ms']:.0f} ms, last {drill['last_confirm_ms']:.0f} ms; loudspeakers "
                 f"{drill['speakers_confirmed']}/{drill['speakers_total']}" if drill["sirens_confirmed"]
                 else "  no siren confirmed")
        self.say("\n[bold]all-clear[/] (an update of the same alert)")
        await asyncio.to_thread(self.client.all_clear, alert.id)
        clear = self.stats(await self.follow(alert.id, "all-clear"))
        self.say(f"  all-clear confirmed by {clear['sirens_confirmed']}/{clear['sirens_total']} sirens")
        return {"alert": alert.id, "mode": "exercise", **{k: v for k, v in drill.items()},
                "sirens_sounding_in_simulator": sounding_now, "all_clear": clear}

    async def close(self) -> None:
        if self.city is not None:
            await self.city.stop()
        if self.hub_task is not None:
            await reap(self.hub_task)
        if self.client is not None:
            self.client.close()
        if self.embedded is not None:
            await self.embedded.stop()


def demo_users(state_dir: Path) -> str:
    """The demo's own users (a hub refuses to start without any): `demo-admin` once per state dir, whose token
    the demo uses and keeps in state_dir/api-token (0600) for `dozor` commands run next to it."""
    from hub.identity import Role, UserStore
    from hub.keys import write_private

    state_dir.mkdir(parents=True, exist_ok=True)
    token_file = state_dir / "api-token"
    store = UserStore.in_state_dir(state_dir)
    try:
        if token_file.exists() and any(u.name == "demo-admin" and not u.disabled for u in store.list()):
            return token_file.read_text().strip()
        if any(u.name == "demo-admin" for u in store.list()):
            _, token = store.rotate("demo-admin")
        else:
            _, token = store.add("demo-admin", Role.admin)
    finally:
        store.close()
    token_file.unlink(missing_ok=True)
    write_private(token_file, token)
    return token


def demo(
    broker: str | None = typer.Option(None, "--broker", help="use this MQTT broker instead of the embedded one"),
    gateways: int = typer.Option(10, "--gateways", min=1, max=500),
    sirens_per_gateway: int = typer.Option(3, "--sirens-per-gateway", min=1, max=32),
    speakers_per_gateway: int = typer.Option(1, "--speakers-per-gateway", min=0, max=4),
    spinup_s: float = typer.Option(0.5, "--spinup-s", min=0.0, help="siren spin-up delay"),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="default: a fresh temporary folder"),
    keep_running: bool = typer.Option(False, "--keep-running", help="leave everything up for the CLI"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    as_json: bool = typer.Option(False, "--json", help="end with one JSON object"),
) -> None:
    """Run a simulated city and an air-raid drill with the all-clear; exit 0 when every siren confirmed."""
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("amqtt", "transitions", "uvicorn", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.CRITICAL)
    root = state_dir or Path(tempfile.mkdtemp(prefix="dozor-demo-"))
    root.mkdir(parents=True, exist_ok=True)

    async def main() -> dict[str, Any]:
        d = Demo(broker=broker, gateways=gateways, sirens=sirens_per_gateway, speakers=speakers_per_gateway,
                 spinup_s=spinup_s, state_dir=root.resolve(), quiet=as_json)
        try:
            t0 = time.monotonic()
            await d.start()
            result = await d.drill()
            result.update(gateways=gateways, broker=d.broker_url, setup_s=round(time.monotonic() - t0, 2))
            if keep_running:
                console.print(f"\nsystem is up. In another shell:\n  export DOZOR_HUB_URL={d.api_url} "
                              f"DOZOR_TOKEN={d.token}\n  dozor gateways; dozor alert list\n"
                              "Ctrl-C to stop.", soft_wrap=True)
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await stop.wait()
            return result
        finally:
            await d.close()

    result = asyncio.run(main())
    ok = result["sirens_total"] > 0 and result["sirens_confirmed"] == result["sirens_total"]
    if as_json:
        emit_json(result)
    else:
        console.print(f"\n[bold {'green' if ok else 'red'}]{'OK' if ok else 'INCOMPLETE'}[/]: "
                      f"{result['sirens_confirmed']}/{result['sirens_total']} sirens confirmed the drill "
                      f"(state in {root})")
    raise typer.Exit(0 if ok else 3)
