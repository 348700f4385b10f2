# Node self-test, run by `dozor firmware flash` / `doctor` over the REPL and at every boot.
# Prints one line "SELFTEST <json>"; every failed check carries a sentence saying what to do.
import json
import math

import bootmgr
import config
import version

MANIFEST = "/manifest.json"


def sha256_file(path):
    import binascii
    import hashlib
    h = hashlib.sha256()
    buf = bytearray(512)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(buf if n == len(buf) else buf[:n])
    return binascii.hexlify(h.digest()).decode()


def check_files():
    try:
        with open(MANIFEST) as f:
            man = json.loads(f.read())
    except (OSError, ValueError):
        return False, "manifest.json missing or damaged: flash the firmware again", None
    bad = []
    for name, digest in man.get("files", {}).items():
        try:
            if sha256_file("/" + name) != digest:
                bad.append(name + " (changed)")
        except OSError:
            bad.append(name + " (missing)")
    if bad:
        return False, "firmware files damaged: %s; flash again" % ", ".join(bad), man
    return True, "%d files match manifest %s" % (len(man.get("files", {})), man.get("version")), man


def check_dsp():
    import levels
    amp = 10 ** ((94.0 - levels.FULL_SCALE_DB) / 20)  # peak of a sine reading 94 dB SPL
    lvl = levels.tone_level(1000.0, amp)
    ok = lvl is not None and abs(lvl - 94.0) < 0.5
    return ok, ("1 kHz test tone reads %.2f dB (expect 94.00)" % lvl) if lvl is not None else "no level computed"


def check_mic(cfg):
    from array import array

    import hal
    import levels
    mic = hal.Mic(cfg)
    raw = array("i", bytes(4 * 2400))
    n = mic.read_blocking(raw) // 4
    if n <= 0:
        return False, "microphone gave no samples: check the I2S wires (SCK, WS, SD) and 3.3 V"
    lo = min(raw[i] for i in range(n))
    hi = max(raw[i] for i in range(n))
    if lo == hi:
        return False, "microphone output is stuck at %d: check the SD wire and the L/R pin" % lo
    buf = array("f", bytes(4 * n))
    clips = levels.i32_to_float(raw, buf, n)
    ms = sum(buf[i] * buf[i] for i in range(n)) / n
    lvl = 10 * math.log10(ms if ms > 1e-30 else 1e-30) + levels.FULL_SCALE_DB + 10 * math.log10(2.0)
    return True, "microphone live, %.1f dB unweighted, %d clipped samples" % (lvl, clips)


def check_air(cfg):
    import time

    import hal
    import sds011
    from bme280 import BME280
    ok = True
    notes = []
    try:
        addr = BME280(hal.i2c(cfg)).probe()
        notes.append("BME280 at 0x%02x" % addr)
    except OSError as e:
        ok = False
        notes.append("BME280: %s" % e)
    uart = hal.sds011_uart(cfg)
    uart.write(sds011.query())
    got = None
    counters = {}
    rx = b""
    for _ in range(30):
        time.sleep_ms(50)
        d = uart.read()
        if d:
            rx += d
            used, got = sds011.parse(rx, counters)
            if got is not None:
                break
    if got is None:
        ok = False
        notes.append("SDS011 did not answer a query: check its 5 V supply and the TX/RX wires (crossed?)")
    else:
        notes.append("SDS011 answered")
    return ok, "; ".join(notes)


def run(hardware=True):
    checks = []

    def add(name, fn, *args):
        try:
            ok, detail = fn(*args)[:2]
        except Exception as e:  # a self-test must report, not crash
            ok, detail = False, "%s failed with %s: %s" % (name, type(e).__name__, e)
        checks.append({"name": name, "ok": ok, "detail": detail})

    cfg, errors = config.load()
    checks.append({"name": "config", "ok": not errors,
                   "detail": "; ".join(errors) if errors else "%s in zone %s" % (cfg["device_id"], cfg["zone"])})
    add("firmware", check_files)
    marker = bootmgr.flash_incomplete()
    st = bootmgr.state()
    checks.append({"name": "boot", "ok": marker is None and st["failed"] <= bootmgr.MAX_FAILED_BOOTS,
                   "detail": ("the last flash did not finish (%s): flash again" % marker) if marker else
                   "%d boots, %d failed in a row" % (st["boots"], st["failed"])})
    add("dsp", check_dsp)
    if hardware and cfg is not None:
        if cfg["node"] == "noise":
            add("microphone", check_mic, cfg)
        else:
            add("air sensors", check_air, cfg)
    result = {"version": version.VERSION, "ok": all(c["ok"] for c in checks), "checks": checks,
              "config": config.public(cfg) if cfg else None}
    return result


def main(hardware=True):
    print("SELFTEST " + json.dumps(run(hardware)))
