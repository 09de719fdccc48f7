"""Analyte vocabulary: one canonical unit per analyte and the conversions labs really use.

Every measurement row names an ``analyte`` (a key of :data:`ANALYTES`) and a ``unit``; the unit
is normalised (case, ``µ``/``u``/``mcg``, spaces, ``10^9/L``/``x10E9/L``/``10*3/uL``/``K/µL``
spellings, ``/mm3`` = ``/µL``, ``UI/L`` = ``IU/L``) and converted to the analyte's
canonical unit by an affine map ``canonical = value * scale + offset`` (the offset is only
non-zero for °F → °C). Unknown analytes or units are errors, never silent drops.

Ranges are in the canonical unit. ``hard`` bounds are physically impossible outside (error);
``soft`` bounds are implausible but possible (warning).

Sources for the conversions: standard SI conversion factors (creatinine 88.4 µmol/L per mg/dL;
1 µkat/L = 60 U/L; ferritin 1 µg/L = 1 ng/mL = 2.247 pmol/L; CRP 1 mg/dL = 10 mg/L). m-EASIX and
EASIX need CRP and creatinine in mg/dL (Pennisi 2021, Blood Adv 5:3397); we store CRP in mg/L,
the unit most pediatric labs report, and convert where a formula needs mg/dL. Support rows
(hypotension, vasopressors, oxygen device and flow) follow the ASTCT 2019 consensus grading
(Lee DW et al., Biol Blood Marrow Transplant 2019;25:625).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum


class OxygenDevice(IntEnum):
    """Oxygen support codes stored as the value of ``oxygen_device`` rows (ASTCT 2019 hypoxia)."""

    ROOM_AIR = 0
    NASAL_CANNULA = 1  # low-flow (≤6 L/min) → grade 2; >6 L/min counts as high-flow → grade 3
    BLOW_BY = 2  # grade 2
    HIGH_FLOW_NASAL_CANNULA = 3  # grade 3
    FACEMASK = 4  # facemask, non-rebreather or Venturi mask → grade 3
    NONINVASIVE_POSITIVE_PRESSURE = 5  # CPAP / BiPAP → grade 4
    MECHANICAL_VENTILATION = 6  # intubation + mechanical ventilation → grade 4


@dataclass(frozen=True)
class UnitConversion:
    """Affine conversion of one unit to the analyte's canonical unit."""

    scale: float
    offset: float = 0.0

    def to_canonical(self, value: float) -> float:
        return value * self.scale + self.offset

    def from_canonical(self, value: float) -> float:
        return (value - self.offset) / self.scale


@dataclass(frozen=True)
class Analyte:
    """One measurable quantity: canonical unit, accepted units, ranges, optional LOINC."""

    key: str
    label: str
    group: str
    canonical_unit: str
    units: dict[str, UnitConversion]
    hard: tuple[float, float]
    soft: tuple[float, float]
    loinc: str | None = None
    integer: bool = False
    aliases: tuple[str, ...] = field(default_factory=tuple)


_ID = UnitConversion(1.0)
_PG = {"pg/mL": _ID, "ng/L": _ID, "ng/mL": UnitConversion(1000.0)}
_NG = {"ng/mL": _ID, "µg/L": _ID, "pg/mL": UnitConversion(0.001)}
_INF = math.inf


def _cytokine(
    key: str,
    label: str,
    soft_high: float,
    loinc: str | None = None,
    aliases: tuple[str, ...] = (),
) -> Analyte:
    return Analyte(
        key, label, "cytokines", "pg/mL", _PG, (0.0, 1e8), (0.0, soft_high), loinc, False, aliases
    )


