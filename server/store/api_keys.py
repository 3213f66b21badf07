"""API keys: issued once, stored only as a digest, each bound to a tenant and a role.

A key reads ``ck_<key id>_<secret>``. The id is public (it names the key in lists, logs
and the audit log); the secret is 256 random bits shown once at creation. Only the
SHA-256 of the secret is stored: a slow password hash buys nothing for a secret with
that much entropy, and verifying must stay cheap on every request. Digests are
compared with ``hmac.compare_digest`` so timing does not reveal how much matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    Integer,
    Row,
    String,
    Table,
    func,
    insert,
    select,
    update,
)

from core.db import METADATA

KEY_PREFIX = "ck"
_KEY_SHAPE = re.compile(r"ck_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


class Role(StrEnum):
    """What a key may do, always within its own tenant."""

    SERVICE = "service"
    """Inference and the tenant's customer data: what the support front end calls."""
    ADMIN = "admin"
    """Knowledge base, catalog, reindex, tickets, releases and erasure."""
    OPS = "ops"
    """Read-only: metrics and analytics."""


API_KEYS = Table(
    "api_keys",
    METADATA,
    Column("key_id", String(12), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("name", String(100), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("rate_limit_per_minute", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Index("ix_api_keys_tenant", "tenant"),
)


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: str
    tenant: str
    role: Role
    name: str
    rate_limit_per_minute: int | None
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class IssuedKey:
    """A new key: the only moment its full text exists outside the caller."""

    key: ApiKey
    token: str


def split_token(token: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed key text, else None."""
    match = _KEY_SHAPE.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def digests_match(secret: str, stored_digest: str) -> bool:
    """Constant-time comparison of a presented secret with a stored digest."""
    return hmac.compare_digest(secret_digest(secret), stored_digest)


class ApiKeyStore:
    """Create, find, list and revoke keys (one table, any SQL backend)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self, tenant: str, role: Role, name: str = "", rate_limit_per_minute: int | None = None
    ) -> IssuedKey:
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = ApiKey(key_id, tenant, role, name[:100], rate_limit_per_minute, time.time(), None)
        with self._engine.begin() as conn:
            conn.execute(
                insert(API_KEYS).values(
                    key_id=key.key_id,
                    tenant=key.tenant,
                    role=key.role.value,
                    name=key.name,
                    secret_sha256=secret_digest(secret),
                    rate_limit_per_minute=rate_limit_per_minute,
                    created_at=key.created_at,
                )
            )
        return IssuedKey(key, f"{KEY_PREFIX}_{key_id}_{secret}")

    def find(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its stored digest, revoked or not; None if no such id."""
        with self._engine.connect() as conn:
            row = conn.execute(select(API_KEYS).where(API_KEYS.c.key_id == key_id)).first()
        if row is None:
            return None
        return _key(row), str(row.secret_sha256)

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        query = select(API_KEYS).order_by(API_KEYS.c.tenant, API_KEYS.c.created_at)
        if tenant is not None:
            query = query.where(API_KEYS.c.tenant == tenant)
        with self._engine.connect() as conn:
            return [_key(row) for row in conn.execute(query)]

    def revoke(self, key_id: str) -> ApiKey | None:
        """Mark the key revoked (idempotent); None if no such id."""
        with self._engine.begin() as conn:
            conn.execute(
                update(API_KEYS)
                .where(API_KEYS.c.key_id == key_id, API_KEYS.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        found = self.find(key_id)
        return found[0] if found else None

    def active_count(self) -> int:
        query = select(func.count()).select_from(API_KEYS).where(API_KEYS.c.revoked_at.is_(None))
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        key_id=str(row.key_id),
        tenant=str(row.tenant),
        role=Role(row.role),
        name=str(row.name),
        rate_limit_per_minute=row.rate_limit_per_minute,
        created_at=float(row.created_at),
        revoked_at=row.revoked_at,
    )
