"""Rate-limited logging: the first occurrence of a kind of message is logged at once; repeats within
``interval_s`` are only counted, and the next line that gets through says how many were suppressed.

    rl = RateLimitedLog(logging.getLogger(__name__), interval_s=10)
    rl.warning("malformed", "malformed %s on %s", reason, topic)   # key "malformed": one line per 10 s
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(self, logger: logging.Logger | logging.LoggerAdapter, interval_s: float = 10.0, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 1024) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def log(self, level: int, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log (True) or count (False) one occurrence of ``key``."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        if last is None and len(self._last) >= self._max_keys:  # bounded: forget the oldest key
            oldest = min(self._last, key=self._last.__getitem__)
            self._last.pop(oldest)
            self.suppressed.pop(oldest, None)
        self._last[key] = now
        n = self.suppressed.pop(key, 0)
        if n:
            msg = f"{msg} (+{n} similar in the last {self.interval_s:g}s)"
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def error(self, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        return self.log(logging.ERROR, key, msg, *args, exc_info=exc_info)


PER_REQUEST_LOGGERS = ("httpx", "httpcore", "paho", "asyncio.mqtt")


def per_request_logs_to_debug(level: int | str) -> None:
    """Library loggers that write one INFO line per request (httpx: "HTTP Request: POST ... 204", i.e. one per
    time-series write) only speak at DEBUG: unless the service itself runs at DEBUG, they log warnings only."""
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int) or numeric > logging.DEBUG:
        for name in PER_REQUEST_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
