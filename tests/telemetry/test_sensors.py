"""BME280 compensation maths, the SDS011 duty cycle and reading validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.codecs import bme280 as bme
from contract.codecs import sds011 as sds
from contract.codecs.validate import (
    FLAG_HIGH_HUMIDITY,
    FLAG_OUT_OF_RANGE,
    FLAG_STUCK,
    Counters,
    StuckDetector,
    Validator,
    check_ranges,
    humidity_flag,
)
from contract.models import DeviceKind, Reading

CAL = bme.EXAMPLE_CALIBRATION


def float_reference(cal: bme.Calibration, raw: bme.Raw) -> tuple[float, float, float]:
    """The datasheet's floating-point compensation, an independent oracle for the integer code."""
    v1 = (raw.adc_t / 16384.0 - cal.T1 / 1024.0) * cal.T2
    v2 = ((raw.adc_t / 131072.0 - cal.T1 / 8192.0) ** 2) * cal.T3
    tf = v1 + v2
    t = tf / 5120.0
    v1 = tf / 2.0 - 64000.0
    v2 = v1 * v1 * cal.P6 / 32768.0 + v1 * cal.P5 * 2.0
    v2 = v2 / 4.0 + cal.P4 * 65536.0
    v1 = (cal.P3 * v1 * v1 / 524288.0 + cal.P2 * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * cal.P1
    p = 1048576.0 - raw.adc_p
    p = (p - v2 / 4096.0) * 6250.0 / v1
    p = p + (cal.P9 * p * p / 2147483648.0 + p * cal.P8 / 32768.0 + cal.P7) / 16.0
    h = tf - 76800.0
    h = (raw.adc_h - (cal.H4 * 64.0 + cal.H5 / 16384.0 * h)) * (
        cal.H2 / 65536.0 * (1.0 + cal.H6 / 67108864.0 * h * (1.0 + cal.H3 / 67108864.0 * h)))
    h = min(max(h * (1.0 - cal.H1 * h / 524288.0), 0.0), 100.0)
    return t, p, h


def test_bme280_datasheet_temperature_example():
    tf = bme.t_fine(CAL, 519888)
    assert tf == 128422
    assert bme.temperature_centi(tf) == 2508
    assert bme.parse_data(bytes([0, 0, 0, 0x7E, 0xED, 0x00, 0, 0])).adc_t == 519888


def test_bme280_pressure_matches_datasheet_example_within_rounding():
    # BMP280 datasheet example: adc_P = 415148 -> 100653.27 Pa (floating-point formula).
    p = bme.pressure_q24_8(CAL, 415148, 128422) / 256
    assert abs(p - 100653.27) < 0.1


def test_bme280_control_words_and_calibration_roundtrip():
    assert bme.ctrl_meas(1, 1, bme.MODE_FORCED) == 0x25
    assert bme.ctrl_hum(1) == 0x01
    a, b = CAL.pack()
    assert len(a) == 26 and len(b) == 7
    assert bme.Calibration.parse(a, b) == CAL
    with pytest.raises(ValueError):
        bme.Calibration.parse(a[:-1], b)


@settings(max_examples=150, deadline=None)
@given(adc_t=st.integers(450_000, 600_000), adc_p=st.integers(250_000, 500_000), adc_h=st.integers(0, 65535))
def test_bme280_integer_code_agrees_with_float_reference(adc_t, adc_p, adc_h):
    raw = bme.Raw(adc_p, adc_t, adc_h)
    got = bme.compensate(CAL, raw)
    t, p, h = float_reference(CAL, raw)
    assert abs(got.temperature - t) <= 0.011
    assert abs(got.pressure - p) <= 1.0
    assert abs(got.humidity - h) <= 0.05
    assert bme.parse_data(bme.pack_data(raw)) == raw


@settings(max_examples=60, deadline=None)
@given(t=st.floats(-30, 60), p=st.floats(80_000, 105_000), h=st.floats(1, 99))
def test_bme280_simulator_inverse(t, p, h):
    got = bme.compensate(CAL, bme.raw_for(CAL, t, p, h))
    assert abs(got.temperature - t) <= 0.01 + 1e-9  # one LSB of the 0.01 degC output, float-safe
    assert abs(got.pressure - p) <= 0.5
    assert abs(got.humidity - h) <= 0.05


# ---- SDS011 duty cycle ----------------------------------------------------------------------------------

def test_sds011_duty_cycle_discards_warmup_and_averages_the_window():
    dc = sds.DutyCycle(interval_s=60, warmup_s=15, read_s=5, sample_s=1)
    sent: list[tuple[float, sds.Sub, bytes]] = []
    for tick in range(0, 121):
        now = float(tick)
        for cmd in dc.poll(now):
            sent.append((now, cmd.sub, cmd.data[:2]))
            if cmd.sub is sds.Sub.QUERY:
                dc.on_measurement(now, sds.Measurement(10.0 + tick % 60, 20.0, 1))
        if 1 <= tick % 60 <= 14:  # the sensor, once awake, also streams during warm-up
            assert dc.on_measurement(now, sds.Measurement(500.0, 500.0, 1)) is False
        if tick == 21:
            result = dc.take()
            assert result == sds.Measurement(round((25 + 26 + 27 + 28 + 29) / 5, 1), 20.0, 1)
            assert dc.take() is None
    wakes = [t for t, sub, data in sent if sub is sds.Sub.SLEEP_WORK and data == b"\x01\x01"]
    sleeps = [t for t, sub, data in sent if sub is sds.Sub.SLEEP_WORK and data == b"\x01\x00"]
    queries = [t for t, sub, _ in sent if sub is sds.Sub.QUERY]
    assert wakes == [0.0, 60.0, 120.0]
    assert sleeps == [20.0, 80.0]
    assert queries == [15.0, 16.0, 17.0, 18.0, 19.0, 75.0, 76.0, 77.0, 78.0, 79.0]
    assert dc.counters["warmup_discarded"] == 28


def test_sds011_cycle_without_answers_is_counted():
    dc = sds.DutyCycle(interval_s=30, warmup_s=2, read_s=2)
    for tick in range(0, 10):
        dc.poll(float(tick))
    assert dc.take() is None
    assert dc.counters["cycle_without_samples"] == 1


# ---- validation -------------------------------------------------------------------------------------------

def reading(**metrics: float) -> Reading:
    return Reading(device="dust-1", kind=DeviceKind.SDS011, ts=1.0, metrics=metrics)


def test_range_checks_remove_count_and_flag():
    v = Validator()
    out = v.check(reading(pm2_5=12.0, pm10=-3.0))
    assert out.metrics == {"pm2_5": 12.0}
    assert FLAG_OUT_OF_RANGE in out.flags
    assert v.counters["out_of_range.pm10"] == 1
    assert v.check(reading(pm2_5=float("nan"))) is None
    assert v.counters["rejected_readings"] == 1 and v.counters["out_of_range.pm2_5"] == 1


def test_check_ranges_bounds_are_inclusive():
    good, removed = check_ranges({"humidity": 100.0, "temperature": -40.0, "pressure": 110000.0})
    assert not removed and len(good) == 3
    assert check_ranges({"humidity": 100.01})[1]


def test_stuck_detection():
    det = StuckDetector(repeats=3)
    assert [det.update("d", "pm2_5", 7.0) for _ in range(4)] == [False, False, True, True]
    assert det.update("d", "pm2_5", 7.1) is False
    assert [det.update("d", "pm2_5", 0.0) for _ in range(5)] == [False] * 5  # clean air is not stuck
    v = Validator(stuck_repeats=3)
    flags = [v.check(reading(pm2_5=5.0)).flags for _ in range(3)]
    assert FLAG_STUCK not in flags[1] and FLAG_STUCK in flags[2]
    assert v.counters["stuck"] == 1


def test_high_humidity_flag_above_75_percent():
    assert humidity_flag({"pm2_5": 1.0}, 75.1) is True
    assert humidity_flag({"pm2_5": 1.0}, 75.0) is False
    assert humidity_flag({"temperature": 1.0}, 99.0) is False
    assert humidity_flag({"pm2_5": 1.0}, None) is False
    v = Validator()
    climate = Reading(device="bme-1", kind=DeviceKind.BME280, ts=1.0, metrics={"humidity": 80.0})
    assert FLAG_HIGH_HUMIDITY not in v.check(climate).flags
    assert FLAG_HIGH_HUMIDITY in v.check(reading(pm2_5=40.0)).flags
    assert FLAG_HIGH_HUMIDITY not in v.check(reading(pm2_5=40.0), rh=60.0).flags
    assert v.counters["high_humidity"] == 1


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["pm2_5", "pm10", "humidity", "laeq", "other"]),
                       st.floats(allow_nan=True, allow_infinity=True), max_size=5))
def test_validator_never_raises_and_counts_every_removed_value(metrics):
    v = Validator()
    c = Counters()
    good, removed = check_ranges(metrics, c)
    out = v.check(Reading(device="d", kind=DeviceKind.SDS011, ts=0.0, metrics=metrics))
    assert sum(c.values()) == len(metrics) - len(good)
    assert (out is None) == (not good)
    if out is not None:
        assert out.metrics == good and ((FLAG_OUT_OF_RANGE in out.flags) == removed)


def test_sds011_duty_cycle_checks_the_device_id():
    dc = sds.DutyCycle(interval_s=60, warmup_s=1, read_s=2, device_id=0xA160)
    cmds = dc.poll(0.0) + dc.poll(1.0)
    assert {c.device_id for c in cmds} == {0xA160}
    assert dc.on_measurement(1.0, sds.Measurement(5.0, 6.0, 0xA160)) is True
    assert dc.on_measurement(1.0, sds.Measurement(5.0, 6.0, 0x0001)) is False
    assert dc.counters["wrong_device_id"] == 1
