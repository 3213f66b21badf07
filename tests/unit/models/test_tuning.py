"""Batches for in-batch negatives, and where a tenant's tuned embedders are found."""

from __future__ import annotations

import random
from pathlib import Path

from models.prepare import MANIFEST_NAME
from models.tuning import newest_tuned_embedder, tuned_embedders, unique_document_batches


def test_no_batch_holds_one_document_twice_and_every_pair_is_used_once() -> None:
    documents = ["a"] * 7 + ["b"] * 3 + ["c", "d", "e"]
    batches = unique_document_batches(documents, 4, random.Random(0))
    assert sorted(i for batch in batches for i in batch) == list(range(len(documents)))
    for batch in batches:
        assert len(batch) <= 4
        assert len({documents[i] for i in batch}) == len(batch)
    assert batches == unique_document_batches(documents, 4, random.Random(0))


def test_only_complete_tuned_folders_count_newest_last(tmp_path: Path) -> None:
    assert newest_tuned_embedder(tmp_path, "acme") is None
    root = tmp_path / "models" / "tenants" / "acme"
    for name in ("embedder-20260101T000000Z", "embedder-20260301T000000Z"):
        (root / name).mkdir(parents=True)
        (root / name / MANIFEST_NAME).write_text("{}")
    (root / "embedder-20260401T000000Z").mkdir()  # no manifest: not published
    (root / ".embedder-tmp-1-2").mkdir()  # staging
    assert [p.name for p in tuned_embedders(tmp_path, "acme")] == [
        "embedder-20260101T000000Z",
        "embedder-20260301T000000Z",
    ]
    assert newest_tuned_embedder(tmp_path, "acme") == root / "embedder-20260301T000000Z"
    assert newest_tuned_embedder(tmp_path, "globex") is None
