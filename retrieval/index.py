"""FAISS vector indexes with stable ids, and index versions on disk.

``VectorIndex`` is an inner-product index over unit vectors (cosine similarity) keyed
by stable 64-bit ids, so an unchanged chunk keeps its id from one version to the next
and an incremental rebuild only removes and adds what changed. The layout follows the
collection's size (``plan_layout``):

* below ``FLAT_MAX_VECTORS`` vectors: ``IndexIDMap2`` over ``IndexFlatIP``, exact search.
  At 50k x 384 float32 a brute-force scan is a few milliseconds on two cores, and exact
  results need no training or tuning.
* from ``FLAT_MAX_VECTORS`` up: ``IndexIVFFlat`` with ``nlist = 4 * sqrt(n)`` (a power
  of two) lists and ``nprobe = nlist / 16``. It is retrained when the collection has
  doubled or halved since training; otherwise changes are applied to a copy of the
  trained index. ``bench/retrieval_speed.py`` measures the latency and recall@10 of
  this choice against exact search.

Filters (allowed ids for one customer, excluded ids of stale chunks) are FAISS id
selectors evaluated inside the search, never a post-filter of a global top-k.

An index version is a folder (``IndexVersionWriter``): files are written into a staging
folder, fsynced, listed with their SHA-256 and size in ``manifest.json``, and published
by one atomic rename into ``versions/v<NNNNNN>``. ``read_manifest`` verifies every file
before anything is loaded, so a truncated or bit-flipped version is refused with
``IndexCorruptError`` and the caller keeps serving what it has.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import numpy.typing as npt

from core.errors import IndexCorruptError

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]

FLAT_MAX_VECTORS = 50_000
IVF_LISTS_PER_SQRT_N = 4
IVF_PROBE_FRACTION = 16  # nprobe = nlist / 16
IVF_MIN_TRAINING_POINTS_PER_LIST = 39  # FAISS warns below this
IVF_RETRAIN_GROWTH = 2.0

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
VERSION_PREFIX = "v"

IndexKind = Literal["flat", "ivf"]


@dataclass(frozen=True)
class IndexLayout:
    """Which FAISS structure a collection of ``n`` vectors gets."""

    kind: IndexKind
    nlist: int = 0
    nprobe: int = 0


def plan_layout(n: int) -> IndexLayout:
    """Flat (exact) for small collections, IVF for large ones; see the module docstring."""
    if n < FLAT_MAX_VECTORS:
        return IndexLayout("flat")
    nlist = 2 ** round(math.log2(IVF_LISTS_PER_SQRT_N * math.sqrt(n)))
    return IndexLayout("ivf", nlist=nlist, nprobe=max(8, nlist // IVF_PROBE_FRACTION))


class VectorIndex:
    """Unit vectors keyed by int64 ids; immutable once built (changes make a new one)."""

    def __init__(
        self,
        ids: Ids,
        vectors: Vectors,
        faiss_index: Any,
        layout: IndexLayout,
        trained_on: int = 0,
    ) -> None:
        self.ids = ids
        self.vectors = vectors
        self._index = faiss_index
        self.layout = layout
        self.trained_on = trained_on
        self._row_of: dict[int, int] | None = None

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def row_of(self, chunk_id: int) -> int | None:
        """Position of ``chunk_id`` in ``ids`` (built on first use)."""
        if self._row_of is None:
            self._row_of = {int(i): row for row, i in enumerate(self.ids.tolist())}
        return self._row_of.get(chunk_id)

    @classmethod
    def build(cls, ids: Ids, vectors: Vectors, layout: IndexLayout | None = None) -> VectorIndex:
        """Index ``vectors`` under ``ids`` with the layout their number calls for."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or ids.shape[0] != vectors.shape[0]:
            raise ValueError(f"ids {ids.shape} and vectors {vectors.shape} do not match")
        if np.unique(ids).shape[0] != ids.shape[0]:
            raise ValueError("duplicate ids")
        layout = layout or plan_layout(ids.shape[0])
        dimension = vectors.shape[1]
        if layout.kind == "flat":
            index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
            trained_on = 0
        else:
            quantizer = faiss.IndexFlatIP(dimension)
            index = faiss.IndexIVFFlat(
                quantizer, dimension, layout.nlist, faiss.METRIC_INNER_PRODUCT
            )
            index.nprobe = layout.nprobe
            index.train(_training_sample(vectors, layout.nlist))
            trained_on = ids.shape[0]
        if ids.shape[0]:
            index.add_with_ids(vectors, ids)
        return cls(ids, vectors, index, layout, trained_on)

    def with_changes(self, remove: Ids, add_ids: Ids, add_vectors: Vectors) -> VectorIndex:
        """A new index: this one minus ``remove`` plus the added vectors.

        A trained IVF index is copied and edited unless the collection doubled or halved
        since training (then it is retrained), or it crosses the flat/IVF threshold.
        """
        keep = ~np.isin(self.ids, remove)
        ids = np.concatenate([self.ids[keep], add_ids.astype(np.int64)])
        vectors = np.concatenate([self.vectors[keep], add_vectors.astype(np.float32)])
        if vectors.ndim != 2:
            vectors = vectors.reshape(0, self.dimension)
        wanted = plan_layout(ids.shape[0])
        reusable = (
            self.layout.kind == "ivf"
            and wanted.kind == "ivf"
            and self.trained_on / IVF_RETRAIN_GROWTH <= ids.shape[0]
            and ids.shape[0] <= self.trained_on * IVF_RETRAIN_GROWTH
        )
        if not reusable:
            return VectorIndex.build(ids, vectors, wanted)
        index = faiss.clone_index(self._index)
        if remove.shape[0]:
            index.remove_ids(faiss.IDSelectorBatch(remove.astype(np.int64)))
        if add_ids.shape[0]:
            index.add_with_ids(add_vectors.astype(np.float32), add_ids.astype(np.int64))
        return VectorIndex(ids, vectors, index, self.layout, self.trained_on)

    def search(
        self,
        query: Vectors,
        k: int,
        *,
        allowed: Ids | None = None,
        excluded: Ids | None = None,
        exhaustive: bool = False,
    ) -> tuple[npt.NDArray[np.float32], Ids]:
        """Top ``k`` (scores, ids) for one query vector; ``-1`` ids pad missing results.

        ``allowed`` restricts the search to those ids, ``excluded`` removes ids; both are
        applied by FAISS while it scans. ``exhaustive`` probes every IVF list; an
        ``allowed`` filter always does, since a few probed lists might hold none of its ids.
        """
        if self.size == 0 or k <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        selector, _keep_alive = id_selector(allowed, excluded)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        k = min(k, self.size)
        nprobe = None
        if self.layout.kind == "ivf":
            # an allow-list is usually a few ids scattered over many lists: probing only
            # nprobe of them loses about two thirds of the matches (bench/retrieval_speed.py)
            thorough = exhaustive or allowed is not None
            nprobe = self.layout.nlist if thorough else self.layout.nprobe
        params = search_parameters(selector, nprobe)
        scores, ids = self._index.search(query, k, params=params)
        found = ids[0] >= 0
        return scores[0][found], ids[0][found]

    def write(self, folder: Path) -> list[str]:
        """Write ``ids.npy``, ``vectors.npy`` (and ``ivf.faiss``); return the file names."""
        np.save(folder / "ids.npy", self.ids)
        np.save(folder / "vectors.npy", self.vectors)
        names = ["ids.npy", "vectors.npy"]
        if self.layout.kind == "ivf":
            faiss.write_index(self._index, str(folder / "ivf.faiss"))
            names.append("ivf.faiss")
        return names

    @classmethod
    def read(cls, folder: Path, layout: IndexLayout, trained_on: int) -> VectorIndex:
        """Load what ``write`` wrote (the manifest has been verified by the caller)."""
        ids = np.load(folder / "ids.npy")
        vectors = np.load(folder / "vectors.npy")
        if layout.kind == "flat":
            return cls.build(ids, vectors, layout)
        index: Any = faiss.read_index(str(folder / "ivf.faiss"))
        index.nprobe = layout.nprobe
        if index.ntotal != ids.shape[0]:
            raise IndexCorruptError(f"{folder.name}: ivf.faiss holds {index.ntotal} vectors")
        return cls(ids, vectors, index, layout, trained_on)


