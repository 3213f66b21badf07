"""``pending_work``: durable promises of work, coalesced per kind and tenant."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.db import METADATA, create_database_engine, default_database_url
from core.pending_work import PendingWork


@pytest.fixture
def pending(tmp_path: Path) -> PendingWork:
    engine = create_database_engine(default_database_url(tmp_path))
    METADATA.create_all(engine)
    return PendingWork(engine)


def test_requests_coalesce_and_each_gets_a_newer_version(pending: PendingWork) -> None:
    assert pending.owed("reindex") == []
    assert pending.request("reindex", "acme") == 1
    assert pending.request("reindex", "acme") == 2
    assert pending.request("reindex", "globex") == 1
    owed = pending.owed("reindex")
    assert [(item.tenant, item.version) for item in owed] == [("acme", 2), ("globex", 1)]
    assert pending.owed("webhook") == []


def test_work_done_up_to_an_older_version_leaves_the_newer_request_owed(
    pending: PendingWork,
) -> None:
    first = pending.request("reindex", "acme")
    newer = pending.request("reindex", "acme")  # a write while the first reindex ran
    assert not pending.done("reindex", "acme", first)
    assert [item.version for item in pending.owed("reindex")] == [newer]
    assert pending.done("reindex", "acme", newer)
    assert pending.owed("reindex") == []


def test_detail_is_kept_until_replaced(pending: PendingWork) -> None:
    pending.request("reindex", "acme", {"full": True})
    pending.request("reindex", "acme")  # an incremental request does not downgrade it
    (item,) = pending.owed("reindex")
    assert item.detail == {"full": True}


def test_a_second_process_sees_what_the_first_promised(tmp_path: Path) -> None:
    url = default_database_url(tmp_path)
    first = create_database_engine(url)
    METADATA.create_all(first)
    PendingWork(first).request("reindex", "acme")
    first.dispose()  # the process is gone
    restarted = PendingWork(create_database_engine(url))
    assert [item.tenant for item in restarted.owed("reindex")] == ["acme"]
