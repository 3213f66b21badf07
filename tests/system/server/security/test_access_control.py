"""API keys and roles on a live server: every route, every tenant boundary, over real HTTP.

The server under test requires keys (``CONCIERGE_AUTH=keys``) and forwards generation
to the session's real vLLM server, so it starts in seconds. Keys are made with the
real ``concierge keys`` command against the same database.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from server.app import create_app
from server.config import Settings
from server.security.access import ANY_KEY, PUBLIC, declared_role
from server.store.api_keys import Role
from tests.cli import invoke
from tests.error_shape import assert_error_shape
from tests.servers import (
    ServerProcess,
    isolated_data_dir,
    query_server_database,
    remote_engine_env,
    server_database_bytes,
    start_server,
)

TENANTS = ("acme", "globex")
SAMPLE_PATH_VALUES = {
    "customer_id": "walker",
    "conversation_id": "conv-missing",
    "doc_id": "doc-1",
    "product_id": "p-1",
    "job_id": "job-missing",
    "ticket_id": "ticket-missing",
    "question_id": "0123456789abcdef",
    "decision": "reject",
}


@dataclass
class SecuredServer:
    server: ServerProcess
    env: dict[str, str]
    data_dir: Path
    keys: dict[tuple[str, Role], str]

    @property
    def url(self) -> str:
        return self.server.url

    def key(self, tenant: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[(tenant, role)]}"}

    def keys_command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return invoke("keys", *args, env=self.env, timeout=60)


@pytest.fixture(scope="module")
def secured(
    base_url: str, data_dir: Path, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredServer]:
    own = isolated_data_dir(tmp_path_factory.mktemp("secured-data"), data_dir)
    env = {
        **remote_engine_env(base_url),
        "CONCIERGE_DATA_DIR": str(own),
        "CONCIERGE_AUTH": "keys",
        "CONCIERGE_API_KEY_CACHE_S": "0",  # revocation is seen at once
        "CONCIERGE_REPLY_MAX_TOKENS": "16",
        "CONCIERGE_DEFAULT_TENANT": "acme",  # the operator: its ops keys read /metrics
    }
    secured = SecuredServer(
        start_server(log_dir, env, name="secured"), env, own, keys={}
    )  # started first: key creation below overlaps its start-up
    try:
        for tenant in TENANTS:
            for role in Role:
                made = secured.keys_command(
                    "create", "--tenant", tenant, "--role", role.value, "--name", "tests"
                )
                assert made.returncode == 0, made.stderr
                secured.keys[(tenant, role)] = made.stdout.strip()
        secured.server.wait_ready(120)
        yield secured
    finally:
        secured.server.stop()


def app_routes() -> list[APIRoute]:
    """Every route of the app as built by ``create_app`` (no lifespan needed)."""
    app = create_app(Settings(auth="keys"))
    return [route for route in app.routes if isinstance(route, APIRoute)]


def concrete_path(route: APIRoute, tenant: str) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return tenant if name == "tenant" else SAMPLE_PATH_VALUES[name]

    return re.sub(r"\{([^}]+)\}", fill, route.path)


def call(
    client: httpx.Client, route: APIRoute, path: str, headers: dict[str, str]
) -> httpx.Response:
    method = sorted(route.methods)[0]
    body = {} if method in {"POST", "PUT"} else None
    return client.request(method, path, json=body, headers=headers)


def test_every_route_declares_a_role() -> None:
    routes = app_routes()
    assert routes
    undeclared = [route.path for route in routes if declared_role(route) is None]
    assert not undeclared
    public = {route.path for route in routes if declared_role(route) == PUBLIC}
    assert public == {"/healthz", "/readyz"}


def test_route_walk_401_without_key_403_with_wrong_role_or_tenant(
    secured: SecuredServer,
) -> None:
    checked = 0
    with httpx.Client(base_url=secured.url, timeout=60) as client:
        for route in app_routes():
            role = declared_role(route)
            path = concrete_path(route, "acme")
            label = f"{sorted(route.methods)} {route.path}"
            if role == PUBLIC:
                assert call(client, route, path, {}).status_code in (200, 503), label
                continue
            if role == ANY_KEY:  # the API documentation
                assert call(client, route, path, {}).status_code == 401, label
                for any_role in Role:
                    assert call(client, route, path, secured.key("acme", any_role)).is_success
                continue
            needed = Role(str(role))
            missing = call(client, route, path, {})
            assert missing.status_code == 401, label
            assert_error_shape(missing, 401, "authentication_error")
            assert missing.headers["www-authenticate"] == "Bearer"
            garbage = call(client, route, path, {"Authorization": "Bearer ck_nonsense"})
            assert garbage.status_code == 401, label
            for other in Role:
                if other is not needed:
                    wrong = call(client, route, path, secured.key("acme", other))
                    assert wrong.status_code == 403, f"{label} with role {other}"
                    assert_error_shape(wrong, 403, "permission_error")
            right = call(client, route, path, secured.key("acme", needed))
            assert right.status_code not in (401, 403), f"{label}: {right.text}"
            assert right.status_code < 500, f"{label}: {right.text}"
            if "{tenant}" in route.path:
                elsewhere = concrete_path(route, "globex")
                foreign = call(client, route, elsewhere, secured.key("acme", needed))
                assert foreign.status_code == 403, f"{label} for another tenant's path"
            naming = {**secured.key("acme", needed), "X-Concierge-Tenant": "globex"}
            named = call(client, route, path, naming)
            assert named.status_code == 403, f"{label} naming another tenant"
            checked += 1
    assert checked >= 30  # the whole API, not a sample


def test_the_documentation_needs_a_key_and_readiness_details_an_ops_key(
    secured: SecuredServer,
) -> None:
    """The trust probe found /openapi.json, /docs and /redoc open and /readyz naming the
    upstream URL and its error to anyone."""
    for path in ("/openapi.json", "/docs", "/redoc"):
        refused = httpx.get(f"{secured.url}{path}", timeout=30)
        assert refused.status_code == 401, path
        assert_error_shape(refused, 401, "authentication_error")
    anyone = httpx.get(f"{secured.url}/readyz", timeout=30)
    assert anyone.status_code == 200 and anyone.json() == {"status": "ready"}
    service = httpx.get(
        f"{secured.url}/readyz", headers=secured.key("acme", Role.SERVICE), timeout=30
    )
    assert service.json() == {"status": "ready"}
    ops = httpx.get(f"{secured.url}/readyz", headers=secured.key("acme", Role.OPS), timeout=30)
    assert ops.json()["status"] == "ready" and ops.json()["model"]


def test_the_operator_may_open_the_documentation() -> None:
    opened = create_app(Settings(auth="keys", api_docs_public=True))
    docs = {
        route.path: declared_role(route) for route in opened.routes if isinstance(route, APIRoute)
    }
    assert docs["/openapi.json"] == docs["/docs"] == docs["/redoc"] == PUBLIC
    assert Settings(auth="off").docs_public and not Settings(auth="keys").docs_public


def test_the_schema_documents_roles_and_the_key_scheme(secured: SecuredServer) -> None:
    schema = httpx.get(
        f"{secured.url}/openapi.json", headers=secured.key("acme", Role.OPS), timeout=30
    ).json()
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("x-concierge-role"), f"{method} {path}"
            # validation errors are 400s in the one error shape, never FastAPI's 422
            assert "422" not in operation["responses"], f"{method} {path}"
    assert "HTTPValidationError" not in schema["components"]["schemas"]


@pytest.fixture(scope="module")
def acme_data(secured: SecuredServer) -> dict[str, str]:
    """Acme's customer, conversation, ticket, KB document, product and job."""
    service = secured.key("acme", Role.SERVICE)
    admin = secured.key("acme", Role.ADMIN)
    with httpx.Client(base_url=secured.url, timeout=180) as client:
        assert client.put("/v1/customers/ada", json={"name": "Ada"}, headers=service).is_success
        event = {
            "kind": "order",
            "payload": {"order_id": "A-77", "items": [{"name": "Kettle", "price": 30}]},
        }
        added = client.post("/v1/customers/ada/events", json=event, headers=service)
        assert added.status_code == 201, added.text
        document = {"documents": [{"id": "returns", "title": "Returns", "text": "30 days."}]}
        loaded = client.post(
            "/admin/kb/acme/documents:bulk", params={"wait": "true"}, json=document, headers=admin
        )
        assert loaded.is_success, loaded.text
        product = {"name": "Kettle", "description": "A kettle.", "category": "kitchen"}
        assert client.put("/admin/catalog/products/kettle", json=product, headers=admin).is_success
        job = client.post("/admin/kb/acme/reindex", json={"mode": "full"}, headers=admin)
        assert job.status_code in (200, 202), job.text
        first = client.post(
            "/v1/support/reply",
            json={"customer_id": "ada", "message": "Where is my order A-77?"},
            headers=service,
        )
        assert first.status_code == 200, first.text
        handed = client.post(
            "/v1/support/reply",
            json={
                "customer_id": "ada",
                "conversation_id": first.json()["conversation_id"],
                "message": "I want to talk to a human agent please.",
            },
            headers=service,
        )
        assert handed.status_code == 200, handed.text
        ticket_id = handed.json()["escalation"]["ticket_id"]
        assert ticket_id
    return {
        "conversation_id": first.json()["conversation_id"],
        "ticket_id": ticket_id,
        "job_id": job.json()["id"],
    }


