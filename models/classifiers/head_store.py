"""Trained heads on disk: versioned folders of ``.npz`` arrays plus a verified manifest.

The default heads ship with the code, one set per embedding model the registry names, in
``models/classifiers/default_heads/<model>/`` (``shipped_heads_dir``: ``{manifest.json,
sentiment.npz, intent.npz}``, package data, written by ``write_flat``), so a fresh clone or
a wheel serves without any training data, with either embedder. Locally trained sets live
under ``<data_dir>/classifiers/``::

    default/versions/v000001/{manifest.json, sentiment.npz, intent.npz}
    tenants/<tenant>/versions/v000001/{manifest.json, intent.npz}

A version is built in ``staging/``, every file fsynced and listed in ``manifest.json``
with its SHA-256 and size, then published by one atomic rename; readers take the
newest version, so they see a whole head set or the previous one, never half of one.
Arrays are read with ``allow_pickle=False``: a stored model is data, never code.
``read_version`` checks every file against the manifest before loading any of it, and a
truncated or altered file is refused with ``ClassifiersUnavailableError`` naming it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConciergeError
from models.classifiers.linear_head import LinearHead
from models.prepare import sha256_file
from models.registry import DEFAULT_EMBEDDING_MODEL

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
VERSION_PREFIX = "v"
KEEP_VERSIONS = 2
TRAIN_COMMAND = "concierge models train-classifiers"
SHIP_COMMAND = "make classifier-heads DATA=<folder>"
SHIPPED_HEADS_ROOT = Path(__file__).resolve().parent / "default_heads"


def shipped_heads_dir(embedding_model: str) -> Path:
    """The shipped head set for ``embedding_model`` (a registry name); it may not exist
    (a folder or hub id: train a local set)."""
    return SHIPPED_HEADS_ROOT / Path(embedding_model).name


SHIPPED_HEADS_DIR = shipped_heads_dir(DEFAULT_EMBEDDING_MODEL)
"""The set that serves the default embedder."""


class ClassifiersUnavailableError(ConciergeError):
    """No trained classifiers on disk, or they fail verification; train them first."""

    status_code = 503
    error_type = "classifiers_unavailable"


def classifiers_dir(data_dir: Path) -> Path:
    """Where the classifiers of a data directory live."""
    return Path(data_dir) / "classifiers"


def default_root(directory: Path) -> Path:
    return directory / "default"


def tenant_root(directory: Path, tenant: str) -> Path:
    return directory / "tenants" / tenant


@dataclass(frozen=True)
class StoredHeads:
    """One published version read back: its heads and its manifest."""

    folder: Path
    version: int
    heads: dict[str, LinearHead]
    manifest: dict[str, Any]


@dataclass(frozen=True)
class HeadSet:
    """Heads to write and what their manifest says about them: ``head_info`` per head
    (metrics, parameters, data, embedder), ``extra`` for the whole set (sources, recipe,
    embedding model, tenant)."""

    heads: dict[str, LinearHead]
    head_info: dict[str, dict[str, Any]]
    extra: dict[str, Any]


@dataclass(frozen=True)
class TenantIntents:
    """A tenant's published intent head as its manifest describes it (what the admin API
    shows): the version, the intents, how many examples, the cross-validated metrics."""

    tenant: str
    version: int
    folder: Path
    intents: list[str]
    examples: int
    metrics: dict[str, float]
    trained_at: str | None

    @classmethod
    def from_manifest(cls, folder: Path, manifest: dict[str, Any]) -> TenantIntents:
        head = manifest.get("heads", {}).get("intent", {})
        return cls(
            tenant=str(manifest.get("tenant", folder.parent.parent.name)),
            version=int(folder.name[1:]) if folder.name[1:].isdigit() else 0,
            folder=folder,
            intents=[str(label) for label in head.get("labels", [])],
            examples=int(head.get("examples", 0)),
            metrics={str(k): float(v) for k, v in head.get("metrics", {}).items()},
            trained_at=manifest.get("trained_at"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "version": self.version,
            "intents": self.intents,
            "examples": self.examples,
            "metrics": self.metrics,
            "trained_at": self.trained_at,
        }


def published_versions(root: Path) -> list[int]:
    """Version numbers under ``root/versions``, ascending."""
    folder = root / "versions"
    if not folder.is_dir():
        return []
    return sorted(
        int(entry.name[1:])
        for entry in folder.iterdir()
        if entry.name.startswith(VERSION_PREFIX) and entry.name[1:].isdigit() and entry.is_dir()
    )


def newest_version_folder(root: Path) -> Path | None:
    versions = published_versions(root)
    return root / "versions" / f"{VERSION_PREFIX}{versions[-1]:06d}" if versions else None


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a version folder, after checking every file it lists."""

    def refuse(problem: str) -> ClassifiersUnavailableError:
        return ClassifiersUnavailableError(
            f"classifiers at {folder}: {problem}; run `{TRAIN_COMMAND} --force` to retrain"
        )

    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise refuse(f"{MANIFEST} is missing") from exc
    except (OSError, ValueError) as exc:
        raise refuse(f"{MANIFEST} is unreadable ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise refuse(f"{MANIFEST} has an unknown format")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise refuse(f"{MANIFEST} lists no files")
    for name, meta in files.items():
        path = folder / name
        if not path.is_file():
            raise refuse(f"{name} is missing")
        size = path.stat().st_size
        if size != meta.get("bytes"):
            raise refuse(
                f"{name} is {size} bytes, the manifest says {meta.get('bytes')} (truncated?)"
            )
        if sha256_file(path) != meta.get("sha256"):
            raise refuse(f"{name} fails its SHA-256 check (altered or corrupt)")
    return manifest


def read_version(folder: Path) -> StoredHeads:
    """Verify a version folder and load every head it holds."""
    manifest = read_manifest(folder)
    heads: dict[str, LinearHead] = {}
    try:
        for name, meta in manifest["heads"].items():
            with np.load(folder / meta["file"], allow_pickle=False) as arrays:
                heads[name] = LinearHead.from_arrays(meta["labels"], arrays)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ClassifiersUnavailableError(
            f"classifiers at {folder}: malformed head ({exc}); run `{TRAIN_COMMAND} --force`"
        ) from exc
    version = int(folder.name[1:]) if folder.name[1:].isdigit() else 0  # 0: the shipped set
    return StoredHeads(folder, version, heads, manifest)


def write_version(root: Path, heads: HeadSet) -> Path:
    """Publish ``heads`` as the next version under ``root``; return the new folder.

    Old versions beyond ``KEEP_VERSIONS`` are removed afterwards.
    """
    staging = root / "staging" / f"build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        _write_set(staging, heads)
        versions = root / "versions"
        versions.mkdir(exist_ok=True)
        with _one_writer(root):
            existing = published_versions(root)
            target = versions / f"{VERSION_PREFIX}{(existing[-1] if existing else 0) + 1:06d}"
            os.rename(staging, target)  # atomic: readers see the old version or the whole new one
            _fsync_dir(versions)
            for number in published_versions(root)[:-KEEP_VERSIONS]:
                shutil.rmtree(versions / f"{VERSION_PREFIX}{number:06d}", ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def remove_versions(root: Path) -> bool:
    """Remove every version under ``root`` (a tenant's heads); False when there were none.

    ``root`` is renamed aside first, in one step, so a reader sees all versions or none;
    the renamed folder is then deleted. A training publishing at that moment fails or
    lands in the renamed folder and is deleted with it: the removal wins.
    """
    if not root.is_dir():
        return False
    had_versions = bool(published_versions(root))
    retired = root.parent / f".{root.name}-removed-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with _one_writer(root):
        os.rename(root, retired)
    _fsync_dir(root.parent)
    shutil.rmtree(retired, ignore_errors=True)
    return had_versions


def write_flat(folder: Path, heads: HeadSet) -> Path:
    """Write ``heads`` as the one set in ``folder`` (the shipped layout), replacing it.

    No version history: the history of a shipped set is the repository's. The new set is
    built beside ``folder`` and swapped in by two renames, so an interrupted run leaves
    the old set or the new one, and never a mix that fails its checksums.
    """
    folder = folder.resolve()
    staging = folder.parent / f".{folder.name}-build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    retired = staging.with_name(staging.name.replace("-build-", "-old-"))
    staging.mkdir(parents=True)
    try:
        _write_set(staging, heads)
        if folder.exists():
            os.rename(folder, retired)
        os.rename(staging, folder)
        _fsync_dir(folder.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return folder


def _write_set(folder: Path, heads: HeadSet) -> None:
    """Every head as ``<name>.npz`` plus the manifest listing them, all fsynced."""
    listed: dict[str, dict[str, Any]] = {}
    described: dict[str, dict[str, Any]] = {}
    for name, head in heads.heads.items():
        file_name = f"{name}.npz"
        path = folder / file_name
        with path.open("wb") as handle:
            arrays: dict[str, Any] = head.arrays()
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        listed[file_name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        described[name] = {"file": file_name, "labels": list(head.labels), **heads.head_info[name]}
    manifest = {
        "format": MANIFEST_FORMAT,
        "created_at": time.time(),
        "files": listed,
        "heads": described,
        **heads.extra,
    }
    manifest_path = folder / MANIFEST
    with manifest_path.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(folder)


@contextlib.contextmanager
def _one_writer(root: Path) -> Iterator[None]:
    """Two trainings publishing at once (CLI and server) take turns: an ``flock``."""
    with (root / ".writer.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
