"""``Hub(config)``: MQTT + alert engine + registry + HTTP API in one event loop, cancellable, no globals.

    python -m hub --config examples/hub.toml
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
from collections.abc import Iterable
from pathlib import Path

import uvicorn
from fastapi import APIRouter

from contract.models import Ack, GatewayState, Heartbeat
from hub.alerts import AlertEngine, AlertHook
from hub.api import create_app
from hub.config import HubConfig
from hub.errors import ConfigError
from hub.keys import load_or_create, write_private
from hub.metrics import HubMetrics
from hub.mqtt import CONTROL, INGEST, Dispatcher, HubMqtt
from hub.registry import Registry
from hub.store import Store
from hub.zones import Zones

log = logging.getLogger(__name__)
TOKEN_FILE = "api-token"


def load_or_create_token(state_dir: Path) -> str:
    path = state_dir / TOKEN_FILE
    if not path.exists():
        token = secrets.token_urlsafe(32)
        try:
            write_private(path, token)
            # Printed once, at creation; afterwards read it from the file.
            log.warning("created the hub API token (saved in %s): %s", path, token)
        except FileExistsError:
            pass
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the API token {path}: {exc.strerror or exc}") from None
    if len(token) < 16:
        raise ConfigError(f"API token in {path} is too short (at least 16 characters); delete it to regenerate")
    return token


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the hub handles SIGINT/SIGTERM and shuts down cleanly."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class Hub:
    def __init__(self, config: HubConfig, *, routers: Iterable[APIRouter] = (),
                 hooks: Iterable[AlertHook] = ()) -> None:
        """``routers`` are mounted on the API (e.g. the residents page); ``hooks`` are called with every
        alert change and the new zone states, in parallel with the siren commands."""
        self.config = config
        cfg = config.hub
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = HubMetrics()
        self.keys = load_or_create(cfg.state_dir, cfg.extra_verify_keys)
        self.api_token = load_or_create_token(cfg.state_dir)
        self.zones = Zones.load(cfg.zones)
        self.store = Store(cfg.state_dir / "hub.sqlite")
        self.registry = Registry(self.store, self.metrics)
        self.dispatcher = Dispatcher(self.metrics)
        self.mqtt = HubMqtt(config.mqtt, self.dispatcher, self.metrics, keys=self.keys.all_kids,
                            on_connect=self._on_connect, channels=CONTROL)
        self.mqtt_ingest = HubMqtt(config.mqtt, self.dispatcher, self.metrics, channels=INGEST, control=False)
        self.engine = AlertEngine(cfg, self.keys, self.zones, self.registry, self.store, self.mqtt.publish,
                                  self.metrics, publish_nowait=self.mqtt.publish_nowait)
        self.engine.is_connected = self.mqtt.connected.is_set
        self.engine.flush_writes = self.mqtt.flush_writes
        self.engine.hooks.extend(hooks)
        self.dispatcher.on("state", self._on_state)
        self.dispatcher.on("heartbeat", self._on_heartbeat)
        self.dispatcher.on("ack", self._on_ack)
        for channel in ("telemetry", "event"):  # hub/ingest/ adds its handlers with dispatcher.on(...)
            self.dispatcher.on(channel, lambda _msg, ch=channel: self.metrics.ingest.labels(ch).inc())
        self.app = create_app(self, routers)
        self.server: uvicorn.Server | None = None
        self.started = asyncio.Event()

    # handlers (sync, called from the MQTT message loop)
    def _on_state(self, msg) -> None:
        assert isinstance(msg, GatewayState)
        self.registry.on_state(msg)

    def _on_heartbeat(self, msg) -> None:
        assert isinstance(msg, Heartbeat)
        self.registry.on_heartbeat(msg)

    def _on_ack(self, msg) -> None:
        assert isinstance(msg, Ack)
        self.engine.on_ack(msg)

    async def _on_connect(self) -> None:
        self.engine.on_reconnect()
        await self.engine.republish_zone_states()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.config.hub.flush_interval_s)
            self.engine._flush()

    async def run(self, *, handle_signals: bool = False) -> None:
        """Run until cancelled, or until SIGINT/SIGTERM when ``handle_signals`` (the CLI); then shut down
        cleanly: HubState offline, API closed, queued state flushed."""
        cfg = self.config.hub
        try:  # bind first: a busy port is a clear HubError, not uvicorn's sys.exit inside a task
            sock = socket.create_server((cfg.api_host, cfg.api_port), backlog=1024)
        except OSError as exc:
            raise ConfigError(f"cannot serve the API on {self.config.api_url}: {exc.strerror or exc} "
                              "(is another hub running? change [hub] api_port)") from None
        self.engine.resume()
        self.server = _ApiServer(uvicorn.Config(self.app, host=cfg.api_host, port=cfg.api_port,
                                                    log_level="warning", lifespan="off", access_log=False))
        log.info("hub %s: API on %s, MQTT %s, signing key %s", cfg.state_dir, self.config.api_url,
                 self.config.mqtt.url, self.keys.kid)
        tasks = [asyncio.create_task(c, name=n) for n, c in (
            ("mqtt", self.mqtt.run()), ("mqtt-ingest", self.mqtt_ingest.run()), ("engine", self.engine.run()), ("registry", self.registry.run()),
            ("flusher", self._flusher()), ("api", self.server.serve(sockets=[sock])))]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        tasks.append(asyncio.create_task(stop.wait(), name="signal"))
        self.started.set()
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            self.server.should_exit = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.mqtt.close(), 2)  # HubState offline while still connected
            api = next(t for t in tasks if t.get_name() == "api")
            for task in tasks:
                if task is not api:
                    task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(api), 5)
            api.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.engine.close()
            self.engine._flush()
            self.store.close()
            log.info("hub stopped")
