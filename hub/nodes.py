"""Field nodes (MicroPython noise and air nodes) as the hub knows them, in the hub state (table ``nodes`` of the
``hub`` component: hub.sqlite or PostgreSQL, hub/repo).

Two sources fill a record:

- **Provisioning** (``POST /api/v1/nodes``, sent by ``dozor firmware flash --hub``): id, kind, zone, optional
  lat/lon, the key's fingerprint, the firmware version that was flashed, when and by whom.
- **Gateways**: a node is a ``noise_node`` device of a gateway (its device id is the node id; air nodes speak
  the same frames and use the same driver). The birth's ``DeviceInfo.fw`` and the heartbeat's
  ``DeviceStatus.detail`` (``"fw 1.2 boots 3 errors 0x0000"``, ``contract.codecs.node_frame``) give the gateway,
  last seen, reported firmware, boot count and error bits. A node a gateway reports but nobody registered is
  listed too (``provisioned_at`` null), so a forgotten registration shows.

**Keys.** Only the SHA-256 of the node's 32-byte key is stored (``key_sha256``); the CLI never sends the key.
It is enough to check that a node carries the key it was provisioned with (compare fingerprints) without
the hub's database becoming a place to steal node keys from. If frames are ever authenticated with the key,
the verifier (the gateway) needs the key itself, delivered by the technician's tooling, not by this registry.

**Out of date.** ``current_version`` is ``[firmware] current_version`` of the hub config, else the ``VERSION``
in ``firmware/src/version.py`` next to the hub's code when the hub starts (read as text, not imported), else
unknown. A node's running firmware is the registered full version (``1.0.0``) while its STATUS frames report
the same ``major.minor``; once they report another ``major.minor`` (reflashed by other means), that one. It is
out of date when its version is lower than the current one, compared on the components it has (a node
reporting ``1.0`` is not out of date against ``1.0.1``: STATUS frames cannot tell patch versions apart).

Writes are immediate for registrations and changes of gateway, firmware, boot count or error bits; ``last_seen``
alone is written at most once a minute. A write failure is logged and counted; the record stays in memory.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from contract.codecs.node_frame import parse_status_detail
from contract.models import DeviceKind, GatewayState, Heartbeat
from hub.errors import StoreError
from hub.models import NodeOut, NodeRegistration
from hub.repo import Database
from hub.repo.backend import adopt

log = logging.getLogger(__name__)

LAST_SEEN_PERSIST_S = 60.0
NODE_KINDS = frozenset({DeviceKind.NOISE_NODE})
VERSION_FILE = Path(__file__).resolve().parents[1] / "firmware" / "src" / "version.py"
_VERSION_RE = re.compile(r'^VERSION\s*=\s*["\'](\d{1,3}(?:\.\d{1,3}){1,2})["\']', re.MULTILINE)


def version_tuple(v: str | None) -> tuple[int, ...] | None:
    if not v or not re.fullmatch(r"\d{1,3}(\.\d{1,3}){0,2}", v):
        return None
    return tuple(int(p) for p in v.split("."))


def firmware_source_version(path: Path = VERSION_FILE) -> str | None:
    """The ``VERSION`` string of firmware/src/version.py, or None when the file is not there (a hub image
    without the firmware sources: set ``[firmware] current_version`` then)."""
    try:
        m = _VERSION_RE.search(path.read_text())
    except OSError:
        return None
    return m[1] if m else None


@dataclass(slots=True)
class NodeRecord:
    id: str
    kind: str | None = None
    zone: str | None = None
    lat: float | None = None
    lon: float | None = None
    key_sha256: str | None = None
    fw: str | None = None
    provisioned_at: float | None = None
    provisioned_by: str | None = None
    gateway: str | None = None
    last_seen: float | None = None
    reported_fw: str | None = None
    boot_count: int | None = None
    error_bits: int | None = None
    state: str | None = None

    def running_fw(self) -> str | None:
        reg, rep = version_tuple(self.fw), version_tuple(self.reported_fw)
        if rep is None:
            return self.fw
        if reg is not None and reg[:len(rep)] == rep:
            return self.fw
        return self.reported_fw


MAX_NODES = 100_000  # records; a gateway reporting ever new ids cannot grow the registry without bound
UNREGISTERED_MAX_AGE_S = 30 * 86400.0  # a node only gateways reported (never provisioned), unseen this long: pruned
PRUNE_EVERY_S = 3600.0


class NodeRegistry:
    """Bounded: at most ``max_nodes`` records (reports of new ids beyond that are counted ``refused`` and
    dropped); nodes never provisioned and not seen for ``UNREGISTERED_MAX_AGE_S`` are pruned (provisioned nodes
    are inventory and stay until deleted)."""

    max_nodes = MAX_NODES

    def __init__(self, db: Database | sqlite3.Connection, current_version: str | None, *,
                 on_error: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.time) -> None:
        self.db = adopt(db, "hub") if isinstance(db, sqlite3.Connection) else db
        self.current_version = current_version
        self.on_error = on_error
        self.clock = clock
        self.nodes: dict[str, NodeRecord] = {}
        self._persisted_seen: dict[str, float] = {}
        self.refused = 0
        self.pruned = 0
        self._last_prune = float("-inf")
        for node_id, doc in self.db.query("SELECT id, doc FROM nodes"):
            try:
                self.nodes[node_id] = NodeRecord(**json.loads(doc))
            except (TypeError, ValueError) as exc:  # a damaged row must not keep the hub down
                self.on_error()
                log.error("skipping unreadable node %s in the hub state: %r", node_id, exc)

    # ------------------------------------------------------------ provisioning
    def register(self, req: NodeRegistration, *, now: float | None = None) -> NodeOut:
        rec = self.nodes.get(req.id) or NodeRecord(id=req.id)
        rec.kind, rec.zone, rec.lat, rec.lon = req.kind, req.zone, req.lat, req.lon
        rec.key_sha256, rec.fw, rec.provisioned_by = req.key_sha256, req.fw, req.provisioned_by
        rec.provisioned_at = self.clock() if now is None else now
        self.nodes[rec.id] = rec
        self._persist(rec)
        log.info("node %s registered: %s node in zone %s, firmware %s", rec.id, rec.kind, rec.zone, rec.fw)
        return self.out(rec)

    # ------------------------------------------------------------ what gateways report (sync, never raise)
    def on_birth(self, msg: GatewayState) -> None:
        if msg.state != "online":
            return
        for dev in msg.devices:
            if dev.kind in NODE_KINDS:
                self._report(dev.id, msg.gateway, fw=dev.fw)

    def on_heartbeat(self, msg: Heartbeat, kinds: dict[str, DeviceKind | None]) -> None:
        for st in msg.devices:
            if kinds.get(st.id) not in NODE_KINDS:
                continue
            parsed = parse_status_detail(st.detail)
            fw, boots, errors = parsed if parsed is not None else (None, None, None)
            self._report(st.id, msg.gateway, fw=fw, boots=boots, errors=errors, state=st.state.value)

    def _report(self, node_id: str, gateway: str, *, fw: str | None = None, boots: int | None = None,
                errors: int | None = None, state: str | None = None) -> None:
        rec = self.nodes.get(node_id)
        if rec is None:
            if self.clock() - self._last_prune >= PRUNE_EVERY_S:
                self.prune()
            if len(self.nodes) >= self.max_nodes:
                self.refused += 1
                if self.refused in (1, 10, 100, 1000) or self.refused % 10000 == 0:
                    log.error("node registry full (%d records): report of new node %s dropped (%d so far)",
                              self.max_nodes, node_id, self.refused)
                return
            rec = self.nodes[node_id] = NodeRecord(id=node_id)
        before = (rec.gateway, rec.reported_fw, rec.boot_count, rec.error_bits, rec.state)
        rec.gateway = gateway
        rec.last_seen = now = self.clock()
        if fw is not None:
            rec.reported_fw = fw
        if boots is not None:
            rec.boot_count, rec.error_bits = boots, errors
        if state is not None:
            rec.state = state
        changed = before != (rec.gateway, rec.reported_fw, rec.boot_count, rec.error_bits, rec.state)
        if changed or now - self._persisted_seen.get(node_id, 0.0) >= LAST_SEEN_PERSIST_S:
            self._persist(rec)

    def prune(self, *, now: float | None = None) -> int:
        """Forget nodes that were never provisioned and not seen for ``UNREGISTERED_MAX_AGE_S``."""
        now = self.clock() if now is None else now
        self._last_prune = now
        old = [n for n, r in self.nodes.items()
               if r.provisioned_at is None and (r.last_seen or 0.0) < now - UNREGISTERED_MAX_AGE_S]
        for node_id in old:
            self.nodes.pop(node_id, None)
            self._persisted_seen.pop(node_id, None)
        if old:
            try:
                self.db.executemany("DELETE FROM nodes WHERE id = ?", [(n,) for n in old])
            except StoreError as exc:
                self.on_error()
                log.error("cannot prune nodes from the hub state: %s", exc)
            self.pruned += len(old)
        return len(old)

    def _persist(self, rec: NodeRecord) -> None:
        try:
            self.db.execute("INSERT INTO nodes (id, doc) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                            (rec.id, json.dumps(asdict(rec))))
        except StoreError as exc:
            self.on_error()
            log.error("cannot write node %s to the hub state: %s", rec.id, exc)
            return
        self._persisted_seen[rec.id] = rec.last_seen or 0.0

    # ------------------------------------------------------------ queries
    def outdated(self, rec: NodeRecord) -> bool | None:
        cur, run = version_tuple(self.current_version), version_tuple(rec.running_fw())
        if cur is None or run is None:
            return None
        return run < cur[:len(run)]

    def out(self, rec: NodeRecord) -> NodeOut:
        return NodeOut(**asdict(rec), running_fw=rec.running_fw(), current_version=self.current_version,
                       outdated=self.outdated(rec))

    def list(self, *, outdated: bool | None = None) -> list[NodeOut]:
        rows = [self.out(r) for _, r in sorted(self.nodes.items())]
        return rows if outdated is None else [r for r in rows if r.outdated is outdated]
