"""AQI tables: band edges of both current tables, worked examples, truncation, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.aqi import TABLES, AqiError, compute, overall

# (concentration, expected index) at every EPA 2024 band edge: the last value of a band and the first of
# the next. Written out by hand from the EPA fact sheet, not derived from the table under test.
EPA_2024_PM25_EDGES = [(0.0, 0), (9.0, 50), (9.1, 51), (35.4, 100), (35.5, 101), (55.4, 150), (55.5, 151),
                       (125.4, 200), (125.5, 201), (225.4, 300), (225.5, 301), (325.4, 500)]
EPA_PM10_EDGES = [(0, 0), (54, 50), (55, 51), (154, 100), (155, 101), (254, 150), (255, 151), (354, 200),
                  (355, 201), (424, 300), (425, 301), (604, 500)]
EEA_2024_PM25_EDGES = [(0.0, "good"), (5.0, "good"), (5.01, "fair"), (15.0, "fair"), (15.01, "moderate"),
                       (50.0, "moderate"), (50.01, "poor"), (90.0, "poor"), (90.01, "very_poor"),
                       (140.0, "very_poor"), (140.01, "extremely_poor"), (800.0, "extremely_poor")]
EEA_2024_PM10_EDGES = [(15.0, "good"), (15.01, "fair"), (45.0, "fair"), (45.01, "moderate"), (120.0, "moderate"),
                       (120.01, "poor"), (195.0, "poor"), (195.01, "very_poor"), (270.0, "very_poor"),
                       (270.01, "extremely_poor")]


@pytest.mark.parametrize("conc,index", EPA_2024_PM25_EDGES)
def test_epa_2024_pm25_band_edges(conc, index):
    assert compute("epa_2024", "pm2_5", conc).value == index


@pytest.mark.parametrize("conc,index", EPA_PM10_EDGES)
def test_epa_2024_pm10_band_edges(conc, index):
    assert compute("epa_2024", "pm10", conc).value == index


@pytest.mark.parametrize("conc,category", EEA_2024_PM25_EDGES)
def test_eaqi_2024_pm25_band_edges(conc, category):
    assert compute("eaqi_2024", "pm2_5", conc).category == category


@pytest.mark.parametrize("conc,category", EEA_2024_PM10_EDGES)
def test_eaqi_2024_pm10_band_edges(conc, category):
    assert compute("eaqi_2024", "pm10", conc).category == category


def test_epa_worked_examples_and_categories():
    assert [compute("epa_2024", "pm2_5", c).value for c in (5.0, 12.0, 35.9, 100.0)] == [28, 56, 102, 182]
    assert compute("epa_2024", "pm2_5", 100.0).category == "unhealthy"
    assert compute("epa_2024", "pm2_5", 100.0).colour == "#FF0000"


def test_epa_truncates_before_lookup():
    assert compute("epa_2024", "pm2_5", 9.09).value == 50  # 9.0, not 9.1
    assert compute("epa_2024", "pm2_5", 35.49).value == 100
    assert compute("epa_2024", "pm10", 54.9).value == 50


def test_2024_revision_changed_pm25_but_not_pm10():
    assert compute("epa_2012", "pm2_5", 12.0).value == 50
    assert compute("epa_2024", "pm2_5", 12.0).value == 56
    assert compute("epa_2012", "pm2_5", 150.4).value == 200
    assert compute("epa_2024", "pm2_5", 150.4).value == 226  # 99/99.9 * 24.9 + 201 = 225.68
    assert compute("eaqi_2017", "pm2_5", 10.0).category == "very_good"
    for c in (0, 54, 55, 300, 604):
        assert compute("epa_2012", "pm10", c).value == compute("epa_2024", "pm10", c).value


def test_beyond_the_index():
    r = compute("epa_2024", "pm2_5", 325.5)
    assert (r.value, r.category, r.beyond) == (500, "hazardous", True)
    r = compute("eaqi_2024", "pm2_5", 900.0)
    assert (r.value, r.category, r.beyond) == (6, "extremely_poor", True)


def test_overall_is_the_worst_pollutant():
    assert overall("epa_2024", {"pm2_5": 5.0, "pm10": 160.0}).pollutant == "pm10"
    assert overall("eaqi_2024", {"pm2_5": 20.0, "pm10": 10.0, "humidity": 99.0}).category == "moderate"
    with pytest.raises(AqiError):
        overall("epa_2024", {"humidity": 50.0})


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "12"])
def test_bad_concentrations_are_clear_errors(bad):
    with pytest.raises(AqiError, match="finite number"):
        compute("epa_2024", "pm2_5", bad)


def test_unknown_table_or_pollutant():
    with pytest.raises(AqiError, match="unknown AQI table"):
        compute("epa_1999", "pm2_5", 1.0)
    with pytest.raises(AqiError, match="has no"):
        compute("epa_2024", "o3", 1.0)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_tables_are_contiguous_and_monotonic(name):
    t = TABLES[name]
    for bands in t.bands.values():
        for a, b in zip(bands, bands[1:], strict=False):
            assert a.c_hi < b.c_lo or (not t.numeric and a.c_hi == b.c_lo)
            assert a.i_hi < b.i_lo or (not t.numeric and b.i_lo == a.i_lo + 1)


@settings(max_examples=200, deadline=None)
@given(a=st.floats(0, 1000), b=st.floats(0, 1000), name=st.sampled_from(sorted(TABLES)))
def test_index_is_monotonic_in_concentration(a, b, name):
    lo, hi = sorted((a, b))
    assert compute(name, "pm2_5", lo).value <= compute(name, "pm2_5", hi).value
