"""After an unclean stop: which of the spool's oldest lines the store already holds.

The spool deletes a row only after the store accepted it. A hub killed between the two (``kill -9``, a crash, a
power cut that undoes recent deletes) leaves rows that are both stored and still spooled; written again they
would be stored twice: VictoriaMetrics keeps every sample it is sent (no ``-dedup.minScrapeInterval`` by
default), so a raw count would read one reading twice. InfluxDB overwrites a point with the same series and
timestamp, so writing it again is harmless there.

The spool writes oldest first, so such rows are its head. On its first flush after an unclean stop it asks a
``HeadCheck`` which lines of the head are still missing from the store, a request's worth at a time, and writes
only those (a line the store holds only some fields of is written with the missing fields only). It goes on
while the store holds at least part of a request's lines and stops at the first request it holds none of.

``VictoriaMetricsCheck`` asks ``/api/v1/export`` for the raw samples of the head's series in the head's time
range (after ``/internal/force_flush`` where allowed, so the newest samples are searchable) and matches them as a
multiset of (metric, labels, timestamp, value): VictoriaMetrics stores field ``f`` of measurement ``m`` as the
series ``m_f`` with the line's tags as labels (plus ``db`` when written through ``/write?db=``). A store without
that API (InfluxDB: 404; any 4xx but 429) returns ``None``: the lines are written again, which that store absorbs.

Limits: a reading identical to an already stored one in series, millisecond and value is taken as already
stored (in a time-series store the two are indistinguishable anyway).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from hub.ingest.writer import StoreUnavailable, TargetConfig

log = logging.getLogger(__name__)

_SPACE = re.compile(r"(?<!\\) ")
_COMMA = re.compile(r"(?<!\\),")
_UNESCAPE = re.compile(r"\\([, =])")
DB_LABEL = "db"  # VictoriaMetrics' -influxDBLabel (default): the ?db= of a /write
SELECTORS_PER_EXPORT = 200  # series selectors (match[]) per export request
CLUSTER_GAP_MS = 60_000


class HeadCheck(Protocol):
    name: str

    def missing(self, lines: Sequence[str]) -> list[str] | None:
        """The lines (or parts of lines: fewer fields) the store does not hold yet, in order; ``None`` when this
        store cannot be asked. Raises ``StoreUnavailable`` when the store cannot answer now."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ParsedLine:
    head: str  # measurement and tags, escaped as written
    measurement: str
    tags: tuple[tuple[str, str], ...]  # sorted, unescaped
    fields: tuple[tuple[str, str, float], ...]  # (escaped text "k=v", key, value)
    ts_ms: int


class LineError(ValueError):
    pass


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text)


def parse_line(line: str) -> ParsedLine:
    """One line of dozor's own line protocol (hub/ingest/lineproto.py: float fields, integer ms timestamp)."""
    parts = _SPACE.split(line)
    if len(parts) != 3:
        raise LineError(f"expected measurement, fields and timestamp: {line[:80]!r}")
    head, field_text, ts_text = parts
    if not ts_text.isdigit():
        raise LineError(f"bad timestamp {ts_text[:30]!r}")
    measurement, *tag_texts = _COMMA.split(head)
    tags = []
    for text in tag_texts:
        key, sep, value = _split_eq(text)
        if not sep or not key or not value:
            raise LineError(f"bad tag {text[:60]!r}")
        tags.append((_unescape(key), _unescape(value)))
    fields = []
    for text in _COMMA.split(field_text):
        key, sep, value = _split_eq(text)
        try:
            number = float(value)
        except ValueError:
            raise LineError(f"not a float field {text[:60]!r}") from None
        if not sep or not key:
            raise LineError(f"bad field {text[:60]!r}")
        fields.append((text, _unescape(key), number))
    if not measurement:
        raise LineError("empty measurement")
    return ParsedLine(head, _unescape(measurement), tuple(sorted(tags)), tuple(fields), int(ts_text))


def _split_eq(text: str) -> tuple[str, str, str]:
    """``key=value`` split at the first unescaped ``=``."""
    m = re.search(r"(?<!\\)=", text)
    if m is None:
        return text, "", ""
    return text[:m.start()], "=", text[m.end():]


