"""Reindex jobs: progress, coalescing per tenant, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import Engine

from core.pending_work import PendingWork
from retrieval.documents import Document
from retrieval.index import published_versions
from retrieval.jobs import PENDING_KIND, JobState, ReindexJobs
from retrieval.knowledge import KnowledgeBase, ReindexMode
from tests.system.retrieval.conftest import KnowledgeFactory


def _many(count: int, prefix: str = "doc") -> list[Document]:
    return [
        Document(f"{prefix}-{i}.txt", f"Article {i} about topic {i % 7}. " * 8, f"Article {i}")
        for i in range(count)
    ]


def _indexed_hashes(kb: KnowledgeBase, tenant: str) -> dict[str, str]:
    """``doc_id -> content_hash`` as the served index has them (empty before any index)."""
    version = kb.served(tenant).version
    if version is None:
        return {}
    return {doc_id: entry["content_hash"] for doc_id, entry in version.documents.items()}


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


def _durable_jobs(
    make_knowledge: KnowledgeFactory, database: Engine, documents: int
) -> tuple[ReindexJobs, PendingWork]:
    """Jobs that keep their promises in ``database``, over ``documents`` stored for acme."""
    kb = make_knowledge()
    kb.put_documents("acme", _many(documents))
    pending = PendingWork(database)
    return ReindexJobs(kb, pending), pending


async def test_a_promised_reindex_is_owed_until_a_job_succeeds_and_resumed_after_a_restart(
    make_knowledge: KnowledgeFactory, database: Engine
) -> None:
    """The crash the trust probe found: documents acknowledged with a background reindex,
    then the process died before the reindex ran. The promise is in the database, so the
    next process indexes them without another write."""
    kb = make_knowledge()
    before_crash = ReindexJobs(kb, PendingWork(database))
    promised = before_crash.promise("acme")
    kb.put_documents("acme", _many(12))
    # the process dies here: acknowledged, never submitted
    assert _indexed_hashes(kb, "acme") == {}

    restarted_kb = make_knowledge()
    restarted = ReindexJobs(restarted_kb, PendingWork(database))
    (job,) = await restarted.resume_owed()
    assert job.promised == promised
    await _finished(job.finished)
    assert job.state is JobState.SUCCEEDED
    stored = restarted_kb.store.hashes("acme")
    assert len(stored) == 12 and _indexed_hashes(restarted_kb, "acme") == stored
    assert PendingWork(database).owed(PENDING_KIND) == []
    assert await restarted.resume_owed() == []  # nothing is owed twice


async def test_a_write_promised_during_a_running_reindex_stays_owed_after_it(
    make_knowledge: KnowledgeFactory, database: Engine
) -> None:
    jobs, pending = _durable_jobs(make_knowledge, database, documents=150)
    first = jobs.submit("acme", promised=jobs.promise("acme"))
    await _until(lambda: first.state is not JobState.QUEUED)
    later = jobs.promise("acme")  # a write that the running job may not see
    await _finished(first.finished)
    assert first.state is JobState.SUCCEEDED
    assert [item.version for item in pending.owed(PENDING_KIND)] == [later]  # still owed
    second = jobs.submit("acme", promised=later)
    await _finished(second.finished)
    assert pending.owed(PENDING_KIND) == []


async def test_a_failed_reindex_keeps_its_promise(
    make_knowledge: KnowledgeFactory, database: Engine
) -> None:
    jobs, pending = _durable_jobs(make_knowledge, database, documents=150)
    job = jobs.submit("acme", promised=jobs.promise("acme"))
    await _until(lambda: job.done > 0 or job.state.finished)
    jobs.cancel(job.job_id)
    await _finished(job.finished)
    assert job.state is JobState.CANCELLED
    assert [item.tenant for item in pending.owed(PENDING_KIND)] == ["acme"]
