"""A suite's tenant set up and its customers restored through Concierge's public API, as an
integration would do it; shared by the benchmarks that play the answer suites (answers,
rerank). Every call names the suite's tenant in the ``x-concierge-tenant`` header."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from bench.lib.suites import Suite

log = logging.getLogger("bench.suite_api")

TENANT_HEADER = "x-concierge-tenant"
REPLY_TIMEOUT_S = 300.0


class Client:
    """HTTP to the Concierge under test, with the tenant header and an optional key."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=REPLY_TIMEOUT_S)

    def call(
        self, method: str, path: str, tenant: str, ok: Sequence[int] = (200,), **kwargs: Any
    ) -> httpx.Response:
        headers = {TENANT_HEADER: tenant, **kwargs.pop("headers", {})}
        response = self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code not in ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response


def set_up_tenant(client: Client, suite: Suite) -> None:
    """The tenant file, the KB (reindexed) and the catalog, through the public API."""
    tenant = suite.tenant
    client.call(
        "PUT",
        f"/admin/tenants/{tenant}",
        tenant,
        content=suite.tenant_toml().encode(),
        headers={"content-type": "application/toml"},
    )
    files = [("files", (path.name, path.read_bytes())) for path in suite.kb_files()]
    changed = client.call(
        "POST",
        f"/admin/kb/{tenant}/documents:bulk",
        tenant,
        ok=(200, 202),
        files=files,
        params={"wait": "true"},
    ).json()
    log.info(
        "%s: KB of %d files uploaded, %d changes", suite.name, len(files), len(changed["changes"])
    )
    client.call("POST", "/admin/catalog/products:bulk", tenant, json={"products": suite.catalog})
    log.info("%s: %d products", suite.name, len(suite.catalog))


def restore_customer(client: Client, suite: Suite, customer_id: str) -> None:
    """Erase the customer (conversations included) and import it again from the suite."""
    tenant = suite.tenant
    client.call("DELETE", f"/v1/customers/{customer_id}", tenant, ok=(200, 404))
    record = suite.customers[customer_id]
    body = {
        k: record[k] for k in ("name", "tier", "locale", "consent", "attributes") if k in record
    }
    client.call("PUT", f"/v1/customers/{customer_id}", tenant, json=body)
    events = [
        {k: e[k] for k in ("kind", "occurred_at", "payload") if k in e}
        for e in suite.events.get(customer_id, [])
    ]
    if events:
        client.call(
            "POST",
            f"/v1/customers/{customer_id}/events",
            tenant,
            ok=(201,),
            json={"events": events},
        )


def scenario_seed(scenario_id: str, run: int) -> int:
    digest = hashlib.sha256(f"{scenario_id}:{run}".encode()).digest()
    return int.from_bytes(digest[:4], "big")
