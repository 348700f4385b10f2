# Boot counter and safe mode. Every boot counts as failed until the application calls mark_healthy()
# after running well for a while; after MAX_FAILED_BOOTS failed boots in a row the node starts in safe
# mode (only the link and the self-test run). An unfinished flash (marker file) or a bad config also
# force safe mode.
import json

STATE_PATH = "/bootstate.json"
FLASH_MARKER = "/.flashing"
MAX_FAILED_BOOTS = 3
HEALTHY_AFTER_S = 60


def _read(path):
    try:
        with open(path) as f:
            st = json.loads(f.read())
        if isinstance(st, dict) and isinstance(st.get("failed"), int) and isinstance(st.get("boots"), int):
            return st
    except (OSError, ValueError):
        pass
    return {"failed": 0, "boots": 0, "last_reset": None}


def _write(st, path):
    import os
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(st))
    os.rename(tmp, path)


def flash_incomplete():
    """The marker `dozor firmware flash` writes first and removes last; present = the flash did not finish."""
    try:
        with open(FLASH_MARKER) as f:
            return f.read().strip() or "unknown step"
    except OSError:
        return None


def on_boot(reset_cause=None, path=STATE_PATH):
    """Count this boot; return (state dict, safe_mode reason or None)."""
    st = _read(path)
    st["boots"] += 1
    st["failed"] += 1
    st["last_reset"] = reset_cause
    _write(st, path)
    reason = None
    if st["failed"] > MAX_FAILED_BOOTS:
        reason = "%d failed boots in a row (last reset: %s)" % (st["failed"] - 1, reset_cause)
    marker = flash_incomplete()
    if marker is not None:
        reason = "the last flash did not finish (%s)" % marker
    return st, reason


def mark_healthy(path=STATE_PATH):
    st = _read(path)
    if st["failed"]:
        st["failed"] = 0
        _write(st, path)
    return st


def state(path=STATE_PATH):
    return _read(path)
