# Node configuration: /config.json, written by `dozor firmware flash`. Errors are sentences a technician
# on a ladder can act on; load() never raises for a bad file, it returns (config or None, [errors]).
import json

PATH = "/config.json"
NODES = ("noise", "air")
DEFAULTS = {
    "cal_offset_db": 0.0,
    "mic": "inmp441",
    "threshold_db": 85.0,
    "uart_baud": 115200,
    "air_period_s": 145,
}
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
_HEX = "0123456789abcdef"
FIX = "Run `dozor firmware flash` again with the right --id/--zone, or fix /config.json."


def _name_ok(v):
    if not isinstance(v, str) or not 1 <= len(v) <= 32:
        return False
    for c in v:
        if c not in _ID_CHARS:
            return False
    return True


def validate(raw):
    """dict -> (config dict with defaults, [error sentences])."""
    errors = []
    if not isinstance(raw, dict):
        return None, ["config.json does not hold a JSON object. " + FIX]
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    for key in ("device_id", "zone"):
        if key not in raw:
            errors.append("config.json has no '%s'. %s" % (key, FIX))
        elif not _name_ok(raw[key]):
            errors.append("config.json '%s' is %r: use 1-32 letters, digits, '-', '_' or '.'. %s"
                          % (key, raw[key], FIX))
    if raw.get("node") not in NODES:
        errors.append("config.json 'node' is %r: expected 'noise' or 'air'. %s" % (raw.get("node"), FIX))
    key = raw.get("key")
    if not isinstance(key, str) or len(key) != 64 or any(c not in _HEX for c in key):
        errors.append("config.json 'key' must be 64 lowercase hex digits (a 32-byte key). %s" % FIX)
    cal = cfg.get("cal_offset_db")
    if not isinstance(cal, (int, float)) or isinstance(cal, bool) or not -20.0 <= cal <= 20.0:
        errors.append("config.json 'cal_offset_db' is %r: expected a number from -20 to +20 dB "
                      "(from a 94 dB calibrator check)." % (cal,))
    thr = cfg.get("threshold_db")
    if not isinstance(thr, (int, float)) or isinstance(thr, bool) or not 40.0 <= thr <= 140.0:
        errors.append("config.json 'threshold_db' is %r: expected 40..140 dB." % (thr,))
    from levels import EQUALISERS
    if cfg.get("mic") not in EQUALISERS:
        errors.append("config.json 'mic' is %r: known microphones are %s."
                      % (cfg.get("mic"), ", ".join(sorted(EQUALISERS))))
    period = cfg.get("air_period_s")
    if not isinstance(period, int) or isinstance(period, bool) or not 30 <= period <= 3600:
        errors.append("config.json 'air_period_s' is %r: expected whole seconds 30..3600." % (period,))
    return (None if errors else cfg), errors


def load(path=PATH):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, ["No config.json on the node: it was never provisioned. Run `dozor firmware flash`."]
    try:
        raw = json.loads(text)
    except ValueError:
        return None, ["config.json is damaged (not valid JSON). " + FIX]
    return validate(raw)


def save(cfg, path=PATH):
    """Write atomically: a power cut leaves the old or the new file, never half of one."""
    import os
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(cfg))
    os.rename(tmp, path)


def public(cfg):
    """The config without its secret, for doctor and logs."""
    out = dict(cfg)
    if "key" in out:
        out["key"] = "<%d hex digits>" % len(out["key"]) if isinstance(out["key"], str) else "<invalid>"
    return out
