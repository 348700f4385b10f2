"""Shared helpers for hub tests: config on a temp dir, an in-process hub, an API client, polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import httpx

from hub.app import Hub
from hub.config import HubConfig, parse_config
from simulators.brokers import free_port, wait_port
from tests.gwident import HUB_STATES
from tests.tokens import admin_token

ZONES = [
    {"id": "north", "name": "North", "gateways": ["gw-a", "gw-b"]},
    {"id": "south", "name": "South", "gateways": ["gw-c"], "devices": ["gw-a/spk-1"]},
    {"id": "all", "name": "All", "gateways": ["gw-a", "gw-b", "gw-c", "gw-d"]},
]


def make_config(tmp: Path, broker_port: int, *, zones: list | None = None, api_port: int | None = None,
                client_id: str = "dozor-hub-test", two_person: dict | None = None, **hub: object) -> HubConfig:
    """``two_person``: the [two_person] section (e.g. ``{"actual": []}`` for a test about something else that
    sends Actual alerts from one caller)."""
    (tmp / "zones.json").write_text(json.dumps(zones if zones is not None else ZONES))
    data = {
        "hub": {"state_dir": "state", "api_port": api_port or free_port(), "confirm_deadline_s": 0.6,
                "max_retries": 2, "zones": "zones.json", "flush_interval_s": 0.05, **hub},
        "mqtt": {"url": f"mqtt://127.0.0.1:{broker_port}", "client_id": client_id},
    }
    if two_person is not None:
        data["two_person"] = two_person
    cfg = parse_config(data, base=tmp)
    admin_token(cfg.hub.state_dir)  # a hub refuses to start without users: every test hub has `test-admin`
    return cfg


def write_toml(tmp: Path, cfg: HubConfig) -> Path:
    h, m = cfg.hub, cfg.mqtt
    text = (f'[hub]\nstate_dir = "{h.state_dir}"\napi_port = {h.api_port}\nconfirm_deadline_s = {h.confirm_deadline_s}\n'
            f'max_retries = {h.max_retries}\nzones = "{h.zones}"\nflush_interval_s = {h.flush_interval_s}\n'
            f'[mqtt]\nurl = "{m.url}"\nclient_id = "{m.client_id}"\n')
    path = tmp / "hub.toml"
    path.write_text(text)
    return path


async def eventually(pred: Callable[[], object], limit_s: float = 15.0, what: str = "condition") -> object:
    """Poll until pred() is truthy. The timeout only bounds a failing test; nothing asserts durations."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        value = pred()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_hub(cfg: HubConfig):
    """A hub in this process; its state dir gets a `test-admin` user first (``hub_token(hub)``)."""
    admin_token(cfg.hub.state_dir)
    hub = Hub(cfg)
    HUB_STATES.append(cfg.hub.state_dir)  # fake gateways started while it runs enroll into it
    task = asyncio.create_task(hub.run())
    try:
        await asyncio.wait_for(hub.mqtt.connected.wait(), 10)
        await asyncio.wait_for(hub.mqtt_ingest.connected.wait(), 10)
        await asyncio.to_thread(wait_port, cfg.hub.api_port)
        yield hub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        HUB_STATES.remove(cfg.hub.state_dir)


def hub_token(hub: Hub) -> str:
    """The admin token of a hub started by ``running_hub`` (or any hub whose state dir the test owns)."""
    return admin_token(hub.config.hub.state_dir)


def api(cfg: HubConfig, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg.hub.api_port}", headers=headers, timeout=10)
