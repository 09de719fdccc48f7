"""Unit conversions and spellings of the analyte vocabulary, and its consistency."""

from __future__ import annotations

import pytest

from features.vocabulary import (
    ANALYTES,
    OxygenDevice,
    conversion,
    from_canonical,
    normalise_unit,
    resolve_analyte,
    resolve_unit,
    to_canonical,
)

PAIRS = [(a.key, unit) for a in ANALYTES.values() for unit in a.units]


@pytest.mark.parametrize(("analyte", "unit"), PAIRS, ids=[f"{a}[{u}]" for a, u in PAIRS])
def test_round_trip_every_analyte_and_unit(analyte, unit):
    a = ANALYTES[analyte]
    lo, hi = a.soft
    for canonical in (lo, (lo + hi) / 2, hi):
        given = from_canonical(analyte, canonical, unit)
        assert to_canonical(analyte, given, unit) == pytest.approx(canonical, rel=1e-12, abs=1e-9)
    assert from_canonical(analyte, to_canonical(analyte, 12.5, unit), unit) == pytest.approx(12.5)


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "canonical"),
    [
        ("crp", 1.0, "mg/dL", 10.0),
        ("creatinine", 88.4, "µmol/L", 1.0),
        ("ldh", 1.0, "µkat/L", 60.0),
        ("temperature", 98.6, "°F", 37.0),
        ("temperature", 32.0, "°F", 0.0),
        ("platelets", 150_000.0, "/µL", 150.0),
        ("platelets", 150.0, "10^3/µL", 150.0),
        ("ferritin", 1.0, "µg/L", 1.0),
        ("ferritin", 2.247, "pmol/L", 1.0),
        ("il6", 1.0, "ng/mL", 1000.0),
        ("sgp130", 250_000.0, "pg/mL", 250.0),
        ("fibrinogen", 300.0, "mg/dL", 3.0),
    ],
)
def test_known_conversions(analyte, value, unit, canonical):
    assert to_canonical(analyte, value, unit) == pytest.approx(canonical)


@pytest.mark.parametrize(
    ("analyte", "spelling", "declared"),
    [
        ("crp", "mg/dl", "mg/dL"),
        ("crp", "MG/L", "mg/L"),
        ("crp", " mg / L ", "mg/L"),
        ("ferritin", "ug/L", "µg/L"),
        ("ferritin", "μg/L", "µg/L"),  # Greek mu
        ("platelets", "x10^9/L", "10^9/L"),
        ("platelets", "x10*9/L", "10^9/L"),
        ("platelets", "10**9/L", "10^9/L"),
        ("platelets", "10^3/uL", "10^3/µL"),
        ("creatinine", "umol/l", "µmol/L"),
        ("ldh", "ukat/L", "µkat/L"),
        ("ldh", "iu/l", "IU/L"),
        ("temperature", "degF", "°F"),
        ("temperature", "F", "°F"),
        ("temperature", "Celsius", "°C"),
        ("temperature", "ºC", "°C"),  # masculine ordinal, a common keyboard stand-in
        ("oxygen_flow", "l/min", "L/min"),
    ],
)
def test_unit_spellings_are_normalised(analyte, spelling, declared):
    assert resolve_unit(analyte, spelling) == declared


@pytest.mark.parametrize(
    ("analyte", "unit"),
    [("crp", "mg/dk"), ("crp", "U/L"), ("temperature", "K"), ("il6", "mg/L"), ("nope", "mg/L")],
)
def test_unaccepted_units_are_refused(analyte, unit):
    assert resolve_unit(analyte, unit) is None
    with pytest.raises(KeyError):
        conversion(analyte, unit)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("IL-6", "il6"),
        ("Interleukin 6", "il6"),
        ("IFN-gamma", "ifng"),
        ("TNF-alpha", "tnfa"),
        ("MIP-alpha", "mip1a"),
        ("IL-1B", "il1b"),
        ("GM-CSF", "gmcsf"),
        ("  CRP ", "crp"),
        ("C-reactive protein", "crp"),
        ("PLT", "platelets"),
        ("temp", "temperature"),
    ],
)
def test_analyte_aliases(name, key):
    assert resolve_analyte(name) == key


def test_unknown_analyte():
    assert resolve_analyte("IL-99") is None


@pytest.mark.parametrize("key", list(ANALYTES))
def test_declarations_are_consistent(key):
    a = ANALYTES[key]
    assert a.key == key
    assert a.units[a.canonical_unit].scale == 1.0 and a.units[a.canonical_unit].offset == 0.0
    assert a.hard[0] <= a.soft[0] <= a.soft[1] <= a.hard[1]
    for unit in a.units:  # every declared spelling resolves to itself
        assert resolve_unit(key, unit) == unit
    for alias in a.aliases:
        assert resolve_analyte(alias) == key
    if a.loinc is not None:
        number, check = a.loinc.split("-")
        assert number.isdigit() and check.isdigit()


def test_normalised_unit_keys_do_not_collide_within_an_analyte():
    for a in ANALYTES.values():
        keys = [normalise_unit(u) for u in a.units]
        assert len(keys) == len(set(keys)), a.key


def test_oxygen_device_range_matches_codes():
    assert ANALYTES["oxygen_device"].hard == (0.0, float(max(OxygenDevice)))
