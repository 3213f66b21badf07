"""One background job as the admin API shows it, and as the ``jobs`` table holds it.

Kept apart from the scheduler (``retrieval/jobs.py``) so that a job read back from another
replica's row is the same object, with the same ``as_dict``, as one this process runs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.job_records import JobRecord
from retrieval.knowledge import ReindexMode

JOB_KIND = "kb_reindex"


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

    def record(self, owner: str) -> JobRecord:
        """The job as a ``jobs`` row written by ``owner`` now."""
        return JobRecord(
            job_id=self.job_id,
            tenant=self.tenant,
            kind=self.kind,
            mode=str(self.mode) if self.mode is not None else None,
            state=str(self.state),
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            done=self.done,
            total=self.total,
            error=self.error,
            result=self.result,
            cancel_requested=self.cancel_requested.is_set(),
            owner=owner,
            heartbeat_at=time.time(),
        )

    @classmethod
    def from_record(cls, record: JobRecord) -> Job:
        """A job another process runs (or ran), as its row tells it; read-only here."""
        job = cls(
            job_id=record.job_id,
            tenant=record.tenant,
            mode=ReindexMode(record.mode) if record.mode else None,
            kind=record.kind,
            state=JobState(record.state),
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            done=record.done,
            total=record.total,
            error=record.error,
            result=record.result,
        )
        if record.cancel_requested:
            job.cancel_requested.set()
        if job.state.finished:
            job.finished.set()
        return job

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
