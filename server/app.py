"""``create_app(settings)``: the FastAPI application and its lifespan.

The lifespan builds the heavy objects once per process (the engine, the embedder,
the KB indexes and the database) and injects them through ``app.state``. The
engine starts in the background so ``/healthz`` answers at once and ``/readyz``
can say 503 until the model is loaded, which is what load balancers and
Kubernetes probes expect from a server whose start-up takes tens of seconds.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from models.engine.base import EngineClient
from server.api import (
    catalog,
    conversations,
    customers,
    health,
    insights,
    intents,
    kb,
    openai,
    support,
    tenants,
    tickets,
)
from server.api.docs import docs_router
from server.config import Settings
from server.gate.admission import AdmissionController
from server.http.errors import install_error_handlers
from server.http.json_body import check_every_route_reads_json_strictly
from server.http.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from server.lifespan import serving
from server.security.access import check_every_route_declares_a_role

log = logging.getLogger(__name__)

HEALTH_WATCH_INTERVAL_S = 5.0


def create_app(settings: Settings | None = None, engine: EngineClient | None = None) -> FastAPI:
    """Build the app. Pass ``engine`` to serve an already-built one (tests, embedding)."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving(app, settings, engine):
            yield

    app = FastAPI(
        title="Concierge",
        version="0.1.0",
        summary="Self-hosted inference server for personalized customer support.",
        lifespan=lifespan,
        # served by server/api/docs.py, behind the same access decision as every route
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.admission = AdmissionController(
        settings.effective_engine_max_concurrency,
        settings.max_queued_requests,
        settings.request_deadline_s,
    )
    install_error_handlers(app)
    for room in (
        health,
        openai,
        support,
        conversations,
        customers,
        kb,
        catalog,
        tickets,
        insights,
        tenants,
        intents,
    ):
        app.include_router(room.router)
    app.include_router(docs_router(open_to_all=settings.docs_public))
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        upload_max_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RequestContextMiddleware)
    check_every_route_declares_a_role(app)
    check_every_route_reads_json_strictly(app)
    app.openapi = lambda: _published_schema(app)  # type: ignore[method-assign]
    return app


def _published_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document without its automatic 422 answers.

    Validation errors are answered with 400 in the one error shape (error_responses.py),
    so a 422 with FastAPI's ``HTTPValidationError`` body would be a promise the server
    never keeps, and SDKs generated from the schema would model the wrong error.
    """
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        schemas = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema
