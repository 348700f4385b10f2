"""The microphone's config keys (``kind = "microphone"``), apart from its driver so `check-config` needs no numpy.

The keys are documented in ``gateway/devices/microphone.py``; the device-kind table points here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.devices.sensors._base import SensorOptions


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Location(_M):
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    description: str = Field(default="", max_length=200)


# Supported microphones: digital full scale (dB SPL of a full-scale sine) and the IEC 61672-1 class the
# measuring chain is designed to. >= 130 dB parts keep the loudest exhausts (crackle peaks) unclipped.
MICROPHONES: dict[str, tuple[float, int]] = {
    "inmp441": (120.0, 2),  # -26 dBFS at 94 dB SPL, AOP 120 dB: clips on loud exhausts
    "ics43434": (120.0, 2),
    "sph0645": (120.0, 2),
    "im69d130": (130.0, 2),  # Infineon IM69D130 (PDM, AOP 130 dB SPL) through a PDM->I2S/USB bridge
    "im73a135": (135.0, 2),  # Infineon IM73A135 (analog, AOP 135 dB SPL) + 24-bit ADC set for 135 dB FS
    "class1_capsule_adc": (140.0, 1),  # analog class-1 measurement capsule + preamp + ADC, 140 dB FS
}


class Thresholds(_M):
    candidate_db: float = 85.0
    enforcement_db: float = 95.0
    uncertainty_db: float = 2.0
    lane_half_width_m: float = Field(default=0.8, ge=0, le=5)
    hysteresis_db: float = 3.0
    min_duration_s: float = 0.3
    max_duration_s: float = 20.0


class Options(SensorOptions):
    stale_s: float | None = Field(default=5.0, gt=0, le=86400)
    source: str = Field(default="sounddevice", min_length=1, max_length=200)
    file: Path | None = None
    loop: bool = False
    wav_speed: float = Field(default=1.0, ge=0, le=1000)  # 1: real time; 0: as fast as the analysis runs
    fs: int = Field(default=48_000, ge=44_100, le=192_000)
    block: int = Field(default=4_800, ge=64, le=192_000)
    microphone: str | None = None
    full_scale_db: float | None = Field(default=None, ge=60, le=180)
    meter_class: int | None = Field(default=None, ge=1, le=2)
    calibration_offset_db: float = 0.0
    calibration_date: str | None = Field(default=None, max_length=32)
    distance_to_lane_m: float = 7.5
    location: Location = Location()
    thresholds: Thresholds = Thresholds()
    audio_clip: bool = False
    clip_seconds: float = Field(default=0.5, gt=0, le=3.0)
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    retry_s: float = Field(default=5.0, gt=0, le=3600)
    queue_blocks: int = Field(default=100, ge=2, le=10_000)

    @model_validator(mode="before")
    @classmethod
    def _microphone(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        mic = data.get("microphone")
        if mic is not None and mic not in MICROPHONES:
            raise ValueError(f"microphone {mic!r}: expected one of {', '.join(MICROPHONES)}")
        fs_db, klass = MICROPHONES.get(mic or "", (120.0, 2))
        data = dict(data)
        data.setdefault("full_scale_db", fs_db)
        data.setdefault("meter_class", klass)
        return data

    @model_validator(mode="after")
    def _source(self) -> Options:
        if self.source == "wav" and self.file is None:
            raise ValueError('source = "wav" needs file = "<path to a WAV file>"')
        if self.source != "wav" and (self.file is not None or self.loop):
            raise ValueError('file and loop belong to source = "wav"')
        return self
