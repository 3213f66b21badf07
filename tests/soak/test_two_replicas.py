"""Two Concierge replicas on one PostgreSQL (with pgvector) and one data directory, as
docs/deploy.md runs them: history written through one is in the other's next prompt, and
an erasure through one leaves nothing of the customer in the other's; a job started on one
is read on the other, a key's rate limit is spent once across both, and a replica killed in
the middle of a reindex leaves the job failed and the reindex finished by the survivor,
never stuck.

Both replicas forward generation to the session engine (remote mode), so they start in
seconds; the kill makes this a soak test.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from core.db import create_database_engine
from retrieval.documents import Document, DocumentStore
from server.store.api_keys import ApiKeyStore, Role
from server.store.schema import upgrade_schema
from tests.forked_processes import ForkedServer, shared_launcher
from tests.postgres import PostgresServer
from tests.servers import isolated_data_dir, remote_engine_env

TENANT = "default"
DOCUMENTS = 200
TAKEOVER_TIMEOUT_S = 240.0
LEGACY_DOCUMENT = "legacy-pangolin.md"
LEGACY_TEXT = "# Legacy\n\nPangolin parcels are wrapped in three layers of paper."


@dataclass
class Replicas:
    a: ForkedServer
    b: ForkedServer
    admin: str
    """An admin key's token, without a rate limit of note."""
    limited: str
    """An admin key's token allowed 6 requests a minute, 3 at once."""
    service: str
    """A service key's token: customers and replies."""
    database_url: str


@pytest.fixture(scope="module")
def replicas(
    base_url: str,
    data_dir: Path,
    log_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
) -> Iterator[Replicas]:
    name = f"replicas_{uuid.uuid4().hex}"
    url = postgres_server.create_database(name)
    engine = create_database_engine(url)
    upgrade_schema(engine)
    keys = ApiKeyStore(engine)
    admin = keys.create(TENANT, Role.ADMIN, "replica test", rate_limit_per_minute=100_000)
    limited = keys.create(TENANT, Role.ADMIN, "limited", rate_limit_per_minute=6)
    service = keys.create(TENANT, Role.SERVICE, "replica test", rate_limit_per_minute=100_000)
    # documents stored before the KB index moved into PostgreSQL: no shared index yet
    DocumentStore(engine).upsert(TENANT, [Document(LEGACY_DOCUMENT, LEGACY_TEXT, "Legacy")])
    engine.dispose()
    shared = isolated_data_dir(tmp_path_factory.mktemp("replicas-data"), data_dir)
    env = {
        **remote_engine_env(base_url),
        "CONCIERGE_DATA_DIR": str(shared),
        "CONCIERGE_DATABASE_URL": url,
        "CONCIERGE_AUTH": "keys",
        "CONCIERGE_RATE_LIMIT_BURST": "3",
    }
    launcher = shared_launcher()
    a = launcher.serve(log_dir, env, "replica-a")
    b = launcher.serve(log_dir, env, "replica-b")
    try:
        launcher.wait_ready(a, 120)
        launcher.wait_ready(b, 120)
        yield Replicas(a, b, admin.token, limited.token, service.token, url)
    finally:
        for server in (a, b):
            if launcher.alive(server):
                launcher.kill(server)
        postgres_server.drop_database(name)


