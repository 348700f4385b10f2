"""The one module shape every device driver follows, and the registry DeviceKind -> driver class.

A driver is constructed from its config entry (plus the bus it registered with, if any) and offers:

    kind, id, info()                        what it is (DeviceInfo for the birth message); a driver whose
                                            info changes (a reflashed node's fw) calls ``info_changed()``
                                            and the gateway re-publishes its birth
    async start() / close()                 own whatever it needs
    async activate(signal, duration_s, alert, asset) -> AckStage
                                            returns SOUNDING/PLAYING once the device confirmed it,
                                            raises DeviceFailure(reason) otherwise
    async wait_finished()                   returns when the activation ended by itself (never, for sirens)
    async stop()                            stop whatever it is doing (idempotent)
    async silent_test()                     raises DeviceFailure("selftest_failed") on failure
    async status() -> DeviceStatus          never raises: unreachable is a state

The command executor enforces the maximum duration with its own timer around ``wait_finished``.
"""

from __future__ import annotations

import asyncio
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from contract.command import AssetRef
from contract.models import CAPABILITIES, AckStage, DeviceInfo, DeviceKind, DeviceStatus, Signal
from gateway.errors import ConfigError, DeviceFailure


class Device(ABC):
    kind: ClassVar[DeviceKind]

    def __init__(self, cfg: Any, *, bus: Any = None, counters: Any = None, log: Any = None) -> None:
        self.cfg = cfg
        self.id: str = cfg.id
        self.bus = bus
        self.counters = counters
        self.log = log
        self.info_listeners: list[Callable[[], None]] = []
        if bus is not None and hasattr(bus, "register"):
            bus.register(self.id)

    @property
    def capabilities(self) -> frozenset[str]:
        return CAPABILITIES[self.kind]

    def info(self) -> DeviceInfo:
        return DeviceInfo(id=self.id, kind=self.kind, bus=getattr(self.cfg, "bus", None),
                          address=getattr(self.cfg, "address", None))

    def info_changed(self) -> None:
        """Tell the gateway that ``info()`` changed (it re-announces its birth). Never raises."""
        for listener in list(self.info_listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a listener bug must not stop the driver's frame handling
                if self.counters is not None:
                    self.counters.inc("info_listener_errors")
                if self.log is not None:
                    self.log.exception("device %s: info listener failed", self.id)

    async def start(self) -> None:  # noqa: B027 - optional hook
        pass

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    async def activate(self, signal: Signal, duration_s: int, alert: str | None,
                       asset: AssetRef | None = None) -> AckStage: ...

    async def wait_finished(self) -> None:
        await asyncio.Event().wait()

    @abstractmethod
    async def stop(self) -> None: ...

    async def silent_test(self) -> None:
        raise DeviceFailure("unsupported", f"{self.kind.value} has no silent test")

    @abstractmethod
    async def status(self) -> DeviceStatus: ...


REGISTRY: dict[DeviceKind, type[Device]] = {}


def register_driver(cls: type[Device]) -> type[Device]:
    REGISTRY[cls.kind] = cls
    return cls


def driver_for(kind: DeviceKind | str) -> type[Device] | None:
    """The driver class of ``kind``, imported through the device-kind table (``gateway.devices.kinds``), so
    registering never depends on import order. None for a kind the table does not know."""
    from gateway.devices.kinds import KINDS

    spec = KINDS.get(str(kind.value if isinstance(kind, DeviceKind) else kind))
    if spec is None:
        return None
    module = spec.driver.split(":")[0]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise
        raise ConfigError(f"device kind {spec.kind.value}", [
            f"its driver needs the Python package {exc.name!r}: pip install 'dozor[{spec.extra}]'"]) from None
    return REGISTRY.get(spec.kind)
