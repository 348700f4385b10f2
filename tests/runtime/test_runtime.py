"""runtime/: the shared backoff, the task supervisor and rate-limited logging (pure, hand-driven clocks)."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.backoff import Backoff
from runtime.ratelog import RateLimitedLog
from runtime.supervise import Supervisor, TaskFailed


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@given(initial=st.floats(0.01, 5), cap=st.floats(0.01, 30), jitter=st.floats(0, 0.99), n=st.integers(1, 80),
       seed=st.integers(0, 2**32))
def test_backoff_never_exceeds_its_cap_and_never_drops_below_the_jitter_floor(initial, cap, jitter, n, seed):
    b = Backoff(initial, cap=cap, jitter=jitter, rng=random.Random(seed))
    for i in range(n):
        d = b.next_delay()
        base = min(max(cap, initial), initial * 2 ** i)
        assert base * (1 - jitter) - 1e-9 <= d <= base + 1e-9


def test_backoff_resets_only_after_a_healthy_connection():
    clock = Clock()
    b = Backoff(0.1, cap=1.5, jitter=0.0, healthy_s=10, clock=clock)
    assert [b.down() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.5, 1.5]
    b.up()
    clock.t += 3  # a flapping link: up for 3 s is not healthy, the wait stays long
    assert b.down() == 1.5
    b.up()
    clock.t += 10
    assert b.down() == 0.1


async def test_a_failing_task_is_counted_logged_once_and_restarted(caplog):
    failures: list[str] = []
    runs = 0
    steady = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 4:
            raise ValueError("boom")
        steady.set()
        await asyncio.Event().wait()

    caplog.set_level(logging.ERROR)
    async with Supervisor("t", on_failure=failures.append, restart_min_s=0.001, restart_max_s=0.002) as sup:
        sup.start("flaky", flaky)
        await asyncio.wait_for(steady.wait(), 5)
        assert sup.alive() == {"flaky": True}
    assert failures == ["flaky"] * 3
    lines = [r for r in caplog.records if "flaky" in r.getMessage()]
    assert len(lines) == 1 and "ValueError('boom')" in lines[0].getMessage()  # once, with its cause


async def test_an_escalating_task_fails_the_owner_with_its_cause():
    async def dies() -> None:
        raise ConnectionError("link")

    async with Supervisor("t") as sup:
        sup.start("acks", dies, restart=False)
        with pytest.raises(TaskFailed) as info:
            await asyncio.wait_for(sup.wait(), 5)
    assert info.value.name == "acks" and isinstance(info.value.__cause__, ConnectionError)


async def test_a_task_that_returns_is_a_failure_too():
    async def returns() -> None:
        return None

    failures: list[str] = []
    async with Supervisor("t", on_failure=failures.append) as sup:
        sup.start("hb", returns, restart=False)
        with pytest.raises(TaskFailed, match="ended"):
            await asyncio.wait_for(sup.wait(), 5)
    assert failures == ["hb"]


def test_repeated_warnings_become_one_line_with_a_count(caplog):
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("t.rl"), 10.0, clock=clock)
    caplog.set_level(logging.WARNING, "t.rl")
    for _ in range(1000):
        rl.warning("bad_json", "malformed %s", "x")
    rl.warning("other", "another kind")
    clock.t += 10
    rl.warning("bad_json", "malformed %s", "y")
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == ["malformed x", "another kind", "malformed y (+999 similar in the last 10s)"]
