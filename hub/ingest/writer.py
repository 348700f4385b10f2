"""Time-series writers: line strings in, one HTTP write out. Two configurable targets:

- ``v2``: the InfluxDB v2 write API through influxdb-client (SYNCHRONOUS, line strings). Works with
  InfluxDB 2.x/3.x and VictoriaMetrics (which ignores bucket/org/token).
- ``v1``: ``POST /write?db=..&precision=ms`` through httpx (InfluxDB 1.x; VictoriaMetrics accepts it too).
  The httpx transport is swappable (tests, proxies).

Errors from below are converted here: ``StoreUnavailable`` (connection refused, timeouts, 5xx, 429,
auth and missing-database errors: keep the data and retry later) or ``StoreRejected`` (the store refused
the data itself, 400/413/422: retrying the same bytes cannot help).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx

from hub.errors import HubError

REJECT_STATUSES = frozenset({400, 413, 422})


class WriteError(HubError):
    def __init__(self, target: str, reason: str, detail: str = "", *, status: int | None = None) -> None:
        self.target = target
        self.reason = reason
        self.status = status
        super().__init__(f"{target}: {reason}{': ' + detail[:300] if detail else ''}")


class StoreUnavailable(WriteError):
    """The store could not take the write now; the same lines may be retried."""


class StoreRejected(WriteError):
    """The store refused these lines (bad data or too large); retrying them unchanged will not help."""


@dataclass(frozen=True, slots=True)
class TargetConfig:
    kind: Literal["v1", "v2"]
    url: str
    database: str = "dozor"  # v1 db; v2 bucket
    org: str = "dozor"
    token: str = ""
    username: str = ""
    password: str = ""
    precision: Literal["ms"] = "ms"
    timeout_s: float = 10.0
    tenant: str = ""  # a named tenant: every line gets the tag tenant=<name> (hub/ingest/tenant.py)

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.url}"


class Writer(Protocol):
    name: str

    def write(self, lines: Sequence[str]) -> None: ...

    def close(self) -> None: ...


def _classify(name: str, status: int, body: str) -> WriteError:
    if status in REJECT_STATUSES:
        return StoreRejected(name, "too_large" if status == 413 else "rejected", body, status=status)
    return StoreUnavailable(name, f"http_{status}", body, status=status)


class V1Writer:
    """InfluxDB 1.x ``/write`` over httpx."""

    def __init__(self, config: TargetConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self.name = config.name
        auth = (config.username, config.password) if config.username else None
        self._client = httpx.Client(base_url=config.url, transport=transport, timeout=config.timeout_s, auth=auth)

    def write(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        body = ("\n".join(lines) + "\n").encode()
        params = {"db": self.config.database, "precision": self.config.precision}
        try:
            r = self._client.post("/write", params=params, content=body,
                                  headers={"Content-Type": "text/plain; charset=utf-8"})
        except httpx.HTTPError as exc:
            raise StoreUnavailable(self.name, "unreachable", f"{type(exc).__name__}: {exc}") from exc
        if r.status_code != 204 and not 200 <= r.status_code < 300:
            raise _classify(self.name, r.status_code, r.text)

    def close(self) -> None:
        self._client.close()


class V2Writer:
    """The v2 write API through influxdb-client, SYNCHRONOUS, line strings."""

    def __init__(self, config: TargetConfig) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.config = config
        self.name = config.name
        self._client = InfluxDBClient(url=config.url, token=config.token or "unused", org=config.org,
                                      timeout=int(config.timeout_s * 1000))
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            # one string, not a list: influxdb-client serialises list items one by one in Python
            self._api.write(bucket=self.config.database, org=self.config.org, record="\n".join(lines),
                            write_precision=WritePrecision.MS)
        except ApiException as exc:
            raise _classify(self.name, int(exc.status or 0), str(exc.body or exc.reason or "")) from exc
        except Exception as exc:  # noqa: BLE001 - urllib3/socket errors of every kind: the store is unreachable
            raise StoreUnavailable(self.name, "unreachable", f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()


def make_writer(config: TargetConfig, *, transport: httpx.BaseTransport | None = None) -> Writer:
    if config.tenant:
        from hub.ingest.tenant import TenantTagged

        return TenantTagged(_make_writer(config, transport=transport), config.tenant)
    return _make_writer(config, transport=transport)


def _make_writer(config: TargetConfig, *, transport: httpx.BaseTransport | None) -> Writer:
    if config.kind == "v1":
        return V1Writer(config, transport=transport)
    if config.kind == "v2":
        if transport is not None:
            raise ValueError("the v2 target uses influxdb-client's own HTTP stack; transport is for v1")
        return V2Writer(config)
    raise ValueError(f"unknown TSDB target kind {config.kind!r}: use 'v1' or 'v2'")
