"""A zone's past alerts (24 h and 7 days) with start, end and duration, from the hub's persisted alerts.

The seam is one callable, ``AlertDocs = () -> Iterable[Mapping]``, returning the hub store's alert documents
(``hub.store.Store.load_alerts``): never the engine's memory, so a restarted hub still shows its history. Only
alerts that reached residents count: a pending, withdrawn or otherwise unsent alert (a status outside
``SHOWN``, or ``phase_seq`` 0: its first phase never began) is never listed. Exercises are listed for testers
only. Results are cached for ``ttl_s`` and dropped when an alert changes (``invalidate``), so a page load does
not read SQLite each time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

log = logging.getLogger(__name__)
AlertDocs = Callable[[], Iterable[Mapping[str, Any]]]
SHOWN = frozenset({"active", "all_clear", "stopped", "cancelled", "expired"})
DAY, WEEK = 86_400.0, 7 * 86_400.0


@dataclass(frozen=True)
class PastAlert:
    id: str
    signal: str
    mode: str
    status: str
    started: float
    ended: float | None  # None: still active

    def duration_s(self, now: float) -> float:
        return max(0.0, (self.ended if self.ended is not None else now) - self.started)


def from_doc(doc: Mapping[str, Any]) -> PastAlert | None:
    """One persisted alert document -> PastAlert; None when it never reached residents or is unreadable."""
    try:
        status = str(doc["status"])
        if status not in SHOWN or int(doc.get("phase_seq", 1)) < 1:  # never sent (e.g. expired unconfirmed)
            return None
        started = float(doc["created_at"])
        phases = [*doc.get("history", ()), {"phase": doc.get("phase"), "started_at": doc.get("phase_started_at")}]
        ended = next((float(p["started_at"]) for p in phases
                      if p.get("phase") in ("all_clear", "stop") and p.get("started_at")), None)
        if ended is None and status == "expired":
            ended = float(doc["expires_at"])
        if ended is None and status != "active":
            ended = float(doc.get("updated_at") or started)
        return PastAlert(id=str(doc["id"]), signal=str(doc["signal"]), mode=str(doc["mode"]), status=status,
                         started=started, ended=ended)
    except (KeyError, TypeError, ValueError):
        return None


class History:
    def __init__(self, source: AlertDocs | None, *, ttl_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.source, self.ttl_s, self.clock = source, ttl_s, clock
        self._cache: tuple[float, list[tuple[frozenset[str], PastAlert]]] | None = None
        self.errors = 0
        self.overlay: Mapping[str, tuple[float | None, float | None]] = {}  # alert id -> (started, ended)

    def invalidate(self) -> None:
        self._cache = None

    def _all(self) -> list[tuple[frozenset[str], PastAlert]]:
        now = self.clock()
        if self._cache is not None and now - self._cache[0] < self.ttl_s:
            return self._cache[1]
        rows: list[tuple[frozenset[str], PastAlert]] = []
        if self.source is not None:
            try:
                for doc in self.source():
                    past = from_doc(doc)
                    if past is not None and now - (past.ended or now) <= WEEK:
                        rows.append((frozenset(doc.get("zones") or ()), past))
            except Exception:  # noqa: BLE001 - a store error must never take the page down: counted, logged
                self.errors += 1
                log.exception("cannot read the alert history")
                return self._cache[1] if self._cache is not None else []
        rows.sort(key=lambda r: r[1].started, reverse=True)
        self._cache = (now, rows)
        return rows

    def of_zone(self, zone: str, *, tester: bool = False, within_s: float = WEEK) -> list[PastAlert]:
        now, out = self.clock(), []
        for zones, p in self._all():
            ended = self.overlay.get(p.id, (None, None))[1]
            if ended is not None and p.ended is None:
                p = replace(p, ended=ended)
            if zone in zones and (tester or p.mode == "actual") and now - (p.ended or now) <= within_s:
                out.append(p)
        return out
