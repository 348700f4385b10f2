"""The firmware's frame codec (MicroPython) against the contract's golden vectors, and the gateway's decoder."""

from __future__ import annotations

import json
from pathlib import Path

from contract.codecs import node_frame as cf

VECTORS = json.loads((Path(cf.__file__).parents[1] / "vectors" / "node_frame.json").read_text())
TYPE_NO = {"levels": 1, "event": 2, "air": 3, "status": 4}
CLS_NO = {"other": 0, "exhaust": 1, "siren": 2, "horn": 3}


def _pack_call(frame: dict) -> str:
    b = frame["body"]
    t = frame["type"]
    if t == "levels":
        return (f"nf.pack_levels({b['uptime_s']}, {b['laeq']!r}, {b['lafmax']!r}, {b['la10']!r}, {b['la90']!r}, "
                f"{b['clipped']}, {b['siren_tonal']})")
    if t == "event":
        return (f"nf.pack_event({b['start_ms']}, {b['duration_ms']}, {b['lafmax']!r}, {b['laeq']!r}, {b['sel']!r}, "
                f"{CLS_NO[b['cls']]}, {b['siren_suppressed']}, {b['clipped']})")
    if t == "air":
        return (f"nf.pack_air({b['uptime_s']}, {b['pm2_5']!r}, {b['pm10']!r}, {b['temperature']!r}, "
                f"{b['humidity']!r}, {b['pressure']!r})")
    return (f"nf.pack_status({b['uptime_s']}, {b['fw_major']}, {b['fw_minor']}, {b['boot_count']}, "
            f"{b['cal_offset']!r}, {b['clip_count']}, {b['error_bits']})")


def test_encode_matches_every_golden_frame(mpy):
    lines = ["import nodeframe as nf, binascii", "out = []"]
    for f in VECTORS["frames"]:
        lines.append(f"out.append(binascii.hexlify(nf.encode_raw({TYPE_NO[f['type']]}, {f['seq']}, "
                     f"{_pack_call(f)})).decode())")
    lines.append("import json\nprint('RESULT ' + json.dumps(out))")
    got = mpy.json("\n".join(lines))
    want = [f["hex"].replace(" ", "").lower() for f in VECTORS["frames"]]
    assert got == want
    assert len(got) == len(VECTORS["frames"]) >= 8


def test_crc_vector(mpy):
    got = mpy.json("import nodeframe, json\nprint('RESULT ' + json.dumps(nodeframe.crc16(b'123456789')))")
    assert got == VECTORS["crc16"]["value"] == 0x29B1


def test_decode_golden_frames_and_stream(mpy):
    frames = [f["hex"] for f in VECTORS["frames"]]
    stream = VECTORS["stream"]["hex"]
    code = f"""
import nodeframe as nf, binascii, json
bodies = []
for h in {frames!r}:
    used, fr = nf.decode(binascii.unhexlify(h.replace(' ', '')), {{}})
    bodies.append([used, fr[0], fr[2]])
buf = binascii.unhexlify({stream!r}.replace(' ', ''))
counters = {{}}
seqs = []
while buf:
    used, fr = nf.decode(buf, counters)
    if used == 0:
        break
    buf = buf[used:]
    if fr is not None:
        seqs.append(fr[0])
print('RESULT ' + json.dumps([bodies, seqs, counters]))
"""
    bodies, seqs, counters = mpy.json(code)
    for f, (used, seq, body) in zip(VECTORS["frames"], bodies, strict=True):
        assert used == len(bytes.fromhex(f["hex"]))
        assert seq == f["seq"]
        want = dict(f["body"])
        if "cls" in want:
            want["cls"] = CLS_NO[want["cls"]]
        got = {k: v for k, v in body.items() if k != "type"}
        assert got == want, f["name"]
    assert seqs == VECTORS["stream"]["expect_seqs"]
    assert counters == VECTORS["stream"]["expect_counters"]


def test_sender_numbers_frames_and_gateway_decodes_them(mpy):
    code = """
import nodeframe as nf, binascii, json
out = []
s = nf.Sender(out.append)
s.seq = 65534
for i in range(3):
    s.send(nf.LEVELS, nf.pack_levels(i, 50.0 + i, 60.0, 55.0, 45.0))
s.send(nf.STATUS, nf.pack_status(3, 1, 0, 7, -0.5, 2, 1))
print('RESULT ' + json.dumps([binascii.hexlify(b).decode() for b in out]))
"""
    wire = b"".join(bytes.fromhex(h) for h in mpy.json(code))
    counters = cf.Counters()
    frames = []
    while wire:
        used, fr = cf.decode(wire, counters)
        wire = wire[used:]
        if fr is not None:
            frames.append(fr)
    assert [f.seq for f in frames] == [65534, 65535, 0, 1]
    assert [f.body.laeq for f in frames[:3]] == [50.0, 51.0, 52.0]
    assert isinstance(frames[3].body, cf.NodeStatus) and frames[3].body.cal_offset == -0.5
    assert counters["frames"] == 4 and counters.total_bad() == 0
    tracker = cf.SeqTracker()
    assert [tracker.update(f.seq) for f in frames] == ["first", "ok", "ok", "ok"]  # 65535 -> 0 is a wrap, not a reset


def test_out_of_range_level_is_an_error_not_a_wrapped_value(mpy):
    err = mpy.run("import nodeframe as nf\nnf.pack_levels(0, 400.0, 1, 1, 1)", expect_error=True)
    assert "does not fit" in err
