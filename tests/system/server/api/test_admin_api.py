"""The KB admin API and /v1/embeddings over real HTTP on the shared server."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.cli import invoke
from tests.error_shape import assert_error_shape
from tests.servers import SERVER_DATABASE


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def _put(base_url: str, tenant: str, doc_id: str, wait: bool = True, **body: Any) -> httpx.Response:
    return httpx.put(
        f"{base_url}/admin/kb/{tenant}/documents/{doc_id}",
        params={"wait": str(wait).lower()},
        json=body,
        timeout=120,
    )


def _search(base_url: str, tenant: str, query: str, **extra: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}/admin/kb/{tenant}/search", json={"query": query, **extra}, timeout=60
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_document_lifecycle_put_search_edit_delete(base_url: str, tenant: str) -> None:
    response = _put(
        base_url,
        tenant,
        "guides/returns.md",
        title="Returns",
        text="# Returns\n\nFree within 30 days.",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["changes"] == [{"id": "guides/returns.md", "action": "created"}]
    assert body["job"]["state"] == "succeeded" and body["job"]["result"]["version"] == 1

    found = _search(base_url, tenant, "can I send it back")
    assert found["version"] == 1 and found["mode"] == "hybrid"
    assert found["results"][0]["document_id"] == "guides/returns.md"
    assert found["results"][0]["section"] == "Returns"

    stored = httpx.get(f"{base_url}/admin/kb/{tenant}/documents/guides/returns.md", timeout=10)
    assert stored.json()["title"] == "Returns" and len(stored.json()["content_hash"]) == 64

    edited = _put(
        base_url,
        tenant,
        "guides/returns.md",
        wait=False,
        title="Returns",
        text="Returns are no longer accepted.",
    )
    assert edited.json()["changes"][0]["action"] == "updated"
    texts = [
        r["text"]
        for r in _search(base_url, tenant, "return within 30 days free", top_k=10)["results"]
    ]
    assert not any("30 days" in text for text in texts)  # the old text is out at once

    deleted = httpx.delete(
        f"{base_url}/admin/kb/{tenant}/documents/guides/returns.md",
        params={"wait": "true"},
        timeout=60,
    )
    assert deleted.json()["changes"] == [{"id": "guides/returns.md", "action": "deleted"}]
    assert _search(base_url, tenant, "returns")["results"] == []
    missing = httpx.delete(f"{base_url}/admin/kb/{tenant}/documents/guides/returns.md", timeout=10)
    assert_error_shape(missing, 404, "not_found")


def test_bulk_json_and_files_then_reindex_job_and_stats(base_url: str, tenant: str) -> None:
    bulk = httpx.post(
        f"{base_url}/admin/kb/{tenant}/documents:bulk",
        params={"wait": "true"},
        json={
            "documents": [
                {
                    "id": "hours",
                    "title": "Opening hours",
                    "text": "Open nine to five.",
                    "format": "text",
                },
                {"id": "phone", "title": "Phone", "text": "Call 0800 123 456.", "format": "text"},
            ]
        },
        timeout=120,
    )
    assert bulk.status_code == 200, bulk.text
    assert [c["action"] for c in bulk.json()["changes"]] == ["created", "created"]

    files = [
        (
            "files",
            ("faq.csv", b"question,answer\nDo you ship to Norway?,Yes in 4 days.\n", "text/csv"),
        ),
        (
            "files",
            ("care.html", b"<title>Care</title><h1>Care</h1><p>Descale monthly.</p>", "text/html"),
        ),
        (
            "files",
            (
                "faq.json",
                json.dumps([{"question": "Gift wrap?", "answer": "Yes, 3 EUR."}]).encode(),
                "application/json",
            ),
        ),
    ]
    uploaded = httpx.post(
        f"{base_url}/admin/kb/{tenant}/documents:bulk",
        params={"wait": "true"},
        files=files,
        timeout=120,
    )
    assert uploaded.status_code == 200, uploaded.text
    ids = sorted(c["id"] for c in uploaded.json()["changes"])
    assert ids == ["care.html", "faq.csv:do-you-ship-to-norway", "faq.json:gift-wrap"]
    assert _search(base_url, tenant, "delivery to Norway")["results"][0]["document_id"] == ids[1]

    started = httpx.post(
        f"{base_url}/admin/kb/{tenant}/reindex", params={"mode": "full"}, timeout=30
    )
    assert started.status_code == 202
    job_id = started.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        job = httpx.get(f"{base_url}/admin/jobs/{job_id}", timeout=10).json()
        if job["state"] in {"succeeded", "failed", "cancelled"} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert job["state"] == "succeeded", job
    assert job["mode"] == "full" and job["result"]["embedded_documents"] == 5
    assert job["progress"]["documents_done"] == job["progress"]["documents_total"] == 5

    stats = httpx.get(f"{base_url}/admin/kb/{tenant}/stats", timeout=10).json()
    assert stats["documents_stored"] == stats["documents_indexed"] == 5
    assert stats["version"] == job["result"]["version"] and stats["index_kind"] == (
        "pgvector" if SERVER_DATABASE == "postgresql" else "flat"
    )
    assert stats["stale_chunks"] == 0 and stats["age_seconds"] >= 0

    again = httpx.post(f"{base_url}/admin/jobs/{job_id}/cancel", timeout=10)
    assert_error_shape(again, 409, "conflict")

    metrics = httpx.get(f"{base_url}/metrics", timeout=10).text
    # no tenant file installed: not a configured tenant, so not a label value of its own
    assert f'tenant="{tenant}"' not in metrics
    assert 'concierge_reindex_duration_seconds_count{mode="full",outcome="succeeded"}' in metrics
    assert "concierge_search_duration_seconds_bucket" in metrics


def test_a_version_published_by_the_cli_is_served_without_restart(
    base_url: str, tenant: str, data_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "pets.md").write_text("# Pets\n\nDogs are welcome in every store.")
    result = invoke(
        "kb",
        "ingest",
        str(tmp_path),
        "--tenant",
        tenant,
        env={"CONCIERGE_DATA_DIR": str(data_dir)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "published version 1" in result.stdout
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        results = _search(base_url, tenant, "can I bring my dog")["results"]
        if results:
            break
        time.sleep(0.5)
    assert results and results[0]["document_id"] == "pets.md"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error_type"),
    [
        (
            "put",
            "/admin/kb/Bad Tenant/documents/a",
            {"json": {"text": "x"}},
            400,
            "invalid_request_error",
        ),
        (
            "put",
            "/admin/kb/acme/documents/..%2Fetc",
            {"json": {"text": "x"}},
            400,
            "invalid_request_error",
        ),
        (
            "put",
            "/admin/kb/acme/documents/a",
            {"json": {"text": "   "}},
            400,
            "invalid_request_error",
        ),
        (
            "put",
            "/admin/kb/acme/documents/a",
            {"json": {"text": "x", "colour": 1}},
            400,
            "invalid_request_error",
        ),
        (
            "put",
            "/admin/kb/acme/documents/a",
            {"json": {"text": "x", "format": "pdf"}},
            400,
            "invalid_request_error",
        ),
        (
            "put",
            "/admin/kb/acme/documents/a",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "invalid_request_error",
        ),
        (
            "post",
            "/admin/kb/acme/documents:bulk",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "invalid_request_error",
        ),
        (
            "post",
            "/admin/kb/acme/documents:bulk",
            {"json": {"documents": []}},
            400,
            "invalid_request_error",
        ),
        (
            "post",
            "/admin/kb/acme/documents:bulk",
            {"json": {"documents": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}},
            400,
            "invalid_request_error",
        ),
        (
            "post",
            "/admin/kb/acme/documents:bulk",
            {"content": b"text", "headers": {"content-type": "text/plain"}},
            400,
            "invalid_request_error",
        ),
        (
            "post",
            "/admin/kb/acme/documents:bulk",
            {"files": [("files", ("x.pdf", b"%PDF", "application/pdf"))]},
            400,
            "invalid_request_error",
        ),
        (
            "post",
            "/admin/kb/acme/documents:bulk",
            {"files": [("files", ("x.md", b"\xff\xfe\xfa", "text/markdown"))]},
            400,
            "invalid_request_error",
        ),
        (
            "post",
            "/admin/kb/acme/documents:bulk",
            {"files": [("files", ("f.csv", b"q,a\n1,2\n", "text/csv"))]},
            400,
            "invalid_request_error",
        ),
        (
            "post",
            "/admin/kb/acme/documents:bulk",
            {"data": {"reindex": "true"}},
            400,
            "invalid_request_error",
        ),
        (
            "post",
            "/admin/kb/acme/reindex",
            {"params": {"mode": "sideways"}},
            400,
            "invalid_request_error",
        ),
        ("post", "/admin/kb/acme/search", {"json": {"query": ""}}, 400, "invalid_request_error"),
        (
            "post",
            "/admin/kb/acme/search",
            {"json": {"query": "x", "top_k": 1000}},
            400,
            "invalid_request_error",
        ),
        (
            "post",
            "/admin/kb/acme/search",
            {"json": {"query": "x", "mode": "magic"}},
            400,
            "invalid_request_error",
        ),
        ("get", "/admin/jobs/nope", {}, 404, "not_found"),
        ("post", "/admin/jobs/nope/cancel", {}, 404, "not_found"),
        ("get", "/admin/kb/acme/documents/never-stored", {}, 404, "not_found"),
    ],
)
def test_bad_admin_input_gets_a_clear_4xx(
    base_url: str, method: str, path: str, kwargs: dict[str, Any], status: int, error_type: str
) -> None:
    response = httpx.request(method, f"{base_url}{path}", timeout=30, **kwargs)
    assert_error_shape(response, status, error_type)


def test_an_oversized_document_or_upload_gets_413(base_url: str, tenant: str) -> None:
    too_big = httpx.put(
        f"{base_url}/admin/kb/{tenant}/documents/big", json={"text": "x" * 2_000_000}, timeout=30
    )
    assert_error_shape(too_big, 413, "payload_too_large")
    huge_upload = [("files", ("big.md", b"# x\n" + b"y" * 40_000_000, "text/markdown"))]
    response = httpx.post(
        f"{base_url}/admin/kb/{tenant}/documents:bulk", files=huge_upload, timeout=60
    )
    assert_error_shape(response, 413, "payload_too_large")
    assert httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200


def test_embeddings_are_openai_compatible_and_unit_length(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/v1/embeddings",
        json={"input": ["where is my order", "refund please"]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "all-minilm-l6-v2"
    vectors = np.array([item["embedding"] for item in body["data"]])
    assert vectors.shape == (2, 384) and [item["index"] for item in body["data"]] == [0, 1]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 4

    encoded = httpx.post(
        f"{base_url}/v1/embeddings",
        json={"input": "where is my order", "encoding_format": "base64"},
        timeout=30,
    ).json()
    decoded = np.frombuffer(base64.b64decode(encoded["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, vectors[0], atol=1e-5)


def test_embeddings_work_with_the_openai_sdk(base_url: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused")
    result = client.embeddings.create(model="all-minilm-l6-v2", input=["hello"])
    assert len(result.data[0].embedding) == 384


@pytest.mark.parametrize(
    ("body", "status", "error_type", "param"),
    [
        ({"input": []}, 400, "invalid_request_error", "input"),
        ({"input": ["ok", ""]}, 400, "invalid_request_error", "input"),
        ({"input": [[1, 2, 3]]}, 400, "invalid_request_error", "input"),
        ({"input": ["x"] * 2049}, 400, "invalid_request_error", "input"),
        ({"input": "x", "model": "text-embedding-3-small"}, 404, "model_not_found", "model"),
        ({"input": "x", "dimensions": 128}, 400, "invalid_request_error", "dimensions"),
        ({"input": "word " * 600}, 400, "context_length_exceeded", "input"),
        (
            {"input": "x", "encoding_format": "int8"},
            400,
            "invalid_request_error",
            "encoding_format",
        ),
    ],
)
def test_bad_embedding_requests_get_a_clear_4xx(
    base_url: str, body: dict[str, Any], status: int, error_type: str, param: str
) -> None:
    response = httpx.post(f"{base_url}/v1/embeddings", json=body, timeout=30)
    assert assert_error_shape(response, status, error_type)["param"] == param
