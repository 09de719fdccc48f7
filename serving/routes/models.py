"""``/v1/models``: the champions in service; ``/v1/models/reload``: re-resolve and swap them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from features.errors import CrsRiskError
from serving.loading import LoadedModel, Snapshot
from serving.responses import ERRORS, json_response
from serving.results import INTERVAL_COVERS, horizon_of
from serving.schemas import ErrorResponse, Metric, ModelInfo, ModelsResponse
from serving.state import TOKEN_ENV, AppState, swapped

router = APIRouter(tags=["models"])


def _model_info(m: LoadedModel) -> ModelInfo:
    return ModelInfo(
        name=m.name,
        task=m.task,
        landmark=m.landmark,
        alias=m.alias,
        version=m.version,
        run_id=m.run_id,
        model_type=m.model_type,
        cohort_digest=m.cohort_digest,
        thresholds=list(m.thresholds),
        metrics={k: Metric(value=v[0], ci_low=v[1], ci_high=v[2]) for k, v in m.metrics.items()},
        n_patients=m.n_patients,
        n_events=m.n_events,
        products=list(m.products) if m.products is not None else None,
        synthetic=m.synthetic,
        horizon=horizon_of(m.task, m.landmark),
        interval_method=m.interval.method if m.interval is not None else None,
        interval_covers=INTERVAL_COVERS if m.interval is not None else None,
        training_distribution=m.distribution is not None,
    )


def models_response(snapshot: Snapshot) -> ModelsResponse:
    """The ``/v1/models`` document of a snapshot."""
    return ModelsResponse(
        models=[_model_info(m) for m in snapshot.models.values()],
        missing=list(snapshot.missing),
        loaded_at=snapshot.loaded_at,
    )


@router.get(
    "/v1/models",
    response_model=ModelsResponse,
    summary="Loaded champions with version, cohort digest and validation metrics",
    responses={401: ERRORS[401]},
)
def models(state: AppState) -> ModelsResponse:
    return models_response(state.store.snapshot)


@router.post(
    "/v1/models/reload",
    response_model=ModelsResponse,
    summary="Re-resolve the champion aliases and swap the models (needs the token)",
    responses={
        401: ERRORS[401],
        403: {"model": ErrorResponse, "description": "No token configured."},
        409: {"model": ErrorResponse, "description": "Reload failed; old models kept."},
    },
)
def reload(request: Request, state: AppState) -> Any:
    if not state.tokens:
        return json_response(
            403,
            {
                "detail": "reload is disabled: start the service with a token file or "
                f"{TOKEN_ENV} (admin role)"
            },
        )
    try:
        snap, old = state.store.reload()
    except CrsRiskError as exc:
        return json_response(409, {"detail": str(exc)})
    except Exception as exc:  # store unreachable mid-reload: keep serving the old models
        return json_response(
            409, {"detail": f"reload failed ({type(exc).__name__}); old models kept"}
        )
    before = {m.name: m.version for m in old.models.values()} if old else {}
    del old
    swapped(state, snap, before, request.state.token_name)
    return models_response(snap)
