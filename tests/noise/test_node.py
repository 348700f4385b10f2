"""Noise-node UART frames as a pipeline input: levels, node events, garbage (fuzzed)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.codecs import node_frame as nf
from gateway.noise.detector import DetectorConfig
from gateway.noise.node import NodeNoiseSource
from gateway.noise.spectrum import SPEC_HZ, Spectrogram
from gateway.noise.suppression import SirenSuppressor


def frames_bytes() -> bytes:
    out = [nf.encode(nf.Frame(0, nf.Levels(10, 60.0, 65.5, 63.0, 58.0))),
           nf.encode(nf.Frame(1, nf.NoiseEvent(11_000, 2_500, 97.0, 92.0, 96.0, nf.EventClass.EXHAUST))),
           nf.encode(nf.Frame(1, nf.NoiseEvent(11_000, 2_500, 97.0, 92.0, 96.0, nf.EventClass.EXHAUST))),  # dup
           nf.encode(nf.Frame(2, nf.NoiseEvent(30_000, 4_000, 99.0, 95.0, 101.0, nf.EventClass.SIREN, True)))]
    return b"\x00garbage" + b"".join(out)


def test_levels_and_events_from_frames():
    src = NodeNoiseSource(gateway="gw-1", sensor="node-1", detector=DetectorConfig(distance_m=15.0), t0=1000.0)
    blob = frames_bytes()
    seconds, events = [], []
    for i in range(0, len(blob), 5):  # byte dribble
        s, e = src.feed(blob[i: i + 5])
        seconds += s
        events += e
    assert [(s.t, s.laeq, s.lafmax) for s in seconds] == [(10.0, 60.0, 65.5)]
    assert len(events) == 2 and src.counters["seq_duplicate"] == 1 and src.counters["resync_bytes"] >= 8
    ex, siren = events
    assert ex.klass == "exhaust" and ex.levels.lafmax_7p5 == round(97.0 + 20 * math.log10(2), 2)
    assert ex.start == 1011.0 and not ex.suppressed and not ex.enforcement and "node_only" in ex.flags
    assert siren.suppressed and set(siren.suppression) == {"node_siren", "classified_siren"}


def test_zone_state_suppresses_node_events():
    sup = SirenSuppressor(Spectrogram(48_000).freqs, SPEC_HZ)
    sup.add_zone_interval(5.0, 20.0)
    src = NodeNoiseSource(gateway="gw-1", sensor="node-1", suppressor=sup)
    _, events = src.feed(frames_bytes())
    assert events[0].suppression == ("zone_state",)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 400))
def test_fuzz_garbage_and_corruption_never_raise(noise, pos):
    blob = bytearray(frames_bytes() + noise)
    if blob:
        blob[pos % len(blob)] ^= 0x5A
    src = NodeNoiseSource(gateway="gw-1", sensor="node-1")
    seconds, events = src.feed(bytes(blob))
    assert len(events) <= 2 and len(seconds) <= 1
    assert all(not e.enforcement for e in events)
