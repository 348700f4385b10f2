"""Bosch BME280 register map and compensation maths (sans-IO; the I2C access lives in the gateway).

Registers: calibration 0x88..0xA1 (26 bytes: dig_T1..T3, dig_P1..P9, -, dig_H1) and 0xE1..0xE7
(7 bytes: dig_H2..H6), chip id 0xD0 = 0x60, reset 0xE0 <- 0xB6, ctrl_hum 0xF2, status 0xF3,
ctrl_meas 0xF4, config 0xF5, data 0xF7..0xFE (8 bytes: press msb/lsb/xlsb, temp msb/lsb/xlsb, hum msb/lsb).

Compensation follows the datasheet's integer reference code: temperature in 32-bit (0.01 degC, giving
``t_fine``), pressure in 64-bit (Q24.8 Pa), humidity in 32-bit (Q22.10 %RH). C's truncating division
is reproduced. Worked example (BMP280 datasheet calibration): dig_T1=27504, dig_T2=26435, dig_T3=-1000,
adc_T=519888 -> 25.08 degC, t_fine=128422.

For the simulator, ``Calibration.pack`` writes calibration bytes and ``raw_for`` finds the raw ADC values
that compensate to a wanted reading (by bisection: each compensation is monotonic in its ADC value).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

REG_CALIB_A = 0x88
CALIB_A_LEN = 26
REG_CALIB_B = 0xE1
CALIB_B_LEN = 7
REG_CHIP_ID = 0xD0
CHIP_ID = 0x60
REG_RESET = 0xE0
RESET_WORD = 0xB6
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7
DATA_LEN = 8
STATUS_MEASURING = 0x08
MODE_SLEEP, MODE_FORCED, MODE_NORMAL = 0b00, 0b01, 0b11
OVERSAMPLING = {0: 0, 1: 1, 2: 2, 4: 3, 8: 4, 16: 5}  # factor -> register code
ADC_MAX_20 = (1 << 20) - 1
ADC_MAX_16 = (1 << 16) - 1


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def ctrl_hum(osrs_h: int = 1) -> int:
    return OVERSAMPLING[osrs_h]


def ctrl_meas(osrs_t: int = 1, osrs_p: int = 1, mode: int = MODE_FORCED) -> int:
    """E.g. ctrl_meas(1, 1, MODE_FORCED) == 0x25 (T x1, P x1, forced)."""
    return (OVERSAMPLING[osrs_t] << 5) | (OVERSAMPLING[osrs_p] << 2) | mode


@dataclass(frozen=True, slots=True)
class Calibration:
    T1: int
    T2: int
    T3: int
    P1: int
    P2: int
    P3: int
    P4: int
    P5: int
    P6: int
    P7: int
    P8: int
    P9: int
    H1: int
    H2: int
    H3: int
    H4: int
    H5: int
    H6: int

    @classmethod
    def parse(cls, a: bytes, b: bytes) -> Calibration:
        """``a`` = 26 bytes from 0x88, ``b`` = 7 bytes from 0xE1."""
        if len(a) != CALIB_A_LEN or len(b) != CALIB_B_LEN:
            raise ValueError(f"calibration blocks are {CALIB_A_LEN} and {CALIB_B_LEN} bytes")
        t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, _, h1 = struct.unpack("<HhhHhhhhhhhhBB", a)
        h2, h3 = struct.unpack_from("<hB", b, 0)
        e4, e5, e6 = struct.unpack_from("<bBb", b, 3)
        h4 = (e4 * 16) | (e5 & 0x0F)
        h5 = (e6 * 16) | (e5 >> 4)
        (h6,) = struct.unpack_from("<b", b, 6)
        return cls(t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6)

    def pack(self) -> tuple[bytes, bytes]:
        a = struct.pack("<HhhHhhhhhhhhBB", self.T1, self.T2, self.T3, self.P1, self.P2, self.P3, self.P4,
                        self.P5, self.P6, self.P7, self.P8, self.P9, 0, self.H1)
        e4 = self.H4 >> 4
        e5 = (self.H4 & 0x0F) | ((self.H5 & 0x0F) << 4)
        e6 = self.H5 >> 4
        b = struct.pack("<hBbBbb", self.H2, self.H3, e4, e5, e6, self.H6)
        return a, b


# A plausible calibration set (T and P from the Bosch BMP280 datasheet example; H typical values).
EXAMPLE_CALIBRATION = Calibration(27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600,
                                  6000, 75, 362, 0, 313, 50, 30)


@dataclass(frozen=True, slots=True)
class Raw:
    adc_p: int
    adc_t: int
    adc_h: int


def parse_data(data: bytes) -> Raw:
    """The 8 data bytes from 0xF7."""
    if len(data) != DATA_LEN:
        raise ValueError(f"data block is {DATA_LEN} bytes")
    adc_p = (data[0] << 12) | (data[1] << 4) | (data[2] >> 4)
    adc_t = (data[3] << 12) | (data[4] << 4) | (data[5] >> 4)
    adc_h = (data[6] << 8) | data[7]
    return Raw(adc_p, adc_t, adc_h)


def pack_data(raw: Raw) -> bytes:
    p, t, h = raw.adc_p, raw.adc_t, raw.adc_h
    return bytes([p >> 12, (p >> 4) & 0xFF, (p & 0xF) << 4, t >> 12, (t >> 4) & 0xFF, (t & 0xF) << 4,
                  h >> 8, h & 0xFF])


def t_fine(cal: Calibration, adc_t: int) -> int:
    var1 = (((adc_t >> 3) - (cal.T1 << 1)) * cal.T2) >> 11
    d = (adc_t >> 4) - cal.T1
    var2 = (((d * d) >> 12) * cal.T3) >> 14
    return var1 + var2


def temperature_centi(tf: int) -> int:
    """Temperature in 0.01 degC from t_fine."""
    return (tf * 5 + 128) >> 8


def pressure_q24_8(cal: Calibration, adc_p: int, tf: int) -> int:
    """Pressure in Pa * 256 (Q24.8); 0 when the calibration would divide by zero."""
    var1 = tf - 128000
    var2 = var1 * var1 * cal.P6
    var2 = var2 + ((var1 * cal.P5) << 17)
    var2 = var2 + (cal.P4 << 35)
    var1 = ((var1 * var1 * cal.P3) >> 8) + ((var1 * cal.P2) << 12)
    var1 = (((1 << 47) + var1) * cal.P1) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    p = _cdiv(((p << 31) - var2) * 3125, var1)
    var1 = (cal.P9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (cal.P8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (cal.P7 << 4)


def humidity_q22_10(cal: Calibration, adc_h: int, tf: int) -> int:
    """Relative humidity in %RH * 1024 (Q22.10), clamped to 0..100 %."""
    v = tf - 76800
    v = ((((adc_h << 14) - (cal.H4 << 20) - (cal.H5 * v)) + 16384) >> 15) * \
        (((((((v * cal.H6) >> 10) * (((v * cal.H3) >> 11) + 32768)) >> 10) + 2097152) * cal.H2 + 8192) >> 14)
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * cal.H1) >> 4)
    v = min(max(v, 0), 419430400)
    return v >> 12


@dataclass(frozen=True, slots=True)
class Climate:
    temperature: float  # degC
    pressure: float  # Pa
    humidity: float  # %RH

    def metrics(self) -> dict[str, float]:
        return {"temperature": self.temperature, "pressure": self.pressure, "humidity": self.humidity}


def compensate(cal: Calibration, raw: Raw) -> Climate:
    tf = t_fine(cal, raw.adc_t)
    return Climate(temperature_centi(tf) / 100, round(pressure_q24_8(cal, raw.adc_p, tf) / 256, 2),
                   round(humidity_q22_10(cal, raw.adc_h, tf) / 1024, 3))


def _bisect(f, lo: int, hi: int, target: float, increasing: bool) -> int:
    while lo < hi:
        mid = (lo + hi) // 2
        below = f(mid) < target if increasing else f(mid) > target
        if below:
            lo = mid + 1
        else:
            hi = mid
    return lo


def raw_for(cal: Calibration, temperature: float, pressure: float, humidity: float) -> Raw:
    """Simulator side: raw ADC values whose compensation is (nearly) the wanted reading."""
    adc_t = _bisect(lambda a: temperature_centi(t_fine(cal, a)), 0, ADC_MAX_20, temperature * 100, True)
    tf = t_fine(cal, adc_t)
    adc_p = _bisect(lambda a: pressure_q24_8(cal, a, tf), 0, ADC_MAX_20, pressure * 256, False)
    adc_h = _bisect(lambda a: humidity_q22_10(cal, a, tf), 0, ADC_MAX_16, humidity * 1024, True)
    return Raw(adc_p, adc_t, adc_h)
