"""Provenance of a cohort folder: a small ``manifest.json`` beside the tables.

Every cohort folder the project writes says where it came from, so a report can say so even
when the folder travels without ``truth.csv``:

- ``source = "synthetic"`` with the simulator's seed, size, options and parameters (the values
  that differ from the defaults, plus a digest of the whole parameter set);
- ``source = "import"`` with the digest (and name) of the mapping that produced it.

The file also carries its ``schema_version`` and the code version that wrote it
(``created_by``). It holds no timestamp, so the same inputs give the same bytes.
``features.io.load_cohort`` ignores it (it only reads the three tables). A folder without a
manifest is "unknown" — :func:`is_synthetic` answers False for it, and a reader that must
know should treat it as unverified rather than as real data.

Training records the answer on every run as the ``synthetic_cohort`` tag (:data:`RUN_TAG`);
:func:`run_is_synthetic` is the one decision, from a run's record, that the model card and the
service's page and ``/v1/models`` share (issue 13, R6).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from features.errors import CrsRiskError

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1
SOURCES = ("synthetic", "import")
RUN_TAG = "synthetic_cohort"  # the training run's tag: "true" / "false" (training.sink)


def code_version() -> str:
    """``crs-risk <version>`` of the installed package (``unknown`` outside an install)."""
    try:
        return f"crs-risk {metadata.version('crs-risk')}"
    except metadata.PackageNotFoundError:
        return "crs-risk unknown"


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` holds (see the module docstring)."""

    source: str
    schema_version: int = SCHEMA_VERSION
    created_by: str = field(default_factory=code_version)
    synthetic: dict[str, Any] | None = None
    mapping_digest: str | None = None
    mapping_name: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise CrsRiskError(
                f"{MANIFEST_FILE}: source must be one of {', '.join(SOURCES)}, got {self.source!r}"
            )

    @property
    def is_synthetic(self) -> bool:
        return self.source == "synthetic"

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def synthetic_manifest(
    seed: int, n: int, parameters: dict[str, Any], options: dict[str, Any]
) -> Manifest:
    """Manifest of a simulated folder: ``parameters`` are the non-default values, ``options``
    the simulator's arguments (centres, shift, new centre …); the digest covers both."""
    body = {"seed": int(seed), "n_patients": int(n), "parameters": parameters, "options": options}
    text = json.dumps(body, sort_keys=True, default=str)
    body["digest"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Manifest(source="synthetic", synthetic=json.loads(json.dumps(body, default=str)))


def import_manifest(mapping_digest: str, mapping_name: str | None = None) -> Manifest:
    """Manifest of an imported folder, naming the mapping by its digest."""
    return Manifest(source="import", mapping_digest=mapping_digest, mapping_name=mapping_name)


def write_manifest(folder: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``folder`` (atomically: temporary file, then rename)."""
    path = Path(folder) / MANIFEST_FILE
    tmp = path.with_name(f".{MANIFEST_FILE}.tmp")
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_manifest(folder: str | os.PathLike[str]) -> Manifest | None:
    """The folder's manifest, or None when it has none; a malformed one is a CrsRiskError
    naming the file and the field."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CrsRiskError(f"{path}: not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise CrsRiskError(f"{path}: expected a JSON object")
    known = {
        "source",
        "schema_version",
        "created_by",
        "synthetic",
        "mapping_digest",
        "mapping_name",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise CrsRiskError(f"{path}: unknown field(s) {', '.join(unknown)}")
    if "source" not in data:
        raise CrsRiskError(f"{path}: field 'source' is missing")
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
        raise CrsRiskError(
            f"{path}: field 'schema_version' must be an integer 1–{SCHEMA_VERSION}, got {version!r}"
        )
    if data.get("synthetic") is not None and not isinstance(data["synthetic"], dict):
        raise CrsRiskError(f"{path}: field 'synthetic' must be an object")
    return Manifest(
        source=str(data["source"]),
        schema_version=version,
        created_by=str(data.get("created_by", "unknown")),
        synthetic=data.get("synthetic"),
        mapping_digest=data.get("mapping_digest"),
        mapping_name=data.get("mapping_name"),
    )


def is_synthetic(folder_or_manifest: str | os.PathLike[str] | Manifest | None) -> bool:
    """True when the folder's manifest (or the manifest given) says the data are simulated.

    A folder written by the simulator before manifests existed is recognised by its
    ``truth.csv``/``truth.parquet``; a folder with neither is not called synthetic.
    """
    if folder_or_manifest is None:
        return False
    if isinstance(folder_or_manifest, Manifest):
        return folder_or_manifest.is_synthetic
    folder = Path(folder_or_manifest)
    manifest = read_manifest(folder)
    if manifest is not None:
        return manifest.is_synthetic
    return any((folder / name).is_file() for name in ("truth.csv", "truth.parquet"))


def run_is_synthetic(
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
    cohort_label: str = "",
    sources: Iterable[Any] = (),
) -> bool | None:
    """Whether a training run's cohort was synthetic, from what the run records. Pure.

    The run's :data:`RUN_TAG` tag decides (training sets it from the cohort folder's manifest,
    so a synthetic folder shared without ``truth.csv`` is still synthetic). Runs logged before
    the tag fall back on the older evidence: an ``oracle_auroc`` metric (only logged when the
    simulator's truth file lies beside the cohort), a cohort label or logged dataset source
    naming a declared synthetic cohort (``synthetic n=… seed=…``). None when the run records
    none of these (a real cohort cannot be told from an unknown one).
    """
    tag = tags.get(RUN_TAG)
    if tag in ("true", "false"):
        return tag == "true"
    if "oracle_auroc" in metrics or str(cohort_label).startswith("synthetic"):
        return True
    sources = [str(s) for s in sources]
    if any('"cohort": "synthetic' in s for s in sources):
        return True
    return False if (cohort_label or sources) else None
