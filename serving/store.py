"""The model store: registered champions resolved to concrete versions and loaded once.

At start-up (and on ``POST /v1/models/reload``) every task/landmark name discovered in the
registry (``crs-severe-<L>h``, ``crs-toci-refractory-<landmark>``) is resolved through its
``champion`` alias to one model version, loaded with ``mlflow.sklearn.load_model`` and
described by its training run: headline validation metrics with CIs, the training cohort
digest, the declared risk thresholds and the cross-validated predictions used to show how
often patients in each risk band had the outcome; plus what serving reads beside the model
(``training.serving_artifacts``: the training distribution and the interval table; older
models fall back, see ``load_one``).

Replicas stay in step by polling (:class:`ModelStore` ``start_polling``; interval
``$CRS_RISK_REGISTRY_POLL_S``, default 30 s): a replica swaps in a new set only when every
alias of the promotion that produced it has moved (``training.registry`` tags each promoted
version with its whole set), and keeps serving what it holds while the registry is down.

A :class:`Snapshot` is immutable. Reload builds a complete new snapshot off to the side and
swaps one reference; a request takes the snapshot once when it starts, so in-flight requests
finish on the models they began with and never see a half-loaded store.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import CrsRiskError
from training.serving_artifacts import DISTRIBUTION_PATH, INTERVAL_PATH

ALIAS = "champion"
HEADLINE_METRICS: tuple[str, ...] = (
    "auroc",
    "auprc",
    "brier",
    "scaled_brier",
    "calibration_slope",
    "calibration_intercept",
)
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3)
BAND_NAMES: dict[int, tuple[str, ...]] = {
    1: ("lower", "higher"),
    2: ("low", "intermediate", "high"),
    3: ("low", "intermediate", "high", "very high"),
}


def band_names(n_thresholds: int) -> tuple[str, ...]:
    """Names of the ``n + 1`` bands cut by ``n`` thresholds."""
    return BAND_NAMES.get(n_thresholds, tuple(f"band {i + 1}" for i in range(n_thresholds + 1)))


def band_index(p: float | np.ndarray, thresholds: tuple[float, ...]) -> Any:
    """Band of a probability: number of thresholds it reaches (``p ≥ t`` counts)."""
    if isinstance(p, float | int):
        return bisect.bisect_right(thresholds, p)
    return np.searchsorted(np.asarray(thresholds), p, side="right")


MAX_LANDMARK_HOURS = 336
_SEVERE_PREFIX = "crs-severe-"
_TOCI_NAMES = {
    "crs-toci-refractory-decision": "decision",
    "crs-toci-refractory-first-toci": "first_toci",
    "crs-toci-refractory": "first_toci",  # the name before the two toci landmarks
}


def parse_registered_name(name: str) -> tuple[str, str] | None:
    """``crs-severe-48h`` → ("severe_crs", "48h"); ``crs-toci-refractory-decision`` →
    ("toci_refractory", "decision"); None for a name the service does not serve."""
    if name in _TOCI_NAMES:
        return "toci_refractory", _TOCI_NAMES[name]
    if name.startswith(_SEVERE_PREFIX) and name.endswith("h"):
        digits = name[len(_SEVERE_PREFIX) : -1]
        if digits.isdigit() and int(digits) <= MAX_LANDMARK_HOURS and str(int(digits)) == digits:
            return "severe_crs", f"{int(digits)}h"
    return None


def landmark_hours(landmark: str) -> float | None:
    """``"48h"`` → 48.0; toci landmarks (per patient) → None."""
    return float(landmark[:-1]) if landmark.endswith("h") and landmark[:-1].isdigit() else None


def landmarks(client: Any = None) -> list[tuple[str, str]]:
    """Every (task, landmark) with a registered model name, in display order (severe by hours,
    then toci); without a client (or when the registry cannot be listed) the tasks' defaults."""
    found: set[tuple[str, str]] = set()
    if client is not None:
        try:
            for rm in client.search_registered_models(max_results=1000):
                parsed = parse_registered_name(rm.name)
                if parsed is not None:
                    found.add(parsed)
        except Exception:  # a registry that cannot list: the defaults below
            found = set()
    if not found:
        from features.tasks import TASKS

        for task in ("severe_crs", "toci_refractory"):
            found.update((task, lm) for lm in TASKS[task].landmarks)
    toci_order = {"decision": 0, "first_toci": 1}
    return sorted(
        found,
        key=lambda t: (t[0] != "severe_crs", landmark_hours(t[1]) or 0, toci_order.get(t[1], 2)),
    )


