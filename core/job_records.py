"""Background jobs as rows: ``jobs``, readable by every server that shares the database.

A job lived only in the memory of the process that ran it, so ``GET /admin/jobs/{id}``
answered 404 on any other replica, and a crash lost every job's outcome: an admin polling
a reindex after a restart learned nothing. Here every job is a row that its owner keeps
current (state, progress, result or error) and touches while it runs (``heartbeat_at``).

Any replica can read a job, or ask it to stop (``cancel_requested``: the owner reads the
flag on its next sync and stops between batches). A job whose owner stopped touching it
(killed, crashed, cut off from the database) is marked ``failed`` by whichever replica
sweeps first (``fail_abandoned``), so no job stays ``running`` for ever; work it owed
(a promised reindex) stays owed in ``pending_work`` and is resumed by the sweeper.

Synchronous: call from a thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from core.db import METADATA

JOBS = Table(
    "jobs",
    METADATA,
    Column("job_id", String(32), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("mode", String(16), nullable=True),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("done", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("result", JSON, nullable=True),
    Column("cancel_requested", Boolean, nullable=False),
    Column("owner", String(64), nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Index("ix_jobs_unfinished", "state", "heartbeat_at"),
)
UNFINISHED = ("queued", "running")
"""States of a job that has not ended; the others are final."""


@dataclass(frozen=True)
class JobRecord:
    """One job as the table holds it (the fields of ``JOBS``)."""

    job_id: str
    tenant: str
    kind: str
    mode: str | None
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    done: int
    total: int
    error: str | None
    result: dict[str, Any] | None
    cancel_requested: bool
    owner: str
    heartbeat_at: float

    @classmethod
    def from_row(cls, row: Any) -> JobRecord:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


class JobRecords:
    """The ``jobs`` table: written by each job's owner, read and cancelled by anyone."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(self, record: JobRecord) -> None:
        """Write the owner's view of a job. A cancel asked for through another replica is
        kept (the owner's copy may not have seen it yet), and a final state is never
        overwritten by an unfinished one (a sweeper may have failed the job meanwhile): both
        are conditions of the one ``UPDATE``, so no read-then-write race can undo them."""
        values = {name: getattr(record, name) for name in JobRecord.__dataclass_fields__}
        if not record.cancel_requested:
            del values["cancel_requested"]
        changed = update(JOBS).where(JOBS.c.job_id == record.job_id)
        if record.state in UNFINISHED:
            changed = changed.where(JOBS.c.state.in_(UNFINISHED))
        for _ in range(2):  # a concurrent first save may insert between our two steps
            with self._engine.begin() as conn:
                if conn.execute(changed.values(**values)).rowcount:
                    return
                exists = conn.execute(
                    select(JOBS.c.job_id).where(JOBS.c.job_id == record.job_id)
                ).first()
                if exists is not None:
                    return  # finished already: the unfinished view is stale
                try:
                    conn.execute(
                        JOBS.insert().values(
                            **{n: getattr(record, n) for n in JobRecord.__dataclass_fields__}
                        )
                    )
                except IntegrityError:
                    continue
                return

    def load(self, job_id: str) -> JobRecord | None:
        """The job's row, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.job_id == job_id)).mappings().first()
        return JobRecord.from_row(row) if row is not None else None

    def request_cancel(self, job_id: str) -> JobRecord | None:
        """Ask an unfinished job to stop, whichever replica runs it; the row afterwards."""
        with self._engine.begin() as conn:
            conn.execute(
                update(JOBS)
                .where(JOBS.c.job_id == job_id, JOBS.c.state.in_(UNFINISHED))
                .values(cancel_requested=True)
            )
        return self.load(job_id)

    def cancels_requested(self, job_ids: list[str]) -> set[str]:
        """Which of ``job_ids`` someone asked to stop."""
        if not job_ids:
            return set()
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(JOBS.c.job_id).where(
                    JOBS.c.job_id.in_(job_ids), JOBS.c.cancel_requested.is_(True)
                )
            )
            return {row.job_id for row in rows}

    def unfinished(self, tenant: str, kind: str | None = None) -> list[JobRecord]:
        """The tenant's queued and running jobs on every replica, oldest first."""
        query = select(JOBS).where(JOBS.c.tenant == tenant, JOBS.c.state.in_(UNFINISHED))
        if kind is not None:
            query = query.where(JOBS.c.kind == kind)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(JOBS.c.created_at)).mappings()
            return [JobRecord.from_row(row) for row in rows]

    def fail_abandoned(self, stale_after_s: float, now: float | None = None) -> list[JobRecord]:
        """Mark ``failed`` every unfinished job not touched for ``stale_after_s``: its owner
        stopped. Returns the jobs so marked (their owners' work may be owed again)."""
        now = time.time() if now is None else now
        cutoff = now - stale_after_s
        with self._engine.begin() as conn:
            rows = [
                JobRecord.from_row(row)
                for row in conn.execute(
                    select(JOBS).where(JOBS.c.state.in_(UNFINISHED), JOBS.c.heartbeat_at < cutoff)
                ).mappings()
            ]
            failed = []
            for record in rows:
                silent = round(now - record.heartbeat_at)
                marked = conn.execute(
                    update(JOBS)
                    .where(  # its owner may have written since the select: then it lives
                        JOBS.c.job_id == record.job_id,
                        JOBS.c.state.in_(UNFINISHED),
                        JOBS.c.heartbeat_at < cutoff,
                    )
                    .values(
                        state="failed",
                        finished_at=now,
                        error=f"abandoned: the server running it ({record.owner}) stopped; "
                        f"no word from it for {silent} s",
                    )
                ).rowcount
                if marked:
                    failed.append(record)
        return failed

    def forget_finished(self, older_than_s: float, now: float | None = None) -> int:
        """Delete finished jobs that ended more than ``older_than_s`` ago; how many."""
        cutoff = (time.time() if now is None else now) - older_than_s
        with self._engine.begin() as conn:
            return int(
                conn.execute(
                    delete(JOBS).where(JOBS.c.state.not_in(UNFINISHED), JOBS.c.finished_at < cutoff)
                ).rowcount
            )
