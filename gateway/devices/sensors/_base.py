"""The shape every sensor driver follows.

A sensor module defines ``Options`` (a pydantic model of the driver's own config keys, checked when the
driver is built, so a typo fails at start-up with the key's name) and one driver class decorated with
``register_driver``. A driver:

- is built like every device: ``Driver(cfg, bus=..., counters=..., log=...)``; for a UART kind ``bus`` is
  the ``[[bus]]`` entry of kind "uart" (the driver then owns a ``gateway.uart.UartBus`` on that port) or
  an already running ``UartBus``;
- hands every reading (device, kind, wall-clock ts, metrics) and event to its sink (``attach(sink)``);
  readings made before a sink is attached wait in a bounded buffer (overflow is counted, never silent);
- counts every bad input in ``stats`` (codec counters: ``bad_checksum``, ``resync_bytes`` ...), mirrors the
  counts into the gateway counters as ``<device>.<reason>`` and logs the first, 10th, 100th ... of each;
- never raises out of its tasks: a driver bug is logged, counted (``<device>.driver_errors``) and the
  loop restarts; a port that vanishes is reopened by the bus and the driver re-initialises the sensor.

Sensors cannot activate: ``activate`` and ``silent_test`` raise ``DeviceFailure("unsupported")``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.codecs.validate import Counters as CodecCounters
from contract.codecs.validate import FrameStream
from contract.command import AssetRef
from contract.models import AckStage, DeviceState, DeviceStatus, Reading, Signal
from gateway.counters import Counters
from gateway.devices.base import Device
from gateway.errors import BusError, ConfigError, DeviceFailure
from gateway.uart import UartBus, UartSettings
from runtime.supervise import reap

MAX_UNSENT = 1000
RESTART_DELAY_S = 1.0
SETTLE_MAX_S = 5.0  # a stuck disk must not stop the sensor: poll anyway after this, counted
QUIET_REASONS = frozenset({"frames", "replies", "command_acks", "node_status", "node_reboots", "node_fw_changes"})
F = TypeVar("F")


class SensorSink(Protocol):
    """Where readings and events go: the telemetry pipeline."""

    def submit_reading(self, reading: Reading) -> object: ...

    def submit_event(self, device: str, kind: str, ts: float, data: dict[str, object]) -> object: ...


class I2C(Protocol):
    """The part of ``smbus2.SMBus`` the BME280 driver uses (a simulator offers the same)."""

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...


class SensorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    stale_s: float | None = Field(default=None, gt=0, le=86400)  # no good frame for this long: unreachable


def parse_options(model: type[BaseModel], cfg: Any) -> Any:
    extra = dict(getattr(cfg, "model_extra", None) or {})
    try:
        return model.model_validate(extra)
    except ValidationError as exc:
        problems = [f"device {cfg.id!r} ({cfg.kind}): {'.'.join(map(str, e['loc'])) or '(options)'}: "
                    f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}" for e in exc.errors()]
        raise ConfigError(f"device {cfg.id}", problems) from None


class SensorDriver(Device):
    """Common part of every sensor driver (see the module docstring)."""

    options_model: ClassVar[type[SensorOptions]] = SensorOptions
    quiet_reasons: ClassVar[frozenset[str]] = frozenset()  # routine counts of this kind: never logged

    def __init__(self, cfg: Any, *, bus: Any = None, counters: Counters | None = None,
                 log: logging.Logger | logging.LoggerAdapter | None = None, sink: SensorSink | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(cfg, bus=bus, counters=counters if counters is not None else Counters(),
                         log=log or logging.getLogger("dozor.gateway.sensors"))
        self.options = parse_options(self.options_model, cfg)
        self.stats = CodecCounters()
        self.clock = clock
        self.sink = sink
        self.readings = 0
        self.events = 0
        self.last_good: float | None = None  # loop time of the last good frame / measurement
        self._unsent: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._mark: int | None = None  # the sink's count of submitted items after this driver's last one
        self._synced: dict[str, int] = {}
        self._task: asyncio.Task | None = None
        self._started_at = 0.0

    # ------------------------------------------------------------ sink
    def attach(self, sink: SensorSink) -> None:
        """Connect the driver to the pipeline; readings buffered so far are handed over in order."""
        self.sink = sink
        while self._unsent:
            what, args = self._unsent.popleft()
            self._deliver(what, args)

    def _deliver(self, what: str, args: tuple[Any, ...]) -> None:
        if self.sink is None:
            if len(self._unsent) >= MAX_UNSENT:
                self._unsent.popleft()
                self.bump("unsent_overflow")
            self._unsent.append((what, args))
            return
        try:
            if what == "reading":
                self.sink.submit_reading(*args)
            else:
                self.sink.submit_event(*args)
            self._mark = getattr(self.sink, "submitted", None)
        except Exception:
            self.bump("sink_errors")
            self.log.exception("sensor %s: the telemetry sink refused a %s", self.id, what)

    async def settle(self) -> None:
        """Wait until the readings this driver reported so far are on disk (the outbox's group commit) before
        polling again; bounded by ``SETTLE_MAX_S`` (counted ``poll_before_stored``). Only its own: other
        drivers' readings still in the commit window do not hold this one's poll (a sink without marks: all)."""
        stored = getattr(self.sink, "stored", None)
        if stored is None or getattr(self.sink, "all_stored", True):
            return
        try:
            async with asyncio.timeout(SETTLE_MAX_S):  # no helper task per poll
                await (stored() if self._mark is None else stored(self._mark))
        except TimeoutError:
            self.bump("poll_before_stored")

    def emit(self, metrics: dict[str, float], flags: tuple[str, ...] = ()) -> None:
        """One reading: unit-free metrics (units are fixed per metric, see contract RANGES) stamped now."""
        reading = Reading(device=self.id, kind=self.kind, ts=self.clock(), metrics=metrics, flags=flags)
        self.readings += 1
        self._deliver("reading", (reading,))

    def emit_event(self, kind: str, data: dict[str, object], ts: float | None = None) -> None:
        self.events += 1
        self._deliver("event", (self.id, kind, self.clock() if ts is None else ts, data))

    # ------------------------------------------------------------ counters
    def bump(self, reason: str, n: int = 1) -> None:
        self.stats[reason] += n
        self.sync_counters()

    def sync_counters(self) -> None:
        """Mirror codec counters into the gateway counters; log the 1st, 10th, 100th ... of each bad kind."""
        for name, value in list(self.stats.items()):
            delta = value - self._synced.get(name, 0)
            if delta <= 0:
                continue
            before = self._synced.get(name, 0)
            self._synced[name] = value
            self.counters.inc(f"{self.id}.{name}", delta)
            if name not in QUIET_REASONS and name not in self.quiet_reasons and any(before < t <= value for t in _LOG_AT):
                self.log.warning("sensor %s: %s now %d", self.id, name, value)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._started_at = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._supervised(), name=f"sensor {self.id}")

    async def close(self) -> None:
        if self._task is not None:
            await reap(self._task)
            self._task = None

    async def _supervised(self) -> None:
        while True:
            try:
                await self.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.bump("driver_errors")
                self.log.exception("sensor %s: driver loop failed; restarting", self.id)
                await asyncio.sleep(RESTART_DELAY_S)

    @abstractmethod
    async def run(self) -> None:
        """The driver's loop (polls, duty cycle). Runs until cancelled."""

    # ------------------------------------------------------------ Device API
    async def activate(self, signal: Signal, duration_s: int, alert: str | None,
                       asset: AssetRef | None = None) -> AckStage:
        raise DeviceFailure("unsupported", f"{self.kind.value} is a sensor")

    async def stop(self) -> None:
        return None

    def stale_after_s(self) -> float:
        return self.options.stale_s or 10.0

    @property
    def transport_up(self) -> bool:
        return True

    async def status(self) -> DeviceStatus:
        now = asyncio.get_running_loop().time()
        if not self.transport_up:
            return DeviceStatus(id=self.id, state=DeviceState.UNREACHABLE, detail="port closed")
        since = self.last_good if self.last_good is not None else self._started_at
        if now - since > self.stale_after_s():
            return DeviceStatus(id=self.id, state=DeviceState.UNREACHABLE,
                                detail=f"no data for {now - since:.0f}s")
        return DeviceStatus(id=self.id, state=DeviceState.IDLE)


_LOG_AT = (1, 10, 100, 1000, 10_000, 100_000, 1_000_000)


class UartSensor(SensorDriver, Generic[F]):
    """A sensor on its own UART: owns a ``UartBus`` and a ``FrameStream`` over the kind's sans-IO codec."""

    baudrate: ClassVar[int] = 9600

    def __init__(self, cfg: Any, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        bus = self.bus
        if bus is None:
            raise ConfigError(f"device {self.id}", [f"device {self.id!r} ({cfg.kind}): needs `bus`, a [[bus]] "
                                                    'of kind "uart" naming its serial port'])
        if hasattr(bus, "write") and hasattr(bus, "on_state_change"):  # the gateway's bus object owns the port
            self.uart: UartBus = bus
            self._owns_uart = False
            rate = getattr(getattr(bus, "cfg", None), "baudrate", self.baudrate)
            if rate != self.baudrate:
                self.log.warning("sensor %s: bus %s runs at %d baud; a %s talks at %d", self.id, bus.name, rate,
                                 cfg.kind, self.baudrate)
        else:
            if getattr(bus, "kind", "uart") != "uart":
                raise ConfigError(f"device {self.id}", [f"device {self.id!r} ({cfg.kind}): bus {bus.name!r} "
                                                        f'must be of kind "uart", not {bus.kind!r}'])
            if bus.baudrate != self.baudrate:
                self.log.warning("sensor %s: bus %s runs at %d baud; a %s talks at %d", self.id, bus.name,
                                 bus.baudrate, cfg.kind, self.baudrate)
            self.uart = UartBus(UartSettings(bus.name, bus.port, bus.baudrate, bus.reopen_s),
                                counters=self.counters, log=self.log)
            self._owns_uart = True
        self.uart.on_data = self._on_data
        self.uart.on_state_change.append(self._on_port)
        self.stream: FrameStream[F] = FrameStream(self.decode, counters=self.stats)

    @staticmethod
    @abstractmethod
    def decode(buffer: bytes, counters: CodecCounters) -> tuple[int, F | None]: ...

    @abstractmethod
    def on_frame(self, frame: F, now: float) -> None: ...

    def on_port(self, is_open: bool) -> None:  # noqa: B027 - optional hook (re-initialise the sensor)
        pass

    @property
    def transport_up(self) -> bool:
        return self.uart.connected

    async def start(self) -> None:
        if self._owns_uart:
            await self.uart.start()
        await super().start()
        if self.uart.connected:
            self.on_port(True)

    async def close(self) -> None:
        await super().close()
        if self._owns_uart:
            await self.uart.close()

    def _on_port(self, is_open: bool) -> None:
        if not is_open:
            self.stream = FrameStream(self.decode, counters=self.stats)  # a half frame never spans a reconnect
        if self._task is not None:
            self.on_port(is_open)

    def _on_data(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        for frame in self.stream.feed(data):
            try:
                self.on_frame(frame, now)
            except Exception:
                self.stats["driver_errors"] += 1
                self.log.exception("sensor %s: handling a frame failed", self.id)
        self.sync_counters()

    def send(self, data: bytes) -> bool:
        try:
            self.uart.write(data)
        except BusError as exc:
            self.bump(f"write_{exc.reason}")
            return False
        return True