ANALYTES: dict[str, Analyte] = {
    a.key: a
    for a in [
        _cytokine("il6", "IL-6", 1e5, "26881-3", ("il-6", "interleukin-6", "interleukin 6")),
        _cytokine("ifng", "IFN-γ", 1e5, "27415-9", ("ifn-gamma", "ifn-γ", "ifn gamma", "ifng")),
        Analyte(
            "sgp130",
            "sgp130",
            "cytokines",
            "ng/mL",
            _NG,
            (0.0, 1e5),
            (10.0, 5000.0),
            None,
            False,
            ("sgp-130", "soluble gp130"),
        ),
        Analyte(
            "sil6r",
            "sIL-6R",
            "cytokines",
            "ng/mL",
            _NG,
            (0.0, 1e5),
            (1.0, 2000.0),
            None,
            False,
            ("sil-6r", "soluble il-6r", "sil6r"),
        ),
        _cytokine("il1ra", "IL-1RA", 1e6, None, ("il-1ra", "il1ra", "il-1 ra")),
        _cytokine("il10", "IL-10", 1e5, "26848-2", ("il-10",)),
        _cytokine("mcp1", "MCP-1 (CCL2)", 1e6, None, ("mcp-1", "ccl2")),
        _cytokine("il2", "IL-2", 1e5, "33939-0", ("il-2",)),
        _cytokine("il8", "IL-8", 1e5, "33211-4", ("il-8", "cxcl8")),
        _cytokine("tnfa", "TNF-α", 1e5, "3074-2", ("tnf-alpha", "tnf-α", "tnfa", "tnf alpha")),
        _cytokine("gmcsf", "GM-CSF", 1e5, None, ("gm-csf",)),
        _cytokine("il4", "IL-4", 1e5, None, ("il-4",)),
        _cytokine("il13", "IL-13", 1e5, None, ("il-13",)),
        _cytokine("il15", "IL-15", 1e5, None, ("il-15",)),
        _cytokine("il18", "IL-18", 1e6, None, ("il-18",)),
        _cytokine("il1b", "IL-1β", 1e5, None, ("il-1b", "il-1beta", "il-1β")),
        _cytokine("il12p70", "IL-12p70", 1e5, None, ("il-12p70", "il12p70")),
        _cytokine("mip1a", "MIP-1α (CCL3)", 1e5, None, ("mip-alpha", "mip-1a", "mip-1α", "ccl3")),
        Analyte(
            "crp",
            "C-reactive protein",
            "inflammation labs",
            "mg/L",
            {"mg/L": _ID, "mg/dL": UnitConversion(10.0), "µg/mL": _ID},
            (0.0, 2000.0),
            (0.0, 600.0),
            "1988-5",
            False,
            ("c-reactive protein",),
        ),
        Analyte(
            "ferritin",
            "Ferritin",
            "inflammation labs",
            "ng/mL",
            {"ng/mL": _ID, "µg/L": _ID, "pmol/L": UnitConversion(1 / 2.247)},
            (0.0, 5e6),
            (1.0, 5e5),
            "2276-4",
        ),
        Analyte(
            "ldh",
            "Lactate dehydrogenase",
            "baseline labs",
            "U/L",
            {"U/L": _ID, "IU/L": _ID, "µkat/L": UnitConversion(60.0)},
            (0.0, 1e6),
            (50.0, 50000.0),
            "14804-9",
        ),
        Analyte(
            "platelets",
            "Platelets",
            "baseline labs",
            "10^9/L",
            {"10^9/L": _ID, "10^3/µL": _ID, "/µL": UnitConversion(0.001), "/nL": _ID},
            (0.0, 5000.0),
            (1.0, 1500.0),
            "777-3",
            False,
            ("plt", "platelet count"),
        ),
        Analyte(
            "creatinine",
            "Creatinine",
            "baseline labs",
            "mg/dL",
            {"mg/dL": _ID, "µmol/L": UnitConversion(1 / 88.4)},
            (0.0, 40.0),
            (0.1, 10.0),
            "2160-0",
        ),
        Analyte(
            "fibrinogen",
            "Fibrinogen",
            "inflammation labs",
            "g/L",
            {"g/L": _ID, "mg/dL": UnitConversion(0.01)},
            (0.0, 30.0),
            (0.3, 10.0),
            "3255-7",
        ),
        Analyte(
            "temperature",
            "Body temperature",
            "vital signs",
            "°C",
            {"°C": _ID, "°F": UnitConversion(5 / 9, -32 * 5 / 9)},
            (25.0, 45.0),
            (34.0, 42.0),
            "8310-5",
            False,
            ("temp", "body temperature"),
        ),
        Analyte(
            "hypotension",
            "Hypotension present",
            "organ support",
            "flag",
            {"flag": _ID},
            (0.0, 1.0),
            (0.0, 1.0),
            None,
            True,
        ),
        Analyte(
            "vasopressors",
            "Vasopressors running (excluding vasopressin)",
            "organ support",
            "count",
            {"count": _ID},
            (0.0, 6.0),
            (0.0, 4.0),
            None,
            True,
        ),
        Analyte(
            "vasopressin",
            "Vasopressin running",
            "organ support",
            "flag",
            {"flag": _ID},
            (0.0, 1.0),
            (0.0, 1.0),
            None,
            True,
        ),
        Analyte(
            "oxygen_device",
            "Oxygen support device (OxygenDevice code)",
            "organ support",
            "code",
            {"code": _ID},
            (0.0, float(max(OxygenDevice))),
            (0.0, float(max(OxygenDevice))),
            None,
            True,
        ),
        Analyte(
            "oxygen_flow",
            "Oxygen flow",
            "organ support",
            "L/min",
            {"L/min": _ID},
            (0.0, 80.0),
            (0.0, 60.0),
            "3151-8",
        ),
    ]
}

