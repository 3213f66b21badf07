"""A KB version on disk: writing one and publishing it atomically, loading and verifying one.

A version folder holds the FAISS vectors and BM25 index (``retrieval/index.py``,
``retrieval/lexical.py``) plus the chunk records (``chunks.jsonl``, row-aligned with
the vectors) and the documents they came from (``documents.json``). Every file is
listed in the manifest, so a damaged one is refused with ``IndexCorruptError``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import IndexCorruptError
from retrieval.index import IndexVersionWriter, VectorIndex, read_manifest, version_name
from retrieval.knowledge.records import ChunkRecord, KbVersion
from retrieval.lexical import LexicalIndex

CHUNKS_FILE = "chunks.jsonl"
DOCUMENTS_FILE = "documents.json"


def publish_version(
    root: Path,
    vectors: VectorIndex,
    chunks: list[ChunkRecord],
    documents: dict[str, dict[str, Any]],
    embedding_model: str,
    extra: dict[str, Any],
) -> int:
    """Write a version under the tenant's ``root`` and publish it; its number.

    ``chunks`` are row-aligned with ``vectors``; the BM25 index is built from them here.
    """
    lexical = LexicalIndex.build([c.lexical_text() for c in chunks])
    with IndexVersionWriter(root) as writer:
        files = vectors.write(writer.folder) + lexical.write(writer.folder)
        with (writer.folder / CHUNKS_FILE).open("w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(json.dumps(chunk.__dict__, ensure_ascii=False) + "\n")
        (writer.folder / DOCUMENTS_FILE).write_text(json.dumps(documents))
        number = writer.publish(
            files=[*files, CHUNKS_FILE, DOCUMENTS_FILE],
            embedding_model=embedding_model,
            dimension=vectors.dimension,
            counts={"documents": len(documents), "chunks": len(chunks)},
            layout=vectors.layout,
            trained_on=vectors.trained_on,
            extra=extra,
        )
    return number


def load_version(root: Path, number: int) -> KbVersion:
    """Load published version ``number``; ``IndexCorruptError`` if it does not verify."""
    folder = root / "versions" / version_name(number)
    manifest = read_manifest(folder)
    try:
        vectors = VectorIndex.read(folder, manifest.layout, manifest.trained_on)
        chunks = [
            ChunkRecord(**json.loads(line))
            for line in (folder / CHUNKS_FILE).read_text(encoding="utf-8").splitlines()
        ]
        documents = json.loads((folder / DOCUMENTS_FILE).read_text())
        lexical = LexicalIndex.read(folder, len(chunks))
    except IndexCorruptError:
        raise
    except Exception as exc:  # verified files that still do not parse: refuse them
        raise IndexCorruptError(f"{folder.name}: cannot load: {exc!r}") from exc
    if len(chunks) != vectors.size or manifest.counts.get("chunks") != len(chunks):
        raise IndexCorruptError(f"{folder.name}: chunk and vector counts disagree")
    return KbVersion(number, manifest, vectors, lexical, chunks, documents)
