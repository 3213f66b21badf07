"""Tenant configuration over HTTP: the same TOML file ``concierge tenants install`` takes.

``PUT`` validates the file exactly as the CLI and the hot reload do (a message that names
the field, nothing written when it fails), writes it atomically and records the change in
the audit log; the next reply of the tenant reads it, with no restart. ``GET`` shows what
serves now, the defaults when no file is installed, with the webhook secret masked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from core.errors import InvalidRequestError, PayloadTooLargeError
from server.api.responses import error_responses
from server.deps import AuditDep, TenantConfigsDep
from server.http.json_body import StrictJsonRoute
from server.security.access import requires
from server.store.api_keys import Role
from server.tenants import TenantConfig

router = APIRouter(prefix="/admin/tenants", tags=["admin"], route_class=StrictJsonRoute)

_ERRORS = error_responses(400, 401, 403, 404, 413, 429)
MAX_TENANT_FILE_BYTES = 256 * 1024
TOML_TYPES = ("application/toml", "text/plain", "text/x-toml", "application/x-toml")


class TenantConfigOut(BaseModel):
    tenant: str
    installed: bool = Field(description="a file is installed; otherwise the defaults serve")
    config: dict[str, Any] = Field(description="the configuration in force, secrets masked")


def _out(tenant: str, installed: bool, config: TenantConfig) -> TenantConfigOut:
    return TenantConfigOut(
        tenant=tenant, installed=installed, config=config.model_dump(mode="json")
    )


@router.get("/{tenant}", **requires(Role.ADMIN), response_model=TenantConfigOut, responses=_ERRORS)
async def get_tenant_config(tenant: str, configs: TenantConfigsDep) -> TenantConfigOut:
    """The configuration a tenant's replies use now."""
    config = await asyncio.to_thread(configs.get, tenant)
    return _out(tenant, configs.path_for(tenant).is_file(), config)


_PUT_ACCESS = requires(Role.ADMIN)
_PUT_ACCESS["openapi_extra"] = {  # the body is read raw: document it for the OpenAPI schema
    **_PUT_ACCESS["openapi_extra"],
    "requestBody": {
        "required": True,
        "content": {"application/toml": {"schema": {"type": "string"}}},
    },
}


@router.put("/{tenant}", **_PUT_ACCESS, response_model=TenantConfigOut, responses=_ERRORS)
async def put_tenant_config(
    tenant: str, request: Request, configs: TenantConfigsDep, audit: AuditDep
) -> TenantConfigOut:
    """Install the tenant's file (TOML, as ``examples/tenant.toml``); replies use it at once."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in TOML_TYPES:
        raise InvalidRequestError(
            "send the tenant file as TOML with Content-Type: application/toml",
            param="content-type",
        )
    body = await request.body()
    if len(body) > MAX_TENANT_FILE_BYTES:
        raise PayloadTooLargeError(
            f"a tenant file is at most {MAX_TENANT_FILE_BYTES} bytes, this one {len(body)}"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("the tenant file is not UTF-8 text", param="body") from None
    config = await asyncio.to_thread(configs.install, tenant, text, f"tenant {tenant}")
    await audit.record(tenant, "tenant.config.put", tenant, {"bytes": len(body)})
    return _out(tenant, True, config)
