"""``crs-risk cohort import``: a real extract → a cohort folder, through a declarative mapping.

The mapping (:mod:`features.mapping`) says which file holds what; this package reads the files
(CSV/TSV or Excel, several header rows; :mod:`.table`), finds the declared columns, converts every
cell through one shared reader (:mod:`.reader`, over the pure cell functions of :mod:`.cells`),
one module per source kind (:mod:`.patients`, :mod:`.measurements`, :mod:`.wide`,
:mod:`.events`), and hands three frames to :func:`features.io.write_cohort`, which validates
before writing anything (:mod:`.assemble`).

Rules applied to every source, each counted in the :class:`ImportReport`:

- an empty cell means *not measured* (dropped, counted); a declared placeholder (``na_values``)
  or imputed constant (``analyte_values.missing``) means missing (dropped, counted);
  anything else that does not parse is an error;
- a value map (``values``) must cover every value of its column (no silent pass-through);
- ``analyte_values`` are canonical-unit values, compared after unit conversion; one that matches
  nothing is listed in the report; ``units_before`` reads rows dated before a date (infusion
  date + time) in another unit, counted;
- a day-granular time is known at the end of its day unless the mapping places it otherwise;
  the report states the placement each source used (../shared/DESIGN.md, "Time");
- rows of patients absent from the patient table are dropped (counted);
- a second, identical value for the same patient, time and analyte (or event) is dropped as a
  duplicate; a conflicting one is an error (or kept-first with ``duplicates: keep_first``);
  two grades at one time are an error naming both rows (or the maximum with
  ``grade_conflicts: max``), counted;
- values outside the analyte's possible range and times outside the contract are errors.

Messages name file, row number (as in the spreadsheet or text editor), column letter and header,
and rule, and where it helps the kind of the offending cell ("the cell holds text", "the value
is above this range"); they never show a cell's content (units and analyte names included: a
cell could hold anything; distinct unaccepted ones are counted and named by their first row),
a patient id or a raw row. Headers and the mapping's own entries may be shown. Any problem stops
the import before anything is written, and every problem is listed.
"""

from features.importer.assemble import convert, import_cohort
from features.importer.cells import column_letter, letter_index, parse_number, patient_id
from features.importer.report import ImportReport, SourceReport
from features.importer.table import SourceTable, collect_files, read_source

__all__ = [
    "ImportReport",
    "SourceReport",
    "SourceTable",
    "collect_files",
    "column_letter",
    "convert",
    "import_cohort",
    "letter_index",
    "parse_number",
    "patient_id",
    "read_source",
]
