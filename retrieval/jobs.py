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

With a ``JobRecords`` store every job is also a row (``core/job_records.py``), so any
replica sharing the database reads it and can cancel it: a sync task writes the state and
progress of this process's jobs about once a second (at once when one ends), picks up
cancels asked through other replicas, and sweeps: a job whose owner went silent is marked
failed, and a reindex it owed is taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from core import metrics
from core.errors import ConflictError, JobCancelledError, NotFoundError
from core.job_records import JobRecords
from core.pending_work import PendingWork
from retrieval.job import JOB_KIND, Job, JobState
from retrieval.knowledge import KnowledgeBase, ReindexMode

log = logging.getLogger(__name__)

PENDING_KIND = "reindex"
"""The ``kind`` of a promised reindex in ``pending_work``."""
FINISHED_JOBS_KEPT = 500
"""Finished jobs a process keeps in memory; the ``jobs`` table keeps them longer."""
SYNC_INTERVAL_S = 1.0
"""How often a process writes its jobs' progress and reads cancels asked elsewhere."""
SWEEP_INTERVAL_S = 10.0
ABANDONED_AFTER_S = 30.0
"""A job whose row was not touched for this long has lost its owner: 30 syncs missed."""
FINISHED_ROWS_KEPT_S = 30 * 24 * 3600.0


class ReindexJobs:
    """Schedules ``KnowledgeBase.reindex`` runs; call from the event loop."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        pending: PendingWork | None = None,
        records: JobRecords | None = None,
        owner: str | None = None,
    ) -> None:
        self._knowledge = knowledge
        self._pending = pending
        self._records = records
        self.owner = (owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")[:64]
        self._unsaved: set[str] = set()
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._sync_task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0
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

    async def resume_owed(self, tenants: set[str] | None = None) -> list[Job]:
        """Submit a reindex for every promise still standing (a crash or a failed job left
        it), or for those of ``tenants``: what an earlier process acknowledged becomes
        searchable without another write."""
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
            if tenants is None or item.tenant in tenants
        ]
        for job in jobs:
            await self.save(job)
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
        """A job this process runs or ran (``find`` also asks the other replicas' rows)."""
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}")
        return job

    async def find(self, job_id: str) -> Job:
        """A job of any replica sharing the database: this process's own copy when it has
        one, else the row its owner keeps."""
        job = self._jobs.get(job_id)
        if job is not None or self._records is None:
            return self.get(job_id)
        record = await asyncio.to_thread(self._records.load, job_id)
        if record is None:
            raise NotFoundError(f"no job {job_id!r}")
        return Job.from_record(record)

    def cancel(self, job_id: str) -> Job:
        """Ask a job to stop; a queued job stops at once, a running one between batches."""
        job = self.get(job_id)
        if job.state.finished:
            raise ConflictError(f"job {job_id} already {job.state}")
        job.cancel_requested.set()
        self._changed(job)
        return job

    async def cancel_anywhere(self, job_id: str) -> Job:
        """``cancel`` for a job of any replica: the flag goes into its row, and the owner
        stops it on its next sync (within about ``SYNC_INTERVAL_S``)."""
        if job_id in self._jobs or self._records is None:
            return self.cancel(job_id)
        job = await self.find(job_id)
        if job.state.finished:
            raise ConflictError(f"job {job_id} already {job.state}")
        record = await asyncio.to_thread(self._records.request_cancel, job_id)
        if record is None:
            raise NotFoundError(f"no job {job_id!r}")
        return Job.from_record(record)

    async def cancel_unfinished(self, tenant: str, kind: str) -> list[str]:
        """Ask every unfinished ``kind`` job of ``tenant``, on any replica, to stop; their
        ids."""
        ids = []
        for job in self.unfinished(tenant, kind):
            job.cancel_requested.set()
            self._changed(job)
            ids.append(job.job_id)
        if self._records is not None:
            others = await asyncio.to_thread(self._records.unfinished, tenant, kind)
            for record in others:
                if record.job_id not in self._jobs:
                    await asyncio.to_thread(self._records.request_cancel, record.job_id)
                    ids.append(record.job_id)
        return ids

    async def save(self, job: Job) -> None:
        """Write ``job``'s row now (after ``submit``: the id handed out must be readable on
        every replica at once). A database that refuses is logged, not raised: the job
        runs, and the sync task tries again."""
        if self._records is None:
            return
        async with self._write_lock:
            self._unsaved.discard(job.job_id)  # a change while this write runs re-adds it
            try:
                await asyncio.to_thread(self._records.save, job.record(self.owner))
            except Exception:
                log.exception("could not record job %s; retrying on the next sync", job.job_id)
                self._unsaved.add(job.job_id)

    def start_sync(self) -> None:
        """Start keeping the ``jobs`` rows current (no-op without a store); call once from
        the event loop."""
        if self._records is not None and self._sync_task is None:
            self._sync_task = asyncio.create_task(self._sync_loop(), name="jobs-sync")

    async def _sync_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SYNC_INTERVAL_S)
            self._wake.clear()
            try:
                await self.sync_once()
            except Exception:  # the database may be away for a moment; try next time
                log.exception("syncing the jobs table failed")

    async def sync_once(self, sweep: bool | None = None) -> None:
        """Write this process's unfinished and changed jobs, take in cancels asked through
        other replicas, and (every ``SWEEP_INTERVAL_S``, or when ``sweep``) fail abandoned
        jobs and take over the reindexes they owed."""
        assert self._records is not None
        records = self._records
        unfinished = [j.job_id for j in self._jobs.values() if not j.state.finished]
        for job_id in dict.fromkeys([*self._unsaved, *unfinished]):
            job = self._jobs.get(job_id)
            if job is not None:
                await self.save(job)
        for job_id in await asyncio.to_thread(records.cancels_requested, unfinished):
            asked = self._jobs.get(job_id)
            if asked is not None:
                asked.cancel_requested.set()
        now = time.monotonic()
        if sweep or (sweep is None and now - self._last_sweep >= SWEEP_INTERVAL_S):
            self._last_sweep = now
            await self._sweep(records)

    async def _sweep(self, records: JobRecords) -> None:
        abandoned = await asyncio.to_thread(records.fail_abandoned, ABANDONED_AFTER_S)
        await asyncio.to_thread(records.forget_finished, FINISHED_ROWS_KEPT_S)
        for record in abandoned:
            metrics.JOBS_FINISHED.labels(kind=record.kind, state=str(JobState.FAILED)).inc()
            log.warning(
                "job %s (%s of %s) lost its server %s: marked failed",
                record.job_id,
                record.kind,
                record.tenant,
                record.owner,
            )
        tenants = {r.tenant for r in abandoned if r.kind == JOB_KIND}
        if tenants:
            await self.resume_owed(tenants)

    def _changed(self, job: Job) -> None:
        """Write ``job``'s row on the next sync, which starts now."""
        if self._records is not None:
            self._unsaved.add(job.job_id)
            self._wake.set()

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
        self._changed(job)

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
        if self._sync_task is not None:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
            self._sync_task = None
            with contextlib.suppress(Exception):  # the last word on the cancelled jobs
                await self.sync_once(sweep=False)


def _newest(first: int | None, second: int | None) -> int | None:
    """The later of two promise versions, either of which may be missing."""
    if first is None or second is None:
        return first if second is None else second
    return max(first, second)