def test_another_tenant_cannot_reach_any_of_acmes_data(
    secured: SecuredServer, acme_data: dict[str, str]
) -> None:
    conversation = acme_data["conversation_id"]
    attempts: list[tuple[Role, str, str, Any, set[int]]] = [
        (Role.SERVICE, "GET", "/v1/customers/ada", None, {404}),
        (Role.SERVICE, "GET", "/v1/customers/ada/profile", None, {404}),
        (Role.SERVICE, "GET", f"/v1/conversations/{conversation}", None, {404}),
        (Role.SERVICE, "POST", f"/v1/conversations/{conversation}/feedback", {"csat": 1}, {404}),
        (
            Role.SERVICE,
            "POST",
            "/v1/support/reply",
            {"customer_id": "ada", "conversation_id": conversation, "message": "hello"},
            {404},
        ),
        (Role.ADMIN, "POST", f"/v1/conversations/{conversation}/release", None, {404}),
        (Role.ADMIN, "DELETE", "/v1/customers/ada", None, {404}),
        (Role.ADMIN, "GET", f"/admin/tickets/{acme_data['ticket_id']}", None, {404}),
        (Role.ADMIN, "GET", f"/admin/jobs/{acme_data['job_id']}", None, {404}),
        (Role.ADMIN, "POST", f"/admin/jobs/{acme_data['job_id']}/cancel", None, {404}),
        (Role.ADMIN, "GET", "/admin/catalog/products/kettle", None, {404}),
        (Role.ADMIN, "DELETE", "/admin/catalog/products/kettle", None, {404}),
        (Role.ADMIN, "GET", "/admin/kb/acme/documents/returns", None, {403}),
        (Role.ADMIN, "DELETE", "/admin/kb/acme/documents/returns", None, {403}),
        (Role.ADMIN, "GET", "/admin/kb/acme/stats", None, {403}),
        (Role.ADMIN, "POST", "/admin/kb/acme/search", {"query": "returns"}, {403}),
        (Role.ADMIN, "POST", "/admin/kb/acme/reindex", None, {403}),
    ]
    with httpx.Client(base_url=secured.url, timeout=60) as client:
        for role, method, path, body, expected in attempts:
            answer = client.request(method, path, json=body, headers=secured.key("globex", role))
            assert answer.status_code in expected, f"{method} {path}: {answer.text}"
            assert "A-77" not in answer.text and "Ada" not in answer.text
        # lists of globex show nothing of acme
        admin = secured.key("globex", Role.ADMIN)
        tickets = client.get("/admin/tickets", headers=admin).json()["tickets"]
        assert all(t["ticket_id"] != acme_data["ticket_id"] for t in tickets)
        assert client.get("/admin/catalog/products", headers=admin).json()["products"] == []
        assert client.get("/admin/audit", headers=admin).json()["events"] == []
        analytics = client.get("/admin/analytics", headers=secured.key("globex", Role.OPS))
        assert analytics.status_code == 200
        assert "A-77" not in analytics.text
        # and acme's data is all still there
        service = secured.key("acme", Role.SERVICE)
        assert client.get("/v1/customers/ada", headers=service).status_code == 200
        kept = client.get(f"/v1/conversations/{conversation}", headers=service)
        assert kept.status_code == 200 and kept.json()["turn_count"] == 2


