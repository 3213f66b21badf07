"""Who may call what: API keys, roles, tenants and per-key rate limits.

Every route declares the role it needs with ``**requires(Role.X)`` (or ``**public()``
for the probes); ``create_app`` refuses to build an app with a route that declares
neither, so a new route cannot be open by accident. The declaration also appears in
the OpenAPI schema as ``x-concierge-role``, which is how clients and the route-walk
test learn it.

A request passes, in order: a valid, unrevoked key (else 401), the route's role
(else 403), every tenant the request names, in its path or its ``X-Concierge-Tenant``
header, matching the key's tenant (else 403: a caller who believes it acts for
another tenant must learn that it cannot, not be silently re-scoped), and the key's
rate limit (else 429 with ``Retry-After``). Without keys (development on loopback,
see ``Settings.auth``) every caller is the anonymous principal, who may do everything
in any tenant.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from core import metrics
from core.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    RateLimitedError,
)
from server.config import Settings
from server.store.api_keys import ApiKey, ApiKeyStore, Role, digests_match, split_token
from server.store.rate_buckets import SharedRateLimits

log = logging.getLogger(__name__)

ROLE_EXTENSION = "x-concierge-role"
TENANT_HEADER = "x-concierge-tenant"
PUBLIC = "public"
ANY_KEY = "any key"
ANONYMOUS_ACTOR = "anonymous"
"""The actor of requests made without keys (development on loopback)."""

_BEARER = HTTPBearer(
    scheme_name="ApiKey",
    description="`Authorization: Bearer ck_...`, a key from `concierge keys create`",
    auto_error=False,
)


@dataclass(frozen=True)
class Principal:
    """The caller a request acts for: a key, or the anonymous development caller."""

    key: ApiKey | None

    @property
    def actor(self) -> str:
        """How the audit log names the caller: the key id, never the secret."""
        return f"key:{self.key.key_id}" if self.key else ANONYMOUS_ACTOR

    @property
    def tenant(self) -> str | None:
        """The one tenant this caller may act in; None for the anonymous caller (any)."""
        return self.key.tenant if self.key else None

    def require_role(self, role: Role) -> None:
        if self.key is not None and self.key.role is not role:
            metrics.ACCESS_DENIED.labels(reason="role").inc()
            raise PermissionDeniedError(
                f"this route needs a key with role '{role.value}'; "
                f"the key has role '{self.key.role.value}'"
            )

    def require_tenant(self, tenant: str) -> None:
        if self.key is not None and tenant != self.key.tenant:
            metrics.ACCESS_DENIED.labels(reason="tenant").inc()
            raise PermissionDeniedError(f"this key may act only for tenant '{self.key.tenant}'")


ANONYMOUS = Principal(None)


class TokenBucket:
    """``capacity`` requests at once, refilled at ``per_minute`` a minute."""

    def __init__(self, per_minute: int, capacity: int, clock: Callable[[], float]) -> None:
        self.rate_per_s = per_minute / 60.0
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self._clock = clock
        self._updated = clock()

    def take(self) -> float | None:
        """Take one token; None if granted, else the seconds until one is available."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate_per_s


