"""Index garbage collection keeps the versions a live process serves (a real dead pid)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from retrieval.index import (
    VectorIndex,
    collect_garbage,
    published_versions,
)
from tests.unit.retrieval.test_index import clustered, publish, vector_ids

DIMENSION = 32


def test_garbage_collection_keeps_the_newest_and_those_in_use(tmp_path: Path) -> None:
    index = VectorIndex.build(vector_ids(10), clustered(10))
    for _ in range(5):
        publish(tmp_path, index)
    dead = subprocess.Popen(["true"])
    dead.wait()
    debris = tmp_path / "staging" / f"build-{dead.pid}-deadbeef"
    debris.mkdir(parents=True)
    alive = tmp_path / "staging" / f"build-{os.getpid()}-cafecafe"
    alive.mkdir()
    removed = collect_garbage(tmp_path, keep=2, in_use={2})
    assert removed == [1, 3]
    assert published_versions(tmp_path) == [2, 4, 5]
    assert not debris.exists() and alive.exists()  # a live builder's staging is left alone
