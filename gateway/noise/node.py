"""The MicroPython noise node's UART frames as an input of the noise pipeline.

The node (``contract.codecs.node_frame``) sends LEVELS once a second and an EVENT per pass-by it detected
and classified itself; it sends no audio. ``NodeNoiseSource.feed(bytes)`` decodes the byte stream with the
contract's sans-IO codec (bad bytes are counted by reason, never raised) and returns per-second level
records and evidence records for the node's events.

A node event has no 10 Hz trace, no spectrum and no audio features, so it is never an enforcement case:
it carries the flag ``node_only`` and goes to human review as a candidate. Distance normalisation and
siren suppression (the hub's zone state, the node's own ``siren_suppressed`` / ``siren_tonal`` flags and a
``siren`` class) are applied exactly as for microphone events.
"""

from __future__ import annotations

from collections import Counter

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.codecs import node_frame as nf
from contract.codecs.validate import Counters, FrameStream
from contract.evidence import ClockSync, Levels, Location, NoiseEvidence, Sensor, Trace, sign
from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import CORE_S, SecondLevels
from gateway.noise.suppression import SirenSuppressor

NODE_FS = 48_000  # the node's sampling rate, reported in the evidence's sensor block


class NodeNoiseSource:
    def __init__(self, *, gateway: str, sensor: str, detector: DetectorConfig | None = None,
                 suppressor: SirenSuppressor | None = None, t0: float = 0.0, full_scale_db: float = 120.0,
                 clock: ClockSync | None = None, key: Ed25519PrivateKey | None = None) -> None:
        """``t0``: epoch seconds of node uptime 0 (the gateway learns it from the first frames)."""
        self.gateway, self.sensor = gateway, sensor
        self.detector = detector or DetectorConfig()
        self.suppressor = suppressor
        self.t0 = t0
        self.full_scale_db = full_scale_db
        self.clock = clock or ClockSync()
        self.key = key
        self.counters: Counters = Counters()
        self.stream = FrameStream(nf.decode, counters=self.counters)
        self.seq = nf.SeqTracker(self.counters)
        self.cal_offset_db = 0.0
        self._siren_tonal_until = -1.0
        self.stats: Counter[str] = Counter()

    def feed(self, data: bytes) -> tuple[list[SecondLevels], list[NoiseEvidence]]:
        seconds: list[SecondLevels] = []
        events: list[NoiseEvidence] = []
        for frame in self.stream.feed(data):
            if self.seq.update(frame.seq) == "duplicate":
                continue
            body = frame.body
            if isinstance(body, nf.Levels):
                t = float(body.uptime_s)
                if body.siren_tonal:
                    self._siren_tonal_until = t + 2.0
                seconds.append(SecondLevels(t=t, laeq=body.laeq, lafmax=body.lafmax, las=float("nan"),
                                            clipped=1 if body.clipped else 0))
            elif isinstance(body, nf.NoiseEvent):
                events.append(self._event(body))
            elif isinstance(body, nf.NodeStatus):
                self.cal_offset_db = body.cal_offset
            else:
                self.stats["ignored_" + type(body).__name__] += 1
        return seconds, events

    def _event(self, ev: nf.NoiseEvent) -> NoiseEvidence:
        det = self.detector
        start = ev.start_ms / 1000.0
        duration = max(ev.duration_ms / 1000.0, 0.001)
        end = start + duration
        lafmax_ref = ev.lafmax + det.distance_correction_db
        klass = ev.cls.name.lower()
        reasons = []
        if self.suppressor is not None:
            reasons += self.suppressor.reasons(start - CORE_S, end + CORE_S)
        if ev.siren_suppressed:
            reasons.append("node_siren")
        if start <= self._siren_tonal_until:
            reasons.append("node_tonal")
        if klass == "siren":
            reasons.append("classified_siren")
        flags = ["node_only"] + (["clipped"] if ev.clipped else [])
        self.stats["events"] += 1
        record = NoiseEvidence(
            id=f"{self.gateway}.{self.sensor}.{round((self.t0 + start) * 1000)}",
            gateway=self.gateway,
            sensor=Sensor(id=self.sensor, kind="noise_node", full_scale_db=self.full_scale_db,
                          calibration_offset_db=self.cal_offset_db, fs=NODE_FS),
            location=Location(distance_to_lane_m=det.distance_m), clock=self.clock,
            start=round(self.t0 + start, 3), end=round(self.t0 + end, 3), peak=round(self.t0 + start, 3),
            duration_s=round(duration, 3),
            levels=Levels(lafmax=round(ev.lafmax, 2), lafmax_7p5=round(lafmax_ref, 2), laeq=round(ev.laeq, 2),
                          sel=round(ev.sel, 2), lcpeak=None, clipped_samples=1 if ev.clipped else 0),
            klass=klass, scores={klass: 1.0}, features={}, suppressed=bool(reasons), suppression=tuple(reasons),
            candidate=lafmax_ref >= det.candidate_db, enforcement=False, flags=tuple(flags),
            thresholds={"candidate_db": det.candidate_db, "enforcement_db": det.enforcement_db,
                        "uncertainty_db": det.uncertainty_db, "reference_m": det.reference_m},
            trace=Trace(t0=round(self.t0 + start, 3), hz=10.0, laf=()), spectrum=None,
        )
        return sign(record, self.key) if self.key is not None else record
