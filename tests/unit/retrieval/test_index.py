"""FAISS indexes with stable ids, filters inside the search, and verified versions on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import IndexCorruptError
from retrieval.index import (
    FLAT_MAX_VECTORS,
    IndexLayout,
    IndexVersionWriter,
    VectorIndex,
    plan_layout,
    published_versions,
    read_manifest,
)

DIMENSION = 32


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(64, DIMENSION))
    points = centers[rng.integers(0, 64, n)] + 0.3 * rng.normal(size=(n, DIMENSION))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def vector_ids(n: int, offset: int = 0) -> np.ndarray:
    return (np.arange(n, dtype=np.int64) + offset) * 7_919 + (1 << 40)  # sparse 64-bit ids


def test_layout_is_exact_for_small_collections_and_ivf_for_large_ones() -> None:
    assert plan_layout(0).kind == "flat"
    assert plan_layout(FLAT_MAX_VECTORS - 1).kind == "flat"
    large = plan_layout(1_000_000)
    assert large.kind == "ivf" and large.nlist == 4096 and large.nprobe == 256


def test_flat_search_is_exact_and_returns_stable_ids() -> None:
    vectors = clustered(500)
    index = VectorIndex.build(vector_ids(500), vectors)
    scores, ids = index.search(vectors[42], 3)
    assert ids[0] == vector_ids(500)[42] and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert list(scores) == sorted(scores, reverse=True)


@pytest.mark.parametrize("layout", [IndexLayout("flat"), IndexLayout("ivf", nlist=16, nprobe=4)])
def test_filters_are_applied_inside_the_search(layout: IndexLayout) -> None:
    vectors = clustered(2_000)
    ids = vector_ids(2_000)
    index = VectorIndex.build(ids, vectors, layout)
    allowed = ids[1_500:1_510]
    # the query is an excluded vector's twin: a post-filter of a global top-k finds nothing
    _, found = index.search(vectors[0], 5, allowed=allowed, exhaustive=True)
    assert len(found) == 5 and set(found) <= set(allowed)
    excluded = ids[:1_000]
    _, found = index.search(vectors[0], 10, excluded=excluded)
    assert len(found) == 10 and not set(found) & set(excluded)
    _, found = index.search(vectors[0], 5, allowed=ids[:10], excluded=ids[:5])
    assert set(found) <= set(ids[5:10])
    _, found = index.search(vectors[0], 5, allowed=np.zeros(0, np.int64))
    assert len(found) == 0


def test_changes_keep_unchanged_ids_and_vectors() -> None:
    vectors = clustered(300)
    index = VectorIndex.build(vector_ids(300), vectors)
    added = clustered(5, seed=1)
    changed = index.with_changes(vector_ids(300)[:10], vector_ids(5, offset=10_000), added)
    assert changed.size == 295 and index.size == 300  # the original is untouched
    _, found = changed.search(added[2], 1)
    assert found[0] == vector_ids(5, offset=10_000)[2]
    _, found = changed.search(vectors[0], 300)
    assert vector_ids(300)[0] not in set(found)


def test_ivf_is_edited_in_place_until_the_collection_doubles_then_retrained() -> None:
    index = VectorIndex.build(vector_ids(FLAT_MAX_VECTORS), clustered(FLAT_MAX_VECTORS))
    assert index.layout.kind == "ivf" and index.trained_on == FLAT_MAX_VECTORS
    none = np.zeros(0, np.int64)
    grown = index.with_changes(vector_ids(10), vector_ids(100, 10**6), clustered(100, 2))
    assert grown.trained_on == FLAT_MAX_VECTORS  # the trained lists were reused
    assert grown.size == FLAT_MAX_VECTORS + 90
    _, found = grown.search(clustered(100, 2)[7], 1)
    assert found[0] == vector_ids(100, 10**6)[7]
    doubled = index.with_changes(none, vector_ids(60_000, 10**7), clustered(60_000, 3))
    assert doubled.trained_on == FLAT_MAX_VECTORS + 60_000  # retrained for the new size
    shrunk = index.with_changes(vector_ids(FLAT_MAX_VECTORS - 100), none, np.zeros((0, DIMENSION)))
    assert shrunk.layout.kind == "flat" and shrunk.size == 100


def test_ivf_recall_at_10_against_exact_search() -> None:
    vectors = clustered(20_000)
    ids = vector_ids(20_000)
    ivf = VectorIndex.build(ids, vectors, IndexLayout("ivf", nlist=128, nprobe=8))
    exact = VectorIndex.build(ids, vectors, IndexLayout("flat"))
    queries = clustered(50, seed=9)
    overlap = [len(set(ivf.search(q, 10)[1]) & set(exact.search(q, 10)[1])) / 10 for q in queries]
    assert np.mean(overlap) >= 0.9


def publish(root: Path, index: VectorIndex) -> int:
    with IndexVersionWriter(root) as writer:
        files = index.write(writer.folder)
        return writer.publish(
            files=files,
            embedding_model="test",
            dimension=index.dimension,
            counts={"chunks": index.size},
            layout=index.layout,
            trained_on=index.trained_on,
        )


def test_versions_round_trip_and_verify(tmp_path: Path) -> None:
    index = VectorIndex.build(vector_ids(100), clustered(100))
    assert publish(tmp_path, index) == 1
    assert publish(tmp_path, index) == 2
    manifest = read_manifest(tmp_path / "versions" / "v000002")
    loaded = VectorIndex.read(tmp_path / "versions" / "v000002", manifest.layout, 0)
    assert np.array_equal(loaded.ids, index.ids) and manifest.counts == {"chunks": 100}
    assert not any((tmp_path / "staging").iterdir())


def test_ivf_versions_round_trip(tmp_path: Path) -> None:
    index = VectorIndex.build(vector_ids(3_000), clustered(3_000), IndexLayout("ivf", 16, 4))
    publish(tmp_path, index)
    folder = tmp_path / "versions" / "v000001"
    manifest = read_manifest(folder)
    loaded = VectorIndex.read(folder, manifest.layout, manifest.trained_on)
    query = clustered(1, seed=5)[0]
    assert np.array_equal(loaded.search(query, 5)[1], index.search(query, 5)[1])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "truncated"),
        ("flip", "SHA-256"),
        ("delete", "missing"),
        ("manifest", "malformed"),
        ("model", "embedding model"),
    ],
)
def test_a_damaged_version_is_refused_with_a_clear_error(
    tmp_path: Path, damage: str, message: str
) -> None:
    publish(tmp_path, VectorIndex.build(vector_ids(100), clustered(100)))
    folder = tmp_path / "versions" / "v000001"
    vectors = folder / "vectors.npy"
    if damage == "truncate":
        vectors.write_bytes(vectors.read_bytes()[:-100])
    elif damage == "flip":
        data = bytearray(vectors.read_bytes())
        data[-7] ^= 0x10
        vectors.write_bytes(bytes(data))
    elif damage == "delete":
        vectors.unlink()
    elif damage == "manifest":
        manifest = json.loads((folder / "manifest.json").read_text())
        del manifest["counts"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=message):
        read_manifest(folder, expected_model="other" if damage == "model" else "test")


def test_a_failed_build_leaves_nothing_published(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), IndexVersionWriter(tmp_path) as writer:
        (writer.folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("crash while building")
    assert published_versions(tmp_path) == []
    assert not any((tmp_path / "staging").iterdir())
