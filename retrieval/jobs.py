"""Background reindex jobs: progress, ETA, cancellation, one writer per tenant.

A reindex can take minutes, so the admin API answers at once with a job id and the
work runs in a worker thread. Per tenant there is at most one running job and one
queued job: a second request while one is queued joins it (an incremental request
joins a queued full one; a full request upgrades a queued incremental one), so a
burst of document edits costs one reindex, not one each.

Other slow admin work of a tenant (training its own intent head) runs as a job too
(``submit_work``): the same ids, states, ``GET /admin/jobs/{id}`` and cancel, told apart
by ``kind``. Such jobs never join one another; those of one kind and tenant run in turn.

A reindex that a write was acknowledged with must survive a crash: with a durable
``PendingWork`` store, a writer ``promise``s the reindex before its write, the job carries
the newest promise it covers, and only a job that succeeded clears it. At start-up
``resume_owed`` submits a job for every promise still standing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core import metrics
from core.errors import ConflictError, JobCancelledError, NotFoundError
from core.pending_work import PendingWork
from retrieval.knowledge import KnowledgeBase, ReindexMode

log = logging.getLogger(__name__)

JOB_KIND = "kb_reindex"
PENDING_KIND = "reindex"
"""The ``kind`` of a promised reindex in ``pending_work``."""
FINISHED_JOBS_KEPT = 500


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


@dataclass
class Job:
    """One background job as the admin API shows it: a reindex (``kind`` ``kb_reindex``,
    with its ``mode``) or other work (``submit_work``; no mode)."""

    job_id: str
    tenant: str
    mode: ReindexMode | None
    kind: str = JOB_KIND
    state: JobState = JobState.QUEUED
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    done: int = 0
    total: int = 0
    error: str | None = None
    result: dict[str, Any] | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    promised: int | None = None
    """The newest durable promise (``pending_work`` version) this job's success keeps."""

    @property
    def eta_seconds(self) -> float | None:
        """Remaining time at the rate so far; None until there is a rate to go by."""
        if self.state is not JobState.RUNNING or not self.started_at or not self.done:
            return None
        elapsed = time.time() - self.started_at
        return round(elapsed / self.done * (self.total - self.done), 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.job_id,
            "kind": self.kind,
            "tenant": self.tenant,
            "mode": str(self.mode) if self.mode is not None else None,
            "state": str(self.state),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "progress": {
                "documents_done": self.done,
                "documents_total": self.total,
                "fraction": round(self.done / self.total, 4) if self.total else None,
                "eta_seconds": self.eta_seconds,
            },
            "cancel_requested": self.cancel_requested.is_set(),
            "error": self.error,
            "result": self.result,
        }


