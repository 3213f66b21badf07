"""``ClassifierSlot``: the classifiers, loaded on first use."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

from models.classifiers.classifier_set import Classifiers
from models.classifiers.embedder_identity import EmbedderIdentity, embedder_identity


class ClassifierSlot:
    """Loads the classifiers once; until a set qualifies every reply gets a clear 503.

    The shipped heads normally qualify at once. They do not when the configured embedder
    is another model than the one they were trained on; then an operator trains a local
    set (``concierge models train-classifiers --data DIR``), possibly after the server
    started, so a failed load is retried on the next request instead of for ever.
    The embedder's identity (a digest of its files) is computed on the first call, in
    the caller's thread, not when the server is being built.
    """

    def __init__(
        self,
        directory: Path,
        embedding_model: str | None = None,
        *,
        shipped: Path | Literal["for-embedder"] | None = "for-embedder",
        data_dir: Path = Path("var"),
    ) -> None:
        self._directory = directory
        self._embedding_model = embedding_model
        self._data_dir = data_dir
        self._shipped = shipped
        self._identity: EmbedderIdentity | None = None
        self._loaded: Classifiers | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Classifiers:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                if self._identity is None and self._embedding_model is not None:
                    self._identity = embedder_identity(
                        self._embedding_model, data_dir=self._data_dir
                    )
                self._loaded = Classifiers.load(
                    self._directory, embedder=self._identity, shipped=self._shipped
                )
            return self._loaded
