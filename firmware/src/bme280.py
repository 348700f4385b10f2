# Bosch BME280 over I2C, forced mode, integer compensation from the datasheet (same maths as
# contract/codecs/bme280.py, which tests compare it with).
import struct

ADDRESSES = (0x76, 0x77)
CHIP_ID = 0x60


def _cdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def parse_calibration(a, b):
    t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, _, h1 = struct.unpack("<HhhHhhhhhhhhBB", a)
    h2, h3 = struct.unpack_from("<hB", b, 0)
    e4, e5, e6 = struct.unpack_from("<bBb", b, 3)
    h6 = struct.unpack_from("<b", b, 6)[0]
    return {"T1": t1, "T2": t2, "T3": t3, "P1": p1, "P2": p2, "P3": p3, "P4": p4, "P5": p5, "P6": p6,
            "P7": p7, "P8": p8, "P9": p9, "H1": h1, "H2": h2, "H3": h3,
            "H4": (e4 * 16) | (e5 & 0x0F), "H5": (e6 * 16) | (e5 >> 4), "H6": h6}


def parse_data(d):
    return ((d[0] << 12) | (d[1] << 4) | (d[2] >> 4), (d[3] << 12) | (d[4] << 4) | (d[5] >> 4), (d[6] << 8) | d[7])


def t_fine(c, adc_t):
    var1 = (((adc_t >> 3) - (c["T1"] << 1)) * c["T2"]) >> 11
    d = (adc_t >> 4) - c["T1"]
    return var1 + ((((d * d) >> 12) * c["T3"]) >> 14)


def temperature_centi(tf):
    return (tf * 5 + 128) >> 8


def pressure_q24_8(c, adc_p, tf):
    var1 = tf - 128000
    var2 = var1 * var1 * c["P6"]
    var2 = var2 + ((var1 * c["P5"]) << 17)
    var2 = var2 + (c["P4"] << 35)
    var1 = ((var1 * var1 * c["P3"]) >> 8) + ((var1 * c["P2"]) << 12)
    var1 = (((1 << 47) + var1) * c["P1"]) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    p = _cdiv(((p << 31) - var2) * 3125, var1)
    var1 = (c["P9"] * (p >> 13) * (p >> 13)) >> 25
    var2 = (c["P8"] * p) >> 19
    return ((p + var1 + var2) >> 8) + (c["P7"] << 4)


def humidity_q22_10(c, adc_h, tf):
    v = tf - 76800
    v = ((((adc_h << 14) - (c["H4"] << 20) - (c["H5"] * v)) + 16384) >> 15) * \
        (((((((v * c["H6"]) >> 10) * (((v * c["H3"]) >> 11) + 32768)) >> 10) + 2097152) * c["H2"] + 8192) >> 14)
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * c["H1"]) >> 4)
    v = min(max(v, 0), 419430400)
    return v >> 12


def compensate(c, adc_p, adc_t, adc_h):
    """-> (temperature degC, pressure Pa, humidity %RH)."""
    tf = t_fine(c, adc_t)
    return (temperature_centi(tf) / 100, pressure_q24_8(c, adc_p, tf) / 256, humidity_q22_10(c, adc_h, tf) / 1024)


class BME280:
    def __init__(self, i2c, address=None):
        self.i2c = i2c
        self.address = address
        self.cal = None

    def probe(self):
        """Find the chip; raises OSError with a readable message when it is not there."""
        found = self.i2c.scan()
        for addr in ((self.address,) if self.address else ADDRESSES):
            if addr in found:
                chip = self.i2c.readfrom_mem(addr, 0xD0, 1)[0]
                if chip != CHIP_ID:
                    raise OSError("device at I2C 0x%02x has chip id 0x%02x, not a BME280 (0x60)" % (addr, chip))
                self.address = addr
                self.cal = parse_calibration(self.i2c.readfrom_mem(addr, 0x88, 26),
                                             self.i2c.readfrom_mem(addr, 0xE1, 7))
                return addr
        raise OSError("no BME280 on I2C (looked at 0x76 and 0x77; found %s): check the 4 wires"
                      % (", ".join("0x%02x" % a for a in found) or "nothing"))

    def start_forced(self):
        self.i2c.writeto_mem(self.address, 0xF2, b"\x01")  # humidity x1 (applies after ctrl_meas)
        self.i2c.writeto_mem(self.address, 0xF4, b"\x25")  # T x1, P x1, forced

    def busy(self):
        return bool(self.i2c.readfrom_mem(self.address, 0xF3, 1)[0] & 0x08)

    def read(self):
        adc_p, adc_t, adc_h = parse_data(self.i2c.readfrom_mem(self.address, 0xF7, 8))
        return compensate(self.cal, adc_p, adc_t, adc_h)
