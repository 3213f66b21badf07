"""The key store (both SQL backends), the token bucket, and key verification."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine, select

from core.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from server.security.access import ANONYMOUS, AccessControl, TokenBucket
from server.store.api_keys import API_KEYS, ApiKeyStore, Role, split_token
from server.store.rate_buckets import SharedRateLimits


def test_a_key_is_issued_once_and_stored_as_a_digest(store_engine: Engine) -> None:
    store = ApiKeyStore(store_engine)
    issued = store.create("acme", Role.ADMIN, "kb tooling")
    parts = split_token(issued.token)
    assert parts is not None and parts[0] == issued.key.key_id
    with store_engine.connect() as conn:
        row = conn.execute(select(API_KEYS)).one()
    assert parts[1] not in " ".join(str(value) for value in row)
    found = store.find(issued.key.key_id)
    assert found is not None and found[0] == issued.key
    assert [key.key_id for key in store.list("acme")] == [issued.key.key_id]
    assert store.list("globex") == []


def test_revocation_is_idempotent_and_counted(store_engine: Engine) -> None:
    store = ApiKeyStore(store_engine)
    first = store.create("acme", Role.SERVICE)
    store.create("acme", Role.OPS)
    assert store.active_count() == 2
    revoked = store.revoke(first.key.key_id)
    assert revoked is not None and not revoked.active
    again = store.revoke(first.key.key_id)
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert store.active_count() == 1
    assert store.revoke("000000000000") is None


def test_verification_accepts_only_the_exact_live_key(store_engine: Engine) -> None:
    store = ApiKeyStore(store_engine)
    issued = store.create("acme", Role.SERVICE)
    access = AccessControl(store, cache_s=0)
    principal = asyncio.run(access.authenticate(issued.token))
    assert principal.tenant == "acme" and principal.actor == f"key:{issued.key.key_id}"
    key_id, secret = split_token(issued.token) or ("", "")
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for bad in (None, "", "ck_x", f"ck_{key_id}_{flipped}", f"ck_000000000000_{secret}"):
        with pytest.raises(AuthenticationError):
            asyncio.run(access.authenticate(bad))
    store.revoke(issued.key.key_id)
    with pytest.raises(AuthenticationError, match="revoked"):
        asyncio.run(access.authenticate(issued.token))


def test_role_and_tenant_checks() -> None:
    from server.security.access import Principal
    from server.store.api_keys import ApiKey

    key = ApiKey("abcdefabcdef", "acme", Role.OPS, "", None, 0.0, None)
    principal = Principal(key)
    principal.require_role(Role.OPS)
    principal.require_tenant("acme")
    with pytest.raises(PermissionDeniedError):
        principal.require_role(Role.ADMIN)
    with pytest.raises(PermissionDeniedError):
        principal.require_tenant("globex")
    ANONYMOUS.require_role(Role.ADMIN)  # no keys: development on loopback
    ANONYMOUS.require_tenant("anyone")


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(per_minute=60, capacity=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [None, None, None]
    wait = bucket.take()
    assert wait is not None and wait == pytest.approx(1.0)
    now[0] += 0.5
    wait = bucket.take()
    assert wait == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take() is None
    now[0] += 3600  # refills to capacity, never beyond
    assert [bucket.take() for _ in range(4)][-1] is not None


def test_rate_limit_per_key_with_retry_after(store_engine: Engine) -> None:
    store = ApiKeyStore(store_engine)
    limited = store.create("acme", Role.SERVICE, rate_limit_per_minute=2)
    free = store.create("acme", Role.SERVICE, rate_limit_per_minute=0)
    now = [0.0]
    access = AccessControl(store, cache_s=60, rate_limit_burst=10, clock=lambda: now[0])
    principal = asyncio.run(access.authenticate(limited.token))
    asyncio.run(access.charge(principal))
    asyncio.run(access.charge(principal))
    with pytest.raises(RateLimitedError) as refused:
        asyncio.run(access.charge(principal))
    assert refused.value.headers() == {"Retry-After": "30"}
    unlimited = asyncio.run(access.authenticate(free.token))
    for _ in range(100):
        asyncio.run(access.charge(unlimited))


def test_replicas_on_one_database_share_each_keys_rate_limit(store_engine: Engine) -> None:
    """Two replicas' access control on one database: the key's budget is spent once, not
    once per replica, and both tell the same ``Retry-After``."""
    store = ApiKeyStore(store_engine)
    limited = store.create("acme", Role.SERVICE, rate_limit_per_minute=6)
    now = [1_000.0]
    replicas = [
        AccessControl(
            store,
            cache_s=60,
            rate_limit_burst=3,
            shared=SharedRateLimits(store_engine, clock=lambda: now[0]),
        )
        for _ in range(2)
    ]

    def charged(replica: AccessControl) -> str:
        principal = asyncio.run(replica.authenticate(limited.token))
        try:
            asyncio.run(replica.charge(principal))
        except RateLimitedError as refused:
            return refused.headers()["Retry-After"]
        return "ok"

    burst = [charged(replicas[i % 2]) for i in range(5)]
    assert burst == ["ok", "ok", "ok", "10", "10"]  # 3 at once, then one per 10 s
    now[0] += 10
    assert [charged(replicas[1]), charged(replicas[0])] == ["ok", "10"]
    now[0] += 3600  # the budget refills to the burst, never beyond
    assert [charged(replicas[i % 2]) for i in range(4)] == ["ok", "ok", "ok", "10"]
