"""Gateway identities: enrollment (no trust on first use), verification of signed gateway messages, recovery.

State: the ``trust`` component of the hub's state backend (hub/repo: ``state_dir/gateway-trust.sqlite`` (WAL), or
tables in PostgreSQL), written by the CLI (``dozor gateways enroll|reset --config``, ``dozor provision``,
``dozor sim city --hub-config``) and read by the running hub, which notices other writers through a change
counter (``trust_version``, bumped by every enrollment change; SQLite's ``data_version`` as well) and reloads.

    enrollment  gateway -> public key, kid, enrolled_at, epoch, clear_retained
    floors      gateway -> replay floor (contract.signed.ReplayGuard) persisted by the hub
    log         append-only record of enrollments and resets, with the reason and who gave it

``epoch`` goes up at every new enrollment (a new key: a re-provisioned gateway) and every ``reset``. A new
epoch drops the gateway's replay floor and its known session, on purpose: the next verified message sets them.
``Verifier.open`` is the single door for gateway messages in the hub: a payload comes out only if it is sealed
by the enrolled key of the gateway named in the topic and its (session, counter) is fresh; anything else is
counted per channel and reason, logged at most once a minute per gateway and reason, and dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from contract import topics
from contract.command import key_id, public_key_from_b64
from contract.signed import ReplayGuard, Unverified, open_sealed
from contract.topics import check_id
from hub.errors import ConfigError, StoreError
from hub.repo import Backend, Database
from hub.repo.db import SqliteDatabase
from hub.repo.schema import TRUST
from hub.sodium import SodiumKey
from hub.trustfloors import FLOOR_EVERY_S, FLOOR_WRITE_S, Floors

log = logging.getLogger(__name__)
TRUST_DB = "gateway-trust.sqlite"
LOG_EVERY_S = 60.0
UNKNOWN_RECHECK_S = 1.0  # a gateway id found not enrolled is looked up in the store again at most this often



@dataclass(frozen=True)
class Enrollment:
    gateway: str
    public_key: str
    kid: str
    enrolled_at: float
    epoch: int
    clear_retained: bool = False

    def doc(self) -> dict:
        return {"gateway": self.gateway, "kid": self.kid, "public_key": self.public_key,
                "enrolled_at": self.enrolled_at, "epoch": self.epoch}


class TrustStore:
    def __init__(self, where: Path | Database) -> None:
        self.db = where if isinstance(where, Database) else Backend.sqlite(Path(where)).open(TRUST)
        self.path = self.db.where

    @classmethod
    def in_backend(cls, backend: Backend) -> TrustStore:
        return cls(backend.open(TRUST))

    def close(self) -> None:
        self.db.close()

    def data_version(self) -> int:
        """Changes since this store opened, by any process (the hub polls it to notice CLI enrollments)."""
        n = self.db.query("SELECT n FROM trust_version WHERE id = 1")
        counter = int(n[0][0]) if n else 0
        if isinstance(self.db, SqliteDatabase):  # also writes by older tools that do not bump the counter
            return counter * 1_000_003 + self.db.data_version()
        return counter

    # ------------------------------------------------------------ queries
    def get(self, gateway: str, tx=None) -> Enrollment | None:
        rows = (tx or self.db).query("SELECT gateway, public_key, kid, enrolled_at, epoch, clear_retained "
                                     "FROM enrollment WHERE gateway = ?", (gateway,))
        return Enrollment(*rows[0][:5], clear_retained=bool(rows[0][5])) if rows else None

    def all(self) -> dict[str, Enrollment]:
        rows = self.db.query("SELECT gateway, public_key, kid, enrolled_at, epoch, clear_retained FROM enrollment")
        return {r[0]: Enrollment(*r[:5], clear_retained=bool(r[5])) for r in rows}

    def to_clear(self) -> list[Enrollment]:
        """The enrollments whose retained birth is still to be cleared (after a re-enrollment or a reset): the
        hub asks every 0.5 s, so this reads those rows only, not a city's 2,000."""
        rows = self.db.query("SELECT gateway, public_key, kid, enrolled_at, epoch, clear_retained FROM enrollment "
                             "WHERE clear_retained <> 0")
        return [Enrollment(*r[:5], clear_retained=True) for r in rows]

    def floors(self) -> dict[str, tuple[int, dict]]:
        return {g: (e, json.loads(d)) for g, e, d in self.db.query("SELECT gateway, epoch, doc FROM floors")}

    def history(self, gateway: str | None = None) -> list[dict]:
        sql = "SELECT seq, ts, gateway, action, actor, detail FROM log"
        rows = self.db.query(sql + (" WHERE gateway = ? ORDER BY seq" if gateway else " ORDER BY seq"),
                             (gateway,) if gateway else ())
        return [{"seq": s, "ts": ts, "gateway": g, "action": a, "actor": actor, **json.loads(d)}
                for s, ts, g, a, actor, d in rows]

    # ------------------------------------------------------------ writes
    @staticmethod
    def _log(tx, gateway: str, action: str, actor: str, detail: dict) -> None:
        tx.execute("INSERT INTO log (ts, gateway, action, actor, detail) VALUES (?, ?, ?, ?, ?)",
                   (time.time(), gateway, action, actor, json.dumps(detail, separators=(",", ":"))))
        tx.execute("UPDATE trust_version SET n = n + 1 WHERE id = 1")

    def enroll(self, gateway: str, public_key: str, *, actor: str = "cli", reason: str = "") -> tuple[Enrollment, bool]:
        """Register ``public_key`` (base64url raw Ed25519) for ``gateway``. Returns (enrollment, changed).

        The same key again changes nothing. A different key is a new enrollment: epoch + 1, floor dropped."""
        check_id(gateway, "gateway id")
        try:
            kid = key_id(public_key_from_b64(public_key))
        except ValueError as exc:
            raise ConfigError(f"--pubkey for {gateway}: {exc}") from None
        with self.db.transaction(lock="trust") as tx:
            old = self.get(gateway, tx)
            if old is not None and old.public_key == public_key.strip():
                return old, False
            epoch = (old.epoch if old else 0) + 1
            tx.execute("INSERT INTO enrollment (gateway, public_key, kid, enrolled_at, epoch, clear_retained) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (gateway) DO UPDATE SET public_key = excluded.public_key,"
                       " kid = excluded.kid, enrolled_at = excluded.enrolled_at, epoch = excluded.epoch, "
                       "clear_retained = excluded.clear_retained",
                       (gateway, public_key.strip(), kid, time.time(), epoch, 1 if old else 0))
            tx.execute("DELETE FROM floors WHERE gateway = ?", (gateway,))
            self._log(tx, gateway, "reenroll" if old else "enroll", actor,
                      {"kid": kid, "previous_kid": old.kid if old else None, "epoch": epoch, "reason": reason})
        log.warning("gateway %s enrolled with identity key %s (epoch %d)", gateway, kid, epoch)
        return self.get(gateway), True  # type: ignore[return-value]

    def reset(self, gateway: str, *, reason: str, actor: str = "cli") -> Enrollment:
        """Operator recovery: forget the gateway's session and replay floor and clear its retained birth."""
        if not reason.strip():
            raise ConfigError("a reset needs a --reason (it is recorded)")
        with self.db.transaction(lock="trust") as tx:
            old = self.get(gateway, tx)
            if old is None:
                raise ConfigError(f"gateway {gateway} is not enrolled (dozor gateways enroll {gateway} --pubkey ...)")
            tx.execute("UPDATE enrollment SET epoch = epoch + 1, clear_retained = 1 WHERE gateway = ?", (gateway,))
            tx.execute("DELETE FROM floors WHERE gateway = ?", (gateway,))
            self._log(tx, gateway, "reset", actor, {"reason": reason, "epoch": old.epoch + 1})
        log.warning("gateway %s reset by %s: %s", gateway, actor, reason)
        return self.get(gateway)  # type: ignore[return-value]

    def revoke(self, gateway: str, *, reason: str, actor: str = "cli") -> bool:
        """Forget the gateway's enrolled key: from the next refresh the hub refuses everything it signs.

        Returns False if it was not enrolled. The log keeps the revoked kid; a replacement cabinet is a new
        enrollment (``enroll``) with a new key."""
        with self.db.transaction(lock="trust") as tx:
            old = self.get(gateway, tx)
            if old is None:
                return False
            tx.execute("DELETE FROM enrollment WHERE gateway = ?", (gateway,))
            tx.execute("DELETE FROM floors WHERE gateway = ?", (gateway,))
            self._log(tx, gateway, "revoke", actor, {"kid": old.kid, "epoch": old.epoch, "reason": reason})
        log.warning("gateway %s revoked by %s: %s", gateway, actor, reason)
        return True

    def retained_cleared(self, gateway: str, epoch: int) -> None:
        self.db.execute("UPDATE enrollment SET clear_retained = 0 WHERE gateway = ? AND epoch = ?", (gateway, epoch))

    def put_floor(self, gateway: str, epoch: int, doc: dict) -> None:
        self.put_floors([(gateway, epoch, doc)])

    def put_floors(self, rows: list[tuple[str, int, dict]]) -> None:
        """Replay floors, (gateway, epoch, doc) each, in one transaction (hub.trustfloors)."""
        with self.db.transaction() as tx:
            tx.executemany(FLOOR_UPSERT, [(g, e, json.dumps(d)) for g, e, d in rows])


