"""A crash between acknowledging KB writes and indexing them: the reindex is resumed.

The trust probe's finding: SIGKILL while a 200-document bulk with ``wait=false`` was being
indexed, restart, and the acknowledged documents stayed unsearchable (610 stored, 6
indexed) until some later, unrelated write. Here a server with a data directory of its own
takes such bulks and is killed while it indexes them, several times; after a restart with
no further write, every acknowledged document must be indexed, the index and the database
must agree document by document, and a search must find a document of the last bulk.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx

from retrieval.index import published_versions, version_name
from tests.forked_processes import shared_launcher
from tests.servers import isolated_data_dir, query_server_database, remote_engine_env

TENANT = "default"
ROUNDS = 3
DOCUMENTS_PER_BULK = 200
RESUME_TIMEOUT_S = 300.0


def bulk(round_number: int) -> list[dict[str, str]]:
    """One bulk's documents, each with a phrase no other document has."""
    return [
        {
            "id": f"crash-{round_number}-{n}.txt",
            "title": f"Shipping note {round_number}-{n}",
            "text": f"Parcels of batch {round_number} number {n} travel by quokka express. " * 3,
        }
        for n in range(DOCUMENTS_PER_BULK)
    ]


def stored_hashes(data_dir: Path) -> dict[str, str]:
    rows = query_server_database(
        data_dir, "SELECT doc_id, content_hash FROM kb_documents WHERE tenant = ?", TENANT
    )
    return {str(doc_id): str(content_hash) for doc_id, content_hash in rows}


def indexed_hashes(data_dir: Path) -> dict[str, str]:
    """``doc_id -> content_hash`` of the newest published index version on disk."""
    root = data_dir / "retrieval" / TENANT / "kb"
    versions = published_versions(root)
    if not versions:
        return {}
    folder = root / "versions" / version_name(versions[-1])
    documents = json.loads((folder / "documents.json").read_text())
    return {doc_id: entry["content_hash"] for doc_id, entry in documents.items()}


def test_acknowledged_bulk_writes_are_indexed_after_a_crash_without_another_write(
    base_url: str, data_dir: Path, log_dir: Path, tmp_path: Path
) -> None:
    rng = random.Random()
    own_dir = isolated_data_dir(tmp_path / "reindex-crash", data_dir)
    env = {**remote_engine_env(base_url), "CONCIERGE_DATA_DIR": str(own_dir)}
    launcher = shared_launcher()
    acknowledged: list[str] = []
    for round_number in range(ROUNDS):
        server = launcher.serve(log_dir, env, f"reindex-crash-{round_number}")
        try:
            launcher.wait_ready(server, 120)
            documents = bulk(round_number)
            response = httpx.post(
                f"{server.url}/admin/kb/{TENANT}/documents:bulk",
                params={"wait": "false"},
                json={"documents": documents},
                timeout=120,
            )
            assert response.status_code == 200, response.text
            assert response.json()["job"]["state"] in ("queued", "running")
            acknowledged += [document["id"] for document in documents]
            time.sleep(rng.uniform(0.0, 0.5))  # while the job embeds the documents
        finally:
            launcher.kill(server)
    stored = stored_hashes(own_dir)
    assert set(acknowledged) <= set(stored)
    assert indexed_hashes(own_dir) != stored, "every kill came too late to test anything"

    server = launcher.serve(log_dir, env, "reindex-crash-restarted")
    try:
        launcher.wait_ready(server, 120)
        deadline = time.monotonic() + RESUME_TIMEOUT_S
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while time.monotonic() < deadline:
                stats = http.get(f"/admin/kb/{TENANT}/stats").json()
                if stats["documents_indexed"] == stats["documents_stored"] == len(stored):
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"the owed reindex never ran: {stats}\n{server.log_tail()}")
            hits = http.post(
                f"/admin/kb/{TENANT}/search",
                json={"query": "batch 2 number 117 quokka express", "top_k": 5},
            ).json()["results"]
        assert any(hit["document_id"] == "crash-2-117.txt" for hit in hits), hits
    finally:
        launcher.kill(server)
    assert indexed_hashes(own_dir) == stored_hashes(own_dir)  # document by document
    owed = query_server_database(own_dir, "SELECT tenant FROM pending_work")
    assert owed == [], owed
