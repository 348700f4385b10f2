"""Group commit on the gateway (issue 12, "a reading is on disk before the driver polls again"), on a real SQLite
outbox with an in-process publish:

- the direct flush: with the drain idle, readings are not inserted as outbox rows; the flush formed from them and
  persisted in the outbox's ``meta`` is their durable copy, re-sent with its key after a restart;
- a sent direct flush is cleared from ``meta`` once the drain idles, and on a clean stop (no re-send at start);
- ``stored(mark)``: a driver waits only for its own readings, not for others' still in the commit window;
- the coalescing window merges readings into one commit and ends as soon as a driver waits to poll.

Assertions are counts and ordering; the only timeouts are deadlines that turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import json
import threading

from contract.models import DeviceKind, Reading
from gateway.counters import Counters
from gateway.outbox import Outbox
from gateway.telemetry import STATE_KEY, Telemetry, TelemetrySettings
from tests.sensors.helpers import Recorder, wait_until

GW = "gw-test"
NO_WINDOW = TelemetrySettings(flush_s=0.05, coalesce_s=0.0, retry_min_s=0.02, retry_max_s=0.1)


def r(i: int, device: str = "pm-1") -> Reading:
    return Reading(device=device, kind=DeviceKind.SDS011, ts=1_700_000_000 + i, metrics={"pm10": float(i)})


class Stuck(Recorder):
    """A publish whose PUBACK never comes: records the attempt, then waits forever."""

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.sent.append((topic, payload))
        await asyncio.Event().wait()


def pending(outbox: Outbox) -> dict | None:
    raw = outbox.get_meta(STATE_KEY)
    return None if raw is None else json.loads(raw)["pending"]


async def _stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_direct_flush_is_durable_in_meta_and_resent_with_its_key_after_a_restart(tmp_path):
    stuck = Stuck()
    with Outbox(tmp_path / "outbox.db") as outbox:
        tel = Telemetry(GW, outbox, publish=stuck.publish, state_dir=tmp_path, settings=NO_WINDOW)
        task = asyncio.create_task(tel.run())
        await asyncio.sleep(0)  # the writer and the drain start: the drain is idle
        for i in range(3):
            tel.submit_reading(r(i))
        await tel.stored()
        await wait_until(lambda: len(stuck.sent) == 1, "the flush is on the wire, never PUBACKed")
        assert outbox.count("telemetry") == 0, "direct flush: no outbox rows"
        assert outbox.depth == 0
        kept = pending(outbox)
        assert kept is not None and kept["readings"] == 3 and kept["ids"] == []
        await _stop(task)  # the process ends without a PUBACK (kill -9 is tests/chaos/test_kill_after_poll.py)
    first = stuck.batches()[0]

    rec, counters = Recorder(), Counters()
    with Outbox(tmp_path / "outbox.db") as outbox:
        tel = Telemetry(GW, outbox, publish=rec.publish, state_dir=tmp_path, settings=NO_WINDOW, counters=counters)
        task = asyncio.create_task(tel.run())
        try:
            await wait_until(lambda: len(rec.batches()) == 1, "re-sent after the restart")
            await wait_until(lambda: pending(outbox) is None, "cleared once the drain idles")
        finally:
            await _stop(task)
    again = rec.batches()[0]
    assert (again.session, again.seq) == (first.session, first.seq), "same key: the hub de-duplicates it"
    assert [x.ts for x in again.readings] == [x.ts for x in first.readings] == [r(i).ts for i in range(3)]
    assert counters.get("telemetry_pending_restored") == 1


async def test_a_sent_direct_flush_is_not_resent_after_a_clean_stop(tmp_path):
    rec = Recorder()
    with Outbox(tmp_path / "outbox.db") as outbox:
        tel = Telemetry(GW, outbox, publish=rec.publish, state_dir=tmp_path,
                        settings=TelemetrySettings(flush_s=3600, coalesce_s=0.0))  # the drain never idles out
        task = asyncio.create_task(tel.run())
        await asyncio.sleep(0)
        tel.submit_reading(r(1))
        await wait_until(lambda: len(rec.batches()) == 1 and tel.pending is None, "sent and PUBACKed")
        assert pending(outbox) is not None, "not cleared by a commit of its own: the next flush overwrites it"
        await _stop(task)
        assert pending(outbox) is None, "a clean stop clears it"
    counters = Counters()
    with Outbox(tmp_path / "outbox.db") as outbox:
        Telemetry(GW, outbox, publish=rec.publish, state_dir=tmp_path, counters=counters)
    assert counters.get("telemetry_pending_restored") == 0


async def test_a_driver_waits_only_for_its_own_readings(tmp_path):
    rec = Recorder()
    with Outbox(tmp_path / "outbox.db") as outbox:
        tel = Telemetry(GW, outbox, publish=rec.publish, state_dir=tmp_path, settings=NO_WINDOW)
        task = asyncio.create_task(tel.run())
        try:
            await asyncio.sleep(0)
            tel.submit_reading(r(1, "pm-a"))
            mark_a = tel.submitted
            await tel.stored(mark_a)
            held, release = threading.Event(), threading.Event()

            def hold() -> None:  # the disk is busy: the next commit waits for this transaction
                with outbox.group():
                    held.set()
                    release.wait()

            holder = asyncio.create_task(asyncio.to_thread(hold))
            await asyncio.to_thread(held.wait)
            tel.submit_reading(r(2, "pm-b"))
            mark_b = tel.submitted
            own, everything = asyncio.create_task(tel.stored(mark_a)), asyncio.create_task(tel.stored(mark_b))
            for _ in range(20):
                await asyncio.sleep(0)
            assert own.done(), "pm-a's reading is on disk: pm-a may poll although pm-b's is not"
            assert not everything.done() and not tel.all_stored
            release.set()
            await holder
            await everything
            assert tel.all_stored
        finally:
            await _stop(task)


async def test_the_window_merges_readings_and_a_waiting_driver_ends_it(tmp_path):
    rec = Recorder()
    window = TelemetrySettings(flush_s=3600, coalesce_s=3600)  # only a waiting driver can end this window
    with Outbox(tmp_path / "outbox.db") as outbox:
        tel = Telemetry(GW, outbox, publish=rec.publish, state_dir=tmp_path, settings=window)
        task = asyncio.create_task(tel.run())
        try:
            await asyncio.sleep(0)
            tel.submit_reading(r(1, "pm-a"))
            for _ in range(50):  # the writer's thread is in the window now
                await asyncio.sleep(0)
            tel.submit_reading(r(2, "pm-b"))
            assert not tel.all_stored
            async with asyncio.timeout(30):  # a deadline, not a measurement: without the early end this hangs
                await tel.stored()
            await wait_until(lambda: tel.pending is None and len(rec.batches()) == 1, "one batch")
        finally:
            await _stop(task)
    assert [x.device for x in rec.batches()[0].readings] == ["pm-a", "pm-b"], "one commit, one batch, in order"


def test_the_coalescing_window_is_configured_and_bounded(tmp_path):
    from gateway.config import parse_config
    from gateway.errors import ConfigError
    from tests.gateway.helpers import config_text

    def window(extra: str) -> float:
        return parse_config(config_text(tmp_path / "state", extra=extra), file="t.toml", base=tmp_path,
                            check_files=False).telemetry.coalesce_ms

    assert window("") == 15.0 and window("[telemetry]\ncoalesce_ms = 0\n") == 0.0
    for bad in ("26", "-1"):  # beyond a tenth of a 4 Hz poll, or negative: refused with the key's name
        try:
            window(f"[telemetry]\ncoalesce_ms = {bad}\n")
        except ConfigError as exc:
            assert "coalesce_ms" in str(exc) or any("coalesce_ms" in str(p.key) for p in exc.details)
        else:
            raise AssertionError(f"coalesce_ms = {bad} was accepted")
