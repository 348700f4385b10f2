"""``Hub(config)``: MQTT + alert engine + registry + HTTP API + telemetry ingest in one event loop,
cancellable, no globals.

    python -m hub --config examples/hub.toml

Telemetry: the ingest connection's batches and events go through ``hub.ingest`` (dedup, range checks, line
protocol with a ``zone`` tag from ``zone_of``) into the latest-state cache (``hub.latest``) and, with a
``[store]``, the durable spool and the time-series store. Fleet and alert points (births, last-wills,
heartbeat timeouts, heartbeats with outbox and device states, zone states, acks; ``hub.grafana.points``) go
through the same spool. With a persistent MQTT session, telemetry is PUBACKed only after its lines are
committed to the spool, so a crashed hub gets the uncommitted messages again from the broker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterable

import uvicorn
from fastapi import APIRouter

from contract.models import HubState
from hub.alerts import AlertEngine, AlertHook
from hub.alerts.actors import SYSTEM
from hub.api import create_app
from hub.audit import AuditLog
from hub.audit.retention import ARCHIVE_DIR
from hub.audit.service import Anchorer, record_signing_key, retain
from hub.config import HubConfig
from hub.errors import ConfigError, HubError
from hub.events import GatewayEvents
from hub.gwtrust import GatewayTrust, TrustStore, Verifier
from hub.ha import Follower, LeaderProxy, holder_name, instance_id
from hub.identity import Actor, UserStore, WindowLimiter, parse_role
from hub.identity.setup import build_authenticator
from hub.ingest.latest import LatestCache
from hub.ingest.pipeline import Ingest
from hub.ingest.receipts import Receipts
from hub.ingest.service import IngestConfig, IngestService
from hub.ingest.writer import TargetConfig
from hub.keys import KeyRing
from hub.leader import Leadership
from hub.limits import Guard
from hub.memprobe import from_env as memprobe_settings
from hub.memprobe import run_probe
from hub.metrics import HubMetrics, IngestCollector, StateSizes
from hub.models import ResidentReach
from hub.mqtt import CONTROL, INGEST, Dispatcher, HubMqtt
from hub.nodes import NodeRegistry, firmware_source_version
from hub.registry import Registry
from hub.residents import web as residents_web
from hub.residents.channels import base as residents_channels
from hub.residents.config import ResidentsConfig, build_residents
from hub.sendfirst import SendFirst
from hub.serving import ApiServer, check_secrets, warn_inline_secrets, warn_plain_forwarding
from hub.shutdown import shutdown
from hub.store import Store
from hub.violations.service import Violations
from hub.zones import Zones
from runtime import memtrim, sdnotify
from runtime.supervise import Supervisor, reap

log = logging.getLogger(__name__)
# alert events that go into the tamper-evident chain: operator actions and state changes (retries and per-device
# escalations stay in the alert's own log, GET /api/v1/alerts/{id}/log)
ALERT_CHAIN_KINDS = frozenset({"request", "confirm", "confirm_refused", "start", "break_glass", "break_glass_refused",
                               "stop", "all_clear", "cancel", "withdrawn", "request_expired", "expired",
                               "superseded"})


class Hub(GatewayEvents):
    def __init__(self, config: HubConfig, *, routers: Iterable[APIRouter] = (),
                 hooks: Iterable[AlertHook] = ()) -> None:
        """``routers`` are mounted on the API (e.g. the residents page); ``hooks`` are called with every
        alert change and the new zone states, in parallel with the siren commands."""
        self.config = config
        cfg = config.hub
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = HubMetrics()
        self.keyring = KeyRing(cfg.state_dir)
        self.keys = self.keyring.load(cfg.extra_verify_keys)
        check_secrets(config)
        self.backend = config.backend()  # hub state: SQLite files in state_dir, or PostgreSQL (hub/repo)
        log.info("hub state: %s at %s", self.backend.kind, self.backend.where)
        self.users = UserStore.in_backend(self.backend)
        self.identity = build_authenticator(config, self.users, self.metrics)
        self.audit = AuditLog.in_backend(self.backend)
        self.audit.on_append.append(lambda rec: self.metrics.audit_records.labels(rec.action).inc())
        record_signing_key(self.audit, self.keys)
        self.zones = Zones.load(cfg.zones)
        self.store = Store(cfg.state_dir / "hub.sqlite") if self.backend.kind == "sqlite" else \
            Store(self.backend.open("hub"))
        self.leader = None if self.backend.kind == "sqlite" else Leadership(
            self.store.db, cfg.leader_lease_s, on_fenced=lambda: self.metrics.publish_errors.labels("fenced").inc(),
            holder=holder_name(cfg.advertise_url or config.api_url))  # followers forward alert requests there
        # every instance serves (hub.ha): a follower mirrors the database until it takes the lease; with a
        # shared subscription group every instance also takes its share of telemetry from the start
        self.follower = Follower(self, cfg.follower_refresh_s) if self.leader is not None else None
        self.shared_ingest = self.leader is not None and bool(config.mqtt.share_group)
        if self.leader is not None:
            self.store.fence = self.leader.lease.check  # hub state is written only under the lease
        self.registry = Registry(self.store, self.metrics)
        current_fw = config.firmware.current_version or firmware_source_version()
        if current_fw is None:
            log.warning("no current field-node firmware version: set [firmware] current_version in the hub "
                        "config to list out-of-date nodes")
        self.nodes = NodeRegistry(self.store.db, current_fw, on_error=self.metrics.store_errors.inc)
        self.dispatcher = Dispatcher(self.metrics, cfg.topics)  # the tenant's topics only
        self.mqtt = HubMqtt(config.mqtt, self.dispatcher, self.metrics, keys=self.keys.all_kids,
                            on_connect=self._on_connect, on_refresh=self._republish_retained, channels=CONTROL)
        self.mqtt_ingest = HubMqtt(config.mqtt, self.dispatcher, self.metrics, channels=INGEST, control=False,
                                   instance=instance_id(cfg.state_dir.resolve()) if self.shared_ingest else None)
        self.gwtrust = GatewayTrust(TrustStore.in_backend(self.backend), count=lambda ch, r: self.metrics.unverified.labels(ch, r).inc(),
                                    reset_session=self.registry.reset_session, publish=self.mqtt.publish,
                                    topics=cfg.topics)
        self.dispatcher.verifier = self.gwtrust.verifier  # only enrolled gateways' signed, fresh messages pass
        self.anchorer = Anchorer(self.audit, self.keys, self.mqtt.publish, self.metrics, cfg.audit_anchor_interval_s,
                                 topic=cfg.topics.hub_audit_head)
        publish, nowait = self.mqtt.publish, self.mqtt.publish_nowait
        if self.leader is not None:  # commands leave only under the lease
            publish, nowait = self.leader.fence(publish), self.leader.fence_nowait(nowait)
        self.engine = AlertEngine(cfg, self.keys, self.zones, self.registry, self.store, publish,
                                  self.metrics, publish_nowait=nowait,
                                  two_person=config.two_person)
        self.engine.is_connected = self.mqtt.connected.is_set
        self.engine.flush_writes = self.mqtt.flush_writes
        # a phase's commands go out before the control connection's acks and heartbeats are handled
        self.engine.send_first = self.mqtt.send_first = SendFirst(
            self.dispatcher.dispatch, on_count=lambda what, n: self.metrics.held_back.labels(what).inc(n))
        self.engine.hooks.extend(hooks)
        self.engine.audit_sink = self._audit_alert
        # linked resident alerts: the page, live stream and CAP feed always; channels as configured
        rcfg = config.residents or ResidentsConfig(public_url=config.api_url)
        self.residents = build_residents(
            rcfg, [{"id": z.id, "name": {**dict.fromkeys(("uk", "en"), z.name or z.id), **z.names},
                    "polygon": z.polygon.model_dump(mode="json") if z.polygon is not None else None}
                   for z in self.zones], token=None, identity=True, alert_docs=self.store.load_alerts,
            subscriptions_db=self.backend.open("push") if self.backend.kind == "postgres" and rcfg.webpush else None)
        self.engine.hooks.append(self.residents.notifier.on_alert)
        routers = [*routers, self.residents.router]
        self.dispatcher.on("state", self._on_state)
        self.dispatcher.on("heartbeat", self._on_heartbeat)
        self.dispatcher.on("ack", self._on_ack)
        for channel in ("telemetry", "event"):
            self.dispatcher.on(channel, lambda _msg, c=self.metrics.ingest.labels(channel): c.inc())
        # telemetry: the latest-state cache always; the time-series store (through a durable spool) when
        # [store] names one. Fleet and alert points go through the same spool.
        self._home_zone = self._home_zones()
        self._verdicts: dict[str, float] = {}  # gateway -> registry `since` of the last verdict point written
        self.latest = LatestCache()
        self.ingest: IngestService | None = None
        self.receipts: Receipts | None = None
        store = config.store
        if store.kind != "none":
            assert store.spool is not None
            store.spool.parent.mkdir(parents=True, exist_ok=True)
            target = TargetConfig(store.kind, store.url, database=store.database, org=store.org, token=store.resolved_token(),
                                  username=store.username, password=store.password, timeout_s=store.timeout_s,
                                  tenant=cfg.tenant)  # a named tenant: every series tagged tenant=<name>
            self.ingest = IngestService(IngestConfig(target=target, spool_path=store.spool,
                                                     flush_interval_s=store.flush_interval_s,
                                                     backoff_cap_s=store.backoff_cap_s,
                                                     head_check=store.head_check,
                                                     head_check_url=store.head_check_url),
                                        zone_of=self.zone_of, on_reading=self.latest.on_reading,
                                        on_rows=self.latest.on_rows, ack_delay_s=store.commit_delay_s)
            self.pipeline = self.ingest.ingest
            if config.mqtt.persistent_session:  # PUBACK telemetry only once it is in the durable spool
                self.mqtt_ingest.defer_ack = self.ingest.defer_ack
            if config.mqtt.receipts:  # and tell each gateway what is durable (a PUBACK is only the broker's word)
                self.receipts = Receipts(self.mqtt_ingest.publish_nowait, topics=self.dispatcher.topics)
                self.ingest.on_committed = self.receipts.add
            self.dispatcher.on("telemetry", self.ingest.on_telemetry)
            self.dispatcher.on("event", self.ingest.on_event)
        else:  # no store: readings only feed the cache (still deduplicated and range-checked)
            self.pipeline = Ingest(zone_of=self.zone_of, on_reading=self.latest.on_reading, on_rows=self.latest.on_rows)
            self.dispatcher.on("telemetry", self.pipeline.batch_lines)
        # the noise violations register: signed pass-by evidence, review, exports (hub/violations/)
        self.violations = Violations(config.noise, cfg.state_dir / "violations.sqlite" if self.backend.kind == "sqlite"
                                     else self.backend.open("violations"), zone_of=self.zone_of,
                                     emit=self._emit, registry=self.metrics.registry)
        self.dispatcher.on("state", self.violations.on_state)
        self.dispatcher.on("event", self.violations.on_event)
        self.registry.listeners.append(self._on_gateway_change)
        self.engine.hooks.append(self._zone_points)
        self.metrics.registry.register(IngestCollector(self._ingest_stats))
        self.metrics.registry.register(StateSizes(self.state_sizes))
        for collector in (residents_channels.DELIVERIES, residents_web.BAD_INPUT):
            self.metrics.registry.register(collector)
        self.app = create_app(self, routers)
        self.server: uvicorn.Server | None = None
        self.started = asyncio.Event()
        self.supervisor: Supervisor | None = None

    def _ingest_stats(self) -> dict[str, int]:
        if self.ingest is not None:
            return self.ingest.stats()
        return {f"ingest.{k}": v for k, v in self.pipeline.counters.items()}

    def state_sizes(self) -> dict[str, int]:
        """Items in the hub's bounded in-memory structures (``dozor_hub_state_items``; docs/operations.md)."""
        return {**self.engine.sizes(), "telemetry_tail": len(self.latest.tail), "telemetry_devices": len(self.latest.devices),
                "gateways": len(self.registry.gateways), "nodes": len(self.nodes.nodes),
                "resident_alert_times": len(self.residents.notifier.store.times),
                "resident_messages": len(self.residents.notifier.archive),
                "python_allocated_blocks": sys.getallocatedblocks()}  # live objects, vs RSS (allocator high water)

    def resident_reach(self, zones: list[str]) -> ResidentReach:
        """Who among residents an alert on ``zones`` reaches: Web Push subscriptions there, open pages, channels."""
        subs = self.residents.subscriptions
        notifier = self.residents.notifier
        return ResidentReach(web_push=None if subs is None else sum(len(subs.for_zone(z)) for z in zones),
                             live_viewers=notifier.store.listener_count(),
                             channels=[c.name for c in notifier.channels])

    def _audit_alert(self, actor: dict, kind: str, subject: str | None, details: dict) -> None:
        """The alert engine's operator actions and state changes, into the audit chain (the hub's own clock
        and policy as actor ``None``)."""
        if kind not in ALERT_CHAIN_KINDS:
            return
        who = None if actor == SYSTEM else Actor(actor["name"], parse_role(actor["role"]), actor["via"])
        self.audit.append(who, f"alert.{kind}", subject or "", details)

    async def _on_connect(self) -> None:
        self.engine.on_reconnect()
        await self._republish_retained()

    async def _republish_retained(self) -> None:
        await self.engine.republish_zone_states()
        await self.anchorer.on_connect()  # the signed audit head goes out again at once

    async def _lead(self) -> None:
        """Hold the state database lease before acting (a standby waits here), then re-read what the previous
        leader may have written since this hub was built: the gateways' replay floors (alerts resume next)."""
        assert self.leader is not None and self.follower is not None
        log.info("serving the API on %s from the shared state database; alert requests go to the leader",
                 self.config.api_url)
        await self.leader.take()
        self.follower.stop()
        v = self.gwtrust.verifier
        self.gwtrust.verifier = self.dispatcher.verifier = Verifier(v.store, count=v.count, on_epoch=v.on_epoch)

    async def _keys_watch(self, interval_s: float = 0.5) -> None:
        """``dozor hub keys stage|activate|retire`` change hub-keys.json: sign with the new active key from the
        next command on, and announce the new set of keys."""
        while True:
            await asyncio.sleep(interval_s)
            if not self.keyring.changed():
                continue
            try:
                keys = self.keyring.load(self.config.hub.extra_verify_keys)
            except HubError as exc:
                log.error("hub keys changed but cannot be loaded (still signing with %s): %s", self.keys.kid, exc)
                continue
            if keys.kid != self.keys.kid:
                log.warning("hub signing key is now %s (was %s)", keys.kid, self.keys.kid)
            self.keys = self.engine.keys = self.anchorer.keys = keys
            self.mqtt.keys = keys.all_kids
            await self.mqtt.publish(self.config.hub.topics.hub_state, HubState(state="online", ts=time.time(),
                                                               keys=keys.all_kids).to_bytes(), 1, True)

    def long_lived_tasks(self) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        """Every long-lived task of the hub except the API server, by name, as factories: ``run`` starts each
        under one ``runtime.supervise.Supervisor``, so a task that fails is counted
        (``dozor_hub_task_failures_total{task}``), logged once with its cause, and restarted. The serving tasks
        run on every instance from the start; the others only once this instance leads (``hub.ha``)."""
        return self.serving_tasks() + self.leader_tasks()

    def serving_tasks(self) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        out: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        if self.follower is not None:
            out.append(("follower", self.follower.run))
        if self.shared_ingest:
            out.extend(self._ingest_tasks())
        if self.config.hub.memory_trim_s > 0:  # RSS follows live objects, not the peak of the last alert start
            out.append(("memtrim", lambda: memtrim.trim_every(self.config.hub.memory_trim_s,
                                                              quiet=lambda: not self.engine.busy)))
        if (probe := memprobe_settings()) is not None:
            out.append(("memprobe", lambda: run_probe(*probe)))
        return out

    def leader_tasks(self) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        out: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("mqtt", self.mqtt.run), ("engine", self.engine.run),
            ("registry", self.registry.run), ("flusher", self._flusher), ("audit-anchor", self.anchorer.run),
            ("audit-retention", lambda: retain(self.audit, lambda: self.keys, days=self.config.hub.audit_retention_days,
                                               archive_dir=self.config.hub.state_dir / ARCHIVE_DIR)),
            ("gwtrust", self.gwtrust.run), ("held-births", self._release_held), ("keys", self._keys_watch),
            *([("lease", self.leader.keep)] if self.leader is not None else []),
            ("sd_notify", lambda: sdnotify.keepalive(f"API on {self.config.api_url}"))]
        if not self.shared_ingest:
            out.extend(self._ingest_tasks())
        return out

    def _ingest_tasks(self) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        return [("mqtt-ingest", self.mqtt_ingest.run), *([("ingest", self.ingest.run)] if self.ingest else []),
                *([("receipts", self.receipts.run)] if self.receipts else [])]

    async def _release_held(self, interval_s: float = 0.25) -> None:
        while True:  # births refused before their gateway's enrollment was seen go through once it is
            await asyncio.sleep(interval_s)
            self.dispatcher.release_held()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.config.hub.flush_interval_s)
            await self.engine.flush_queued_off_loop()

    async def _start_signer(self) -> None:
        try:
            await self.engine.signer.start(self.keys.private, self.keys.kid)
        except Exception as exc:  # noqa: BLE001 - big phases are then signed on the event loop (slower, correct)
            self.metrics.task_failures.labels("signer").inc()
            log.error("cannot start the command signer process (%r): commands are signed on the event loop", exc)
            self.engine.signer.close()

    async def run(self, *, handle_signals: bool = False) -> None:
        """Run until cancelled, or until SIGINT/SIGTERM when ``handle_signals`` (the CLI); then shut down
        cleanly: HubState offline, API closed, queued state flushed."""
        cfg = self.config.hub
        try:  # bind first: a busy port is a clear HubError, not uvicorn's sys.exit inside a task
            sock = socket.create_server((cfg.api_host, cfg.api_port), backlog=1024)
        except OSError as exc:
            raise ConfigError(f"cannot serve the API on {self.config.api_url}: {exc.strerror or exc} "
                              "(is another hub running? change [hub] api_port)") from None
        self.proxy = LeaderProxy(self.app, self) if self.leader is not None else None
        guarded = Guard(self.proxy or self.app, public=WindowLimiter(cfg.public_requests_per_min, 60.0),
                        on_too_large=self.metrics.api_body_too_large.inc,
                        on_limited=lambda what: self.metrics.api_rate_limited.labels(what).inc())
        tls = {} if cfg.tls_cert_file is None else {"ssl_certfile": str(cfg.tls_cert_file),
                                                    "ssl_keyfile": str(cfg.tls_key_file)}
        self.server = ApiServer(uvicorn.Config(guarded, host=cfg.api_host, port=cfg.api_port, log_level="warning",
                                               lifespan="off", access_log=False, proxy_headers=True,
                                               forwarded_allow_ips=list(cfg.trusted_proxies), **tls))
        warn_inline_secrets(self.config)
        if self.leader is not None:
            warn_plain_forwarding(self.config, cfg.advertise_url or self.config.api_url)
        log.info("hub %s: API on %s, MQTT %s, signing key %s", cfg.state_dir, self.config.api_url,
                 self.config.mqtt.shown, self.keys.kid)
        sup = Supervisor("hub", on_failure=lambda name: self.metrics.task_failures.labels(name).inc(), log=log)
        await sup.__aenter__()
        for name, factory in self.serving_tasks():
            sup.start(name, factory)
        self.supervisor = sup
        tasks = [asyncio.create_task(self.server.serve(sockets=[sock]), name="api")]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        tasks.append(asyncio.create_task(stop.wait(), name="signal"))
        try:
            await self.residents.start()  # Web Push workers spawn before the first alert, not during it
            await self._start_signer()  # so does the command signer process (a follower's too: warm at takeover)
            if self.leader is not None:  # a follower serves (hub.ha) until it holds the lease
                lead = asyncio.create_task(self._lead(), name="lead")
                await asyncio.wait([lead, *tasks], return_when=asyncio.FIRST_COMPLETED)
                if not lead.done():  # stopped (or the API failed) before this instance ever led
                    await reap(lead)
                    for task in tasks:
                        if task.done() and task.exception() is not None:
                            raise task.exception()
                    return
                lead.result()
                tasks.append(asyncio.create_task(self.leader.lost.wait(), name="lease"))
            self.engine.resume()
            for name, factory in self.leader_tasks():
                sup.start(name, factory)
            self.started.set()
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
            if self.leader is not None and self.leader.lost.is_set():
                raise HubError("lost the state database lease to another hub")
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await shutdown(self, sup, tasks, watchdog=handle_signals)
