"""Which embedder serves a tenant's KB: its own tuned one (``models/tuning.py``) or the base.

Only the KB of a tenant with a tuned embedder uses it: its documents at reindex and its
queries at search. Everything else (the classifiers, customer history, the catalog,
``/v1/embeddings``) keeps the base embedder, so one tenant's tuning changes nothing for
another. A tuned model loads on its tenant's first use, not at start.

A query must be embedded by the model that embedded the documents it is compared with, so
searches ask for the model a KB version records (``named``), not for the newest one: a
model published a minute ago serves only once the reindex that follows it is published.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

from core.errors import ModelNotFoundError
from models.embedder import Embedder
from models.tuning import TUNED_PREFIX, newest_tuned_embedder, tenant_models_dir

log = logging.getLogger(__name__)


class TenantEmbedders:
    """The base embedder and, per tenant, the tuned one it last asked for (loaded lazily).

    ``data_dir`` None: no tuned models at all (benchmarks and tests of the base path).
    """

    def __init__(self, base: Embedder, data_dir: Path | None = None) -> None:
        self.base = base
        self._data_dir = data_dir
        self._tuned: dict[tuple[str, str], Embedder] = {}
        self._lock = threading.Lock()

    def for_documents(self, tenant: str) -> Embedder:
        """The embedder a reindex of ``tenant`` embeds its documents with: its newest
        tuned one, else the base."""
        if self._data_dir is None:
            return self.base
        newest = newest_tuned_embedder(self._data_dir, tenant)
        return self.base if newest is None else self.named(tenant, newest.name)

    def named(self, tenant: str, model_name: str) -> Embedder:
        """The embedder called ``model_name`` for ``tenant``: one of its tuned models, or
        the base for any other name (a version built before tuning, or by the base).

        A version built by a tuned model that is gone from disk cannot be searched
        meaningfully: ``ModelNotFoundError`` says to reindex.
        """
        if self._data_dir is None or not model_name.startswith(TUNED_PREFIX):
            return self.base
        with self._lock:
            loaded = self._tuned.get((tenant, model_name))
            if loaded is not None:
                return loaded
            folder = tenant_models_dir(self._data_dir, tenant) / model_name
            if not folder.is_dir():
                raise ModelNotFoundError(
                    f"tenant {tenant}'s KB was built with the tuned embedder {model_name}, "
                    f"which is no longer in {folder.parent}; run `concierge kb reindex "
                    f"--tenant {tenant}`"
                )
            for key in [k for k in self._tuned if k[0] == tenant]:
                if not (folder.parent / key[1]).is_dir():  # removed by a newer tuning
                    del self._tuned[key]
            tuned = Embedder(
                replace(self.base.config, model=str(folder)), executor=self.base.executor
            )
            self._tuned[(tenant, model_name)] = tuned
        log.info("tenant %s: using its tuned embedder %s", tenant, model_name)
        return tuned

    def shutdown(self) -> None:
        with self._lock:
            for embedder in self._tuned.values():
                embedder.shutdown()
            self._tuned.clear()