FLOOR_UPSERT = ("INSERT INTO floors (gateway, epoch, doc) VALUES (?, ?, ?) ON CONFLICT (gateway) DO UPDATE "
                "SET epoch = excluded.epoch, doc = excluded.doc")


def _open(where: Path | Backend) -> TrustStore:
    return TrustStore.in_backend(where) if isinstance(where, Backend) else TrustStore(where)


def enroll(state_dir: Path | Backend, gateway: str, public_key: str, *, actor: str = "cli",
           reason: str = "") -> tuple[Enrollment, bool]:
    """Library entry point for provisioning: register a gateway's identity public key in the hub's state (a state
    dir's SQLite, or the hub config's backend)."""
    store = _open(state_dir)
    try:
        return store.enroll(gateway, public_key, actor=actor, reason=reason)
    finally:
        store.close()


def revoke(state_dir: Path | Backend, gateway: str, *, reason: str, actor: str = "cli") -> bool:
    """Library entry point for ``dozor provision revoke``: the hub stops trusting the gateway's identity key."""
    store = _open(state_dir)
    try:
        return store.revoke(gateway, reason=reason, actor=actor)
    finally:
        store.close()


@dataclass
class _Gw:
    enrollment: Enrollment
    key: dict[str, SodiumKey]  # kid -> key (libsodium: hub/sodium.py)
    guard: ReplayGuard
    floor_saved_at: float = 0.0
    unverified: int = 0
    state_sha: str = ""  # sha256 of the last accepted state payload (birth or will)
    retained_ok: bool = False  # after a hub restart: that same retained state may be applied once more
    opened_sha: str = ""


