"""``create_app(settings)``: the FastAPI application and its lifespan.

The lifespan builds the heavy objects once per process (the engine, the embedder,
the KB indexes and the database) and injects them through ``app.state``. The
engine starts in the background so ``/healthz`` answers at once and ``/readyz``
can say 503 until the model is loaded, which is what load balancers and
Kubernetes probes expect from a server whose start-up takes tens of seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from sqlalchemy import Engine

from models.engine.base import EngineClient
from models.engine.factory import build_engine
from server import metrics
from server.access import AccessControl, check_every_route_declares_a_role
from server.admission import AdmissionController
from server.api import admin, customers, health, openai, support, support_admin
from server.config import Settings
from server.embeddings import EmbeddingService
from server.engine_admission import AdmittedEngine
from server.engine_metering import MeteredEngine
from server.error_responses import install_error_handlers
from server.errors import EngineUnavailableError
from server.generation import GenerationService
from server.knowledge_service import KnowledgeService, running_retrieval
from server.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from server.store.api_keys import ApiKeyStore
from server.store.audit import AuditLog
from server.support_runtime import running_support

log = logging.getLogger(__name__)

HEALTH_WATCH_INTERVAL_S = 5.0


def create_app(settings: Settings | None = None, engine: EngineClient | None = None) -> FastAPI:
    """Build the app. Pass ``engine`` to serve an already-built one (tests, embedding)."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(_import_model_libraries)
        metrics.TENANT_LABELS.configure(
            tuple(settings.metrics_tenants),
            settings.effective_tenants_dir,
            (settings.default_tenant,),
        )
        metrics.watch_gpu_memory()
        # Metering outside admission: in-flight counts a generation from the moment it
        # asks for a slot, so the autoscaling signal sees the admission queue too.
        active: EngineClient = MeteredEngine(
            AdmittedEngine(engine or build_engine(settings), app.state.admission)
        )
        app.state.engine = active
        app.state.engine_start_error = None
        app.state.generation = GenerationService(
            active, model_aliases=(settings.model,), max_output_tokens=settings.max_output_tokens
        )
        metrics.ENGINE_READY.set(0)
        tasks = [
            asyncio.create_task(_start_engine(app, active), name="engine-start"),
            asyncio.create_task(_watch_engine(active), name="engine-watch"),
        ]
        try:
            async with running_retrieval(settings) as retrieval:
                app.state.retrieval = retrieval
                app.state.knowledge_service = KnowledgeService(retrieval)
                app.state.embedding_service = EmbeddingService(
                    retrieval.embedder, settings.max_embedding_inputs, (settings.embedding_model,)
                )
                async with running_support(settings, retrieval, active) as support_side:
                    app.state.support_service = support_side.service
                    app.state.reply_pipeline = support_side.pipeline
                    app.state.tenant_configs = support_side.tenants
                    app.state.audit_log = AuditLog(retrieval.database)
                    app.state.access = await asyncio.to_thread(
                        _access_control, settings, retrieval.database
                    )
                    yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await active.shutdown()
            metrics.ENGINE_READY.set(0)

    app = FastAPI(
        title="Concierge",
        version="0.1.0",
        summary="Self-hosted inference server for personalized customer support.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.admission = AdmissionController(
        settings.effective_engine_max_concurrency,
        settings.max_queued_requests,
        settings.request_deadline_s,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(openai.router)
    app.include_router(support.router)
    app.include_router(customers.router)
    app.include_router(admin.router)
    app.include_router(support_admin.router)
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


def _access_control(settings: Settings, database: Engine) -> AccessControl:
    """Key checking as configured; says loudly when the server is open to any caller."""
    if not settings.keys_required:
        log.warning(
            "API KEYS ARE OFF: any program that can reach %s:%d may read and change every "
            "tenant's data. This is allowed only in development on loopback; set "
            "CONCIERGE_AUTH=keys and create keys with `concierge keys create` before exposing it.",
            settings.host,
            settings.port,
        )
        return AccessControl(None)
    store = ApiKeyStore(database)
    if store.active_count() == 0:
        log.warning(
            "API keys are required but none exists: every request will get 401. "
            "Create one with `concierge keys create --tenant T --role service`."
        )
    return AccessControl(
        store,
        cache_s=settings.api_key_cache_s,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        rate_limit_burst=settings.rate_limit_burst,
    )


def _import_model_libraries() -> None:
    """Import the model libraries once, in one thread, before anything loads a model.

    The engine, the embedder and the prompt tokenizer then load in parallel threads. A
    package's first import is not safe to race: a second thread can get the half-built
    module (seen as "cannot import name ... from partially initialized module
    'accelerate'", killing the server at start-up about one time in two under load).
    """
    import accelerate  # noqa: F401
    import sentence_transformers  # noqa: F401
    import transformers  # noqa: F401


async def _start_engine(app: FastAPI, engine: EngineClient) -> None:
    try:
        await engine.start()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("engine failed to start")
        app.state.engine_start_error = f"{type(exc).__name__}: {exc}"
        return
    metrics.ENGINE_READY.set(1 if engine.ready else 0)


async def _watch_engine(engine: EngineClient) -> None:
    """Keep ``concierge_engine_ready`` true to the engine's health, and log transitions."""
    was_ready = False
    while True:
        await asyncio.sleep(HEALTH_WATCH_INTERVAL_S)
        try:
            await engine.check_health()
            ready = True
        except EngineUnavailableError as exc:
            ready = False
            if was_ready:
                log.error("engine became unavailable: %s", exc.message)
        metrics.ENGINE_READY.set(int(ready))
        was_ready = ready
