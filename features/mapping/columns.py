"""Where a value is: column addresses and time declarations (days, hours or dates)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from features.mapping.values import TIME_UNITS, MapTarget, StrictModel, value_key


class ColumnSpec(StrictModel):
    """One source column: by header text/path, letter or position; optional value map."""

    header: str | None = Field(
        None, description="Header text, or header path across header rows ('Day 7 / CRP')."
    )
    letter: str | None = Field(None, description="Spreadsheet column letter (A, B, …, AA).")
    position: int | None = Field(default=None, ge=1, description="1-based column position.")
    values: dict[str, MapTarget] | None = Field(
        None,
        description="Value map: source value → value (null = missing); must cover every value.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"header": data} if isinstance(data, str) else data

    @field_validator("letter")
    @classmethod
    def _letter(cls, letter: str | None) -> str | None:
        if letter is not None and not re.fullmatch(r"[A-Za-z]{1,3}", letter.strip()):
            raise ValueError(f"{letter!r} is not a spreadsheet column letter (A, B, …, AA, …)")
        return None if letter is None else letter.strip().upper()

    @field_validator("values", mode="before")
    @classmethod
    def _keys(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {value_key(k): v for k, v in values.items()}
        return values

    @model_validator(mode="after")
    def _one_address(self) -> ColumnSpec:
        given = [n for n in ("header", "letter", "position") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of header, letter or position")
        return self

    def describe(self) -> str:
        if self.header is not None:
            return repr(self.header)
        if self.letter is not None:
            return f"letter {self.letter}"
        return f"position {self.position}"


Placement = Literal["end_of_day", "start_of_day", "exact"] | Annotated[float, Field(ge=0, le=24)]
PLACEMENTS = ("end_of_day", "start_of_day", "exact")


class TimeSpec(StrictModel):
    """Time of a row or column: a ``column`` or a constant/template ``value``.

    ``unit`` ``days`` or ``hours`` count from infusion (``t + offset``); ``date`` reads a calendar
    date(-time) and counts from the patient's infusion date (the mapping's ``infusion``).
    A whole day (or a date without a time of day) is *day-granular*: it is placed where the value
    became known, ``placement`` (default ``end_of_day`` = 24·d + 24 h; ``start_of_day`` = 24·d h,
    e.g. "drawn before infusion"; a number = that hour of its day; ``exact`` = the day count is an
    exact time). A fractional day ("true date" 7.25) or a date-time keeps its exact value; hours
    are always exact. ``fallback`` is used when the time cell is empty. ``source`` reads the column
    from another per-patient source (joined on the patient id). Templates
    (``"{window} / true date_{analyte}"``, ``"{day}"``) are filled from the named groups of a
    measurement rule's ``match``.
    """

    column: ColumnSpec | None = Field(None, description="Column holding the time.")
    value: float | str | None = Field(
        None, description="Constant time (or a template filled from the rule's match groups)."
    )
    unit: Literal["days", "hours", "date"] = Field(
        description="days or hours after infusion, or date (a calendar date or date-time)."
    )
    offset: float = Field(0.0, description="Added to the time before conversion (days/hours).")
    fallback: float | str | None = Field(
        None, description="Time used when the time cell is empty (same unit; days/hours only)."
    )
    source: str | None = Field(
        None, description="Name of the per-patient source that holds the time column."
    )
    placement: Placement | None = Field(
        None,
        description="Where a day-granular time is placed: end_of_day (default for days and "
        "dates), start_of_day, exact, or an hour of the day 0–24 (hours: always exact).",
    )
    date_format: str | None = Field(
        None, description="strptime format of date cells (default: ISO 8601 / spreadsheet dates)."
    )

    @model_validator(mode="after")
    def _one_time(self) -> TimeSpec:
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of column or value")
        if self.source is not None and self.column is None:
            raise ValueError("source needs a column")
        if self.unit == "hours" and self.placement not in (None, "exact"):
            raise ValueError("placement applies to days and dates; hours are exact")
        if self.unit == "date":
            if self.column is None:
                raise ValueError("unit date needs a column of dates")
            if self.offset or self.fallback is not None:
                raise ValueError("offset and fallback are for days/hours, not dates")
        elif self.date_format is not None:
            raise ValueError("date_format needs unit: date")
        return self

    @property
    def scale(self) -> float:
        return TIME_UNITS.get(self.unit, 24.0)

    @property
    def placed(self) -> str | float:
        """The placement in force: the declared one, else end_of_day (days/dates) or exact."""
        if self.placement is not None:
            return self.placement
        return "exact" if self.unit == "hours" else "end_of_day"

    def describe_placement(self) -> str:
        placed = self.placed
        if self.unit == "hours":
            return "hours (exact)"
        exact = "date-times" if self.unit == "date" else "fractional days"
        if placed == "exact":
            return f"{self.unit}, exact"
        if isinstance(placed, str):
            where = placed.replace("_", " ")
        else:
            where = f"hour {placed:g} of the day"
        return f"{self.unit}: whole days known at {where}, {exact} exact"

    def require_numbers(self) -> None:
        """Outside measurement rules there are no match groups: value/fallback are numbers."""
        for name in ("value", "fallback"):
            given = getattr(self, name)
            if isinstance(given, str):
                try:
                    float(given)
                except ValueError:
                    raise ValueError(
                        f"time.{name} {given!r} must be a number here (templates only work in "
                        "measurement rules with match)"
                    ) from None

    def number(self, name: str) -> float | None:
        given = getattr(self, name)
        return None if given is None else float(given)


def place_day(day: float, placement: str | float) -> float:
    """Hours from infusion of a time given in days (see :class:`TimeSpec`): a whole day is known
    at the end of it unless placed otherwise; a fractional day is an exact time."""
    if placement == "exact" or not float(day).is_integer():
        return day * 24.0
    if placement == "start_of_day":
        return day * 24.0
    if placement == "end_of_day":
        return day * 24.0 + 24.0
    return day * 24.0 + float(placement)
