"""Reindex jobs: progress, coalescing per tenant, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from retrieval.documents import Document
from retrieval.index import published_versions
from retrieval.jobs import JobState, ReindexJobs
from retrieval.knowledge import ReindexMode
from tests.system.retrieval.conftest import KnowledgeFactory


def _many(count: int, prefix: str = "doc") -> list[Document]:
    return [
        Document(f"{prefix}-{i}.txt", f"Article {i} about topic {i % 7}. " * 8, f"Article {i}")
        for i in range(count)
    ]


async def _finished(job_finished: asyncio.Event) -> None:
    await asyncio.wait_for(job_finished.wait(), 120)


async def _until(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_job_reports_progress_and_its_result(make_knowledge: KnowledgeFactory) -> None:
    kb = make_knowledge()
    kb.put_documents("acme", _many(40))
    jobs = ReindexJobs(kb)
    job = jobs.submit("acme")
    await _finished(job.finished)
    shown = job.as_dict()
    assert shown["state"] == "succeeded"
    assert shown["progress"]["documents_done"] == shown["progress"]["documents_total"] == 40
    assert shown["result"]["embedded_documents"] == 40 and shown["result"]["version"] == 1
    assert jobs.get(job.job_id) is job


async def test_requests_coalesce_into_one_queued_job_per_tenant(
    make_knowledge: KnowledgeFactory,
) -> None:
    kb = make_knowledge()
    kb.put_documents("acme", _many(60))
    jobs = ReindexJobs(kb)
    running = jobs.submit("acme")
    await _until(lambda: running.state is not JobState.QUEUED)
    queued = jobs.submit("acme")
    assert queued is not running
    assert jobs.submit("acme") is queued  # a burst of edits costs one more reindex
    assert jobs.submit("acme", ReindexMode.FULL) is queued and queued.mode is ReindexMode.FULL
    other_tenant = jobs.submit("globex")
    assert other_tenant is not queued
    for job in (running, queued, other_tenant):
        await _finished(job.finished)
    assert running.state is queued.state is JobState.SUCCEEDED
    assert queued.result is not None and queued.result["mode"] == "full"


async def test_cancelling_stops_a_running_job_without_publishing(
    make_knowledge: KnowledgeFactory,
) -> None:
    kb = make_knowledge()
    kb.put_documents("acme", _many(300))
    jobs = ReindexJobs(kb)
    job = jobs.submit("acme")
    await _until(lambda: job.done > 0 or job.state.finished)
    jobs.cancel(job.job_id)
    await _finished(job.finished)
    assert job.state is JobState.CANCELLED and "cancelled" in (job.error or "")
    assert published_versions(kb.tenant_root("acme")) == []


async def test_a_queued_job_cancelled_before_it_starts_never_runs(
    make_knowledge: KnowledgeFactory,
) -> None:
    kb = make_knowledge()
    kb.put_documents("acme", _many(5))
    jobs = ReindexJobs(kb)
    job = jobs.submit("acme")  # queued: its task has not had a turn of the loop yet
    assert jobs.submit("acme") is job
    jobs.cancel(job.job_id)
    await _finished(job.finished)
    assert job.state is JobState.CANCELLED and job.started_at is None
    assert published_versions(kb.tenant_root("acme")) == []