def _client(server: ForkedServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def _bulk(tag: str) -> list[dict[str, str]]:
    return [
        {
            "id": f"{tag}-{n}.txt",
            "title": f"Route note {tag} {n}",
            "text": f"Parcels of route {tag} number {n} travel by wombat courier. " * 3,
        }
        for n in range(DOCUMENTS)
    ]


def _history_rows(database_url: str, customer_id: str) -> int:
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM history_entries WHERE customer_id = :c"),
                    {"c": customer_id},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _history_block(reply: httpx.Response) -> str:
    """The customer-history block of the prompt a replica built, or '' when it had none."""
    assert reply.status_code == 200, reply.text
    content = "\n".join(message["content"] for message in reply.json()["prompt"])
    block = re.search(r"<customer_history>\n(.*?)\n</customer_history>", content, re.DOTALL)
    return block.group(1) if block else ""


def test_history_and_erasure_through_one_replica_reach_the_others_next_prompt(
    replicas: Replicas,
) -> None:
    customer_id = f"shared-{uuid.uuid4().hex[:8]}"
    marker = f"zebra{uuid.uuid4().hex[:6]}"
    note = f"Bought the {marker} kettle in teal, order Q-{uuid.uuid4().hex[:6]}"
    question = {"customer_id": customer_id, "include_prompt": True}
    a_admin = _client(replicas.a, replicas.admin)
    a, b = _client(replicas.a, replicas.service), _client(replicas.b, replicas.service)
    with a_admin, a, b:
        kettle = {
            "id": f"{marker}.txt",
            "title": "Kettles",
            "text": f"The {marker} kettle boils 1.7 litres.",
        }
        loaded = a_admin.post(
            f"/admin/kb/{TENANT}/documents:bulk",
            params={"wait": "true"},
            json={"documents": [kettle]},
        )
        assert loaded.status_code == 200, loaded.text
        assert a.put(f"/v1/customers/{customer_id}", json={"name": "Robin"}).status_code == 200
        # B searches this tenant's history first: a copy kept per process would now be stale
        first = b.post(
            "/v1/support/reply", json={**question, "message": f"Is the {marker} kettle big?"}
        )
        assert note not in json.dumps(first.json()["prompt"])
        event = {"kind": "note", "payload": {"text": note}}
        assert a.post(f"/v1/customers/{customer_id}/events", json=event).status_code == 201
        asked = {**question, "message": f"Which {marker} kettle did I buy?"}
        # the note reaches B's next prompt once: as a record line, its history hit then
        # left out as a copy of it (prompt.told_by_facts)
        prompt = json.dumps(b.post("/v1/support/reply", json=asked).json()["prompt"])
        assert prompt.count(note) == 1

        deadline = time.monotonic() + 30  # B files each exchange in the background
        while _history_rows(replicas.database_url, customer_id) < 3:
            assert time.monotonic() < deadline, "B's exchanges never reached the history"
            time.sleep(0.2)
        assert a_admin.delete(f"/v1/customers/{customer_id}").status_code == 200
        assert a.put(f"/v1/customers/{customer_id}", json={"name": "New"}).status_code == 200
        after = b.post("/v1/support/reply", json=asked)
        assert _history_block(after) == "", "B's prompt for the reused id holds nothing old"
        assert "Robin" not in json.dumps(after.json()["prompt"])


def test_a_kb_write_and_a_delete_through_one_replica_are_served_by_the_other(
    replicas: Replicas,
) -> None:
    marker = f"okapi{uuid.uuid4().hex[:6]}"
    article = {
        "id": f"{marker}.md",
        "title": "Okapi deliveries",
        "text": f"# Okapi deliveries\n\nParcels marked {marker} travel by okapi in 3 days.",
    }
    with _client(replicas.a, replicas.admin) as a, _client(replicas.b, replicas.admin) as b:

        def found_on_b() -> list[str]:
            searched = b.post(f"/admin/kb/{TENANT}/search", json={"query": f"{marker} parcels"})
            assert searched.status_code == 200, searched.text
            return [hit["document_id"] for hit in searched.json()["results"]]

        before = found_on_b()  # B has read the tenant's index before the write
        assert f"{marker}.md" not in before
        written = a.post(
            f"/admin/kb/{TENANT}/documents:bulk",
            params={"wait": "true"},
            json={"documents": [article]},
        )
        assert written.status_code == 200, written.text
        assert found_on_b()[0] == f"{marker}.md", "the reindex A published is what B searches"
        deleted = a.delete(f"/admin/kb/{TENANT}/documents/{marker}.md")
        assert deleted.status_code in (200, 204), deleted.text
        assert f"{marker}.md" not in found_on_b(), "the delete through A is effective on B at once"


def test_documents_without_a_shared_index_are_indexed_at_start_up(replicas: Replicas) -> None:
    with _client(replicas.b, replicas.admin) as b:
        deadline = time.monotonic() + 120  # the owed reindex runs as a job on a replica
        while True:
            searched = b.post(f"/admin/kb/{TENANT}/search", json={"query": "pangolin parcels"})
            assert searched.status_code == 200, searched.text
            found = [hit["document_id"] for hit in searched.json()["results"]]
            if LEGACY_DOCUMENT in found:
                break
            assert time.monotonic() < deadline, f"never indexed: {searched.json()}"
            time.sleep(0.5)


def test_a_job_started_on_one_replica_is_read_on_the_other(replicas: Replicas) -> None:
    with _client(replicas.a, replicas.admin) as a, _client(replicas.b, replicas.admin) as b:
        started = a.post(
            f"/admin/kb/{TENANT}/documents:bulk",
            params={"wait": "false"},
            json={"documents": _bulk("first")[:20]},
        )
        assert started.status_code == 200, started.text
        job_id = started.json()["job"]["id"]
        seen = b.get(f"/admin/jobs/{job_id}")  # at once: the row is written before the 202
        assert seen.status_code == 200, seen.text
        assert seen.json()["tenant"] == TENANT and seen.json()["kind"] == "kb_reindex"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            shown = b.get(f"/admin/jobs/{job_id}").json()
            if shown["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert shown["state"] == "succeeded", shown
        assert shown["progress"]["documents_done"] == shown["progress"]["documents_total"] == 20
        assert b.get("/admin/jobs/not-a-job").status_code == 404


def test_a_keys_rate_limit_is_spent_once_across_replicas(replicas: Replicas) -> None:
    with _client(replicas.a, replicas.limited) as a, _client(replicas.b, replicas.limited) as b:
        statuses = [(a if n % 2 == 0 else b).get(f"/admin/kb/{TENANT}/stats") for n in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429], [
        r.text for r in statuses
    ]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in statuses[3:])


def test_a_replica_killed_mid_reindex_leaves_the_job_failed_and_the_reindex_done(
    replicas: Replicas,
) -> None:
    """Runs last in this module: it kills replica a."""
    with _client(replicas.a, replicas.admin) as a, _client(replicas.b, replicas.admin) as b:
        started = a.post(
            f"/admin/kb/{TENANT}/documents:bulk",
            params={"wait": "false"},
            json={"documents": _bulk("killed")},
        )
        assert started.status_code == 200, started.text
        job_id = started.json()["job"]["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = b.get(f"/admin/jobs/{job_id}").json()
            if shown["state"] == "running" and shown["progress"]["documents_done"] > 0:
                break
            assert shown["state"] in ("queued", "running"), shown
            time.sleep(0.05)
        shared_launcher().kill(replicas.a)

        deadline = time.monotonic() + TAKEOVER_TIMEOUT_S
        while time.monotonic() < deadline:
            shown = b.get(f"/admin/jobs/{job_id}").json()
            stats = b.get(f"/admin/kb/{TENANT}/stats").json()
            taken_over = stats["documents_indexed"] == stats["documents_stored"]
            if shown["state"] == "failed" and taken_over:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"not taken over: {shown} {stats}\n{replicas.b.log_tail()}")
        assert "abandoned" in shown["error"], shown
        hits = b.post(
            f"/admin/kb/{TENANT}/search",
            json={"query": "route killed number 117 wombat courier", "top_k": 5},
        ).json()["results"]
        assert any(hit["document_id"] == "killed-117.txt" for hit in hits), hits
