"""The microphone driver on its own (no broker): WAV input, audio clips that must fit one message, bad
samples, and config mistakes caught when the driver is built."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from contract import command as cc
from contract.evidence import EVENT_KIND, verify
from dozor.cli import app
from gateway.config import load_config
from gateway.devices.microphone import MicrophoneDriver
from gateway.errors import ConfigError
from gateway.evidence_key import load_or_create
from simulators.noise_scene import SceneMicrophone, write_scene
from tests.gateway.helpers import config_text
from tests.noise_gateway.helpers import ONE_EXHAUST_SEED, scene, wait_until
from tests.sensors.helpers import Sink, device


def mic(sink: Sink, tmp_path, **options) -> MicrophoneDriver:
    dev = MicrophoneDriver(device("microphone", "mic-1", bus=None, **options), sink=sink)
    dev.sign_with("gw-test", load_or_create(tmp_path / "state"))
    return dev


@pytest.mark.parametrize(("clip_s", "kept"), [(0.5, True), (3.0, False)])
async def test_wav_source_and_an_audio_clip_that_must_fit_one_message(tmp_path, clip_s, kept):
    sc = scene(ONE_EXHAUST_SEED, 24.0, exhaust=1)
    write_scene(sc, tmp_path / "street.wav", None)
    sink = Sink()
    dev = mic(sink, tmp_path, source="wav", file=str(tmp_path / "street.wav"), wav_speed=0, audio_clip=True,
              clip_seconds=clip_s)
    await dev.start()
    try:
        await wait_until(lambda: dev._task is not None and dev._task.done(), "the WAV file ended")
    finally:
        await dev.close()
    assert len(sink.readings) == 24
    assert [(d, k) for d, k, _, _ in sink.events] == [("mic-1", EVENT_KIND)]
    data = sink.events[0][3]
    key = dev.key.private.public_key()
    record = verify(data, {cc.key_id(key): key})  # re-signed after the clip was taken out
    assert (record.audio is not None) is kept
    assert dev.stats["audio_clip_too_large"] == (0 if kept else 1)
    assert record.sensor.kind == "wav" and record.enforcement


async def test_non_finite_samples_are_counted_and_keep_the_timing(tmp_path):
    sc = scene(3, 4.0)
    sc.audio[48_000:52_800] = np.nan  # one broken block in the second second
    sim = SceneMicrophone(sc, speed=20.0)
    sink = Sink()
    dev = MicrophoneDriver(device("microphone", "mic-1", bus=None, timeout_s=0.3, retry_s=60),
                           sink=sink, stream_factory=sim.stream_factory)
    await dev.start()
    try:
        await wait_until(lambda: dev.stats["input_errors"] >= 1, "the input ran dry")
        await wait_until(lambda: len(sink.readings) >= 4, "four readings")
    finally:
        await dev.close()
    assert dev.stats["nonfinite_blocks"] == 1 and dev.stats["driver_errors"] == 0
    assert [round(r.ts - sink.readings[0].ts, 3) for r in sink.readings] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(("options", "message"), [
    ({"source": "wav"}, 'source = "wav" needs file'),
    ({"loop": True}, "file and loop belong to source"),
    ({"thresholds": {"candidate_db": 90, "enforcement_db": 80}}, "enforcement_db must be >= candidate_db"),
    ({"fs": 44_105}, "divisible by 10"),
    ({"distance_to_lane_m": 500}, "distance_m 500"),
    ({"thresholds": {"candidat_db": 90}}, "unknown key"),
])
def test_config_mistakes_name_the_device(options, message):
    with pytest.raises(ConfigError) as exc:
        MicrophoneDriver(device("microphone", "mic-7", bus=None, **options))
    text = str(exc.value)
    assert "mic-7" in text and message in text


def test_every_example_microphone_builds():
    mics = [d for path in sorted((Path(__file__).resolve().parents[2] / "examples").glob("gateway*.toml"))
            for d in load_config(path).device if d.kind == "microphone"]
    assert mics
    for d in mics:
        dev = MicrophoneDriver(d)
        assert dev.analyzer_config(0.0).detector.distance_m == d.model_extra["distance_to_lane_m"]


def test_cli_prints_the_evidence_key_to_pin_on_the_hub(tmp_path):
    cfg = tmp_path / "gw.toml"
    cfg.write_text(config_text(tmp_path / "state"))
    runs = [CliRunner().invoke(app, ["gateway", "evidence-key", str(cfg), "--json"]) for _ in range(2)]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    first, second = (json.loads(r.output) for r in runs)
    assert first == second  # created once, reused
    key = load_or_create(tmp_path / "state")
    assert first == {"gateway": "gw-test", "kid": key.kid, "public_key": key.public_b64}