def test_a_customer_cannot_continue_another_customers_conversation(
    secured: SecuredServer, acme_data: dict[str, str]
) -> None:
    service = secured.key("acme", Role.SERVICE)
    conversation = acme_data["conversation_id"]
    with httpx.Client(base_url=secured.url, timeout=60, headers=service) as client:
        before = client.get(f"/v1/conversations/{conversation}").json()
        hijack = client.post(
            "/v1/support/reply",
            json={
                "customer_id": "mallory",
                "conversation_id": conversation,
                "message": "show me the orders in this conversation",
            },
        )
        assert hijack.status_code == 404
        assert "A-77" not in hijack.text
        assert client.get(f"/v1/conversations/{conversation}").json() == before


def test_admin_actions_are_audited_under_the_key_id(
    secured: SecuredServer, acme_data: dict[str, str]
) -> None:
    events = httpx.get(
        f"{secured.url}/admin/audit", headers=secured.key("acme", Role.ADMIN), timeout=30
    ).json()["events"]
    admin_id = secured.keys[("acme", Role.ADMIN)].split("_")[1]
    assert events and {event["actor"] for event in events} == {f"key:{admin_id}"}


def test_keys_are_stored_as_digests_only(secured: SecuredServer) -> None:
    rows = query_server_database(secured.data_dir, "SELECT key_id, secret_sha256 FROM api_keys")
    stored = " ".join(f"{key_id} {digest}" for key_id, digest in rows)
    assert len(rows) == len(secured.keys)
    for token in secured.keys.values():
        secret = token.split("_", 2)[2]
        assert secret not in stored
    database = server_database_bytes(secured.data_dir)
    assert not any(token.split("_", 2)[2].encode() in database for token in secured.keys.values())


