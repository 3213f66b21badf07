"""The API's own documentation: the OpenAPI document, Swagger UI and ReDoc.

FastAPI serves these to anyone by default. They list every route, parameter and error of
the API, which an operator may not want to show the internet, so they are built here with
the same access decision as every other route: open when the operator says so
(``CONCIERGE_API_DOCS_PUBLIC``), else behind any valid key (open anyway in development,
where no key is required).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from server.http.json_body import StrictJsonRoute
from server.security.access import public, requires_a_key

OPENAPI_PATH = "/openapi.json"


def docs_router(*, open_to_all: bool) -> APIRouter:
    """The three documentation routes, public or behind a key."""
    router = APIRouter(tags=["docs"], route_class=StrictJsonRoute)
    access: dict[str, Any] = public() if open_to_all else requires_a_key()

    @router.get(OPENAPI_PATH, include_in_schema=False, **access)
    async def openapi_document(request: Request) -> JSONResponse:
        """The OpenAPI document (what SDK generators read)."""
        return JSONResponse(request.app.openapi())

    @router.get("/docs", include_in_schema=False, **access)
    async def swagger_ui(request: Request) -> HTMLResponse:
        """Swagger UI over the OpenAPI document."""
        return get_swagger_ui_html(openapi_url=OPENAPI_PATH, title=f"{request.app.title} API")

    @router.get("/redoc", include_in_schema=False, **access)
    async def redoc(request: Request) -> HTMLResponse:
        """ReDoc over the OpenAPI document."""
        return get_redoc_html(openapi_url=OPENAPI_PATH, title=f"{request.app.title} API")

    return router