@dataclass(frozen=True)
class Band:
    """Validation evidence for one risk band (out-of-fold predictions of the training run)."""

    name: str
    low: float | None
    high: float | None
    n: int
    events: int
    observed: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class LoadedModel:
    """One champion, loaded and described."""

    name: str
    task: str
    landmark: str
    version: str
    run_id: str | None
    model: Any
    columns: tuple[str, ...]
    thresholds: tuple[float, ...]
    metrics: dict[str, tuple[float | None, float | None, float | None]]
    n_patients: int | None
    n_events: int | None
    cohort_digest: str | None
    model_type: str | None
    bands: tuple[Band, ...]
    explainer: Any = None
    alias: str = ALIAS
    distribution: dict[str, Any] | None = None  # training.distribution (None: an older model)
    interval: Any = None  # training.interval.IntervalTable (None: an older model)
    synthetic: bool | None = None  # trained on a synthetic cohort (None: not recorded)
    products: tuple[str, ...] | None = None  # products seen in training

    @property
    def hours(self) -> float | None:
        return landmark_hours(self.landmark)

    def band(self, p: float) -> tuple[str, Band | None]:
        i = int(band_index(p, self.thresholds))
        names = band_names(len(self.thresholds))
        return names[i], (self.bands[i] if i < len(self.bands) else None)


@dataclass(frozen=True)
class Snapshot:
    """Every champion loaded at one moment (immutable; swapped whole on reload)."""

    models: dict[tuple[str, str], LoadedModel]
    missing: tuple[str, ...]
    loaded_at: str
    tracking_uri: str
    generation: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def get(self, task: str, landmark: str) -> LoadedModel | None:
        return self.models.get((task, landmark))


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def thresholds_of(params: dict[str, str], metrics: dict[str, float]) -> tuple[float, ...]:
    """Declared thresholds: the run's ``thresholds`` param, else its ``sensitivity_at_*`` keys."""
    text = params.get("thresholds")
    if text:
        try:
            values = tuple(sorted(float(v) for v in text.strip("[]").split(",") if v.strip()))
            if values:
                return values
        except ValueError:
            pass
    found = sorted(
        {
            round(float(k.rsplit("_", 1)[1]), 6)
            for k in metrics
            if k.startswith("sensitivity_at_") and _finite(k.rsplit("_", 1)[1]) is not None
        }
    )
    return tuple(found) or DEFAULT_THRESHOLDS


def band_evidence(folds: pd.DataFrame | None, thresholds: tuple[float, ...]) -> tuple[Band, ...]:
    """Observed outcome rate with a Wilson 95% CI per band of out-of-fold predicted risk."""
    from training.calibration import wilson_interval

    edges = (None, *thresholds, None)
    names = band_names(len(thresholds))
    if folds is None or folds.empty or not {"y", "p"} <= set(folds.columns):
        return tuple(
            Band(n, edges[i], edges[i + 1], 0, 0, None, None, None) for i, n in enumerate(names)
        )
    y = folds["y"].to_numpy(dtype=float)
    p = folds["p"].to_numpy(dtype=float)
    idx = band_index(p, thresholds)
    out = []
    for i, name in enumerate(names):
        sel = idx == i
        n, ev = int(sel.sum()), int(y[sel].sum())
        if n:
            lo, hi = wilson_interval(np.array([ev]), np.array([n]))
            out.append(
                Band(name, edges[i], edges[i + 1], n, ev, ev / n, float(lo[0]), float(hi[0]))
            )
        else:
            out.append(Band(name, edges[i], edges[i + 1], 0, 0, None, None, None))
    return tuple(out)


