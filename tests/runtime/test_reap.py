"""runtime.supervise.reap: a child's cancellation is absorbed, the caller's never is."""

from __future__ import annotations

import asyncio

import pytest

from runtime.supervise import reap


async def _slow_to_die():
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)  # cleanup that takes a while
        raise


async def test_reap_absorbs_the_childs_cancellation_and_reports_its_error():
    child = asyncio.create_task(_slow_to_die())
    await asyncio.sleep(0)
    assert await reap(child) is None and child.cancelled()

    async def boom():
        raise ValueError("bad")

    failed = asyncio.create_task(boom())
    await asyncio.sleep(0)
    assert isinstance(await reap(failed, cancel=False), ValueError)


async def test_the_callers_cancellation_is_never_swallowed():
    child = asyncio.create_task(_slow_to_die())
    after = []

    async def owner():
        await reap(child)
        after.append("went on")  # must never run: the owner was cancelled while reaping

    task = asyncio.create_task(owner())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert after == []
    await asyncio.wait({child})
