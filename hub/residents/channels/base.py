"""What every channel shares: counters, and one bounded attempt loop (timeout, retries, back-off)."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass

import httpx
from prometheus_client import Counter

from contract.models import ZoneState
from hub.residents.errors import ChannelError
from hub.residents.models import ResidentAlert
from runtime.backoff import Backoff

DELIVERIES = Counter("dozor_resident_deliveries", "Resident notification outcomes", ["channel", "outcome"])


@dataclass
class ChannelStats:
    attempts: int = 0
    delivered: int = 0
    failed: int = 0
    timeouts: int = 0
    retries: int = 0
    pruned: int = 0
    skipped_exercise: int = 0  # recipients not opted in as testers, kept away from an exercise
    last_error: str | None = None
    last_error_ts: float | None = None
    last_delivery_ts: float | None = None
    consecutive_failures: int = 0

    @property
    def health(self) -> str:
        if self.consecutive_failures == 0:
            return "ok"
        return "failing" if self.consecutive_failures >= 3 or self.delivered == 0 else "degraded"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "health": self.health}


def http_error(channel: str, exc: httpx.HTTPError) -> ChannelError:
    """Convert an httpx error from below into this package's error, at the boundary."""
    if isinstance(exc, httpx.TimeoutException):
        return ChannelError(channel, "timeout", type(exc).__name__)
    return ChannelError(channel, "transport", f"{type(exc).__name__}: {exc}"[:200])


def status_error(channel: str, resp: httpx.Response | int, text: bytes = b"",
                 retry_after_raw: str | None = None) -> ChannelError:
    """An unexpected HTTP status as a ChannelError: 429 and 5xx are retryable, honouring Retry-After."""
    if isinstance(resp, httpx.Response):
        status, text, raw = resp.status_code, resp.content, resp.headers.get("retry-after")
    else:
        status, raw = resp, retry_after_raw
    retry_after: float | None = None
    if raw is not None:
        try:
            retry_after = float(raw)
        except ValueError:
            retry_after = None
    retryable = status == 429 or status >= 500
    return ChannelError(channel, f"http_{status}", text[:200].decode("utf-8", "replace"), retryable=retryable,
                        retry_after=retry_after)


class Channel(ABC):
    """A channel fans one resident message out to its recipients. ``deliver`` never raises."""

    name: str = "channel"

    def __init__(self, *, timeout_s: float = 5.0, retries: int = 2, backoff_s: float = 0.2,
                 max_backoff_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats = ChannelStats()

    @abstractmethod
    async def deliver(self, alert: ResidentAlert, states: Sequence[ZoneState]) -> None:
        """Send ``alert`` to every recipient of the zones in ``states``; count every outcome."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "timeout_s": self.timeout_s, "retries": self.retries}

    def _count(self, outcome: str, n: int = 1) -> None:
        DELIVERIES.labels(self.name, outcome).inc(n)

    def note_skipped_exercise(self, n: int = 1) -> None:
        self.stats.skipped_exercise += n
        self._count("skipped_exercise", n)

    async def attempt(self, send: Callable[[], Awaitable[None]],
                      on_gone: Callable[[], None] | None = None) -> bool:
        """Run ``send`` with this channel's timeout and retries. True when it was delivered.

        A ``ChannelError`` with reason ``gone`` (the recipient no longer exists) is not a channel failure:
        ``on_gone`` prunes the recipient and it is counted as pruned.
        """
        backoff = Backoff(self.backoff_s, cap=max(self.backoff_s, self.max_backoff_s), jitter=0.2)
        for n in range(self.retries + 1):
            if n:
                self.stats.retries += 1
                self._count("retry")
            self.stats.attempts += 1
            try:
                async with asyncio.timeout(self.timeout_s):
                    await send()
            except TimeoutError:
                self.stats.timeouts += 1
                self._count("timeout")
                err = ChannelError(self.name, "timeout", f"no answer within {self.timeout_s} s")
            except ChannelError as exc:
                if exc.reason == "gone" and on_gone is not None:
                    on_gone()
                    self.stats.pruned += 1
                    self._count("pruned")
                    return False
                err = exc
            else:
                self.stats.delivered += 1
                self.stats.consecutive_failures = 0
                self.stats.last_delivery_ts = time.time()
                self._count("delivered")
                return True
            self.stats.last_error = str(err)[:300]
            self.stats.last_error_ts = time.time()
            if not err.retryable or n == self.retries:
                break
            delay = backoff.next_delay()
            wait = min(err.retry_after if err.retry_after is not None else delay, self.max_backoff_s)
            await asyncio.sleep(wait)
        self.stats.failed += 1
        self.stats.consecutive_failures += 1
        self._count("failed")
        return False
