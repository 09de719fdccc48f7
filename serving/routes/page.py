"""``/``: the clinician page; ``/docs``: Swagger UI from packaged assets (works offline)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from serving.state import AppState

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(state: AppState) -> HTMLResponse:
    return HTMLResponse(state.page)


@router.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    """Swagger UI whose assets ``serving.app`` mounts at ``/docs-assets`` (no CDN)."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="crs-risk service — API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/docs-assets/favicon-32x32.png",
    )
