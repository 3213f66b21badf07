"""The audit log on SQLite and PostgreSQL: append, read newest first, per tenant."""

from __future__ import annotations

from sqlalchemy import Engine

from server.store.audit import AuditLog, customer_reference


def test_events_are_kept_per_tenant_newest_first(store_engine: Engine) -> None:
    log = AuditLog(store_engine)
    log.record("shop", "anonymous", "kb.document.put", "faq.md", "req-1")
    log.record("other", "key-9", "kb.reindex", "job-1", "req-2", {"mode": "full"})
    log.record("shop", "anonymous", "customer.erase", customer_reference("ana"), "req-3")
    shop = log.events("shop")
    assert [(e.action, e.request_id) for e in shop] == [
        ("customer.erase", "req-3"),
        ("kb.document.put", "req-1"),
    ]
    [other] = log.events("other")
    assert (other.actor, other.detail) == ("key-9", {"mode": "full"})
    assert len(log.events("shop", limit=1)) == 1


def test_customers_are_named_by_digest_not_by_id() -> None:
    reference = customer_reference("cust-1001")
    assert reference.startswith("customer:") and "cust-1001" not in reference
    assert reference == customer_reference("cust-1001") != customer_reference("cust-1002")
