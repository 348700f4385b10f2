"""``Gateway(config)``: the street-cabinet service. No global state, so a simulated city can run many.

    async with Gateway(cfg) as gw:      # opens the state db, the buses and the devices
        await gw.executor.handle(token)  # e.g. in-process, without MQTT
    await Gateway(cfg).run()             # the service: the above plus the supervised MQTT uplink

Counters are a plain dict (``gw.counters.as_dict()``) and go out in every heartbeat. Logs are tagged
with the gateway id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from contract.command import PUBLISHED_TEST_KIDS
from contract.models import Ack, DeviceState, DeviceStatus, GatewayState, Heartbeat, OutboxStats
from gateway.bus import ModbusBus
from gateway.commands import CommandExecutor
from gateway.config import GatewayConfig
from gateway.counters import Counters
from gateway.devices.base import Device, driver_for
from gateway.errors import GatewayError
from gateway.evidence_key import EvidenceKey
from gateway.evidence_key import load_or_create as load_evidence_key
from gateway.health import HealthProbe, run_health
from gateway.identity import GatewayIdentity
from gateway.identity import load_or_create as load_identity
from gateway.outbox import Outbox
from gateway.receipts import ReceiptWindow
from gateway.replay import StateStore
from gateway.telemetry import Telemetry, TelemetrySettings
from gateway.uart import UartBus, UartSettings
from gateway.uplink import Uplink
from gateway.zone import ZoneWatch
from runtime import sdnotify
from runtime.keyfiles import KeyFileError, check_private
from runtime.supervise import Supervisor

SECRET_FILES = (("evidence-key", "evidence signing key"),)  # in state_dir, created 0600 at first start

SW_VERSION = "dozor-gateway/0.1"
STATUS_TIMEOUT_S = 2.0


class _Tagged(logging.LoggerAdapter):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['gateway']}] {msg}", kwargs


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.id = config.gateway.id
        self.counters = Counters()
        self.log = _Tagged(logging.getLogger("dozor.gateway"), {"gateway": self.id})
        self.ack_listeners: list[Callable[[Ack], None]] = []
        self.outbox_stats: Callable[[], OutboxStats] | None = None  # set by the telemetry outbox
        self.buses: dict[str, ModbusBus | UartBus] = {}
        self.devices: dict[str, Device] = {}
        self.store: StateStore | None = None
        self.executor: CommandExecutor | None = None
        self.uplink: Uplink | None = None
        self.outbox: Outbox | None = None
        self.telemetry: Telemetry | None = None
        self.evidence: EvidenceKey | None = None  # signs noise evidence; its public key is in the birth
        self.identity: GatewayIdentity | None = None  # signs every message to the hub (contract.signed)
        self.zone_watch: ZoneWatch | None = None  # the hub's public state of this gateway's zone
        self.started = time.monotonic()

    def _check_secrets(self) -> None:
        """Refuse to start with a private key that group or others can read (it may have leaked already)."""
        keys = [(self.config.mqtt.key_file, "MQTT client key")]
        keys += [(self.config.gateway.state_dir / name, what) for name, what in SECRET_FILES]
        for path, what in keys:
            if path is not None and (what == "MQTT client key" or path.exists()):
                try:
                    check_private(path, what)
                except KeyFileError as exc:
                    raise GatewayError(str(exc)) from None

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Gateway:
        cfg = self.config
        self._check_secrets()
        self.store = StateStore(cfg.gateway.state_dir / "gateway.db", durable=cfg.gateway.durable_replay)
        try:
            tcfg = cfg.telemetry
            self.outbox = Outbox(cfg.gateway.state_dir / "outbox.db", max_bytes=int(tcfg.outbox_max_mb * 1024 * 1024))
            self.outbox_stats = self.outbox.stats
            self.telemetry = Telemetry(self.id, self.outbox, state_dir=cfg.gateway.state_dir, topics=cfg.gateway.topics,
                                       counters=self.counters, log=self.log,
                                       settings=TelemetrySettings(flush_s=tcfg.flush_s, rate=tcfg.drain_rate,
                                                                  coalesce_s=tcfg.coalesce_ms / 1000,
                                                                  burst=tcfg.drain_burst,
                                                                  wire_version=tcfg.wire_version))
            for bcfg in cfg.bus:  # every serial port is owned by one bus object; drivers register with it
                if bcfg.kind == "modbus":
                    self.buses[bcfg.name] = await ModbusBus(bcfg, counters=self.counters, log=self.log).start()
                else:  # started below, once its driver listens, so no byte arrives before it does
                    self.buses[bcfg.name] = UartBus(UartSettings(bcfg.name, bcfg.port, bcfg.baudrate, bcfg.reopen_s),
                                                    counters=self.counters, log=self.log)
            self.evidence = load_evidence_key(cfg.gateway.state_dir)
            self.identity = load_identity(cfg.gateway.state_dir)
            for kid in set(cfg.trust.hub_keys) & PUBLISHED_TEST_KIDS:
                self.log.error("hub key %s is a PUBLISHED TEST KEY (its seed is in the dozor repository): anyone can "
                               "sign commands for this gateway; pin your hub's keys (dozor hub pubkey)", kid)
            if cfg.gateway.zone is not None:
                self.zone_watch = ZoneWatch(cfg.gateway.zone, counters=self.counters, log=self.log)
            self._load_optional_drivers({d.kind for d in cfg.device})
            for dcfg in cfg.device:
                cls = driver_for(dcfg.kind)
                if cls is None:
                    self.counters.inc("device_no_driver")
                    self.log.warning("no driver for device %s of kind %s; it is ignored", dcfg.id, dcfg.kind)
                    continue
                bus_name = getattr(dcfg, "bus", None)
                dev = cls(dcfg, bus=self.buses.get(bus_name) if bus_name else None, counters=self.counters,
                          log=self.log)
                if hasattr(dev, "attach"):  # sensor drivers feed the telemetry pipeline
                    dev.attach(self.telemetry)
                if hasattr(dev, "sign_with"):  # microphones sign their noise evidence with the gateway's key
                    dev.sign_with(self.id, self.evidence)
                if hasattr(dev, "zone_state"):  # ... and suppress siren events from the hub's zone state
                    if self.zone_watch is not None:
                        self.zone_watch.listeners.append(dev.zone_state)
                    else:
                        self.log.warning("device %s: no [gateway] zone, so no siren suppression from the hub's "
                                         "zone state (the local siren detector still works)", dev.id)
                dev.info_listeners.append(self._reannounce)
                self.devices[dev.id] = dev
            for bus in self.buses.values():
                if isinstance(bus, UartBus):
                    await bus.start()
            for dev in self.devices.values():
                await dev.start()
            self.executor = CommandExecutor(
                self.id, keys=cfg.trust.public_keys(), store=self.store, devices=self.devices, emit=self._emit,
                counters=self.counters, max_activation_s=cfg.trust.max_activation_s, log=self.log)
            self.uplink = Uplink(cfg.mqtt, self.id, store=self.store, birth=self.birth, heartbeat=self.heartbeat,
                                 heartbeat_s=cfg.gateway.heartbeat_s, on_command=self.executor.handle,
                                 counters=self.counters, log=self.log, outbox=self.outbox, identity=self.identity,
                                 topics=cfg.gateway.topics)
            if self.zone_watch is not None:
                self.uplink.subscriptions[cfg.gateway.topics.zone_state(self.zone_watch.zone)] = self.zone_watch.on_payload
            self.telemetry.publish = self.uplink.publish_bulk
            if cfg.telemetry.receipt_timeout_s > 0:  # keep what the broker PUBACKed until the hub's receipt
                self.telemetry.receipts = ReceiptWindow(self.counters, self.log, timeout_s=cfg.telemetry.receipt_timeout_s,
                                                        on_release=self.outbox.release_held)
                self.telemetry.receipts.restore(self.outbox.held())  # what an earlier run had no receipt for
                self.uplink.subscriptions[cfg.gateway.topics.gw(self.id, "receipt")] = self.telemetry.receipts.on_payload
            self.uplink.on_connected.append(self.telemetry.on_connected)
            self.uplink.on_disconnected.append(self.telemetry.pause)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.executor is not None:
            await self.executor.close()
        for dev in self.devices.values():
            try:
                await dev.close()
            except Exception:
                self.log.exception("closing device %s", dev.id)
        for bus in self.buses.values():
            await bus.close()
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None
        if self.store is not None:
            self.store.close()
        self.devices.clear()
        self.buses.clear()

    async def run(self) -> None:
        """Run until cancelled."""
        async with self:
            assert self.uplink is not None
            self.log.info("gateway up: %d device(s) on %d bus(es)", len(self.devices), len(self.buses))
            assert self.telemetry is not None and self.outbox is not None
            probe = HealthProbe(self.id, self.config.gateway.state_dir, outbox_stats=self.outbox.stats,
                                uplink_up=self.uplink.connected.is_set, counters=self.counters)
            telemetry, interval = self.telemetry, self.config.telemetry.health_interval_s
            # the gateway's other long-lived tasks: a failure is counted (gateway_task_failures.<task>),
            # logged once with its cause and the task restarted (the uplink supervises its own session tasks)
            async with Supervisor(f"gateway {self.id}", log=self.log,
                                  on_failure=lambda n: self.counters.inc(f"gateway_task_failures.{n}")) as sup:
                sup.start("telemetry", telemetry.run)
                sup.start("health", lambda: run_health(probe, telemetry.submit_reading, interval, log=self.log))
                sup.start("sd_notify", lambda: sdnotify.keepalive(f"{len(self.devices)} device(s)"))
                await self.uplink.run()

    @staticmethod
    def _load_optional_drivers(kinds: set[str]) -> None:
        """Import the driver of every configured kind (the device-kind table names it; importing registers
        it), so the microphone's numpy/scipy are loaded only by gateways that have one."""
        for kind in sorted(kinds):
            driver_for(kind)

    # ------------------------------------------------------------ acks, birth, heartbeat
    def _emit(self, ack: Ack) -> None:
        if self.uplink is not None:
            self.uplink.publish_ack(ack)
        for listener in self.ack_listeners:
            try:
                listener(ack)
            except Exception:
                self.counters.inc("ack_listener_errors")
                self.log.exception("ack listener failed")

    def _reannounce(self) -> None:
        """A device's info changed (a reflashed node reports a new fw): publish the birth again."""
        self.counters.inc("device_info_changes")
        if self.uplink is not None:
            self.uplink.republish_birth()

    def birth(self, session: int) -> GatewayState:
        return GatewayState(gateway=self.id, state="online", session=session, ts=time.time(), sw=SW_VERSION,
                            heartbeat_s=self.config.gateway.heartbeat_s,
                            devices=tuple(d.info() for d in self.devices.values()),
                            keys=tuple(sorted(self.config.trust.hub_keys)), zone=self.config.gateway.zone,
                            evidence_key=self.evidence.public_b64 if self.evidence is not None else None,
                            identity_key=self.identity.public_b64 if self.identity is not None else None)

    async def device_statuses(self) -> tuple[DeviceStatus, ...]:
        """Every device's status, each bounded by ``STATUS_TIMEOUT_S`` (one timer for all: runs every heartbeat)."""
        devices = list(self.devices.values())
        tasks = [asyncio.ensure_future(d.status()) for d in devices]
        if not tasks:
            return ()
        _, late = await asyncio.wait(tasks, timeout=STATUS_TIMEOUT_S)
        for task in late:
            task.cancel()
        out = []
        for dev, task in zip(devices, tasks, strict=True):
            if task in late:
                out.append(DeviceStatus(id=dev.id, state=DeviceState.UNREACHABLE, detail="status timeout"))
            elif (exc := task.exception()) is not None:
                self.counters.inc("status_errors")
                self.log.error("status of %s failed", dev.id, exc_info=exc)
                out.append(DeviceStatus(id=dev.id, state=DeviceState.UNKNOWN, detail=type(exc).__name__))
            else:
                out.append(task.result())
        return tuple(out)

    async def heartbeat(self, session: int, seq: int) -> Heartbeat:
        return Heartbeat(gateway=self.id, session=session, seq=seq, ts=time.time(),
                         uptime_s=time.monotonic() - self.started, devices=await self.device_statuses(),
                         outbox=self.outbox_stats() if self.outbox_stats else None,
                         counters=self.counters.as_dict())
