# Nova SDS011 in query mode: command frames (checksums computed, never copied), reply parsing with
# resync, and the duty cycle (wake, warm up 15 s, read 5 s, average, sleep) as a clock-driven state machine.
HEAD = 0xAA
TAIL = 0xAB
ALL = 0xFFFF
WARMUP_S = 15
READ_S = 5


def command(cmd, data=(), device_id=ALL):
    """19-byte host -> sensor frame: AA B4 D1..D13 IDH IDL CS AB, CS = sum(bytes 2..16) & 0xFF."""
    body = bytearray(15)
    body[0] = cmd
    for i, b in enumerate(data):
        body[1 + i] = b
    body[13] = (device_id >> 8) & 0xFF
    body[14] = device_id & 0xFF
    return bytes([HEAD, 0xB4]) + bytes(body) + bytes([sum(body) & 0xFF, TAIL])


def set_query_mode():
    return command(0x02, (1, 1))


def query():
    return command(0x04)


def sleep():
    return command(0x06, (1, 0))


def wake():
    return command(0x06, (1, 1))


def parse(buffer, counters):
    """(consumed, reading | None); reading = {"pm2_5", "pm10", "id"} or {"reply": cmd} for C5 replies."""
    n = len(buffer)
    i = 0
    while i < n and buffer[i] != HEAD:
        i += 1
    if i:
        counters["resync_bytes"] = counters.get("resync_bytes", 0) + i
        return i, None
    if n < 10:
        return 0, None
    f = buffer[0:10]
    if f[1] not in (0xC0, 0xC5) or f[9] != TAIL:
        counters["bad_frame"] = counters.get("bad_frame", 0) + 1
        return 1, None
    if sum(f[2:8]) & 0xFF != f[8]:
        counters["bad_checksum"] = counters.get("bad_checksum", 0) + 1
        return 1, None
    counters["frames"] = counters.get("frames", 0) + 1
    if f[1] == 0xC5:
        return 10, {"reply": f[2]}
    return 10, {"pm2_5": (f[3] * 256 + f[2]) / 10, "pm10": (f[5] * 256 + f[4]) / 10, "id": f[6] * 256 + f[7]}


class DutyCycle:
    """poll(now_s) -> list of commands to send; on_reading(now_s, r) -> True if used; take() -> average."""

    def __init__(self, period_s=145, warmup_s=WARMUP_S, read_s=READ_S):
        if period_s < warmup_s + read_s + 5:
            raise ValueError("air period %ss is shorter than warm-up + reading (%ss)" % (period_s, warmup_s + read_s))
        self.period = period_s
        self.warmup = warmup_s
        self.read = read_s
        self.phase = "start"
        self.t0 = None
        self.samples = []
        self.result = None
        self.last_query = None

    def poll(self, now):
        if self.phase == "start":
            self.phase, self.t0 = "warmup", now
            return [set_query_mode(), wake()]
        if self.phase == "warmup" and now - self.t0 >= self.warmup:
            self.phase = "reading"
        if self.phase == "reading":
            if now - self.t0 >= self.warmup + self.read:
                self._finish()
                self.phase = "sleeping"
                return [sleep()]
            if self.last_query is None or now - self.last_query >= 1:
                self.last_query = now
                return [query()]
        if self.phase == "sleeping" and now - self.t0 >= self.period:
            self.phase, self.t0, self.last_query = "warmup", now, None
            return [wake()]
        return []

    def on_reading(self, now, r):
        if self.phase != "reading" or "pm2_5" not in r:
            return False  # readings during warm-up are discarded (fan and laser not settled)
        self.samples.append((r["pm2_5"], r["pm10"]))
        return True

    def _finish(self):
        if self.samples:
            k = len(self.samples)
            self.result = (sum(s[0] for s in self.samples) / k, sum(s[1] for s in self.samples) / k, k)
        else:
            self.result = (None, None, 0)
        self.samples = []

    def take(self):
        r, self.result = self.result, None
        return r
