"""A measurement microphone on the gateway itself (USB or I2S via PortAudio, or a WAV file): ``kind = "microphone"``.

The driver runs ``gateway.noise.pipeline.NoiseAnalyzer`` on the input blocks in its own worker thread, so
the event loop (and with it alert commands and their acks) never waits for the analysis. The thread hands
its results to the loop through a queue; on the loop they become

- one ``Reading`` per second (kind ``microphone``): ``laeq``, ``lafmax``, ``la10``, ``la90`` (dB(A)) and
  ``clipped`` (clipped input samples in that second, flagged ``clipped`` when non-zero), stamped
  ``t0 + stream time`` where ``t0`` is the wall-clock time of the first sample;
- one event of kind ``noise.passby`` per finished pass-by, ``data`` = the ``NoiseEvidence`` record signed
  with the gateway's evidence key (``gateway.evidence_key``). Events go to the outbox's event stream, which
  is evicted only after routine telemetry.

Siren suppression: the gateway hands every accepted hub ``ZoneState`` of its zone to ``zone_state()``; the
driver keeps the latest and applies it to the analyzer between blocks (and to every new analyzer after an
input restart).

Input ends or fails (no block for ``timeout_s``, a device error, a bad WAV file): the analyzer is closed,
which finishes every pending event (so none is lost), the failure is counted and the input is reopened
after ``retry_s`` with a fresh analyzer (and a fresh ``t0``). A WAV file without ``loop`` ends the driver.
Non-finite samples are replaced by 0 and counted (``nonfinite_blocks``); the stream keeps its timing.

Config keys (besides ``id``, ``kind``, ``stale_s``)::

    source = "sounddevice"      # the default input device; "wav" (needs file); or an input device name/index
    file = "street.wav"         # source = "wav": relative to the config file; loop = false; wav_speed = 1.0
    fs = 48000                  # sample rate (Hz); block = 4800 samples per input block
    microphone = "im69d130"     # optional part preset, sets full_scale_db and meter_class (MICROPHONES in microphone_options.py)
    full_scale_db = 130.0       # dB SPL of a digital full-scale sine (default: the preset's, else 120);
                                # calibration_offset_db = 0.0. Loud exhausts clip a 120 dB part: use >= 130
    meter_class = 2             # IEC 61672-1 class the chain is designed to (uncertainty budget): 1 or 2
    calibration_date = "2026-10-01"
    distance_to_lane_m = 7.5    # levels are normalised to 7.5 m for the thresholds
    location = { lat = 50.46, lon = 30.52, description = "Kontraktova sq., kerb" }
    thresholds = { candidate_db = 85, enforcement_db = 95, uncertainty_db = 2, lane_half_width_m = 0.8 }
                                # the enforcement margin is max(uncertainty_db, the budget's U, k = 2):
                                # docs/noise-uncertainty.md
    audio_clip = false          # privacy: no audio unless asked; clip_seconds = 0.5 (the event must fit
                                # one MQTT message; a record too large is sent without its clip, counted)
    timeout_s = 2.0             # no block for this long: the input is down;  retry_s = 5.0
    queue_blocks = 100          # blocks the audio callback may queue ahead of the analysis (overflow: counted
                                # ``dropped_blocks``, as are PortAudio's ``status_*`` overflows)

The input stream comes from ``stream_factory`` (module hook, or the constructor's ``stream_factory``):
PortAudio through ``sounddevice`` unless a test or the simulated city points it at a simulated stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from contract.evidence import EVENT_KIND, NoiseEvidence, sign
from contract.models import DeviceKind, DeviceStatus, Reading, ZoneState
from gateway.devices.base import register_driver
from gateway.devices.microphone_options import Location, Options, Thresholds  # noqa: F401 - re-exported
from gateway.devices.sensors._base import SensorDriver
from gateway.errors import ConfigError
from gateway.evidence_key import EvidenceKey
from gateway.noise.detector import DetectorConfig
from gateway.noise.dsp import MeterConfig
from gateway.noise.errors import NoiseError
from gateway.noise.pipeline import AnalyzerConfig, FeedResult, NoiseAnalyzer
from gateway.noise.sources import MicrophoneSource
from gateway.noise.wav import iter_wav

# Swappable: tests and the simulated city point this at a simulated input stream (same keyword arguments as
# sounddevice.InputStream). None: PortAudio through sounddevice.
stream_factory: Callable[..., Any] | None = None

MAX_EVENT_BYTES = 100 * 1024  # an Event must fit one telemetry flush (TelemetrySettings.max_batch_bytes)
JOIN_S = 10.0
_LOG_AT = frozenset({1, 10, 100, 1000, 10_000, 100_000})


@register_driver
class MicrophoneDriver(SensorDriver):
    kind = DeviceKind.MICROPHONE
    options_model = Options
    options: Options
    quiet_reasons: ClassVar[frozenset[str]] = frozenset({
        "events", "class_exhaust", "class_siren", "class_horn", "class_other", "suppressed", "enforcement",
        "detector_events", "detector_short", "detector_splits", "detector_too_long", "input_opened",
        "wav_loops", "zone_states"})

    def __init__(self, cfg: Any, *, stream_factory: Callable[..., Any] | None = None, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        self.stream_factory = stream_factory
        self.gateway_id = "gw-local"
        self.key: EvidenceKey | None = None
        try:
            self.analyzer_config(0.0)  # every setting checked now, with the device's name
        except NoiseError as exc:
            raise ConfigError(f"device {self.id}", [f"device {self.id!r} (microphone): {exc}"]) from None
        self.zone: ZoneState | None = None  # latest hub zone state (loop thread writes, worker reads)
        self._zone_inbox: queue.SimpleQueue[ZoneState] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.t0: float | None = None  # wall-clock time of sample 0 of the current input run
        self.analyzer: NoiseAnalyzer | None = None  # the current run's analyzer (owned by the worker thread)
        self.inputs = 0  # input runs started
        self.drift_s: float | None = None  # wall clock minus sample-clock time at the last second (see status)

    # ------------------------------------------------------------ wiring by the gateway
    def sign_with(self, gateway_id: str, key: EvidenceKey | None) -> None:
        """Sign evidence with the gateway's evidence key (set before ``start``)."""
        self.gateway_id = gateway_id
        self.key = key

    def zone_state(self, state: ZoneState) -> None:
        """The hub's zone state (already validated, newest version; called on the event loop)."""
        self.zone = state
        self._zone_inbox.put(state)
        self.stats["zone_states"] += 1

    def analyzer_config(self, t0: float) -> AnalyzerConfig:
        o = self.options
        th = o.thresholds
        return AnalyzerConfig(
            meter=MeterConfig(fs=o.fs, full_scale_db=o.full_scale_db, calibration_offset_db=o.calibration_offset_db),
            detector=DetectorConfig(distance_m=o.distance_to_lane_m, candidate_db=th.candidate_db,
                                    enforcement_db=th.enforcement_db, uncertainty_db=th.uncertainty_db,
                                    hysteresis_db=th.hysteresis_db, min_duration_s=th.min_duration_s,
                                    max_duration_s=th.max_duration_s,
                                    hard_limit_s=max(40.0, th.max_duration_s),
                                    lane_half_width_m=th.lane_half_width_m, meter_class=o.meter_class or 2),
            gateway=self.gateway_id, sensor=self.id, sensor_kind="wav" if o.source == "wav" else "mic",
            calibration_date=o.calibration_date, lat=o.location.lat, lon=o.location.lon, t0=t0,
            audio_clip=o.audio_clip, clip_seconds=o.clip_seconds)

    # ------------------------------------------------------------ loop side
    async def run(self) -> None:
        """Start the worker thread for one input run; when it ends, wait ``retry_s`` and start another."""
        self._loop = asyncio.get_running_loop()
        while True:
            done: asyncio.Future[str] = self._loop.create_future()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._worker, args=(self._loop, done, self._stop),
                                             name=f"microphone {self.id}", daemon=True)
            self._thread.start()
            try:
                outcome = await done
            finally:
                self._stop.set()
            self._drain()
            if outcome == "ended":
                self.log.info("microphone %s: the WAV file ended", self.id)
                return
            await asyncio.sleep(self.options.retry_s)

    async def close(self) -> None:
        self._stop.set()
        await super().close()
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, JOIN_S)
            if thread.is_alive():
                self.bump("worker_stuck")
                self.log.error("microphone %s: the analysis thread did not stop", self.id)
        self._drain()  # what the last run finished on its way out (pending events are closed, not lost)

    def _wake(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: close() drains what is left
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """(event loop) Turn what the worker produced into readings, events and counters."""
        while True:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                break
            try:
                self._handle(item)
            except Exception:
                self.stats["driver_errors"] += 1
                self.log.exception("microphone %s: handling a result failed", self.id)
        self.sync_counters()

    def _handle(self, item: tuple[Any, ...]) -> None:
        what = item[0]
        if what == "result":
            _, t0, result, deltas = item
            self._results_to_sink(t0, result)
            self.stats.update(deltas)
        elif what == "counts":
            self.stats.update(item[1])
        elif what == "failed":
            _, reason, detail = item
            self.stats[reason] += 1
            level = logging.WARNING if self.stats[reason] in _LOG_AT else logging.DEBUG
            self.log.log(level, "microphone %s: input stopped (%s): %s; reopening in %.1f s", self.id, reason,
                         detail, self.options.retry_s)

    def _results_to_sink(self, t0: float, result: FeedResult) -> None:
        if result.seconds and self._loop is not None:
            self.last_good = self._loop.time()
            # the sample clock against the wall clock (+: samples arrive later than their stamps say)
            self.drift_s = time.time() - (t0 + result.seconds[-1].t + 1.0)
        for s in result.seconds:
            metrics = {"laeq": round(s.laeq, 2), "lafmax": round(s.lafmax, 2), "la10": round(s.la10, 2),
                       "la90": round(s.la90, 2), "clipped": float(s.clipped)}
            reading = Reading(device=self.id, kind=self.kind, ts=round(t0 + s.t, 3),
                              metrics={k: v for k, v in metrics.items() if math.isfinite(v)},
                              flags=("clipped",) if s.clipped else ())
            self.readings += 1
            self._deliver("reading", (reading,))
        for record in result.events:
            self.emit_event(EVENT_KIND, self._fit(record).to_data(), ts=record.start)

    def _fit(self, record: NoiseEvidence) -> NoiseEvidence:
        """A record with an audio clip too large for one MQTT message goes without the clip (re-signed)."""
        if record.audio is None:
            return record
        size = len(json.dumps(record.to_data(), separators=(",", ":")))
        if size <= MAX_EVENT_BYTES:
            return record
        self.stats["audio_clip_too_large"] += 1
        stripped = record.model_copy(update={"audio": None, "signature": None})
        return sign(stripped, self.key.private, self.key.kid) if self.key is not None else stripped

    # ------------------------------------------------------------ worker thread
    def _worker(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[str], stop: threading.Event) -> None:
        outcome = "failed"
        try:
            outcome = self._analyze(stop)
        except NoiseError as exc:
            self._post(("failed", "input_errors", str(exc)[:200]))
        except Exception as exc:  # noqa: BLE001 - the thread reports, the loop side restarts it
            self._post(("failed", "worker_errors", f"{type(exc).__name__}: {exc}"[:200]))
            logging.getLogger("dozor.gateway.sensors").exception("microphone %s: analysis failed", self.id)

        def finish() -> None:
            if not done.done():
                done.set_result(outcome)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(finish)

    def _post(self, item: tuple[Any, ...]) -> None:
        self._results.put(item)
        self._wake()

    def _open(self, stop: threading.Event) -> tuple[contextlib.AbstractContextManager[Any], Iterator[np.ndarray],
                                                    Callable[[], Counter[str]]]:
        o = self.options
        if o.source == "wav":
            wav = _WavInput(o.file or Path(), o.block, o.fs, speed=o.wav_speed, loop=o.loop, stop=stop)
            return contextlib.nullcontext(), wav.blocks(), lambda: wav.counters
        device: str | int | None = None if o.source == "sounddevice" else (
            int(o.source) if o.source.isdigit() else o.source)
        factory = self.stream_factory or stream_factory
        kw: dict[str, Any] = {"stream_factory": factory} if factory is not None else {}
        mic = MicrophoneSource(device=device, fs=o.fs, block=o.block, max_queue=o.queue_blocks, **kw)
        return mic, mic.blocks(timeout=o.timeout_s), lambda: mic.counters

    def _analyze(self, stop: threading.Event) -> str:
        """One input run: open, analyse until the input ends, fails or ``stop``; always close the analyzer."""
        try:
            ctx, blocks, source_counts = self._open(stop)
            ctx.__enter__()
        except NoiseError:
            raise
        except Exception as exc:  # noqa: BLE001 - PortAudio and friends: the input is unavailable
            raise NoiseError(f"cannot open the input: {type(exc).__name__}: {exc}") from None
        analyzer: NoiseAnalyzer | None = None
        t0 = 0.0
        seen: dict[str, int] = {}
        self._post(("counts", Counter(input_opened=1)))
        try:
            with contextlib.ExitStack() as on_exit:
                on_exit.push(ctx.__exit__)
                for block in blocks:
                    if stop.is_set():
                        return "stopped"
                    x = np.asarray(block, dtype=np.float32).reshape(-1)
                    if not np.all(np.isfinite(x)):
                        x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
                        self._post(("counts", Counter(nonfinite_blocks=1)))
                    if analyzer is None:
                        t0 = time.time() - x.size / self.options.fs
                        analyzer = NoiseAnalyzer(self.analyzer_config(t0), key=self.key.private if self.key else None)
                        self.t0, self.analyzer = t0, analyzer
                        self.inputs += 1
                        if self.zone is not None:
                            analyzer.zone_state(self.zone)
                    self._apply_zone(analyzer)
                    result = analyzer.feed(x)
                    if result.seconds or result.events:
                        self._post(("result", t0, result, self._deltas(analyzer, source_counts(), seen)))
            return "ended"
        finally:
            if analyzer is not None:
                self._apply_zone(analyzer)
                result = analyzer.close()  # finishes every pending event: an input failure loses none
                self._post(("result", t0, result, self._deltas(analyzer, source_counts(), seen)))

    def _apply_zone(self, analyzer: NoiseAnalyzer) -> None:
        while True:
            try:
                analyzer.zone_state(self._zone_inbox.get_nowait())
            except queue.Empty:
                return

    @staticmethod
    def _deltas(analyzer: NoiseAnalyzer, source: Counter[str], seen: dict[str, int]) -> Counter[str]:
        """(worker) Counter increments since the last post: analyzer, detector and input counts."""
        now: dict[str, int] = dict(analyzer.counters)
        now.update({f"detector_{k}": v for k, v in analyzer.detector.counters.items()})
        with contextlib.suppress(RuntimeError):  # the audio thread may add a key while we copy
            now.update(dict(source))
        out: Counter[str] = Counter()
        for name, value in now.items():
            if value > seen.get(name, 0):
                out[name] = value - seen.get(name, 0)
                seen[name] = value
        return out

    # ------------------------------------------------------------ status
    async def status(self) -> DeviceStatus:
        st = await super().status()
        zone = self.zone
        detail = f"source {self.options.source}; events {self.events}"
        if self.drift_s is not None:
            detail += f"; clock drift {self.drift_s:+.2f} s"
        if zone is not None:
            detail += f"; zone {zone.zone} {zone.status.value} v{zone.version}"
        return st.model_copy(update={"detail": detail if st.detail is None else f"{st.detail}; {detail}"})


class _WavInput:
    """Blocks from a WAV file (optionally looped), paced at ``speed`` times real time (0: unpaced)."""

    def __init__(self, path: Path, block: int, fs: int, *, speed: float, loop: bool, stop: threading.Event) -> None:
        self.path, self.block, self.fs, self.speed, self.loop, self.stop = path, block, fs, speed, loop, stop
        self.counters: Counter[str] = Counter()

    def blocks(self) -> Iterator[np.ndarray]:
        start = time.monotonic()
        n = 0
        while True:
            fmt, it = iter_wav(self.path, self.block)
            if fmt.fs != self.fs:
                raise NoiseError(f"{self.path}: {fmt.fs} Hz, but the device is configured for fs = {self.fs}")
            for x in it:
                yield x
                n += x.size
                if self.speed > 0:
                    ahead = start + n / self.fs / self.speed - time.monotonic()
                    if ahead > 0 and self.stop.wait(ahead):
                        return
            if not self.loop or n == 0:
                return
            self.counters["wav_loops"] += 1
