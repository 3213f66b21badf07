"""A tenant's own intents: upload examples to train its intent head, see it, remove it.

Thin: the media type and size are checked here, the work is ``IntentService``'s. ``PUT``
answers 202 with a ``tenant_intents`` job (``GET /admin/jobs/{id}``), or 200 with the
finished job under ``?wait=true``; the job's ``result`` is the head as ``GET`` shows it.
Training 5,000 examples takes about 20 s on a 2-core CPU, so it does not hold the request.
A tenant's admin key reaches only its own tenant (the route guard checks the path).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from core.errors import PayloadTooLargeError
from server.api.responses import error_responses
from server.deps import AuditDep, IntentServiceDep
from server.http.json_body import StrictJsonRoute
from server.schemas.intents import TenantIntentsOut
from server.schemas.retrieval import JobOut
from server.security.access import requires
from server.services.intents import MAX_INTENT_FILE_BYTES, MEDIA_TYPES
from server.store.api_keys import Role

router = APIRouter(prefix="/admin/tenants", tags=["admin"], route_class=StrictJsonRoute)

_ERRORS = error_responses(400, 401, 403, 404, 413, 429, 503)
_FINISHED = {"description": "The training job, already finished", "model": JobOut}
Wait = Annotated[bool, Query(description="wait for the training job to finish")]

_PUT_ACCESS = requires(Role.ADMIN)
_PUT_ACCESS["openapi_extra"] = {  # the body is read raw: document it for the OpenAPI schema
    **_PUT_ACCESS["openapi_extra"],
    "requestBody": {
        "required": True,
        "content": {media_type: {"schema": {"type": "string"}} for media_type in MEDIA_TYPES},
    },
}


@router.put(
    "/{tenant}/intents",
    **_PUT_ACCESS,
    status_code=202,
    response_model=JobOut,
    responses={**_ERRORS, 200: _FINISHED},
)
async def put_intents(
    tenant: str,
    request: Request,
    response: Response,
    service: IntentServiceDep,
    audit: AuditDep,
    wait: Wait = False,
) -> JobOut:
    """Teach the tenant its intents: one ``{"text", "label"}`` per line (JSONL) or a CSV
    with the header ``text,label``; at least two labels, five examples each, at most
    5,000 examples and 1 MiB. The trained head answers the tenant's next reply."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_INTENT_FILE_BYTES:
        raise PayloadTooLargeError(
            f"the examples are at most {MAX_INTENT_FILE_BYTES} bytes, these {declared}"
        )
    body = await request.body()
    job = await service.train(tenant, body, media_type, wait)
    await audit.record(
        tenant,
        "tenant.intents.put",
        job.job_id,
        {"bytes": len(body), "examples": job.total or None, "media_type": media_type},
    )
    response.status_code = 200 if job.state.finished else 202
    return JobOut.model_validate(job.as_dict())


@router.get(
    "/{tenant}/intents",
    **requires(Role.ADMIN),
    response_model=TenantIntentsOut,
    responses=_ERRORS,
)
async def get_intents(tenant: str, service: IntentServiceDep) -> TenantIntentsOut:
    """The tenant's own intent head in force; 404 when the general head serves it."""
    described = await service.get(tenant)
    return TenantIntentsOut.model_validate(described.as_dict())


@router.delete(
    "/{tenant}/intents",
    **requires(Role.ADMIN),
    status_code=204,
    responses=_ERRORS,
)
async def delete_intents(tenant: str, service: IntentServiceDep, audit: AuditDep) -> Response:
    """Remove the tenant's own intent head, every version: the general head serves again.
    A training still running for the tenant is cancelled and publishes nothing."""
    cancelled = await service.delete(tenant)
    await audit.record(tenant, "tenant.intents.delete", tenant, {"jobs_cancelled": cancelled})
    return Response(status_code=204)
