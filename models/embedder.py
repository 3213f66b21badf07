"""Sentence embeddings: one model per process, batched, normalized, off the event loop.

Every vector Concierge stores or searches comes from here, so the KB, customer history
and ``/v1/embeddings`` agree on one model and one normalization (unit length, so inner
product is cosine similarity). Loading is separate from construction (``warm_up``) so
building the app stays cheap and the model loads once in the lifespan.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core import metrics
from core.errors import EngineUnavailableError
from core.hardware import cpu_computes_bf16
from models.prepare import model_folder
from models.registry import ModelRegistry, ModelSpec, ModelTask

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
DeviceChoice = Literal["auto", "cpu", "cuda"]

DOCUMENT_PURPOSES = frozenset({"document", "history", "catalog", "sentence"})
"""Texts that are searched for. An asymmetric model (EmbeddingGemma) embeds them with its
"document" prompt and everything else (messages, questions, classifier inputs) with its
"query" prompt; a symmetric model (MiniLM) has no prompts and embeds both alike."""


@dataclass(frozen=True)
class EmbedderConfig:
    """What to load and how to run it."""

    model: str
    device: DeviceChoice = "auto"
    batch_size: int | None = None
    """Texts per forward pass; None: ``CPU_BATCH_SIZE`` on a CPU, ``ACCELERATOR_BATCH_SIZE``
    on a GPU."""
    workers: int = 1  # torch already uses every core for one batch; more threads only contend
    threads: int | None = None
    """torch intra-op threads of this process (None: torch's default, one per core)."""
    data_dir: Path = Path("var")
    """Where models assembled at preparation time live (``<data_dir>/models/<name>``)."""
    one_wide_thread: bool = False
    """The server's setting: only the executor's thread (the request path) runs a bfloat16
    model on every core; any other thread that embeds (reindex jobs, history writes,
    loading) runs it on one. See ``set_openmp_team`` for why."""


CPU_BATCH_SIZE = 8
"""Why so small: sentence-transformers sorts a call's texts by length and pads each batch
to its longest, and on a CPU every padded token costs as much as a real one (attention
more). Measured on two cores, a full reindex of the demo and telco KBs took EmbeddingGemma
96.2 s in batches of 64 and 24.4 s in batches of 8 (3.95x), MiniLM 15.6 and 6.2 s (2.49x);
437 short support messages took the same time at every size, and every suite found the
same articles (``bench/embedding_batch.py``, docs/benchmarks.md)."""
ACCELERATOR_BATCH_SIZE = 64
"""A GPU runs a batch's padded tokens in parallel; its throughput wants wide batches."""


class Embedder:
    """A sentence-transformers model behind a bounded executor.

    ``embed`` (async) is for the request path; ``embed_sync`` is for code that already
    runs in a worker thread (reindex jobs, the CLI). Both return float32 unit vectors.
    """

    def __init__(
        self,
        config: EmbedderConfig,
        registry: ModelRegistry | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        """``executor``: another embedder's, to share its thread (a tenant's tuned model
        runs on the base model's request thread); that embedder shuts it down."""
        self.config = config
        self._registry = registry or ModelRegistry()
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=config.workers,
            thread_name_prefix="concierge-embed",
            initializer=_mark_wide_thread,
        )
        self.model_name = self._registry.resolve(config.model, ModelTask.EMBED).name
        self.device = "cpu"
        self.dtype = "float32"
        self.dimension = 0
        self.max_tokens = 0
        self._prompts: dict[str, str] = {}
        self._cores_busy: Callable[[], bool] = lambda: False
        self._team_size = config.threads or _usable_cores()

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The bounded executor embedding runs in; stages that embed and then do more
        CPU work with the vectors (the reply analysis) run there as one task."""
        return self._executor

    @property
    def batch_size(self) -> int:
        """Texts per forward pass: the configured size, else the device's default."""
        if self.config.batch_size is not None:
            return self.config.batch_size
        return CPU_BATCH_SIZE if self.device == "cpu" else ACCELERATOR_BATCH_SIZE

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
            self._choose_openmp_team()  # before loading computes anything
            started = time.perf_counter()
            model = SentenceTransformer(
                path, device=self.device, model_kwargs={"dtype": getattr(torch, self.dtype)}
            )
            self.dimension = int(model.get_embedding_dimension())
            self.max_tokens = int(model.max_seq_length)
            self._prompts = dict(getattr(model, "prompts", None) or {})
            packed = 0
            if self.device == "cpu" and self.dtype == "bfloat16":
                from models.prepacked import prepack_linear_layers

                packed = prepack_linear_layers(model, lambda: self._encode(model, [_PROBE]))
            self._model = model
            log.info(
                "embedder %s loaded on %s (%s%s) in %.1f s (%d dimensions)",
                self.model_name,
                self.device,
                self.dtype,
                f", {packed} linear layers packed" if packed else "",
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
        self._choose_openmp_team()
        started = time.perf_counter()
        side = "document" if purpose in DOCUMENT_PURPOSES else "query"
        vectors = self._encode(self._model, texts, side)
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

    def _encode(self, model: Any, texts: Sequence[str], side: str = "query") -> Vectors:
        vectors = model.encode(
            list(texts),
            prompt_name=side if side in self._prompts else None,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        if vectors.dtype != np.float32:  # bf16 models: the stores and FAISS take float32
            vectors = vectors.astype(np.float32)
        return np.asarray(vectors)

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
        if self._owns_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def share_cores_while(self, busy: Callable[[], bool]) -> None:
        """While ``busy()`` (the in-process engine is generating), the request thread
        runs on one core too, leaving the other to the engine.

        Why: a team of two OpenMP threads on two cores meets at a barrier after each of a
        query's thousand small products; when a third busy thread (the engine's) takes
        one member's core, the other waits out the scheduler's time slice at every
        barrier. Measured on two cores with EmbeddingGemma at four concurrent replies:
        analysis 197 ms p50 and 438 p95 on two threads, 129 and 150 on one; alone, two
        threads take 51 ms and one 63 (docs/benchmarks.md, "Which embedder serves").
        """
        self._cores_busy = busy

    def _choose_openmp_team(self) -> None:
        # Measured to pay for bf16 models on CPU (EmbeddingGemma's analysis 91 -> 53 ms);
        # MiniLM in float32 gained nothing at the median (17.4 -> 17.2 ms) and its p95 grew
        # from 21 to 136 ms, so float32 models keep torch's defaults.
        if not (self.config.one_wide_thread and self.device == "cpu" and self.dtype == "bfloat16"):
            return
        wide = getattr(_THREAD_ROLE, "wide", False) and not self._cores_busy()
        set_openmp_team(self._team_size if wide else 1)


def _usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


_PROBE = "Where is my parcel? I ordered a kettle last week."
"""A fixed text whose vector must not change when the model's layers are swapped."""

_THREAD_ROLE = threading.local()


def _mark_wide_thread() -> None:
    _THREAD_ROLE.wide = True


def set_openmp_team(threads: int) -> None:
    """Run the calling thread's next torch work on ``threads`` OpenMP threads.

    Why it matters: torch's OpenMP runtime (libgomp) gives every thread that starts
    parallel work a team of workers of its own, and once a process holds more workers
    than it has cores, libgomp stops letting them spin between parallel regions and puts
    them to sleep instead. A query embedding is a thousand or more small parallel regions,
    each then paying a wake-up: on two cores EmbeddingGemma's query took 72 ms on a second
    thread against 50 ms on the first. A thread on one OpenMP thread starts no team, so the
    request thread's team stays the only one. ``torch.set_num_threads`` cannot do this: it
    also sets the process-wide default every new thread starts from; libgomp's own
    ``omp_set_num_threads`` sets only the calling thread's. A no-op where torch ships no
    libgomp (another OpenMP runtime, or none).
    """
    if getattr(_THREAD_ROLE, "team", None) == threads:
        return
    set_team_size = _torch_openmp_setter()
    if set_team_size is None:
        return
    import torch

    torch.get_num_threads()  # torch sets a new thread's team size on first use: do it first
    set_team_size(threads)
    _THREAD_ROLE.team = threads


@functools.cache
def _torch_openmp_setter() -> Any:
    """libgomp's ``omp_set_num_threads`` as torch loaded it, or None."""
    import torch

    library = Path(torch.__file__).parent / "lib" / "libgomp.so.1"
    if not library.exists():
        log.info("torch ships no libgomp here; embedding threads keep torch's defaults")
        return None
    return ctypes.CDLL(str(library)).omp_set_num_threads


def _pick_dtype(spec: ModelSpec, device: str) -> str:
    """bfloat16 for models that declare it, where the hardware computes it natively."""
    if not spec.native_bf16:
        return "float32"
    if device == "cuda":
        return "bfloat16"
    return "bfloat16" if cpu_computes_bf16() else "float32"


def _pick_device(choice: DeviceChoice) -> str:
    if choice != "auto":
        return choice
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch comes with sentence-transformers
        return "cpu"
