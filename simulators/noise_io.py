"""Scene output: canonical WAV files, and a simulated microphone that streams a scene like an audio input."""

from __future__ import annotations

import json
import struct
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from simulators.noise_scene import Scene


def wav_bytes(audio: np.ndarray, fs: int, *, bits: int = 16) -> bytes:
    """A canonical RIFF/WAVE file: PCM 16-bit (clipped to full scale) or 32-bit IEEE float, mono."""
    x = np.asarray(audio, dtype=np.float64)
    if bits == 16:
        data = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()
        fmt, width = 1, 2
    elif bits == 32:
        data = x.astype("<f4").tobytes()
        fmt, width = 3, 4
    else:
        raise ValueError("bits must be 16 or 32")
    fmt_chunk = struct.pack("<HHIIHH", fmt, 1, fs, fs * width, width, width * 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", len(data)) + data
    if len(data) % 2:
        body += b"\0"
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_scene(scene: Scene, wav_path: Path, labels_path: Path | None, *, bits: int = 16) -> None:
    wav_path.write_bytes(wav_bytes(scene.audio, scene.fs, bits=bits))
    if labels_path is not None:
        labels_path.write_text(json.dumps(scene.labels, indent=1))


class SceneMicrophone:
    """A simulated microphone: yields a scene's samples in fixed blocks, like an audio input stream.

    ``stream_factory`` has the signature of ``sounddevice.InputStream`` (what the gateway's microphone
    source calls): the stream it returns plays the scene once through the callback, from its own thread,
    ``speed`` times faster than real time, and then falls silent like an unplugged microphone. Streams
    opened after that (``plays`` reached) never call back.
    """

    def __init__(self, scene: Scene, block: int = 4800, *, speed: float = 1.0, plays: int = 1) -> None:
        self.scene = scene
        self.block = block
        self.samplerate = scene.fs
        self.speed = speed
        self.plays = plays
        self.opened = 0  # streams opened
        self.delivered = 0  # blocks handed to callbacks
        self.finished = threading.Event()  # the last block of the last play was delivered

    def blocks(self):
        a = self.scene.audio
        for i in range(0, a.size, self.block):
            yield a[i: i + self.block]

    def stream_factory(self, **kw: object) -> SceneInputStream:
        self.opened += 1
        return SceneInputStream(self, play=self.opened <= self.plays, **kw)


class SceneInputStream:
    """The part of ``sounddevice.InputStream`` a consumer uses: ``start``, ``stop``, ``close``."""

    def __init__(self, mic: SceneMicrophone, *, play: bool, samplerate: float, blocksize: int, callback,
                 device: object = None, channels: int = 1, dtype: str = "float32") -> None:
        if int(samplerate) != mic.scene.fs:
            raise ValueError(f"invalid sample rate {samplerate}: the scene is {mic.scene.fs} Hz")
        self.mic, self.play, self.callback = mic, play, callback
        self.block = int(blocksize) or mic.block
        self.channels = channels
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.play:
            self._thread = threading.Thread(target=self._run, name="scene-microphone", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        a, fs, mic = self.mic.scene.audio, self.mic.scene.fs, self.mic
        t_start = time.monotonic()
        for i in range(0, a.size, self.block):
            if self._stop.is_set():
                return
            x = a[i: i + self.block]
            self.callback(np.repeat(x[:, None], self.channels, axis=1), x.size, None, None)
            mic.delivered += 1
            if mic.speed > 0:
                ahead = t_start + (i + x.size) / fs / mic.speed - time.monotonic()
                if ahead > 0 and self._stop.wait(ahead):
                    return
        mic.finished.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def close(self) -> None:
        self.stop()
