"""Cell values of a mapping file: value types, value-map keys and the strict model base."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Scalar = bool | int | float | str
MapTarget = bool | int | float | str | None
TIME_UNITS: dict[str, float] = {"days": 24.0, "hours": 1.0}
CrsDerivedEvent = Literal["crs_onset", "crs_grade", "crs_max_grade"]
CRS_DERIVED: tuple[CrsDerivedEvent, ...] = ("crs_onset", "crs_grade", "crs_max_grade")
SKIP = "skip"

TYPE_TAGS = {
    "str", "int", "float", "bool", "none", "ColumnSpec", "dict", "list", "constrained-float",
}  # fmt: skip


def value_key(value: object) -> str:
    """Comparison key of a source cell or a mapping key: ``1``, ``1.0`` and ``"1"`` agree.

    Numbers compare by value, text by its stripped, case-folded form, so a value map written as
    ``{0: false, 1: true}`` matches a CSV cell ``"1"`` and an Excel cell ``1.0`` alike.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = " ".join(str(value).split()).casefold()
    try:
        number = float(text)
    except ValueError:
        return text
    if number != number or number in (float("inf"), float("-inf")):
        return text
    return str(int(number)) if number.is_integer() else repr(number)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