class AccessControl:
    """Verifies keys (with a short cache) and charges their rate limits."""

    def __init__(
        self,
        store: ApiKeyStore | None,
        *,
        cache_s: float = 5.0,
        rate_limit_per_minute: int = 600,
        rate_limit_burst: int = 60,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedRateLimits | None = None,
    ) -> None:
        self.store = store
        self._shared = shared
        self._cache_s = cache_s
        self._default_rate = rate_limit_per_minute
        self._burst = rate_limit_burst
        self._clock = clock
        self._cache: dict[str, tuple[float, tuple[ApiKey, str] | None]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    @property
    def keys_required(self) -> bool:
        return self.store is not None

    async def authenticate(self, token: str | None) -> Principal:
        """The principal behind ``token``; raises 401 for anything but a valid, live key."""
        if self.store is None:
            return ANONYMOUS
        if not token:
            metrics.ACCESS_DENIED.labels(reason="missing_key").inc()
            raise AuthenticationError("an API key is required: send 'Authorization: Bearer ck_...'")
        parts = split_token(token)
        found = await self._lookup(parts[0]) if parts else None
        # the digest is compared even for unknown ids, so a miss costs what a hit costs
        secret = parts[1] if parts else token
        stored = found[1] if found else "0" * 64
        if not digests_match(secret, stored) or found is None:
            metrics.ACCESS_DENIED.labels(reason="invalid_key").inc()
            raise AuthenticationError("the API key is not valid")
        key = found[0]
        if not key.active:
            metrics.ACCESS_DENIED.labels(reason="revoked_key").inc()
            raise AuthenticationError("the API key has been revoked")
        return Principal(key)

    async def charge(self, principal: Principal) -> None:
        """Count one request against the key's rate limit; 429 when it is spent. With a
        ``shared`` store the budget is the database's, charged by every replica."""
        key = principal.key
        if key is None:
            return
        per_minute = key.rate_limit_per_minute
        if per_minute is None:
            per_minute = self._default_rate
        if per_minute <= 0:
            return
        burst = min(self._burst, per_minute)
        if self._shared is not None:
            wait_s = await asyncio.to_thread(self._shared.take, key.key_id, per_minute, burst)
        else:
            with self._lock:
                bucket = self._buckets.get(key.key_id)
                if bucket is None or bucket.rate_per_s != per_minute / 60.0:
                    bucket = TokenBucket(per_minute, burst, self._clock)
                    self._buckets[key.key_id] = bucket
                wait_s = bucket.take()
        if wait_s is not None:
            metrics.RATE_LIMITED.inc()
            raise RateLimitedError(
                f"rate limit of {per_minute} requests per minute exceeded for key {key.key_id}",
                retry_after_s=wait_s,
            )

    async def _lookup(self, key_id: str) -> tuple[ApiKey, str] | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1]
        assert self.store is not None
        found = await asyncio.to_thread(self.store.find, key_id)
        if len(self._cache) > 10_000:  # unknown ids are cached too; never let that grow
            self._cache.clear()
        self._cache[key_id] = (now, found)
        return found


def get_access(request: Request) -> AccessControl:
    access: AccessControl = request.app.state.access
    return access


def _guard(role: Role | None) -> Callable[..., Any]:
    async def guard(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        access = get_access(request)
        principal = await access.authenticate(credentials.credentials if credentials else None)
        if role is not None:
            principal.require_role(role)
        path_tenant = request.path_params.get("tenant")
        if isinstance(path_tenant, str):
            principal.require_tenant(path_tenant)
        named_tenant = request.headers.get(TENANT_HEADER)
        if named_tenant is not None:
            principal.require_tenant(named_tenant)
        await access.charge(principal)
        request.state.principal = principal

    guard.__name__ = f"requires_{role.value if role else 'a_key'}"
    return guard


def requires(role: Role) -> dict[str, Any]:
    """Route decorator arguments: only keys with ``role`` (and of the right tenant) pass."""
    return {
        "dependencies": [Depends(_guard(role))],
        "openapi_extra": {ROLE_EXTENSION: role.value},
    }


def requires_a_key() -> dict[str, Any]:
    """Route decorator arguments: any valid key of any role passes (the API documentation)."""
    return {"dependencies": [Depends(_guard(None))], "openapi_extra": {ROLE_EXTENSION: ANY_KEY}}


def public() -> dict[str, Any]:
    """Route decorator arguments of a route anyone may call (the health probes)."""
    return {"openapi_extra": {ROLE_EXTENSION: PUBLIC}}


def declared_role(route: APIRoute) -> str | None:
    """The role a route declared, ``public``, or None if it declared nothing."""
    extra = route.openapi_extra or {}
    value = extra.get(ROLE_EXTENSION)
    return str(value) if value is not None else None


def check_every_route_declares_a_role(app: FastAPI) -> None:
    """Refuse to build an app where some route would be reachable without a decision."""
    missing = [
        f"{sorted(route.methods)} {route.path}"
        for route in app.routes
        if isinstance(route, APIRoute) and declared_role(route) is None
    ]
    if missing:
        raise ConfigurationError(f"routes without a declared role: {', '.join(missing)}")


async def get_principal(request: Request) -> Principal:
    """The caller, as the route's guard established it."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise ConfigurationError("the route has no access guard")  # caught at start-up
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def access_control_for(settings: Settings, database: Engine) -> AccessControl:
    """Key checking as configured; says loudly when the server is open to any caller. On
    PostgreSQL, which replicas share, the rate limits are charged in the database."""
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
        shared=SharedRateLimits(database) if database.dialect.name == "postgresql" else None,
    )