class VictoriaMetricsCheck:
    """A ``HeadCheck`` against a VictoriaMetrics single node (or a vmselect URL given as ``url``)."""

    def __init__(self, url: str, *, database: str = "dozor", tenant: str = "", timeout_s: float = 10.0,
                 auth: tuple[str, str] | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.name = f"victoriametrics:{url}"
        self.database = database
        self.tenant = tenant
        self._client = httpx.Client(base_url=url, timeout=timeout_s, auth=auth, transport=transport)

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(self.name, "unreachable", f"{type(exc).__name__}: {exc}") from exc

    def missing(self, lines: Sequence[str]) -> list[str] | None:
        parsed: list[ParsedLine | None] = []
        errors: list[LineError] = []
        for line in lines:
            try:
                parsed.append(parse_line(line))
            except LineError as exc:  # not dozor's own format: it cannot be looked up, so it is written again
                errors.append(exc)
                parsed.append(None)
        if errors:
            log.warning("spool head check: %d lines cannot be looked up and are written again (first: %s)",
                        len(errors), errors[0])
        points = [p for p in parsed if p is not None]
        if not points:
            return list(lines)
        flushed = self._request("GET", "/internal/force_flush")  # make the newest samples searchable; best effort
        if flushed.status_code >= 500:
            raise StoreUnavailable(self.name, f"http_{flushed.status_code}", flushed.text[:200])
        held: Counter[tuple] = Counter()
        for cluster in _clusters(points):  # only the head's series, in the time spans they have lines in
            series = sorted({self._selector(p, key) for p in cluster for _, key, _ in p.fields})
            start, end = cluster[0].ts_ms - 1, cluster[-1].ts_ms + 1
            for i in range(0, len(series), SELECTORS_PER_EXPORT):
                if not self._export(series[i:i + SELECTORS_PER_EXPORT], start, end, held):
                    return None
        out: list[str] = []
        for line, point in zip(lines, parsed, strict=True):
            if point is None:
                out.append(line)
                continue
            todo = [text for text, key, value in point.fields if not self._take(held, point, key, value)]
            if len(todo) == len(point.fields):
                out.append(line)
            elif todo:
                out.append(f"{point.head} {','.join(todo)} {point.ts_ms}")
        return out

    def _labels(self, point: ParsedLine) -> dict[str, str]:
        tags = dict(point.tags)
        if self.tenant:
            tags["tenant"] = self.tenant  # added by the writer (hub/ingest/tenant.py)
        return tags

    def _selector(self, point: ParsedLine, key: str) -> str:
        labels = {"__name__": f"{point.measurement}_{key}", **self._labels(point)}
        return "{" + ",".join(f'{k}="{_quote(v)}"' for k, v in sorted(labels.items())) + "}"

    def _export(self, selectors: list[str], start: int, end: int, held: Counter[tuple]) -> bool:
        """Raw samples of these series in [start, end] ms into ``held``; False: this store cannot be asked."""
        r = self._request("POST", "/api/v1/export", data={"match[]": selectors, "start": f"{start / 1000:.3f}",
                                                      "end": f"{end / 1000:.3f}"})
        if r.status_code >= 500 or r.status_code == 429:
            raise StoreUnavailable(self.name, f"http_{r.status_code}", r.text[:200])
        if r.status_code != 200:  # no export API here, or not for us (InfluxDB: 404; it overwrites identical points)
            log.info("spool head check: %s answered %d to an export: it cannot be asked", self.name, r.status_code)
            return False
        for text in r.text.splitlines():
            if not text.strip():
                continue
            series = json.loads(text)
            labels = dict(series["metric"])
            name = labels.pop("__name__", "")
            if labels.get(DB_LABEL) == self.database:  # added by the store for a /write?db=<database>
                del labels[DB_LABEL]
            for ts, value in zip(series["timestamps"], series["values"], strict=False):
                held[(name, frozenset(labels.items()), int(ts), float(value))] += 1
        return True

    def _take(self, held: Counter[tuple], point: ParsedLine, key: str, value: float) -> bool:
        """One stored sample of this field, if the store holds one not yet matched (then it is used up)."""
        k = (f"{point.measurement}_{key}", frozenset(self._labels(point).items()), point.ts_ms, value)
        if held[k] > 0:
            held[k] -= 1
            return True
        return False


def _quote(value: str) -> str:
    """A label value inside double quotes in a series selector."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _clusters(points: list[ParsedLine]) -> list[list[ParsedLine]]:
    """Points by time, split where ``CLUSTER_GAP_MS`` passes without one: a backlog hours old and live lines in one
    request are asked about separately, each for its own series, so an export never spans the whole city's hours."""
    ordered = sorted(points, key=lambda p: p.ts_ms)
    out: list[list[ParsedLine]] = [[ordered[0]]]
    for p in ordered[1:]:
        if p.ts_ms - out[-1][-1].ts_ms > CLUSTER_GAP_MS:
            out.append([])
        out[-1].append(p)
    return out


def make_check(config: TargetConfig, mode: str = "auto", url: str = "") -> HeadCheck | None:
    """The head check for a store target: ``auto`` asks the store's VictoriaMetrics export API (a store without
    it answers 404: the head is written again), ``off`` never asks (the head is written again)."""
    if mode == "off":
        return None
    auth = (config.username, config.password) if config.username else None
    return VictoriaMetricsCheck(url or config.url, database=config.database, tenant=config.tenant,
                                timeout_s=config.timeout_s, auth=auth)


class HeadSpool(Protocol):
    """What ``check_head`` needs of hub.ingest.spool.Spool."""

    head_check: HeadCheck | None
    suspect_head: bool
    head_checked_to: int | None  # a check interrupted by the store going away goes on after this row
    counters: Counter[str]

    def head(self, after: int | None) -> tuple[list[int], list[str], int]: ...

    def replace_rows(self, ids: Sequence[int], lines: Sequence[str]) -> None: ...


def check_head(spool: HeadSpool) -> None:
    """Drop from the spool's head what the store already holds (called by the spool's first flush after an
    unclean stop, under its flush lock). Raises ``StoreUnavailable`` (retried later, from where it stopped)."""
    check = spool.head_check
    after = spool.head_checked_to
    while check is not None:
        ids, bodies, n = spool.head(after)
        if not ids:
            break
        lines = [line for body in bodies for line in body.split("\n")]
        todo = check.missing(lines)
        if todo is None:
            spool.counters["head_unchecked_lines"] += n
            log.info("spool head after an unclean stop: %s cannot be asked what it holds; %d lines are written "
                     "again (a store that overwrites identical points absorbs them)", check.name, n)
            break
        if todo == lines:  # the store holds none of this request: nothing newer was written either
            break
        spool.replace_rows(ids, todo)
        spool.counters["head_already_stored_lines"] += n - len(todo)
        log.warning("spool head after an unclean stop: %s already held %d of %d lines; only the rest is written",
                    check.name, n - len(todo), n)
        after = spool.head_checked_to = ids[-1]
    spool.suspect_head = False