class ReindexJobs:
    """Schedules ``KnowledgeBase.reindex`` runs; call from the event loop."""

    def __init__(self, knowledge: KnowledgeBase, pending: PendingWork | None = None) -> None:
        self._knowledge = knowledge
        self._pending = pending
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queued: dict[str, Job] = {}
        self._running: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._tenant_locks: dict[str, asyncio.Lock] = {}

    def promise(self, tenant: str, mode: ReindexMode = ReindexMode.INCREMENTAL) -> int | None:
        """Write down, before a write is acknowledged, that ``tenant`` is owed a reindex;
        the promise's version for ``submit`` (None without a durable store). Blocking:
        call from a worker thread."""
        if self._pending is None:
            return None
        detail = {"full": True} if mode is ReindexMode.FULL else None
        return self._pending.request(PENDING_KIND, tenant, detail)

    def release(self, tenant: str, promised: int | None) -> None:
        """Withdraw a promise no job was needed for (the write changed nothing); a newer
        promise stands. Blocking: call from a worker thread."""
        if self._pending is not None and promised is not None:
            self._pending.done(PENDING_KIND, tenant, promised)

    def submit(
        self,
        tenant: str,
        mode: ReindexMode = ReindexMode.INCREMENTAL,
        promised: int | None = None,
    ) -> Job:
        """Queue a reindex, or join the tenant's queued one; ``promised`` is the version
        ``promise`` returned for the write this reindex covers."""
        queued = self._queued.get(tenant)
        if queued is not None:
            if mode is ReindexMode.FULL:
                queued.mode = ReindexMode.FULL
            queued.promised = _newest(queued.promised, promised)
            return queued
        job = Job(job_id=uuid.uuid4().hex, tenant=tenant, mode=mode, promised=promised)
        self._queued[tenant] = job
        self._start(job, self._run(job))
        return job

    async def resume_owed(self) -> list[Job]:
        """Submit a reindex for every promise still standing (a crash or a failed job left
        it): what an earlier process acknowledged becomes searchable without another write."""
        if self._pending is None:
            return []
        try:
            owed = await asyncio.to_thread(self._pending.owed, PENDING_KIND)
        except Exception:  # the server still starts; the promises stay for the next one
            log.exception("reading the owed reindexes failed; they stay owed")
            return []
        jobs = [
            self.submit(
                item.tenant,
                ReindexMode.FULL if item.detail.get("full") else ReindexMode.INCREMENTAL,
                item.version,
            )
            for item in owed
        ]
        if jobs:
            log.info(
                "resuming %d reindex(es) owed since before the restart: %s",
                len(jobs),
                ", ".join(sorted({job.tenant for job in jobs})),
            )
        return jobs

    def submit_work(
        self, tenant: str, kind: str, work: Callable[[Job], Awaitable[dict[str, Any]]]
    ) -> Job:
        """Run ``work(job)`` as a job of ``kind``; what it returns becomes the job's result.

        ``work`` keeps the event loop free itself (its CPU work in executors), may set
        ``job.done``/``job.total`` for the progress, and should raise ``JobCancelledError``
        once ``job.cancel_requested`` is set. Jobs of one kind and tenant run in turn.
        """
        job = Job(job_id=uuid.uuid4().hex, tenant=tenant, mode=None, kind=kind)
        self._start(job, self._run_work(job, work))
        return job

    def _start(self, job: Job, run: Coroutine[Any, Any, None]) -> None:
        self._jobs[job.job_id] = job
        self._count(job, +1)
        task = asyncio.create_task(run, name=f"{job.kind}-{job.tenant}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._forget_old()

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r} (jobs are kept in memory until restart)")
        return job

    def cancel(self, job_id: str) -> Job:
        """Ask a job to stop; a queued job stops at once, a running one between batches."""
        job = self.get(job_id)
        if job.state.finished:
            raise ConflictError(f"job {job_id} already {job.state}")
        job.cancel_requested.set()
        return job

    def active(self, tenant: str) -> list[Job]:
        """The tenant's running and queued reindex jobs."""
        return [j for j in (self._running.get(tenant), self._queued.get(tenant)) if j]

    def unfinished(self, tenant: str, kind: str) -> list[Job]:
        """The tenant's jobs of ``kind`` that have not finished, oldest first."""
        return [
            j
            for j in self._jobs.values()
            if j.tenant == tenant and j.kind == kind and not j.state.finished
        ]

    async def _run(self, job: Job) -> None:
        lock = self._tenant_locks.setdefault(job.tenant, asyncio.Lock())
        async with lock:  # one writer per tenant in this process (the flock covers others)
            if self._queued.get(job.tenant) is job:
                del self._queued[job.tenant]
            self._running[job.tenant] = job

            def progress(done: int, total: int) -> None:
                job.done, job.total = done, total

            async def reindex(job: Job) -> dict[str, Any]:
                assert job.mode is not None
                report = await asyncio.to_thread(
                    self._knowledge.reindex,
                    job.tenant,
                    job.mode,
                    progress=progress,
                    cancelled=job.cancel_requested.is_set,
                )
                await self._keep_promise(job)  # before the job shows as finished
                return report.as_dict()

            try:
                await self._execute(job, reindex)
            finally:
                self._running.pop(job.tenant, None)

    async def _keep_promise(self, job: Job) -> None:
        """Clear the promises a published reindex covered. Should the database refuse, the
        index is published all the same: the promise stays, and costs one needless
        incremental reindex at the next start."""
        try:
            await asyncio.to_thread(self.release, job.tenant, job.promised)
        except Exception:
            log.exception("reindex of %s published, but its promise was not cleared", job.tenant)

    async def _run_work(self, job: Job, work: Callable[[Job], Awaitable[dict[str, Any]]]) -> None:
        lock = self._tenant_locks.setdefault(f"{job.kind}:{job.tenant}", asyncio.Lock())
        async with lock:
            await self._execute(job, work)

    async def _execute(self, job: Job, work: Callable[[Job], Awaitable[dict[str, Any]]]) -> None:
        """Run ``work`` for a job whose turn has come and record how it ended."""
        if job.cancel_requested.is_set():
            self._finish(job, JobState.CANCELLED, error="cancelled before it started")
            return
        self._move(job, JobState.RUNNING)
        job.started_at = time.time()
        try:
            result = await work(job)
        except JobCancelledError as exc:
            self._finish(job, JobState.CANCELLED, error=exc.message)
        except Exception as exc:
            log.exception("%s job of tenant %s failed", job.kind, job.tenant)
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            self._finish(job, JobState.FAILED, error=message)
        else:
            job.result = result
            self._finish(job, JobState.SUCCEEDED)

    def _finish(self, job: Job, state: JobState, error: str | None = None) -> None:
        job.error = error
        job.finished_at = time.time()
        elapsed = job.finished_at - (job.started_at or job.created_at)
        if job.mode is not None:
            metrics.REINDEX_DURATION.labels(mode=str(job.mode), outcome=str(state)).observe(elapsed)
        metrics.JOBS_FINISHED.labels(kind=job.kind, state=str(state)).inc()
        self._move(job, state)
        job.finished.set()

    def _move(self, job: Job, state: JobState) -> None:
        self._count(job, -1)
        job.state = state
        self._count(job, +1)

    @staticmethod
    def _count(job: Job, delta: int) -> None:
        if not job.state.finished:
            metrics.JOBS.labels(kind=job.kind, state=str(job.state)).inc(delta)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state.finished]
        for job in finished[: max(0, len(finished) - FINISHED_JOBS_KEPT)]:
            self._jobs.pop(job.job_id, None)

    async def shutdown(self) -> None:
        """Cancel every job and wait for the running ones to unwind (nothing is published)."""
        for job in self._jobs.values():
            if not job.state.finished:
                job.cancel_requested.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _newest(first: int | None, second: int | None) -> int | None:
    """The later of two promise versions, either of which may be missing."""
    if first is None or second is None:
        return first if second is None else second
    return max(first, second)
