"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from core import metrics
from core.errors import AuthenticationError, EngineUnavailableError, PermissionDeniedError
from server.deps import EngineDep, SettingsDep
from server.http.errors import error_response
from server.http.json_body import StrictJsonRoute
from server.security.access import PrincipalDep, get_access, public, requires
from server.store.api_keys import Role

router = APIRouter(tags=["health"], route_class=StrictJsonRoute)


@router.get("/healthz", **public())
async def healthz() -> dict[str, str]:
    """The process is alive and serving HTTP (says nothing about the engine)."""
    return {"status": "ok"}


@router.get("/readyz", **public())
async def readyz(request: Request, engine: EngineDep) -> JSONResponse:
    """200 once the engine answers its health check; 503 while starting, draining or dead.

    Anyone may ask (load balancers and probes carry no key), so the answer says only ready
    or not ready; the model, the upstream URLs and the error behind a 503 are for ops keys
    (and for everyone in development, where no key is required).
    """
    details = await _caller_is_ops(request)
    start_error: str | None = request.app.state.engine_start_error
    try:
        if request.app.state.admission.draining:
            raise EngineUnavailableError("the server is shutting down")
        if start_error:
            raise EngineUnavailableError(f"the engine failed to start: {start_error}")
        await engine.check_health()
    except EngineUnavailableError as exc:
        metrics.ENGINE_READY.set(0)
        message = exc.message if details else "not ready"
        return error_response(503, exc.error_type, message)
    metrics.ENGINE_READY.set(1)
    if not details:
        return JSONResponse({"status": "ready"})
    info = engine.model_info
    return JSONResponse({"status": "ready", "model": info.name, **info.details})


async def _caller_is_ops(request: Request) -> bool:
    """Whether the request carries an ops key (or no key is required): it may see details."""
    access = get_access(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if not token:  # a probe: no key, and no denial to count unless keys are off
        return access.store is None
    try:
        principal = await access.authenticate(token)
        principal.require_role(Role.OPS)
    except (AuthenticationError, PermissionDeniedError):
        return False
    return True


@router.get("/metrics", **requires(Role.OPS), include_in_schema=False)
async def prometheus_metrics(
    engine: EngineDep, principal: PrincipalDep, settings: SettingsDep
) -> Response:
    """Concierge's ``concierge_*`` metrics and vLLM's ``vllm:*`` metrics, one registry.

    The figures cover every tenant, so only ops keys of the operator's tenant (the
    default tenant) may read them; another tenant's ops key reads its own analytics.
    """
    principal.require_tenant(settings.default_tenant)
    metrics.ENGINE_READY.set(1 if engine.ready else 0)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