def test_revoked_key_is_refused_and_listed_as_revoked(secured: SecuredServer) -> None:
    made = secured.keys_command("create", "--tenant", "acme", "--role", "ops", "--name", "temp")
    token = made.stdout.strip()
    key_id = token.split("_")[1]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{secured.url}/metrics", headers=headers, timeout=30).status_code == 200
    revoked = secured.keys_command("revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    refused = httpx.get(f"{secured.url}/metrics", headers=headers, timeout=30)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
    listing = secured.keys_command("list", "--tenant", "acme").stdout
    assert re.search(rf"^{key_id}\s+acme\s+ops\s+revoked\b", listing, re.MULTILINE)
    assert secured.keys_command("revoke", "nosuchkey").returncode == 1


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(secured: SecuredServer) -> None:
    made = secured.keys_command(
        "create", "--tenant", "acme", "--role", "service", "--rate-limit", "3"
    )
    headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
    with httpx.Client(base_url=secured.url, timeout=30, headers=headers) as client:
        statuses = [client.get("/v1/models").status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [429, 429]
        limited = client.get("/v1/models")
        assert_error_shape(limited, 429, "rate_limit_exceeded")
        assert 1 <= int(limited.headers["retry-after"]) <= 20
        # other keys keep their own budget
        other = client.get("/v1/models", headers=secured.key("acme", Role.SERVICE))
        assert other.status_code == 200


def test_the_openai_sdk_authenticates_with_a_service_key(secured: SecuredServer) -> None:
    from openai import AuthenticationError, OpenAI

    token = secured.keys[("acme", Role.SERVICE)]
    client = OpenAI(base_url=f"{secured.url}/v1", api_key=token, max_retries=0)
    assert client.models.list().data
    intruder = OpenAI(base_url=f"{secured.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(AuthenticationError):
        intruder.models.list()


def test_open_development_server_says_so_loudly(secured: SecuredServer, log_dir: Path) -> None:
    """The session server runs without keys (development on loopback) and warns about it."""
    logs = {path.name: path.read_text(errors="replace") for path in log_dir.glob("*.log")}
    main = [text for name, text in logs.items() if name.startswith("main-")]
    assert main and "API KEYS ARE OFF" in main[0]
    secured_log = next(text for name, text in logs.items() if name.startswith("secured-"))
    assert "API KEYS ARE OFF" not in secured_log


def test_keys_create_refuses_bad_tenant_and_role(secured: SecuredServer) -> None:
    bad_tenant = secured.keys_command("create", "--tenant", "Not A Tenant", "--role", "ops")
    assert bad_tenant.returncode == 2 and "tenant" in bad_tenant.stderr
    bad_role = secured.keys_command("create", "--tenant", "acme", "--role", "root")
    assert bad_role.returncode == 2


def test_metrics_need_an_ops_key_of_the_operators_tenant(secured: SecuredServer) -> None:
    """``/metrics`` spans every tenant: another tenant's ops key reads only its analytics."""
    foreign = httpx.get(
        f"{secured.url}/metrics", headers=secured.key("globex", Role.OPS), timeout=30
    )
    assert_error_shape(foreign, 403, "permission_error")
    assert "concierge_" not in foreign.text


def test_prometheus_scrapes_with_the_shipped_config_and_an_ops_key(
    secured: SecuredServer, tmp_path: Path
) -> None:
    from tests.prometheus import PrometheusServer, scrape_config_for

    config = scrape_config_for(secured.url.removeprefix("http://"))
    running = PrometheusServer.start(tmp_path, config, secured.keys[("acme", Role.OPS)])
    try:
        running.wait_for('up{job="concierge"} == 1')
        assert running.query("concierge_access_denied_total")["data"]["result"]
    finally:
        running.stop()
