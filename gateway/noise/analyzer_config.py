"""The noise analyzer's configuration (``AnalyzerConfig``) and what one ``NoiseAnalyzer.feed`` returns
(``FeedResult``); ``gateway.noise.pipeline`` re-exports both."""

from __future__ import annotations

from dataclasses import dataclass, field

from contract.evidence import ClockSync, NoiseEvidence
from gateway.noise.detector import DetectorConfig
from gateway.noise.dsp import MeterConfig
from gateway.noise.errors import ConfigError
from gateway.noise.seconds import SecondLevels
from gateway.noise.suppression import SuppressionConfig

TRACE_MARGIN_S = 5.0  # an event's trace covers this long after it (finalize_delay_s is at least this)


@dataclass(frozen=True)
class AnalyzerConfig:
    meter: MeterConfig = field(default_factory=MeterConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    suppression: SuppressionConfig = field(default_factory=SuppressionConfig)
    gateway: str = "gw-local"
    sensor: str = "mic-1"
    sensor_kind: str = "mic"
    calibration_date: str | None = None
    lat: float | None = None
    lon: float | None = None
    t0: float = 0.0  # epoch seconds of sample 0
    clock: ClockSync = field(default_factory=ClockSync)
    audio_clip: bool = False  # privacy: off unless asked
    clip_seconds: float = 3.0
    finalize_delay_s: float = 10.0
    chunk_s: float = 1.0  # input is processed in chunks this long (amortises per-call overhead)
    min_exhaust_score: float | None = None  # None: the model's own (classifier.min_exhaust_score); bench what-ifs

    def __post_init__(self) -> None:
        if not 0 <= self.clip_seconds <= 10:
            raise ConfigError("clip_seconds must be 0..10 s")
        if not 0 <= self.chunk_s <= 10:
            raise ConfigError("chunk_s must be 0..10 s")
        if not TRACE_MARGIN_S <= self.finalize_delay_s <= 20:
            raise ConfigError(f"finalize_delay_s must be {TRACE_MARGIN_S}..20 s")
        if self.min_exhaust_score is not None and not 0.5 <= self.min_exhaust_score <= 1:
            raise ConfigError("min_exhaust_score must be 0.5..1")


@dataclass
class FeedResult:
    seconds: list[SecondLevels]
    events: list[NoiseEvidence]
