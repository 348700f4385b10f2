"""Sans-IO WAV (RIFF/WAVE) parsing: PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE.

``decode_header(buffer) -> (consumed, WavFormat | None)``: ``consumed`` is the offset of the first sample
byte once the header is complete, ``(0, None)`` means "give me more bytes". Anything malformed or
unsupported raises WavError with a message a technician understands. ``decode_samples`` converts whole
sample frames to float32 full-scale units (channel 0, the measuring microphone).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.noise.errors import WavError

MAX_HEADER_BYTES = 1 << 20  # chunks before "data" (LIST, bext, ...) beyond this are refused
PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
UNKNOWN_SIZE = 0xFFFFFFFF  # streaming writers leave the data size open


@dataclass(frozen=True)
class WavFormat:
    code: int  # PCM or FLOAT
    channels: int
    fs: int
    bits: int
    block_align: int
    data_bytes: int | None  # None: unknown (to the end of the file)

    @property
    def frames(self) -> int | None:
        return None if self.data_bytes is None else self.data_bytes // self.block_align


def decode_header(buf: bytes | bytearray | memoryview) -> tuple[int, WavFormat | None]:
    b = bytes(buf[: MAX_HEADER_BYTES + 64])
    if len(b) < 12:
        if b and not (b"RIFF".startswith(b[:4]) or b"RF64".startswith(b[:4])):
            raise WavError("not a WAV file: no RIFF header")
        return 0, None
    if b[:4] == b"RF64":
        raise WavError("RF64 (WAV > 4 GiB) is not supported")
    if b[:4] != b"RIFF" or b[8:12] != b"WAVE":
        raise WavError("not a WAV file: expected 'RIFF....WAVE'")
    pos = 12
    fmt: tuple[int, int, int, int, int] | None = None
    while True:
        if pos > MAX_HEADER_BYTES:
            raise WavError(f"no 'data' chunk in the first {MAX_HEADER_BYTES} bytes")
        if len(b) < pos + 8:
            return 0, None
        cid, size = b[pos: pos + 4], struct.unpack_from("<I", b, pos + 4)[0]
        if not all(32 <= c < 127 for c in cid):
            raise WavError(f"corrupt chunk id {cid!r} at byte {pos}")
        if cid == b"data":
            if fmt is None:
                raise WavError("'data' chunk before the 'fmt ' chunk")
            code, ch, fs, bits, align = fmt
            data_bytes = None if size == UNKNOWN_SIZE else size
            return pos + 8, WavFormat(code, ch, fs, bits, align, data_bytes)
        if size > MAX_HEADER_BYTES:
            raise WavError(f"chunk {cid.decode()!r} of {size} bytes before the data is too large")
        end = pos + 8 + size + (size & 1)
        if len(b) < end:
            return 0, None
        if cid == b"fmt ":
            if fmt is not None:
                raise WavError("two 'fmt ' chunks")
            fmt = _parse_fmt(b[pos + 8: pos + 8 + size])
        pos = end


def _parse_fmt(c: bytes) -> tuple[int, int, int, int, int]:
    if len(c) < 16:
        raise WavError(f"'fmt ' chunk is {len(c)} bytes, expected at least 16")
    code, ch, fs, _rate, align, bits = struct.unpack_from("<HHIIHH", c)
    if code == EXTENSIBLE:
        if len(c) < 40:
            raise WavError("WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is shorter than 40 bytes")
        code = struct.unpack_from("<H", c, 24)[0]
    if code not in (PCM, FLOAT):
        raise WavError(f"unsupported WAV sample format {code:#06x}: use PCM or IEEE float")
    if not 1 <= ch <= 32:
        raise WavError(f"{ch} channels: expected 1..32")
    if not 8_000 <= fs <= 384_000:
        raise WavError(f"sample rate {fs} Hz: expected 8000..384000")
    ok_bits = (8, 16, 24, 32) if code == PCM else (32, 64)
    if bits not in ok_bits:
        raise WavError(f"{bits}-bit {'PCM' if code == PCM else 'float'} is not supported (use {ok_bits})")
    if align != ch * bits // 8:
        raise WavError(f"block align {align} does not match {ch} channels x {bits} bits")
    return code, ch, fs, bits, align


def decode_samples(fmt: WavFormat, data: bytes | memoryview) -> tuple[int, np.ndarray]:
    """Convert the whole frames at the start of ``data``. Returns (bytes consumed, float32 channel 0)."""
    n = len(data) // fmt.block_align
    raw = np.frombuffer(data, dtype=np.uint8, count=n * fmt.block_align).reshape(n, fmt.block_align)
    w = fmt.bits // 8
    first = raw[:, :w]
    if fmt.code == FLOAT:
        x = first.copy().view("<f4" if w == 4 else "<f8").reshape(-1).astype(np.float32)
    elif w == 1:
        x = (first.reshape(-1).astype(np.float32) - 128.0) / 128.0
    elif w == 2:
        x = first.copy().view("<i2").reshape(-1).astype(np.float32) / 32768.0
    elif w == 3:
        v = first[:, 0].astype(np.int32) | (first[:, 1].astype(np.int32) << 8) | (first[:, 2].astype(np.int32) << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    else:
        x = first.copy().view("<i4").reshape(-1).astype(np.float32) / float(1 << 31)
    return n * fmt.block_align, x


def read_header(f, path: str = "") -> tuple[WavFormat, int]:
    buf = bytearray()
    while True:
        consumed, fmt = decode_header(buf)
        if fmt is not None:
            return fmt, consumed
        chunk = f.read(4096)
        if not chunk:
            raise WavError(f"{path or 'WAV'}: truncated header ({len(buf)} bytes)")
        buf += chunk
        if len(buf) > MAX_HEADER_BYTES + 4096:
            raise WavError(f"{path or 'WAV'}: header too large")


def iter_wav(path: str | Path, block_frames: int = 48_000) -> tuple[WavFormat, Iterator[np.ndarray]]:
    """Open a WAV file; return its format and an iterator of float32 blocks (channel 0).

    The iterator raises WavError at the end if the data chunk is shorter than it declares or ends with a
    partial sample frame.
    """
    p = Path(path)
    try:
        f = p.open("rb")
    except OSError as exc:
        raise WavError(f"{p}: cannot open ({exc.strerror})") from None
    try:
        fmt, offset = read_header(f, str(p))
    except BaseException:
        f.close()
        raise

    def gen() -> Iterator[np.ndarray]:
        with f:
            f.seek(offset)
            left = fmt.data_bytes
            step = block_frames * fmt.block_align
            while left is None or left > 0:
                want = step if left is None else min(step, left)
                chunk = f.read(want)
                if not chunk:
                    break
                used, x = decode_samples(fmt, chunk)
                if used != len(chunk):
                    if left is not None and len(chunk) == want:
                        raise WavError(f"{p}: data size is not a whole number of sample frames")
                    raise WavError(f"{p}: truncated inside a sample frame")
                if left is not None:
                    left -= used
                yield x
            if left:
                raise WavError(f"{p}: truncated: the data chunk is {left} bytes shorter than declared")

    return fmt, gen()
