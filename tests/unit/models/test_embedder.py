"""The embedder: an asymmetric model's prompts for documents and queries, and its threads."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from models.embedder import (
    ACCELERATOR_BATCH_SIZE,
    CPU_BATCH_SIZE,
    Embedder,
    EmbedderConfig,
    set_openmp_team,
)
from models.registry import ModelRegistry, ModelTask

PROMPTS = {"query": "task: search result | query: ", "document": "title: none | text: "}


def test_documents_and_queries_are_embedded_with_the_models_own_prompts(
    tmp_path: Path, embedder: Embedder
) -> None:
    """MiniLM with EmbeddingGemma's prompt table: the same text embeds differently as a
    query and as a KB document, and each equals the model fed the prompted text."""
    shipped = ModelRegistry().resolve("all-minilm-l6-v2", ModelTask.EMBED).source
    folder = tmp_path / "prompted-minilm"
    shutil.copytree(shipped.locate(), folder)  # type: ignore[union-attr]
    config_file = folder / "config_sentence_transformers.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    config_file.write_text(json.dumps({**config, "prompts": PROMPTS}))
    prompted = Embedder(EmbedderConfig(str(folder), device="cpu"))

    text = "How long do I have to return a kettle?"
    as_query = prompted.embed_sync([text], purpose="query")[0]
    as_document = prompted.embed_sync([text], purpose="document")[0]
    as_history = prompted.embed_sync([text], purpose="history")[0]
    plain = embedder.embed_sync
    assert np.allclose(as_query, plain([PROMPTS["query"] + text])[0], atol=1e-5)
    assert np.allclose(as_document, plain([PROMPTS["document"] + text])[0], atol=1e-5)
    assert np.allclose(as_history, as_document)  # stored history is searched for, like a KB
    assert not np.allclose(as_query, as_document)
    # a model without prompts (the shipped MiniLM) embeds both sides alike
    assert np.allclose(plain([text], purpose="query"), plain([text], purpose="document"))


def test_a_threads_openmp_team_is_its_own() -> None:
    """Narrowing a background thread leaves the others' team size alone (which
    ``torch.set_num_threads`` would not: it changes the default for every thread)."""
    before = torch.get_num_threads()

    def narrowed() -> int:
        set_openmp_team(1)
        return int(torch.get_num_threads())

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(narrowed).result() == 1
    assert torch.get_num_threads() == before
    with ThreadPoolExecutor(1) as pool:  # a new thread starts from the process default
        assert pool.submit(torch.get_num_threads).result() == before


def test_a_cpu_embeds_in_narrow_batches_unless_told_and_the_vectors_do_not_depend_on_it(
    embedder: Embedder,
) -> None:
    """On a CPU a wide batch pads every text to its longest (docs/benchmarks.md,
    "Embedding batch size"); the batch changes the time, never the vectors."""
    assert embedder.device == "cpu" and embedder.batch_size == CPU_BATCH_SIZE
    assert Embedder(EmbedderConfig("all-minilm-l6-v2", batch_size=3)).batch_size == 3
    on_gpu = Embedder(EmbedderConfig("all-minilm-l6-v2"))
    on_gpu.device = "cuda"  # what warm_up sets where CUDA serves; nothing is loaded here
    assert on_gpu.batch_size == ACCELERATOR_BATCH_SIZE
    texts = [("word " * n).strip() for n in (1, 200, 3, 90, 12, 40, 7, 150, 2, 60, 30)]
    wide = Embedder(EmbedderConfig("all-minilm-l6-v2", device="cpu", batch_size=64))
    assert np.allclose(wide.embed_sync(texts), embedder.embed_sync(texts), atol=1e-5)
