"""Supervised long-lived tasks: nothing dies silently.

A ``Supervisor`` owns a set of named tasks. When one ends with an exception (or returns, which a
long-lived task must not do) the failure is counted (``on_failure(name)``), logged once with its cause
(repeats are rate limited), and then either

- ``restart=True``: the task is started again after a jittered, capped backoff, or
- ``restart=False``: the failure *escalates*: ``wait()`` raises ``TaskFailed`` so the owner tears down
  and rebuilds what the task depended on (e.g. the uplink reconnects its MQTT session).

    async with Supervisor("uplink", on_failure=counters.inc, log=log) as sup:
        sup.start("acks", drain_acks)                 # a factory: called again on each restart
        sup.start("heartbeat", heartbeats, restart=False)
        await sup.wait()                              # returns never; raises TaskFailed on escalation

Leaving the ``async with`` cancels every task and waits for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from runtime.backoff import Backoff
from runtime.ratelog import RateLimitedLog

Factory = Callable[[], Awaitable[object]]


class TaskFailed(Exception):
    """A supervised task failed and escalated; ``name`` and ``__cause__`` say which and why."""

    def __init__(self, name: str, cause: BaseException | None) -> None:
        super().__init__(f"task {name!r} failed: {cause!r}" if cause else f"task {name!r} ended")
        self.name = name
        self.__cause__ = cause


class Supervisor:
    def __init__(self, name: str, *, on_failure: Callable[[str], object] | None = None,
                 log: logging.Logger | logging.LoggerAdapter | None = None, restart_min_s: float = 0.05,
                 restart_max_s: float = 2.0) -> None:
        self.name = name
        self.on_failure = on_failure
        self.log = RateLimitedLog(log or logging.getLogger("dozor.runtime.supervise"), 30.0)
        self.restart_min_s = restart_min_s
        self.restart_max_s = restart_max_s
        self.failures: dict[str, int] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._failed: asyncio.Future[None] | None = None
        self._closing = False

    async def __aenter__(self) -> Supervisor:
        self._failed = asyncio.get_running_loop().create_future()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self, name: str, factory: Factory, *, restart: bool = True) -> None:
        """Run ``factory()`` as task ``name``; see the module doc for what happens when it ends."""
        if name in self._tasks and not self._tasks[name].done():
            raise RuntimeError(f"task {name!r} is already running")
        self._tasks[name] = asyncio.create_task(self._guard(name, factory, restart), name=f"{self.name} {name}")

    def alive(self) -> dict[str, bool]:
        return {name: not t.done() for name, t in self._tasks.items()}

    def stacks(self) -> dict[str, str]:
        """Where each task that has not ended is waiting (for a shutdown that hangs: which task, and on what)."""
        out = {}
        for name, task in self._tasks.items():
            if not task.done():
                frames = task.get_stack()
                out[name] = " <- ".join(f"{f.f_code.co_filename.rsplit('/', 2)[-1]}:{f.f_lineno} {f.f_code.co_name}"
                                        for f in reversed(frames)) or "?"
        return out

    async def _guard(self, name: str, factory: Factory, restart: bool) -> None:
        backoff = Backoff(self.restart_min_s, cap=self.restart_max_s, healthy_s=10.0)
        while True:
            backoff.up()
            cause: BaseException | None = None
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the point of a supervisor: count, log, recover
                cause = exc
            self.failures[name] = self.failures.get(name, 0) + 1
            if self.on_failure is not None:
                try:
                    self.on_failure(name)
                except Exception:  # noqa: BLE001 - a counter must not stop the recovery
                    self.log.error("on_failure", "%s: failure counter hook raised", self.name, exc_info=True)
            what = "restarting" if restart else "escalating"
            self.log.error(f"{name}:{type(cause).__name__}", "%s: task %s %s (%s); %s", self.name, name,
                           "failed" if cause else "ended", repr(cause) if cause else "returned", what)
            if not restart:
                if self._failed is not None and not self._failed.done():
                    self._failed.set_exception(TaskFailed(name, cause))
                return
            await asyncio.sleep(backoff.down())

    async def wait(self) -> None:
        """Wait until a task escalates (raises ``TaskFailed``)."""
        assert self._failed is not None, "use 'async with Supervisor(...)'"
        await asyncio.shield(self._failed)

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._failed is not None and not self._failed.done():
            self._failed.cancel()
        elif self._failed is not None and not self._failed.cancelled():
            self._failed.exception()  # retrieved: no "exception was never retrieved" warning



async def reap(task: asyncio.Task | None, *, cancel: bool = True) -> BaseException | None:
    """Cancel ``task`` (if asked) and wait for it to end; return how it ended (None, or its exception).

    The child's own cancellation is expected and not raised, but a cancellation of the task running ``reap``
    always propagates. (A plain ``suppress(CancelledError)`` around ``await child`` also eats the caller's
    cancel, and a service then ignores SIGTERM: the hub once kept reconnecting after a shutdown that met a
    dying broker.) ``asyncio.wait`` never raises the child's outcome, so a CancelledError here is ours."""
    if task is None or task is asyncio.current_task():
        return None
    if cancel:
        task.cancel()
    await asyncio.wait({task})
    return None if task.cancelled() else task.exception()