def _read_folds(client: Any, run_id: str) -> pd.DataFrame | None:
    """The run's out-of-fold predictions (``predictions/folds.csv``: y and p, no identifiers)."""
    try:
        with tempfile.TemporaryDirectory(prefix="crs-risk-serve-") as tmp:
            path = client.download_artifacts(run_id, "predictions/folds.csv", tmp)
            return pd.read_csv(path)
    except Exception:  # an older run without the artifact: bands without evidence
        return None


def _read_json(client: Any, run_id: str, path: str) -> dict[str, Any] | None:
    """A JSON artifact of the run (None when the run predates it)."""
    import json

    try:
        with tempfile.TemporaryDirectory(prefix="crs-risk-serve-") as tmp:
            local = client.download_artifacts(run_id, path, tmp)
            return json.loads(Path(local).read_text(encoding="utf-8"))
    except Exception:
        return None


def _interval(client: Any, run_id: str | None, folds: pd.DataFrame | None) -> Any:
    """The stored interval table, else (an older model) the same method on its out-of-fold
    predictions, computed now; None when neither exists."""
    from training.interval import IntervalTable, fit_interval

    doc = _read_json(client, run_id, INTERVAL_PATH) if run_id else None
    if doc is not None:
        return IntervalTable.from_dict(doc)
    if folds is None or not {"y", "p"} <= set(folds.columns):
        return None
    key = next((c for c in ("key", "row") if c in folds.columns), None)  # a patient across repeats
    groups = folds[key].to_numpy() if key else None
    return fit_interval(folds["p"].to_numpy(), folds["y"].to_numpy(), groups)


def cohort_synthetic(client: Any, run_id: str, metrics: dict[str, float]) -> bool | None:
    """Whether the model's training cohort was synthetic, from what its run records.

    The one place that decides it: the training run's ``synthetic_cohort`` tag (from the cohort
    folder's provenance manifest, ``features.manifest``); for runs logged before that tag, the
    simulator's truth file makes the runner log ``oracle_auroc`` and a declared synthetic cohort
    is logged as dataset source "synthetic …". None when the run records none of these (a real
    cohort cannot be told from an unknown one).
    """
    try:
        run = client.get_run(run_id)
    except Exception:
        return True if "oracle_auroc" in metrics else None
    tag = run.data.tags.get("synthetic_cohort")
    if tag in ("true", "false"):
        return tag == "true"
    if "oracle_auroc" in metrics:
        return True
    sources = [d.dataset.source for d in (run.inputs.dataset_inputs or [])]
    if any('"cohort": "synthetic' in str(s) for s in sources):
        return True
    return False if sources else None


def model_names(task: str, landmark: str) -> list[str]:
    """Registered names of (task, landmark), preferred first (see
    :func:`parse_registered_name`; the first-dose toci model may carry its older name)."""
    if task == "severe_crs":
        return [f"{_SEVERE_PREFIX}{landmark}"]
    return [n for n, lm in _TOCI_NAMES.items() if lm == landmark]


def model_name(task: str, landmark: str) -> str:
    """The preferred registered name of (task, landmark)."""
    return model_names(task, landmark)[0]


def _explainer(model: Any) -> Any:
    """The model's ``training.explain.ModelExplainer`` (None for an unsupported model type)."""
    from serving.explaining import make_explainer

    try:
        return make_explainer(model)
    except CrsRiskError:
        return None


