"""Reindex jobs: progress, coalescing per tenant, cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from core.errors import ConflictError, JobCancelledError, NotFoundError
from core.job_records import JobRecord, JobRecords
from core.pending_work import PendingWork
from retrieval.documents import Document
from retrieval.index import published_versions
from retrieval.job import JOB_KIND, Job, JobState
from retrieval.jobs import ABANDONED_AFTER_S, PENDING_KIND, ReindexJobs
from retrieval.knowledge import KnowledgeBase, ReindexMode
from tests.system.retrieval.conftest import KnowledgeFactory


def _many(count: int, prefix: str = "doc") -> list[Document]:
    return [
        Document(f"{prefix}-{i}.txt", f"Article {i} about topic {i % 7}. " * 8, f"Article {i}")
        for i in range(count)
    ]


def _indexed_hashes(kb: KnowledgeBase, tenant: str) -> dict[str, str]:
    """``doc_id -> content_hash`` as the served index has them (empty before any index)."""
    published = kb.published(tenant)
    if published is None:
        return {}
    return {doc_id: entry["content_hash"] for doc_id, entry in published.documents.items()}


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


def _replica(
    make_knowledge: KnowledgeFactory, database: Engine, owner: str
) -> tuple[ReindexJobs, JobRecords]:
    """One server's jobs over the shared database, as a replica builds them."""
    records = JobRecords(database)
    return ReindexJobs(make_knowledge(), PendingWork(database), records, owner=owner), records


async def test_a_job_of_one_replica_is_read_on_another_with_its_progress_and_result(
    make_knowledge: KnowledgeFactory, database: Engine
) -> None:
    make_knowledge().put_documents("acme", _many(40))
    replica_a, _ = _replica(make_knowledge, database, "a")
    replica_b, _ = _replica(make_knowledge, database, "b")
    replica_a.start_sync()
    job = replica_a.submit("acme", promised=replica_a.promise("acme"))
    await replica_a.save(job)
    seen = await replica_b.find(job.job_id)  # readable the moment its id is handed out
    assert seen.tenant == "acme" and seen.mode is ReindexMode.INCREMENTAL
    assert seen.state in {JobState.QUEUED, JobState.RUNNING}
    await _finished(job.finished)
    for _ in range(200):  # the owner writes a finished job on its next sync, at once
        seen = await replica_b.find(job.job_id)
        if seen.state.finished:
            break
        await asyncio.sleep(0.01)
    assert seen.as_dict()["state"] == "succeeded"
    assert seen.as_dict()["progress"] == job.as_dict()["progress"]
    assert seen.result == job.result and seen.finished.is_set()
    with pytest.raises(ConflictError):
        await replica_b.cancel_anywhere(job.job_id)
    with pytest.raises(NotFoundError):
        await replica_b.find("no-such-job")
    await replica_a.shutdown()


async def test_a_cancel_asked_through_another_replica_stops_the_job(
    make_knowledge: KnowledgeFactory, database: Engine
) -> None:
    replica_a, _ = _replica(make_knowledge, database, "a")
    replica_b, _ = _replica(make_knowledge, database, "b")
    replica_a.start_sync()

    async def until_cancelled(job: Job) -> dict[str, Any]:
        await _until(job.cancel_requested.is_set)
        raise JobCancelledError("stopped between batches")

    job = replica_a.submit_work("acme", "tenant_intents", until_cancelled)
    await replica_a.save(job)
    asked = await replica_b.cancel_anywhere(job.job_id)
    assert asked.cancel_requested.is_set()
    await _finished(job.finished)  # replica a reads the flag on its next sync
    assert job.state is JobState.CANCELLED
    for _ in range(200):
        if (await replica_b.find(job.job_id)).state is JobState.CANCELLED:
            break
        await asyncio.sleep(0.01)
    assert (await replica_b.find(job.job_id)).state is JobState.CANCELLED
    await replica_a.shutdown()


async def test_cancelling_a_tenants_unfinished_jobs_reaches_every_replica(
    make_knowledge: KnowledgeFactory, database: Engine
) -> None:
    """What removing a tenant's intent head does: its trainings stop on whichever replica
    runs them, and those of another kind or tenant go on."""
    replica_a, _ = _replica(make_knowledge, database, "a")
    replica_b, _ = _replica(make_knowledge, database, "b")
    replica_a.start_sync()

    async def until_cancelled(job: Job) -> dict[str, Any]:
        await _until(job.cancel_requested.is_set)
        raise JobCancelledError("stopped")

    training = replica_a.submit_work("acme", "tenant_intents", until_cancelled)
    other_tenant = replica_a.submit_work("globex", "tenant_intents", until_cancelled)
    for job in (training, other_tenant):
        await replica_a.save(job)
    assert await replica_b.cancel_unfinished("acme", "tenant_intents") == [training.job_id]
    await _finished(training.finished)
    assert training.state is JobState.CANCELLED
    assert not other_tenant.cancel_requested.is_set()
    other_tenant.cancel_requested.set()
    await _finished(other_tenant.finished)
    await replica_a.shutdown()


async def test_a_job_whose_replica_died_is_failed_and_its_reindex_taken_over(
    make_knowledge: KnowledgeFactory, database: Engine
) -> None:
    """A replica killed in the middle of a reindex: its row stops being touched, another
    replica's sweep marks it failed and runs the reindex the dead one still owed."""
    make_knowledge().put_documents("acme", _many(12))
    pending = PendingWork(database)
    records = JobRecords(database)
    promised = pending.request(PENDING_KIND, "acme")
    stopped = time.time() - 2 * ABANDONED_AFTER_S
    records.save(
        JobRecord(
            job_id="killed-mid-reindex",
            tenant="acme",
            kind=JOB_KIND,
            mode="incremental",
            state="running",
            created_at=stopped - 5,
            started_at=stopped - 4,
            finished_at=None,
            done=5,
            total=12,
            error=None,
            result=None,
            cancel_requested=False,
            owner="replica-killed",
            heartbeat_at=stopped,
        )
    )
    survivor, _ = _replica(make_knowledge, database, "survivor")
    await survivor.sync_once(sweep=True)
    dead = await survivor.find("killed-mid-reindex")
    assert dead.state is JobState.FAILED and dead.error is not None
    assert "replica-killed" in dead.error
    (taken_over,) = survivor.active("acme")
    assert taken_over.promised == promised
    await _finished(taken_over.finished)
    assert taken_over.state is JobState.SUCCEEDED
    assert pending.owed(PENDING_KIND) == []
    await survivor.shutdown()
