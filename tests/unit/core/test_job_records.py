"""``jobs``: job rows any replica reads, cancels through, and fails when their owner stops."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.db import METADATA, create_database_engine, default_database_url
from core.job_records import JobRecord, JobRecords


@pytest.fixture
def records(tmp_path: Path) -> JobRecords:
    engine = create_database_engine(default_database_url(tmp_path))
    METADATA.create_all(engine)
    return JobRecords(engine)


def _record(job_id: str = "j1", **changes: object) -> JobRecord:
    base = JobRecord(
        job_id=job_id,
        tenant="acme",
        kind="kb_reindex",
        mode="incremental",
        state="running",
        created_at=100.0,
        started_at=101.0,
        finished_at=None,
        done=3,
        total=10,
        error=None,
        result=None,
        cancel_requested=False,
        owner="replica-a",
        heartbeat_at=1_000.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_saved_job_reads_back_as_written_and_updates_in_place(records: JobRecords) -> None:
    assert records.load("j1") is None
    records.save(_record())
    assert records.load("j1") == _record()
    done = _record(state="succeeded", done=10, finished_at=120.0, result={"version": 2})
    records.save(done)
    assert records.load("j1") == done


def test_a_cancel_asked_elsewhere_survives_the_owners_next_save(records: JobRecords) -> None:
    records.save(_record())
    assert records.cancels_requested(["j1", "j2"]) == set()
    asked = records.request_cancel("j1")
    assert asked is not None and asked.cancel_requested
    records.save(_record(done=4))  # the owner has not seen the flag yet
    assert records.cancels_requested(["j1"]) == {"j1"}
    assert records.request_cancel("missing") is None


def test_a_finished_job_is_not_cancelled_nor_reopened(records: JobRecords) -> None:
    records.save(_record(state="failed", finished_at=110.0, error="boom"))
    assert records.request_cancel("j1") == records.load("j1")
    assert not records.cancels_requested(["j1"])
    records.save(_record(state="running", done=9))  # a late progress write
    stored = records.load("j1")
    assert stored is not None and stored.state == "failed" and stored.done == 3


def test_silent_jobs_are_failed_and_live_ones_are_left_alone(records: JobRecords) -> None:
    records.save(_record("silent", heartbeat_at=1_000.0, owner="replica-gone"))
    records.save(_record("live", heartbeat_at=1_025.0))
    records.save(_record("queued", state="queued", heartbeat_at=900.0))
    records.save(_record("over", state="succeeded", finished_at=950.0, heartbeat_at=950.0))
    failed = records.fail_abandoned(stale_after_s=30.0, now=1_040.0)
    assert sorted(r.job_id for r in failed) == ["queued", "silent"]
    silent = records.load("silent")
    assert silent is not None and silent.state == "failed" and silent.finished_at == 1_040.0
    assert silent.error is not None and "replica-gone" in silent.error
    assert [r.job_id for r in records.unfinished("acme")] == ["live"]
    assert records.fail_abandoned(stale_after_s=30.0, now=1_040.0) == []


def test_old_finished_jobs_are_forgotten(records: JobRecords) -> None:
    records.save(_record("old", state="succeeded", finished_at=100.0))
    records.save(_record("recent", state="succeeded", finished_at=990.0))
    records.save(_record("running"))
    assert records.forget_finished(older_than_s=60.0, now=1_000.0) == 1
    assert records.load("old") is None and records.load("recent") is not None
    assert records.load("running") is not None


def test_unfinished_filters_by_kind(records: JobRecords) -> None:
    records.save(_record("reindex"))
    records.save(_record("training", kind="tenant_intents", mode=None, created_at=50.0))
    assert [r.job_id for r in records.unfinished("acme")] == ["training", "reindex"]
    assert [r.job_id for r in records.unfinished("acme", "tenant_intents")] == ["training"]
    assert records.unfinished("globex") == []