def load_one(
    client: Any, task: str, landmark: str, version: str | None = None, only: str | None = None
) -> LoadedModel | None:
    """Load ``version`` of the landmark's model, else its ``@champion`` (None if it has none);
    ``only`` restricts the look-up to that registered name."""
    import mlflow.sklearn

    from serving.explaining import input_columns, prepare

    found = find_version(client, [only] if only else model_names(task, landmark), version)
    if found is None:
        return None
    name, mv = found
    version = str(mv.version)
    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    if mv.run_id:
        run = client.get_run(mv.run_id)
        params, metrics, tags = dict(run.data.params), dict(run.data.metrics), dict(run.data.tags)
    thresholds = thresholds_of(params, metrics)
    headline = {
        k: (
            _finite(metrics.get(k)),
            _finite(metrics.get(f"{k}_ci_low")),
            _finite(metrics.get(f"{k}_ci_high")),
        )
        for k in HEADLINE_METRICS
        if k in metrics
    }
    folds = _read_folds(client, mv.run_id) if mv.run_id else None
    explainer = _explainer(model)
    distribution = _read_json(client, mv.run_id, DISTRIBUTION_PATH) if mv.run_id else None
    interval = _interval(client, mv.run_id, folds)
    columns = input_columns(model, explainer)
    prepare(model, explainer, columns)  # the probability path is decided now, not on a request
    n_pat, n_ev = _finite(metrics.get("n_patients")), _finite(metrics.get("n_events"))
    return LoadedModel(
        name=name,
        task=task,
        landmark=landmark,
        version=version,
        run_id=mv.run_id,
        model=model,
        columns=columns,
        thresholds=thresholds,
        metrics=headline,
        n_patients=None if n_pat is None else int(n_pat),
        n_events=None if n_ev is None else int(n_ev),
        cohort_digest=tags.get("cohort_digest") or params.get("cohort_digest"),
        model_type=tags.get("model") or (mv.tags or {}).get("model"),
        bands=band_evidence(folds, thresholds),
        explainer=explainer,
        distribution=distribution,
        interval=interval,
        synthetic=cohort_synthetic(client, mv.run_id, metrics) if mv.run_id else None,
        products=tuple(distribution["products"])
        if distribution and distribution.get("products") is not None
        else None,
    )