def _training_sample(vectors: Vectors, nlist: int) -> Vectors:
    wanted = nlist * 64
    if vectors.shape[0] <= wanted:
        return vectors
    rows = np.random.default_rng(0).choice(vectors.shape[0], size=wanted, replace=False)
    return vectors[np.sort(rows)]


def search_parameters(selector: Any, nprobe: int | None = None) -> Any:
    """FAISS search parameters carrying a selector (and, for IVF, the lists to probe)."""
    if nprobe is None and selector is None:
        return None
    params: Any = faiss.SearchParameters() if nprobe is None else faiss.SearchParametersIVF()
    if selector is not None:
        params.sel = selector
    if nprobe is not None:
        params.nprobe = nprobe
    return params


def id_selector(allowed: Ids | None, excluded: Ids | None) -> tuple[Any, list[Any]]:
    """A FAISS selector for the filters, and the objects it points to (keep them alive)."""
    keep: list[Any] = []
    selector: Any = None
    if allowed is not None:
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        keep.append(selector)
    if excluded is not None and excluded.shape[0]:
        inner = faiss.IDSelectorBatch(np.ascontiguousarray(excluded, dtype=np.int64))
        outer = faiss.IDSelectorNot(inner)
        keep += [inner, outer]
        selector = outer if selector is None else faiss.IDSelectorAnd(selector, outer)
        keep.append(selector)
    return selector, keep


# ---------------------------------------------------------------- versions on disk


@dataclass(frozen=True)
class Manifest:
    """What a published version holds, read back from ``manifest.json``."""

    version: int
    created_at: float
    embedding_model: str
    dimension: int
    counts: dict[str, int]
    layout: IndexLayout
    trained_on: int
    files: dict[str, dict[str, Any]]
    extra: dict[str, Any]


