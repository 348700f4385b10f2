# Stub HAL for firmware tests under the MicroPython WebAssembly interpreter: same API as
# firmware/src/hal.py, with hardware replaced by scripted, inspectable fakes. Only this file is fake.
import struct

CLOCK_MS = [0]
RESET_CAUSE = ["power"]
WDT_LOG = []
LINK_WRITES = []
MIC_BLOCKS = []  # list of array('i') / bytes blocks the microphone returns, in order
SDS_REPLIES = []  # bytes the SDS011 UART returns, one item per read()
SDS_WRITES = []
I2C_DEVICES = {}  # address -> {register: byte}


class Reset(Exception):
    pass


def pins(cfg=None):
    return {}


def ticks_ms():
    return CLOCK_MS[0]


def ticks_diff(a, b):
    return a - b


def advance(ms):
    CLOCK_MS[0] += ms


class FakeWDT:
    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.last_feed = CLOCK_MS[0]
        WDT_LOG.append(("start", timeout_ms))

    def feed(self):
        self.last_feed = CLOCK_MS[0]
        WDT_LOG.append(("feed", CLOCK_MS[0]))

    def expired(self):
        return CLOCK_MS[0] - self.last_feed > self.timeout_ms


def watchdog(timeout_ms):
    return FakeWDT(timeout_ms)


def reset():
    raise Reset()


def reset_cause():
    return RESET_CAUSE[0]


def unique_id():
    return "a0b1c2d3e4f5"


class FakeUART:
    def __init__(self, writes, replies):
        self.writes = writes
        self.replies = replies

    def write(self, data):
        self.writes.append(bytes(data))
        return len(data)

    def read(self):
        if self.replies:
            return self.replies.pop(0)
        return None


def link_uart(cfg=None, baud=115200):
    return FakeUART(LINK_WRITES, [])


def sds011_uart(cfg=None):
    return FakeUART(SDS_WRITES, SDS_REPLIES)


class FakeI2C:
    def scan(self):
        return sorted(I2C_DEVICES)

    def readfrom_mem(self, addr, reg, n):
        if addr not in I2C_DEVICES:
            raise OSError(19)  # ENODEV, as machine.I2C raises
        regs = I2C_DEVICES[addr]
        return bytes(regs.get(reg + i, 0) for i in range(n))

    def writeto_mem(self, addr, reg, data):
        if addr not in I2C_DEVICES:
            raise OSError(19)
        for i, b in enumerate(data):
            I2C_DEVICES[addr][reg + i] = b


def i2c(cfg=None):
    return FakeI2C()


def load_bme280(addr, calib_a, calib_b, data, chip_id=0x60):
    regs = {0xD0: chip_id, 0xF3: 0}
    for i, b in enumerate(calib_a):
        regs[0x88 + i] = b
    for i, b in enumerate(calib_b):
        regs[0xE1 + i] = b
    for i, b in enumerate(data):
        regs[0xF7 + i] = b
    I2C_DEVICES[addr] = regs


class Mic:
    def __init__(self, cfg=None, rate=48000, ibuf=19200):
        self.rate = rate

    def _fill(self, buf):
        if not MIC_BLOCKS:
            return 0
        block = MIC_BLOCKS.pop(0)
        n = min(len(block), len(buf))
        for i in range(n):
            buf[i] = block[i]
        return 4 * n

    async def readinto(self, buf):
        n = self._fill(buf)
        if n == 0:
            raise Reset()  # end of scripted audio: stop the node loop like a reset would
        return n

    def read_blocking(self, buf):
        return self._fill(buf)

    def close(self):
        pass


def mic_samples_from_file(path, block=2400):
    """Queue int32 little-endian samples from a file as microphone blocks."""
    from array import array
    with open(path, "rb") as f:
        data = f.read()
    n = len(data) // 4
    for start in range(0, n, block):
        k = min(block, n - start)
        a = array("i", bytes(4 * k))
        vals = struct.unpack_from(f"<{k}i", data, 4 * start)
        for i in range(k):
            a[i] = vals[i]
        MIC_BLOCKS.append(a)
