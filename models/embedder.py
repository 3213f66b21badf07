"""Sentence embeddings: one model per process, batched, normalized, off the event loop.

Every vector Concierge stores or searches comes from here, so the KB, customer history
and ``/v1/embeddings`` agree on one model and one normalization (unit length, so inner
product is cosine similarity). Loading is separate from construction (``warm_up``) so
building the app stays cheap and the model loads once in the lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core import metrics
from core.errors import EngineUnavailableError
from models.prepare import model_folder
from models.registry import ModelRegistry, ModelSpec, ModelTask

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
DeviceChoice = Literal["auto", "cpu", "cuda"]

DOCUMENT_PURPOSES = frozenset({"document", "history", "catalog"})
"""Texts that are searched for. An asymmetric model (EmbeddingGemma) embeds them with its
"document" prompt and everything else (messages, questions, classifier inputs) with its
"query" prompt; a symmetric model (MiniLM) has no prompts and embeds both alike."""


@dataclass(frozen=True)
class EmbedderConfig:
    """What to load and how to run it."""

    model: str
    device: DeviceChoice = "auto"
    batch_size: int = 64
    workers: int = 1  # torch already uses every core for one batch; more threads only contend
    threads: int | None = None
    """torch intra-op threads of this process (None: torch's default, one per core)."""
    data_dir: Path = Path("var")
    """Where models assembled at preparation time live (``<data_dir>/models/<name>``)."""


class Embedder:
    """A sentence-transformers model behind a bounded executor.

    ``embed`` (async) is for the request path; ``embed_sync`` is for code that already
    runs in a worker thread (reindex jobs, the CLI). Both return float32 unit vectors.
    """

    def __init__(self, config: EmbedderConfig, registry: ModelRegistry | None = None) -> None:
        self.config = config
        self._registry = registry or ModelRegistry()
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=config.workers, thread_name_prefix="concierge-embed"
        )
        self.model_name = self._registry.resolve(config.model, ModelTask.EMBED).name
        self.device = "cpu"
        self.dtype = "float32"
        self.dimension = 0
        self.max_tokens = 0
        self._prompts: dict[str, str] = {}

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The bounded executor embedding runs in; stages that embed and then do more
        CPU work with the vectors (the reply analysis) run there as one task."""
        return self._executor

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def warm_up(self) -> None:
        """Load the model (idempotent, thread-safe); the first call takes a few seconds."""
        with self._load_lock:
            if self._model is not None:
                return
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # keep "Loading weights" out of logs

            import torch

            spec = self._registry.resolve(self.config.model, ModelTask.EMBED)
            path = self.load_path()
            if self.config.threads is not None:
                torch.set_num_threads(self.config.threads)
            self.device = _pick_device(self.config.device)
            self.dtype = _pick_dtype(spec, self.device)
            started = time.perf_counter()
            model = SentenceTransformer(
                path, device=self.device, model_kwargs={"dtype": getattr(torch, self.dtype)}
            )
            self.dimension = int(model.get_embedding_dimension())
            self.max_tokens = int(model.max_seq_length)
            self._prompts = dict(getattr(model, "prompts", None) or {})
            self._model = model
            log.info(
                "embedder %s loaded on %s (%s) in %.1f s (%d dimensions)",
                self.model_name,
                self.device,
                self.dtype,
                time.perf_counter() - started,
                self.dimension,
            )

    def load_path(self) -> str:
        """Where the weights load from: a folder, or a hub id. Fine-tuning
        (``models/tuning.py``) starts a trainable copy from the same place."""
        spec = self._registry.resolve(self.config.model, ModelTask.EMBED)
        folder = model_folder(spec, self.config.data_dir)
        return str(folder) if folder else str(getattr(spec.source, "repo_id", spec.name))

    def embed_sync(self, texts: Sequence[str], *, purpose: str = "query") -> Vectors:
        """Embed ``texts`` in the calling thread; shape ``(len(texts), dimension)``."""
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        started = time.perf_counter()
        side = "document" if purpose in DOCUMENT_PURPOSES else "query"
        vectors = self._model.encode(
            list(texts),
            prompt_name=side if side in self._prompts else None,
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        if vectors.dtype != np.float32:  # bf16 models: the stores and FAISS take float32
            vectors = vectors.astype(np.float32)
        metrics.EMBEDDING_DURATION.labels(purpose=purpose).observe(time.perf_counter() - started)
        metrics.EMBEDDED_TEXTS.labels(purpose=purpose).inc(len(texts))
        return np.ascontiguousarray(vectors, dtype=np.float32)

    async def embed(self, texts: Sequence[str], *, purpose: str = "query") -> Vectors:
        """Embed without blocking the event loop."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor, lambda: self.embed_sync(texts, purpose=purpose)
            )
        except RuntimeError as exc:  # executor shut down during server stop
            raise EngineUnavailableError(f"embedder unavailable: {exc}") from exc

    def count_tokens_sync(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model sees them (special tokens included, no truncation)."""
        self.warm_up()
        tokenizer = self._model.tokenizer
        encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    async def count_tokens(self, texts: Sequence[str]) -> list[int]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.count_tokens_sync, texts)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _pick_dtype(spec: ModelSpec, device: str) -> str:
    """bfloat16 for models that declare it, where the hardware computes it natively."""
    if not spec.native_bf16:
        return "float32"
    if device == "cuda":
        return "bfloat16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: stay on the safe side
        return "float32"
    return "bfloat16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "float32"


def _pick_device(choice: DeviceChoice) -> str:
    if choice != "auto":
        return choice
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch comes with sentence-transformers
        return "cpu"
