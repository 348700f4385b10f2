"""A hub's clean stop (``Hub.run``'s last step): HubState offline while still connected, the last audit head, the
ingest committed and spooled, every task ended, the alert state flushed, the lease released, stores closed.

Every step is bounded, so one that hangs (a dead broker, a stuck database call) is logged and left behind instead
of keeping the process alive; ``dozor hub run`` also arms a faulthandler watchdog for the whole stop, which dumps
every thread's stack to the log and ends the process should a blocking call on the loop hang anyway (a hub that
does not exit after SIGTERM is worse than one that exits with a stack trace).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from hub.errors import StoreError
from runtime.supervise import Supervisor

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("hub.app")
SHUTDOWN_WATCHDOG_S = 18.0  # under the 20 s a supervisor (systemd, the tests) waits after SIGTERM


async def _bounded(aw: Awaitable[object], limit_s: float, what: str) -> bool:
    """One shutdown step, at most ``limit_s``: a step that hangs is logged and left behind, never waited for.
    Returns whether it ended in time."""
    try:
        await asyncio.wait_for(aw, limit_s)
    except TimeoutError:
        log.error("shutdown: %s did not end within %.0f s; going on", what, limit_s)
        return False
    except Exception:  # noqa: BLE001 - a failing shutdown step must not stop the others
        log.exception("shutdown: %s failed", what)
    return True


async def shutdown(hub: Hub, sup: Supervisor, tasks: list[asyncio.Task], *, watchdog: bool) -> None:
    """``tasks[0]`` is the API server; the others are the run's waits (signal, lease)."""
    # every step below is bounded; should one still hang (a blocking call on the loop, or after this the join of
    # a worker thread stuck in a database call), the watchdog of ``dozor hub run`` dumps every thread's stack to
    # the log and ends the process instead of leaving a hub that never exits. It stays armed until the process
    # ends (the CLI exits right after ``run``; Python's finalization disarms it).
    if watchdog:
        faulthandler.dump_traceback_later(SHUTDOWN_WATCHDOG_S, exit=True)
    hub.server.should_exit = True
    with contextlib.suppress(Exception, asyncio.CancelledError):  # the last head, signed and published
        await asyncio.wait_for(hub.anchorer.tick(), 2)
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(hub.mqtt.close(), 2)  # HubState offline while still connected
    if hub.ingest is not None:  # commit and ack what arrived while the ingest connection is still up
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(hub.ingest.commit(), 5)
    closing = asyncio.ensure_future(sup.aclose())  # every supervised task cancelled and awaited, at most 10 s
    if not (await asyncio.wait({closing}, timeout=10))[0]:
        for name, stack in sup.stacks().items():  # named while still stuck, before giving up on them
            log.error("shutdown: task %s did not end within 10 s of its cancellation, waiting at %s", name, stack)
        closing.cancel()
    await asyncio.gather(closing, return_exceptions=True)
    if hub.mqtt.send_first is not None:  # gateway messages held back by a dispatch (PUBACKed): to the engine now
        hub.mqtt.send_first.drain()
    api = tasks[0]
    for task in tasks[1:]:
        task.cancel()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(api), 5)
    api.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if hub.ingest is not None:  # what is buffered goes to the durable spool before we exit
        with contextlib.suppress(Exception):
            await asyncio.wait_for(hub.ingest.aclose(redelivered=hub.mqtt_ingest.defer_ack is not None),
                                   hub.config.store.timeout_s + 5)
    await _bounded(hub.engine.close(), 5, "alert tasks")
    await _bounded(hub.residents.aclose(), 5, "resident channels")
    with contextlib.suppress(Exception):
        hub.engine._flush()
    if hub.leader is not None and hub.leader.lease.valid():
        hub.leader.release()  # a clean stop: the standby need not wait for the expiry
    if hub.proxy is not None:
        await _bounded(hub.proxy.aclose(), 2, "leader proxy")
    try:  # the last flush: refused (and logged) when the lease ran out during a slow stop; the state is the next
        hub.store.close()  # leader's then, and the process still exits cleanly
    except StoreError as exc:
        log.error("shutdown: the last hub state write was refused: %s", exc)
    hub.gwtrust.close()
    with contextlib.suppress(Exception):
        hub.audit.close()
        hub.users.close()
    with contextlib.suppress(Exception):
        hub.violations.close()
    log.info("hub stopped")
