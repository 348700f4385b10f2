"""WAV parsing: formats, incremental (sans-IO) header decoding, and clear errors for bad files (fuzzed)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.noise.errors import WavError
from gateway.noise.wav import WavFormat, decode_header, decode_samples, iter_wav
from simulators.noise_scene import wav_bytes

FS = 48_000


def make_wav(samples: np.ndarray, *, code=1, bits=16, channels=1, fs=FS, extra_chunks=b"",
             extensible=False) -> bytes:
    x = np.repeat(np.asarray(samples, dtype=np.float64)[:, None], channels, axis=1)
    if code == 3:
        data = x.astype("<f4" if bits == 32 else "<f8").tobytes()
    elif bits == 8:
        data = np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    elif bits == 16:
        data = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()
    elif bits == 24:
        v = np.clip(np.round(x * (2**23 - 1)), -(2**23), 2**23 - 1).astype("<i4")
        data = b"".join(int(s).to_bytes(3, "little", signed=True) for s in v.reshape(-1))
    else:
        data = np.clip(np.round(x * (2**31 - 1)), -(2**31), 2**31 - 1).astype("<i4").tobytes()
    align = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHIH14s", 0xFFFE, channels, fs, fs * align, align, bits, 22, bits, 0, code,
                          b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71")
    else:
        fmt = struct.pack("<HHIIHH", code, channels, fs, fs * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks
    body += b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def read_all(path) -> tuple[WavFormat, np.ndarray]:
    fmt, blocks = iter_wav(path, block_frames=1000)
    return fmt, np.concatenate(list(blocks) or [np.zeros(0, np.float32)])


SIG = 0.5 * np.sin(2 * np.pi * 440 * np.arange(2500) / FS)


@pytest.mark.parametrize(("code", "bits", "tol"), [(1, 8, 1e-2), (1, 16, 1e-4), (1, 24, 1e-6), (1, 32, 1e-6),
                                                   (3, 32, 1e-7), (3, 64, 1e-7)])
@pytest.mark.parametrize("extensible", [False, True])
def test_formats_round_trip(tmp_path, code, bits, tol, extensible):
    p = tmp_path / "a.wav"
    p.write_bytes(make_wav(SIG, code=code, bits=bits, channels=2, extensible=extensible,
                           extra_chunks=b"LIST" + struct.pack("<I", 3) + b"abc\0"))
    fmt, x = read_all(p)
    assert (fmt.fs, fmt.channels, fmt.bits, fmt.frames) == (FS, 2, bits, SIG.size)
    assert np.max(np.abs(x - SIG)) < tol


def test_simulator_writer_is_readable(tmp_path):
    p = tmp_path / "s.wav"
    p.write_bytes(wav_bytes(SIG, FS, bits=32))
    assert np.max(np.abs(read_all(p)[1] - SIG)) < 1e-7


def test_header_fed_byte_by_byte():
    blob = make_wav(SIG[:10], extra_chunks=b"junk" + struct.pack("<I", 5) + b"12345\0")
    whole = decode_header(blob)
    for n in range(len(blob)):
        consumed, fmt = decode_header(blob[:n])
        if fmt is not None:
            assert (consumed, fmt) == whole
            assert n >= consumed
            break
        assert consumed == 0
    used, x = decode_samples(whole[1], blob[whole[0]: whole[0] + 7])  # 3.5 frames: 3 whole ones
    assert used == 6 and x.size == 3


@pytest.mark.parametrize(("blob", "msg"), [
    (b"RIFX\0\0\0\0WAVE", "not a WAV"),
    (b"RIFF\0\0\0\0AVI ", "not a WAV"),
    (b"RF64\0\0\0\0WAVE", "RF64"),
    (make_wav(SIG, code=2), "unsupported WAV sample format"),
    (make_wav(SIG, bits=12), "12-bit"),
    (make_wav(SIG, fs=1000), "sample rate"),
    (b"RIFF\x24\0\0\0WAVEdata\x04\0\0\0\0\0\0\0", "before the 'fmt '"),
    (b"RIFF\x24\0\0\0WAVEfmt \x08\0\0\0\x01\0\x01\0\x80\xbb\0\0data\0\0\0\0", "at least 16"),
])
def test_bad_headers_are_clear_errors(tmp_path, blob, msg):
    p = tmp_path / "b.wav"
    p.write_bytes(blob)
    with pytest.raises(WavError, match=msg):
        read_all(p)


def test_truncated_files(tmp_path):
    blob = make_wav(SIG)
    p = tmp_path / "t.wav"
    p.write_bytes(blob[: len(blob) - 1001])  # data chunk shorter than declared, ends mid-frame
    with pytest.raises(WavError, match="truncated"):
        read_all(p)
    p.write_bytes(blob[: len(blob) - 1000])  # whole frames, still short
    with pytest.raises(WavError, match="shorter than declared"):
        read_all(p)
    p.write_bytes(blob[:30])
    with pytest.raises(WavError, match="truncated header"):
        read_all(p)
    with pytest.raises(WavError, match="cannot open"):
        iter_wav(tmp_path / "missing.wav")


def test_odd_data_size_and_empty_data(tmp_path):
    blob = bytearray(make_wav(SIG[:4]))
    i = blob.index(b"data")
    blob[i + 4: i + 8] = struct.pack("<I", 7)  # 3.5 frames declared
    p = tmp_path / "o.wav"
    p.write_bytes(bytes(blob))
    with pytest.raises(WavError, match="whole number"):
        read_all(p)
    p.write_bytes(make_wav(SIG[:0]))
    assert read_all(p)[1].size == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_never_crash(blob):
    try:
        consumed, fmt = decode_header(blob)
    except WavError:
        return
    if fmt is not None:
        assert 12 < consumed <= len(blob)
        decode_samples(fmt, blob[consumed:])


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 200), st.integers(0, 255), st.integers(0, 400))
def test_fuzz_mutated_and_truncated_wav(pos, value, cut):
    blob = bytearray(make_wav(SIG[:50], bits=24))
    blob[pos % len(blob)] = value
    blob = bytes(blob[: len(blob) - cut])
    try:
        consumed, fmt = decode_header(blob)
        if fmt is not None:
            decode_samples(fmt, blob[consumed:])
    except WavError as exc:
        assert str(exc)
