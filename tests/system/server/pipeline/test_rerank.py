"""The LLM reranker (``CONCIERGE_RERANK=llm``) in a real reply, and its fallback.

Each variant is an API process of its own in remote mode against the session server's real
vLLM engine, with a small KB of its own. The session server's OpenAI API does not return
log-probabilities, so these judgments are the remote engine's coarse ones (the greedy
answer: 1, 0 or 0.5); what is tested is the stage itself: the reply still answers, the
stage is timed and counted, and a judge that fails leaves the retrieval order and the reply
intact.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import (
    ServerProcess,
    isolated_data_dir,
    prometheus_value,
    remote_engine_env,
    start_server,
)

KB = [
    {
        "id": "returns",
        "title": "Returns",
        "text": "# Returns\n\nYou can return any item within 30 days of delivery for a full "
        "refund. Print the label from your account and drop the parcel at a post office.",
    },
    {
        "id": "descaling",
        "title": "Descaling your kettle",
        "text": "# Descaling your kettle\n\nDescale your kettle every month in hard-water "
        "areas. Boil one sachet of descaler, wait 20 minutes and rinse twice.",
    },
    {
        "id": "shipping",
        "title": "Shipping times",
        "text": "# Shipping times\n\nStandard delivery takes 3 to 5 business days. Express "
        "delivery arrives the next business day when ordered before 14:00.",
    },
    {
        "id": "warranty",
        "title": "Warranty",
        "text": "# Warranty\n\nKettles have a two-year warranty. Limescale damage is not "
        "covered; send a photo of the fault with your order number.",
    },
]
QUESTION = "How long do I have to return a kettle?"


def _reranking_server(
    name: str,
    env: dict[str, str],
    base_url: str,
    data_dir: Path,
    log_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, str]]:
    """A remote-mode Concierge with ``CONCIERGE_RERANK=llm`` and a tenant with ``KB``."""
    own = isolated_data_dir(tmp_path_factory.mktemp(f"{name}-data"), data_dir)
    settings = {
        **remote_engine_env(base_url),
        "CONCIERGE_DATA_DIR": str(own),
        "CONCIERGE_RERANK": "llm",
        "CONCIERGE_RERANK_CANDIDATES": "4",
        "CONCIERGE_GROUNDING_MIN_SIMILARITY": "0",  # every passage grounds: all are judged
        "CONCIERGE_REPLY_MAX_TOKENS": "16",
        **env,
    }
    running = start_server(log_dir, settings, name)
    try:
        running.wait_ready(120)
        tenant = f"rerank-{uuid.uuid4().hex[:8]}"
        response = httpx.post(
            f"{running.url}/admin/kb/{tenant}/documents:bulk",
            params={"wait": "true"},
            json={"documents": KB},
            headers={"X-Concierge-Tenant": tenant},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        yield running, tenant
    finally:
        running.stop()


@pytest.fixture(scope="module")
def judging(
    base_url: str, data_dir: Path, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    yield from _reranking_server("rerank", {}, base_url, data_dir, log_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def judge_too_slow(
    base_url: str, data_dir: Path, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    """The judge gets one millisecond: an engine a round trip away can never answer in it."""
    env = {"CONCIERGE_RERANK_TIMEOUT_S": "0.001"}
    yield from _reranking_server("rerank-cut", env, base_url, data_dir, log_dir, tmp_path_factory)


def reply(server: ServerProcess, tenant: str) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/v1/support/reply",
        json={"customer_id": "rerank-customer", "message": QUESTION},
        headers={"X-Concierge-Tenant": tenant},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return prometheus_value(text, name, **labels) or 0.0


def test_a_reranked_reply_answers_and_the_stage_is_timed_and_counted(
    judging: tuple[ServerProcess, str],
) -> None:
    server, tenant = judging
    answer = reply(server, tenant)
    assert answer["answered_by"] == "model"
    assert answer["reply"].strip()
    assert 1 <= len(answer["citations"]) <= 3  # CONCIERGE_KB_PASSAGES of the 4 judged
    assert answer["timings_ms"]["rerank"] >= 0
    stage = "concierge_pipeline_stage_duration_seconds_count"
    assert metric(server, stage, stage="rerank") >= 1
    assert metric(server, "concierge_rerank_judged_passages_total") >= 4
    assert metric(server, "concierge_rerank_failures_total") == 0


def test_a_judge_that_fails_leaves_the_reply_and_the_retrieval_order(
    judge_too_slow: tuple[ServerProcess, str],
) -> None:
    server, tenant = judge_too_slow
    answer = reply(server, tenant)
    assert answer["answered_by"] == "model"
    assert answer["reply"].strip()
    assert answer["citations"]
    assert metric(server, "concierge_rerank_failures_total", reason="timeout") >= 1
    assert metric(server, "concierge_rerank_judged_passages_total") == 0
    # the slot the judge took was given back: nothing is left in flight
    assert metric(server, "concierge_generation_requests_in_flight") == 0