def version_name(number: int) -> str:
    return f"{VERSION_PREFIX}{number:06d}"


def published_versions(root: Path) -> list[int]:
    """Numbers of the published version folders under ``root/versions``, ascending."""
    folder = root / "versions"
    if not folder.is_dir():
        return []
    numbers = []
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith(VERSION_PREFIX) and name[1:].isdigit() and entry.is_dir():
            numbers.append(int(name[1:]))
    return sorted(numbers)


def read_manifest(folder: Path, *, expected_model: str | None = None) -> Manifest:
    """Read and verify a version folder: every listed file present, sized and hashed right.

    Raises ``IndexCorruptError`` naming the first problem found.
    """
    path = folder / MANIFEST
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"{folder.name}: no {MANIFEST}") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{folder.name}: unreadable {MANIFEST}: {exc}") from exc
    try:
        if raw["format"] != MANIFEST_FORMAT:
            raise IndexCorruptError(f"{folder.name}: manifest format {raw['format']} unknown")
        files: dict[str, dict[str, Any]] = raw["files"]
        for name, meta in files.items():
            file = folder / name
            if not file.is_file():
                raise IndexCorruptError(f"{folder.name}: {name} is missing")
            size = file.stat().st_size
            if size != meta["bytes"]:
                raise IndexCorruptError(
                    f"{folder.name}: {name} is {size} bytes, manifest says {meta['bytes']} "
                    "(truncated or replaced)"
                )
            if sha256_of(file) != meta["sha256"]:
                raise IndexCorruptError(f"{folder.name}: {name} fails its SHA-256 check")
        manifest = Manifest(
            version=int(raw["version"]),
            created_at=float(raw["created_at"]),
            embedding_model=str(raw["embedding_model"]),
            dimension=int(raw["dimension"]),
            counts={k: int(v) for k, v in raw["counts"].items()},
            layout=IndexLayout(**raw["layout"]),
            trained_on=int(raw.get("trained_on", 0)),
            files=files,
            extra=dict(raw.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexCorruptError(f"{folder.name}: malformed {MANIFEST}: {exc!r}") from exc
    if expected_model is not None and manifest.embedding_model != expected_model:
        raise IndexCorruptError(
            f"{folder.name}: built with embedding model {manifest.embedding_model!r}, "
            f"this server embeds with {expected_model!r}; run a full reindex"
        )
    return manifest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class IndexVersionWriter:
    """Builds one version in a staging folder and publishes it atomically.

    Use as a context manager: on an exception (or a kill) the staging folder is left
    unpublished and removed, by this writer or by the next ``collect_garbage``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / "staging" / f"build-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> IndexVersionWriter:
        self.staging.mkdir(parents=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)

    @property
    def folder(self) -> Path:
        return self.staging

    def publish(
        self,
        *,
        files: list[str],
        embedding_model: str,
        dimension: int,
        counts: dict[str, int],
        layout: IndexLayout,
        trained_on: int,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Fsync the files, write the manifest, rename into place; return the version."""
        listed = {}
        for name in files:
            file = self.staging / name
            _fsync_file(file)
            listed[name] = {"sha256": sha256_of(file), "bytes": file.stat().st_size}
        existing = published_versions(self.root)
        number = (existing[-1] if existing else 0) + 1
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": number,
            "created_at": time.time(),
            "embedding_model": embedding_model,
            "dimension": dimension,
            "counts": counts,
            "layout": {"kind": layout.kind, "nlist": layout.nlist, "nprobe": layout.nprobe},
            "trained_on": trained_on,
            "files": listed,
            "extra": extra or {},
        }
        manifest_path = self.staging / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        _fsync_file(manifest_path)
        for sub in {Path(name).parent for name in files} | {Path(".")}:
            _fsync_dir(self.staging / sub)
        versions = self.root / "versions"
        versions.mkdir(exist_ok=True)
        target = versions / version_name(number)
        os.rename(self.staging, target)  # atomic: readers see no version or a whole one
        _fsync_dir(versions)
        return number


def collect_garbage(root: Path, keep: int, in_use: set[int]) -> list[int]:
    """Delete all but the newest ``keep`` versions (never one ``in_use``) and dead staging.

    Returns the version numbers removed.
    """
    removed = []
    for number in published_versions(root)[:-keep] if keep > 0 else []:
        if number in in_use:
            continue
        shutil.rmtree(root / "versions" / version_name(number), ignore_errors=True)
        removed.append(number)
    staging = root / "staging"
    if staging.is_dir():
        for entry in staging.iterdir():
            pid = _builder_pid(entry.name)
            if pid is None or not _process_alive(pid):
                shutil.rmtree(entry, ignore_errors=True)
    return removed


@contextlib.contextmanager
def exclusive_writer(root: Path) -> Iterator[None]:
    """One writer per collection across processes (server, CLI): an ``flock`` on a file."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".writer.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _builder_pid(name: str) -> int | None:
    parts = name.split("-")
    if len(parts) == 3 and parts[0] == "build" and parts[1].isdigit():
        return int(parts[1])
    return None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
