"""Regenerate contract/vectors/{sds011,pms5003,node_frame}.json: `python -m tests.telemetry.make_vectors`.

Vectors are byte-exact hex strings plus the decoded values; the tests (and the MicroPython firmware's
codec) check both directions against them. The datasheet worked examples are included verbatim.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from enum import IntEnum
from pathlib import Path

from contract.codecs import node_frame as nf
from contract.codecs import pms5003 as pms
from contract.codecs import sds011 as sds

OUT = Path(__file__).resolve().parents[2] / "contract" / "vectors"


def _plain(obj: object) -> object:
    if isinstance(obj, IntEnum):
        return obj.name.lower()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def node_frame_vectors() -> dict:
    frames = [
        ("levels_quiet_street", nf.Frame(0, nf.Levels(1, 55.25, 61.5, 58.0, 48.75))),
        ("levels_clipped_siren", nf.Frame(1, nf.Levels(2, 101.0, 121.37, 110.1, 95.0, clipped=True,
                                                       siren_tonal=True))),
        ("event_exhaust", nf.Frame(2, nf.NoiseEvent(3_512_250, 4_200, 97.42, 88.1, 94.33,
                                                    nf.EventClass.EXHAUST))),
        ("event_siren_suppressed", nf.Frame(3, nf.NoiseEvent(4_000_000, 61_000, 112.5, 104.2, 121.9,
                                                             nf.EventClass.SIREN, siren_suppressed=True))),
        ("air_full", nf.Frame(4, nf.AirSample(600, 12.3, 20.7, 21.5, 64.25, 100_653))),
        ("air_no_climate", nf.Frame(5, nf.AirSample(601, 123.6, 261.8, None, None, None))),
        ("status_boot", nf.Frame(6, nf.NodeStatus(0, 1, 4, 17, -0.35, 0, 0))),
        ("levels_seq_wrap", nf.Frame(65535, nf.Levels(4_000_000_000, -10.0, 140.0, 20.0, 20.0))),
    ]
    cases = []
    for name, fr in frames:
        cases.append({"name": name, "hex": nf.encode(fr).hex(" ").upper(), "seq": fr.seq,
                      "type": fr.type.name.lower(), "body": _plain(asdict(fr.body))})
    good = [nf.encode(fr) for _, fr in frames[:3]]
    bad_crc = bytearray(good[1])
    bad_crc[-1] ^= 0xFF
    stream = (b"\x00\xff\x13" + good[0] + b"\xa5\x5a\x09" + good[1] + bytes(bad_crc)
              + nf.encode_raw(9, 7, b"\x01\x02") + nf.encode_raw(1, 8, b"\x00" * 5) + b"\xa5" + good[2])
    return {
        "description": "dozor node UART frames; see contract/codecs/node_frame.py for the layout",
        "crc16": {"algorithm": "CRC-16/CCITT-FALSE", "input_ascii": "123456789", "value": 0x29B1},
        "frames": cases,
        "stream": {
            "hex": stream.hex(" ").upper(),
            "expect_seqs": [0, 1, 2],
            "expect_counters": {"frames": 3, "resync_bytes": 27, "bad_header": 1, "bad_crc": 1,
                                "unknown_type": 1, "bad_length": 1},
            "note": "3 garbage bytes (3 resync); A5 5A 09 = VER 9 (bad_header, skip A5, then 5A 09 = 2 "
                    "resync); frame seq 0; seq-1 frame with a broken CRC (bad_crc, skip A5, 21 resync); "
                    "TYPE 9 with a good CRC (unknown_type); LEVELS with a 5-byte payload (bad_length); "
                    "a lone A5 (1 resync); frame seq 2",
        },
    }


def sds011_vectors() -> dict:
    def hx(b: bytes) -> str:
        return b.hex(" ").upper()

    measurements = [
        ("datasheet_example", "AA C0 D4 04 3A 0A A1 60 1D AB", {"pm2_5": 123.6, "pm10": 261.8, "device_id": 0xA160}),
        ("clean_air", hx(sds.encode(sds.Measurement(0.0, 0.0, 0x0001))), {"pm2_5": 0.0, "pm10": 0.0,
                                                                           "device_id": 1}),
        ("max_range", hx(sds.encode(sds.Measurement(999.9, 999.9, 0xFFFF))),
         {"pm2_5": 999.9, "pm10": 999.9, "device_id": 0xFFFF}),
    ]
    replies = [
        ("reply_query_mode", hx(sds.encode(sds.Reply(sds.Sub.REPORTING_MODE, b"\x01\x01\x00", 0xA160))),
         {"sub": "reporting_mode", "data": "01 01 00", "device_id": 0xA160}),
        ("reply_sleeping", hx(sds.encode(sds.Reply(sds.Sub.SLEEP_WORK, b"\x01\x00\x00", 0xA160))),
         {"sub": "sleep_work", "data": "01 00 00", "device_id": 0xA160}),
    ]
    commands = {name: hx(sds.encode_command(fn())) for name, fn in [
        ("query_data", sds.query_data), ("set_query_mode", sds.set_query_mode),
        ("set_active_mode", sds.set_active_mode), ("sleep", sds.sleep), ("work", sds.work),
        ("firmware_version", sds.firmware_version)]}
    commands["working_period_5min"] = hx(sds.encode_command(sds.set_working_period(5)))
    return {"description": "Nova SDS011; see contract/codecs/sds011.py",
            "measurements": [{"name": n, "hex": h, "expect": e} for n, h, e in measurements],
            "replies": [{"name": n, "hex": h, "expect": e} for n, h, e in replies],
            "commands": commands,
            "bad": {"bad_checksum": "AA C0 D4 04 3A 0A A1 60 1E AB", "bad_tail": "AA C0 D4 04 3A 0A A1 60 1D AC"}}


def pms5003_vectors() -> dict:
    example = ("42 4D 00 1C 00 0C 00 13 00 17 00 0B 00 11 00 15 08 40 02 6C 00 79 00 08 00 02 00 00 "
               "00 00 02 4B")
    data = pms.Data(12, 19, 23, 11, 17, 21, 2112, 620, 121, 8, 2, 0, 0)
    assert pms.encode(data).hex(" ").upper() == example
    commands = {name: pms.encode_command(fn()).hex(" ").upper() for name, fn in [
        ("passive_mode", pms.passive_mode), ("active_mode", pms.active_mode), ("read", pms.read),
        ("sleep", pms.sleep), ("wake", pms.wake)]}
    return {"description": "Plantower PMS5003; see contract/codecs/pms5003.py",
            "frames": [{"name": "reference_example", "hex": example, "expect": asdict(data)},
                       {"name": "ack_passive_mode", "hex": pms.encode(pms.CommandAck(0xE1, 0)).hex(" ").upper(),
                        "expect": {"cmd": 0xE1, "data": 0}}],
            "commands": commands,
            "bad": {"bad_checksum": example[:-2] + "4C", "bad_length": "42 4D 00 1D" + example[11:]}}


def write(name: str, data: dict) -> None:
    (OUT / name).write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    write("node_frame.json", node_frame_vectors())
    write("sds011.json", sds011_vectors())
    write("pms5003.json", pms5003_vectors())


if __name__ == "__main__":
    main()
