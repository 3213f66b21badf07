"""``Retrieval``: the process-wide retrieval objects, built once and handed to the services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from core.crypto import Keyring
from models.embedder import Embedder
from retrieval.history import CustomerHistory
from retrieval.jobs import ReindexJobs
from retrieval.knowledge import KnowledgeBase


@dataclass
class Retrieval:
    """The process-wide retrieval objects, built once in the lifespan."""

    database: Engine
    embedder: Embedder
    knowledge: KnowledgeBase
    history: CustomerHistory
    jobs: ReindexJobs
    keyring: Keyring
    """Encrypts stored customer text (``core/crypto.py``)."""
