"""Input sources for the noise pipeline: WAV files and a live microphone (USB or I2S via sounddevice).

Every source yields float32 blocks in full-scale units (channel 0). The microphone source takes a
``stream_factory`` so tests (and the scene simulator's microphone) can stand in for PortAudio.
"""

from __future__ import annotations

import queue
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gateway.noise.errors import NoiseError
from gateway.noise.wav import WavFormat, iter_wav


def wav_source(path: str | Path, block_frames: int = 48_000) -> tuple[WavFormat, Iterator[np.ndarray]]:
    return iter_wav(path, block_frames)


def _sounddevice_stream(**kwargs: Any) -> Any:
    try:
        import sounddevice  # optional: only gateways with a microphone need PortAudio
    except (ImportError, OSError) as exc:
        raise NoiseError(f"microphone input needs the 'sounddevice' package and PortAudio ({exc})") from None
    return sounddevice.InputStream(**kwargs)


class MicrophoneSource:
    """Blocks from a live input stream. Overflows reported by the driver are counted, never hidden."""

    def __init__(self, *, device: str | int | None = None, fs: int = 48_000, block: int = 4_800,
                 channels: int = 1, max_queue: int = 100,
                 stream_factory: Callable[..., Any] = _sounddevice_stream) -> None:
        self.fs = fs
        self.block = block
        self.counters: Counter[str] = Counter()
        self._q: queue.Queue[np.ndarray] = queue.Queue(maxsize=max_queue)
        self._stream = stream_factory(device=device, samplerate=fs, blocksize=block, channels=channels,
                                      dtype="float32", callback=self._callback)

    def _callback(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        # runs on the audio thread: never raise, count everything
        if status:
            self.counters["status_" + str(status).strip().replace(" ", "_")[:40]] += 1
        try:
            self._q.put_nowait(np.array(indata[:, 0] if np.ndim(indata) == 2 else indata, dtype=np.float32))
        except queue.Full:
            self.counters["dropped_blocks"] += 1

    def __enter__(self) -> MicrophoneSource:
        self._stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.stop()
        self._stream.close()

    def blocks(self, timeout: float = 2.0) -> Iterator[np.ndarray]:
        while True:
            try:
                yield self._q.get(timeout=timeout)
            except queue.Empty:
                self.counters["timeouts"] += 1
                raise NoiseError(f"microphone delivered nothing for {timeout} s") from None
