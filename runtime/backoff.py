"""One retry delay for every reconnecting or retrying loop: exponential, jittered, capped, and reset after a
connection has been healthy for a while.

    backoff = Backoff(initial=0.1, cap=1.5, healthy_s=10)
    while True:
        try:
            async with connect() as conn:
                backoff.up()              # the connection is established
                await serve(conn)
        except LinkError:
            pass
        await asyncio.sleep(backoff.down())   # healthy for >= healthy_s? the next wait starts at ``initial``

The cap bounds the worst-case wait after the far side comes back (a cap of 1.5 s means a gateway retries
at least every 1.5 s, so it reconnects within about 2 s of the broker's return, every run). Jitter is
*subtractive* (a delay is drawn from ``[base * (1 - jitter), base]``), so it spreads a fleet's retries
without ever exceeding the cap.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    def __init__(self, initial: float = 0.5, factor: float = 2.0, cap: float = 60.0, jitter: float = 0.5, *,
                 healthy_s: float = 10.0, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if initial <= 0 or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need initial > 0, factor >= 1 and 0 <= jitter < 1")
        self.initial, self.factor, self.cap, self.jitter = initial, factor, max(cap, initial), jitter
        self.healthy_s = healthy_s
        self._rng = rng or random.Random()
        self._clock = clock
        self.attempt = 0
        self._up_since: float | None = None

    def next_delay(self) -> float:
        """The next wait; each call backs off further until ``reset``."""
        base = min(self.cap, self.initial * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempt = 0

    def up(self) -> None:
        """The connection is established (its health is timed from now)."""
        self._up_since = self._clock()

    def down(self) -> float:
        """The connection ended (or never came up): reset if it had been healthy long enough, then the next wait."""
        if self._up_since is not None and self._clock() - self._up_since >= self.healthy_s:
            self.reset()
        self._up_since = None
        return self.next_delay()
