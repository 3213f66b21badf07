"""The knowledge base: documents -> chunks -> published index versions -> hybrid search.

On SQLite each tenant has its own index under ``<data_dir>/retrieval/<tenant>/kb``:
tenants are separated by construction, not by a filter. Searches read an immutable
snapshot of a published version that one reference assignment replaces, so they never see
a half-swapped index and never wait for a reindex; chunks of deleted and edited documents
are excluded from it at once (``served.py``). On PostgreSQL the same index is rows every
replica shares, published by one transaction (``sql_index.py``).

``KnowledgeBase`` (``knowledge_base.py``) is the entry point; behind it:

* ``config.py``   search modes, fusion methods, ``RetrievalConfig``
* ``records.py``  chunk records, loaded versions, the served snapshot
* ``versions.py`` a version on disk: atomic publish, loading and verifying
* ``served.py``   which version each tenant serves: refresh, refusal of corrupt ones, staleness
* ``sql_index.py`` the shared index on PostgreSQL: chunks, BM25 postings, pgvector vectors
  (its tables: ``sql_tables.py``)
* ``search.py``   hybrid search over an ``IndexView``: dense + BM25 candidates, their fusion
* ``reindex.py``  full and incremental builds through an ``IndexStorage``, cancellation
"""

from retrieval.knowledge.config import Fusion, RetrievalConfig, SearchMode
from retrieval.knowledge.knowledge_base import KnowledgeBase
from retrieval.knowledge.records import (
    COLLECTION,
    ChunkRecord,
    KbVersion,
    ServedIndex,
    chunk_id_for,
)
from retrieval.knowledge.reindex import (
    EMBED_BATCH_DOCUMENTS,
    CancelCheck,
    Progress,
    ReindexMode,
    ReindexReport,
)
from retrieval.knowledge.search import SearchHit
from retrieval.knowledge.versions import CHUNKS_FILE, DOCUMENTS_FILE

__all__ = [
    "CHUNKS_FILE",
    "COLLECTION",
    "DOCUMENTS_FILE",
    "EMBED_BATCH_DOCUMENTS",
    "CancelCheck",
    "ChunkRecord",
    "Fusion",
    "KbVersion",
    "KnowledgeBase",
    "Progress",
    "ReindexMode",
    "ReindexReport",
    "RetrievalConfig",
    "SearchHit",
    "SearchMode",
    "ServedIndex",
    "chunk_id_for",
]