def registry_client(tracking_uri: str) -> Any:
    """An MLflow client on ``tracking_uri`` (checked first; CrsRiskError when unusable)."""
    import mlflow

    from training.tracking import check_reachable

    check_reachable(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def load_snapshot(
    tracking_uri: str, generation: int = 0, versions: dict[str, str] | None = None
) -> Snapshot:
    """Load every champion — or exactly ``versions`` (name → version), a set resolved before."""

    client = registry_client(tracking_uri)
    models: dict[tuple[str, str], LoadedModel] = {}
    missing: list[str] = []
    for task, lm in landmarks(client):
        if versions is None:
            loaded = load_one(client, task, lm)
        else:  # exactly the set resolved before (a promotion seen whole)
            name = next((n for n in model_names(task, lm) if n in versions), None)
            if name is None:
                missing.append(model_name(task, lm))
                continue
            loaded = load_one(client, task, lm, versions[name], only=name)
        if loaded is None:
            missing.append(model_name(task, lm))
        else:
            models[(task, lm)] = loaded
    return Snapshot(
        models=models,
        missing=tuple(missing),
        loaded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        tracking_uri=tracking_uri,
        generation=generation,
    )


# --- replicas in step: the registry poller -------------------------------------------------
POLL_ENV = "CRS_RISK_REGISTRY_POLL_S"
DEFAULT_POLL_S = 30.0


def poll_interval() -> float:
    """Seconds between registry polls: ``$CRS_RISK_REGISTRY_POLL_S`` (0 = never), default 30."""
    text = os.environ.get(POLL_ENV, "").strip()
    if not text:
        return DEFAULT_POLL_S
    try:
        value = float(text)
    except ValueError:
        raise CrsRiskError(f"{POLL_ENV} must be a number of seconds, got {text!r}") from None
    if value < 0 or not math.isfinite(value):
        raise CrsRiskError(f"{POLL_ENV} must be ≥ 0 seconds (0 turns polling off)")
    return value


@dataclass(frozen=True)
class RegistryState:
    """What the last look at the registry found (``/readyz`` reports it)."""

    reachable: bool | None  # None: not checked yet / polling off
    checked_at: str | None = None
    detail: str = ""


def _unreachable(exc: BaseException) -> bool:
    from training.registry import _unreachable as unreachable

    return unreachable(exc)


def find_version(
    client: Any, names: list[str], version: str | None = None
) -> tuple[str, Any] | None:
    """The first of ``names`` that has ``version`` (else an ``@champion``): (name, model
    version); None when none has. An unreachable registry raises (it is not "no model")."""
    from mlflow.exceptions import MlflowException

    for name in names:
        try:
            if version is None:
                return name, client.get_model_version_by_alias(name, ALIAS)
            return name, client.get_model_version(name, version)
        except MlflowException as exc:
            if _unreachable(exc):
                raise
    return None


def champion_set(client: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every ``@champion``: name → (version, its ``promotion`` tag as a dict, or {})."""

    from training.registry import PROMOTION_TAG

    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for task, lm in landmarks(client):
        found = find_version(client, model_names(task, lm))
        if found is None:
            continue
        name, mv = found
        try:
            promo = json.loads((mv.tags or {}).get(PROMOTION_TAG) or "{}")
        except ValueError:
            promo = {}
        out[name] = (str(mv.version), promo if isinstance(promo, dict) else {})
    return out


#: A promotion moves its aliases within seconds; one whose aliases have not all moved after this
#: long was interrupted (or an alias was moved by hand since) and no longer holds a set back.
SETTLE_GRACE_S = 120.0


def unsettled(champions: dict[str, tuple[str, dict[str, Any]]], now: float | None = None) -> str:
    """Why this set of champions is mid-promotion ("" when every recent promotion is complete).

    A promotion P moved the set ``{name: version}`` together. It is incomplete while a name of
    P still points at a version from an earlier promotion (its alias has not moved yet); a
    name already moved again by a later promotion is fine. Promotions older than
    :data:`SETTLE_GRACE_S` never hold a set back, so an alias moved by hand (MLflow UI) is
    picked up too.
    """
    now_ns = int((time.time() if now is None else now) * 1e9)

    def order(promo: dict[str, Any]) -> str:
        return str(promo.get("id") or "")

    def started_ns(promo: dict[str, Any]) -> int:
        head = order(promo).split("-", 1)[0]
        return int(head) if head.isdigit() else 0

    for _name, (_, promo) in sorted(champions.items()):
        if now_ns - started_ns(promo) > SETTLE_GRACE_S * 1e9:
            continue
        for other, version in (promo.get("set") or {}).items():
            if other not in champions:
                continue
            now_version, now_promo = champions[other]
            if now_version != str(version) and order(now_promo) < order(promo):
                return f"promotion {order(promo)} in progress ({other} not moved yet)"
    return ""


class ModelStore:
    """Holds the current snapshot; ``reload`` swaps it atomically (one reload at a time).

    With polling on (:meth:`start_polling`), each replica re-resolves the aliases every
    :func:`poll_interval` seconds and swaps in the new set once a promotion has completed, so
    every replica serves the new versions within one interval plus the load time. A request
    takes one snapshot, so it never mixes versions across landmarks. When the registry cannot
    be reached the loaded models stay in service and :attr:`registry` says so.
    """

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self.registry = RegistryState(None)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    @property
    def ready(self) -> bool:
        snap = self._snapshot
        return snap is not None and bool(snap.models)

    def load(self, settle_s: float = 30.0) -> Snapshot:
        """First load; refuses (CrsRiskError) when no champion is registered at all.

        A promotion caught half-way waits (up to ``settle_s``) for its last alias to move, so a
        replica starting during a promotion does not load a mixed set.
        """
        deadline = time.monotonic() + settle_s
        while True:
            champions = champion_set(registry_client(self.tracking_uri))
            if not unsettled(champions) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        wanted = {name: version for name, (version, _) in champions.items()}
        snap = load_snapshot(self.tracking_uri, versions=wanted)
        if not snap.models:
            raise CrsRiskError(
                f"no registered champion (models:/<name>@{ALIAS}) in {self.tracking_uri}: "
                f"looked for {', '.join(snap.missing)}; run `crs-risk demo` or "
                "`crs-risk train` first"
            )
        self._snapshot = snap
        self._seen(True)
        return snap

    def reload(self, versions: dict[str, str] | None = None) -> tuple[Snapshot, Snapshot | None]:
        """Re-resolve the aliases (or load ``versions``); the new snapshot replaces the old
        only if it loaded fully."""
        with self._lock:
            old = self._snapshot
            generation = (old.generation + 1) if old else 0
            try:
                snap = load_snapshot(self.tracking_uri, generation, versions)
            except Exception as exc:
                self._seen(False, exc)
                raise
            self._seen(True)
            if not snap.models:
                raise CrsRiskError("reload found no champion; the loaded models stay in service")
            self._snapshot = snap
            return snap, old

    def poll_once(self) -> tuple[Snapshot, Snapshot | None] | None:
        """Look at the registry once; reload when a completed promotion changed the set."""
        import mlflow

        from training.tracking import fail_fast_http

        try:  # no separate probe: the alias look-ups are the check (fail-fast HTTP settings)
            uri = self.tracking_uri
            client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
            with fail_fast_http():
                champions = champion_set(client)
        except Exception as exc:
            self._seen(False, exc)
            return None
        self._seen(True)
        wanted = {name: version for name, (version, _) in champions.items()}
        snap = self._snapshot
        held = {m.name: m.version for m in snap.models.values()} if snap else {}
        if not wanted or wanted == held:
            return None
        why = unsettled(champions)
        if why:
            self.registry = RegistryState(True, _now(), why)
            return None
        return self.reload(wanted)

    def start_polling(
        self,
        interval: float | None = None,
        on_swap: Callable[[Snapshot, dict[str, str]], None] | None = None,
    ) -> bool:
        """Poll the registry in a daemon thread every ``interval`` s; False when polling is off."""
        from training.tracking import use_fail_fast_http

        every = poll_interval() if interval is None else interval
        if every <= 0 or self._poller is not None:
            return False
        use_fail_fast_http()  # a dead registry must not hold a poll for minutes

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    swapped = self.poll_once()
                except Exception as exc:  # a failed load keeps the old snapshot
                    self._seen(False, exc)
                    continue
                if swapped is not None:
                    snap, old = swapped
                    before = {m.name: m.version for m in old.models.values()} if old else {}
                    del swapped, old  # the caller may collect the old models now
                    if on_swap is not None:
                        on_swap(snap, before)
                    del snap

        self._poller = threading.Thread(target=loop, name="registry-poll", daemon=True)
        self._poller.start()
        return True

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=15)
            self._poller = None

    def _seen(self, ok: bool, exc: BaseException | None = None) -> None:
        detail = "" if ok else _one_line(exc)
        self.registry = RegistryState(ok, _now(), detail)


def registry_status(store: ModelStore | None) -> dict[str, Any]:
    """The registry part of ``/readyz``: reachable or not at the last look, and when; which
    replica (process id) answered and the versions it holds (to check replicas are in step)."""
    if store is None:
        return {"registry": "unknown"}
    state = store.registry
    if state.reachable is None:
        word = "unknown"
    elif state.reachable:
        word = "reachable"
    else:
        word = "unreachable"
    snap = store.snapshot
    out: dict[str, Any] = {
        "registry": word,
        "registry_checked_at": state.checked_at,
        "replica": os.getpid(),
        "versions": {m.name: m.version for m in snap.models.values()} if snap else {},
    }
    if state.detail:
        out["registry_detail"] = state.detail
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _one_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unreachable"
    if isinstance(exc, CrsRiskError):
        text = str(exc)
    else:
        from training.tracking import describe_server_error

        text = describe_server_error("the registry", exc)
    return (text.strip().splitlines() or ["unreachable"])[0][:200]


def tracking_dir(uri: str) -> Path | None:
    """Folder of a SQLite tracking store (for messages)."""
    from training.tracking import sqlite_path

    db = sqlite_path(uri)
    return None if db is None else db.parent