class Verifier:
    """The hub's door for gateway messages. ``open`` -> payload or None; ``admit`` -> bool (never raise)."""

    def __init__(self, store: TrustStore, *, count: Callable[[str, str], None],
                 on_epoch: Callable[[str, Enrollment], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.count = count  # (channel, reason) -> metric
        self.on_epoch = on_epoch or (lambda gateway, enrollment: None)
        self.clock = clock
        self.gateways: dict[str, _Gw] = {}
        self.unknown: dict[str, int] = {}  # messages naming a gateway that is not enrolled
        self._version = -1
        self._logged: dict[tuple[str, str], float] = {}
        self._checked: dict[str, float] = {}  # unknown gateway id -> when the store was last asked about it
        # written by GatewayTrust.run: PostgreSQL's from a worker thread (a pool connection of its own); SQLite's
        # one shared connection stays on the loop (a local write, and no transaction of another thread to join)
        self.floors = Floors(store.put_floors, threaded=store.db.dialect == "postgres")
        self.refresh()

    # ------------------------------------------------------------ enrollment changes
    def refresh(self) -> bool:
        """Reload enrollments if another process wrote them. True if something changed."""
        try:
            version = self.store.data_version()
            if version == self._version:
                return False
            self._version = version
            enrolled = self.store.all()
            floors = self.store.floors()
        except StoreError as exc:
            log.error("cannot read the gateway trust store: %s", exc)
            return False
        changed = False
        for gateway, enr in enrolled.items():
            cur = self.gateways.get(gateway)
            if cur is not None and cur.enrollment.epoch == enr.epoch:
                cur.enrollment = enr
                continue
            epoch, doc = floors.get(gateway, (None, None))
            restored = doc is not None and epoch == enr.epoch
            guard = ReplayGuard.from_floor(doc) if restored else ReplayGuard()
            self.gateways[gateway] = _Gw(enr, {enr.kid: SodiumKey(public_key_from_b64(enr.public_key))}, guard,
                                         unverified=cur.unverified if cur else 0,
                                         state_sha=str(doc.get("state_sha", "")) if restored else "",
                                         retained_ok=restored and cur is None)
            changed = True
            if cur is not None:  # a new epoch while running: re-enrolled or reset
                self.on_epoch(gateway, enr)
        for gateway in set(self.gateways) - set(enrolled):
            del self.gateways[gateway]
            changed = True
        return changed

    # ------------------------------------------------------------ verification
    def open(self, gateway: str, channel: str, wire: bytes) -> bytes | None:
        gw = self.gateways.get(gateway)
        if gw is None and self._recheck(gateway) and self.refresh():
            gw = self.gateways.get(gateway)
        if gw is None:
            if gateway in self.unknown or len(self.unknown) < 10_000:  # bounded: topics are attacker input
                self.unknown[gateway] = self.unknown.get(gateway, 0) + 1
            self._refuse(gateway, channel, Unverified("not_enrolled"))
            return None
        try:
            payload = open_sealed(wire, gw.key)
            if channel == "state":
                gw.opened_sha = hashlib.sha256(payload).hexdigest()
            return payload
        except Unverified as exc:
            self._refuse(gateway, channel, exc)
            return None

    def _recheck(self, gateway: str) -> bool:
        """May an unknown gateway id cost a store look-up now? Once per ``UNKNOWN_RECHECK_S`` per id: a flood of
        messages naming ids that are not enrolled (topics are attacker input) must not put two database queries
        on the message loop per message. A gateway enrolled just now is admitted within that second."""
        now = self.clock()
        last = self._checked.get(gateway)
        if last is not None and 0 <= now - last < UNKNOWN_RECHECK_S:
            return False
        if last is None and len(self._checked) >= 10_000:  # bounded
            self._checked.clear()
        self._checked[gateway] = now
        return True

    def admit(self, gateway: str, channel: str, session: int | None, ctr: int | None) -> bool:
        """The replay check for a verified, decoded message; records its counter if fresh."""
        gw = self.gateways.get(gateway)
        if gw is None:
            self._refuse(gateway, channel, Unverified("not_enrolled"))
            return False
        try:
            if session is None or ctr is None:
                raise Unverified("no_counter")
            if channel == "state" and gw.retained_ok and gw.opened_sha == gw.state_sha:
                # The hub restarted: the broker hands it the retained state it had already accepted. It is the
                # gateway's latest word on its state, so it is applied once more (never a different one).
                gw.retained_ok = False
                return True
            gw.guard.admit(session, ctr)
        except Unverified as exc:
            self._refuse(gateway, channel, exc)
            return False
        now = self.clock()
        if channel == "state":
            gw.state_sha, gw.retained_ok = gw.opened_sha, False
        if channel == "state" or now - gw.floor_saved_at > FLOOR_EVERY_S:
            gw.floor_saved_at = now  # written within FLOOR_WRITE_S (hub.trustfloors; no store version taken here:
            # this write is not an enrollment change, and taking the version would swallow other processes' ones)
            self.floors.take(gateway, gw.enrollment.epoch, {**gw.guard.floor(), "state_sha": gw.state_sha})
        return True

    def unverified_of(self, gateway: str) -> int:
        gw = self.gateways.get(gateway)
        return (gw.unverified if gw else 0) + self.unknown.get(gateway, 0)

    def _refuse(self, gateway: str, channel: str, exc: Unverified) -> None:
        self.count(channel, exc.reason)
        gw = self.gateways.get(gateway)
        if gw is not None:
            gw.unverified += 1
        now = time.monotonic()
        key = (gateway, exc.reason)
        if now - self._logged.get(key, -LOG_EVERY_S) >= LOG_EVERY_S:
            if len(self._logged) > 10_000:
                self._logged.clear()
            self._logged[key] = now
            log.warning("ignoring %s message for gateway %s: %s (logged once a minute per gateway and reason)",
                        channel, gateway[:64], exc)


class GatewayTrust:
    """The running hub's side: the verifier for the dispatcher, and a loop that applies enrollment changes made
    by other processes (a reset or re-enrollment drops the registry's session for that gateway and clears its
    retained birth on the broker)."""

    def __init__(self, state_dir: Path | TrustStore, *, count: Callable[[str, str], None],
                 reset_session: Callable[[str], None],
                 publish: Callable[[str, bytes, int, bool], Awaitable[bool]],
                 topics: topics.Topics = topics.DEFAULT) -> None:
        self.topics = topics
        self.store = state_dir if isinstance(state_dir, TrustStore) else TrustStore(state_dir)
        self.reset_session = reset_session
        self.publish = publish
        self.verifier = Verifier(self.store, count=count, on_epoch=self._on_epoch)

    def _on_epoch(self, gateway: str, enrollment: Enrollment) -> None:
        log.warning("gateway %s: new epoch %d (re-enrolled or reset): its session starts afresh", gateway,
                    enrollment.epoch)
        self.reset_session(gateway)

    async def clear_retained(self) -> None:
        for enr in self.store.to_clear():
            if await self.publish(self.topics.gw(enr.gateway, "state"), b"", 1, True):
                self.store.retained_cleared(enr.gateway, enr.epoch)
                log.warning("cleared the retained birth of gateway %s (epoch %d)", enr.gateway, enr.epoch)

    async def run(self, interval_s: float = FLOOR_WRITE_S) -> None:
        while True:
            await self.verifier.floors.save()  # the replay floors taken since the last round, in a thread
            try:
                self.verifier.refresh()
                await self.clear_retained()
            except StoreError as exc:
                log.error("gateway trust store: %s", exc)
            await asyncio.sleep(interval_s)

    def close(self) -> None:
        self.verifier.floors.save_now()
        self.store.close()