_ALIASES: dict[str, str] = {}
for _a in ANALYTES.values():
    for _name in (_a.key, _a.label, *_a.aliases):
        _ALIASES[_name.strip().lower()] = _a.key

_UNIT_SUBS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\s+"), ""),
    (re.compile(r"mcg", re.IGNORECASE), "µg"),  # mcg/L, mcg/mL
    (re.compile(r"^ui/", re.IGNORECASE), "iu/"),  # UI/L (French, Spanish, Italian exports)
    (re.compile(r"mm(3|³|\^3)", re.IGNORECASE), "µl"),  # /mm3 = /µL
    (re.compile(r"10([³⁹])"), lambda m: "10^" + {"³": "3", "⁹": "9"}[m.group(1)]),
    (re.compile(r"^(k|thou)/", re.IGNORECASE), "10^3/"),  # K/µL, K/uL, thou/uL
    (re.compile(r"(x)?10e(\d)", re.IGNORECASE), r"10^\2"),  # x10E9/L, 10E3/uL
    (re.compile(r"[μu](?=(g|mol|kat|l))", re.IGNORECASE), "µ"),
    (re.compile(r"(x)?10\*\*?(\d)", re.IGNORECASE), r"10^\2"),
    (re.compile(r"x10\^", re.IGNORECASE), "10^"),
    (re.compile(r"deg(rees)?c|celsius|ºc", re.IGNORECASE), "°c"),
    (re.compile(r"deg(rees)?f|fahrenheit|ºf", re.IGNORECASE), "°f"),
    (re.compile(r"^(c|degc)$", re.IGNORECASE), "°c"),
    (re.compile(r"^(f|degf)$", re.IGNORECASE), "°f"),
]


def normalise_unit(unit: str) -> str:
    """Canonical spelling key of a unit string (case- and spacing-insensitive)."""
    text = str(unit).strip()
    for pattern, repl in _UNIT_SUBS:
        text = pattern.sub(repl, text)
    return text.lower()


# Spellings that mean one unit for one analyte only: "G/L" (giga per litre, European exports)
# is 10^9/L for a count, while for fibrinogen g/L means grams.
_ANALYTE_SPELLINGS: dict[str, dict[str, str]] = {"platelets": {"g/l": "10^9/L"}}
_UNIT_KEYS: dict[str, dict[str, str]] = {
    key: {**_ANALYTE_SPELLINGS.get(key, {}), **{normalise_unit(u): u for u in a.units}}
    for key, a in ANALYTES.items()
}


def resolve_analyte(name: str) -> str | None:
    """Vocabulary key for an analyte name or alias, or ``None`` when unknown."""
    return _ALIASES.get(str(name).strip().lower())


def resolve_unit(analyte: str, unit: str) -> str | None:
    """The declared spelling of ``unit`` for ``analyte``, or ``None`` when not accepted."""
    keys = _UNIT_KEYS.get(analyte)
    if keys is None:
        return None
    return keys.get(normalise_unit(unit))


def conversion(analyte: str, unit: str) -> UnitConversion:
    """Conversion of ``unit`` to the canonical unit of ``analyte`` (KeyError when unknown)."""
    declared = resolve_unit(analyte, unit)
    if declared is None:
        raise KeyError(f"unit {unit!r} is not accepted for analyte {analyte!r}")
    return ANALYTES[analyte].units[declared]


def to_canonical(analyte: str, value: float, unit: str) -> float:
    """Convert one value to the canonical unit of its analyte."""
    return conversion(analyte, unit).to_canonical(value)


def from_canonical(analyte: str, value: float, unit: str) -> float:
    """Convert one canonical value back to ``unit`` (used by the simulator and round-trip tests)."""
    return conversion(analyte, unit).from_canonical(value)
