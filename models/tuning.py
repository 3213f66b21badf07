"""Fine-tuning a sentence embedder on one tenant's (question, article) pairs, and where
tuned embedders live.

A general embedder places "Do I get Sparkles on sale items?" nowhere near the article on
the shop's loyalty points: it has never seen the tenant's words. Pairs of the questions
customers ask and the articles that answer them teach it, with the in-batch negatives of
``MultipleNegativesRankingLoss``: every other article in a batch is a wrong answer.

The training loop is written out here rather than run by sentence-transformers' Trainer:
the Trainer needs the ``datasets`` package, and a loop of a few lines lets a batch never
hold the same article twice (an article that is the answer for one question and a "wrong
answer" for another in the same batch would teach the model nothing but noise), shows one
progress bar and logs what it does.

A tuned model is published under ``<data_dir>/models/tenants/<tenant>/embedder-<UTC time>/``
by one rename of a complete folder, with the preparation manifest (every file's size and
checksum, the base model as its source) and ``tuning.json`` (the pairs, the split, the
figures before and after). Deciding *whether* to publish is the caller's
(``retrieval/knowledge/tuning.py``): it alone knows the tenant's articles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.ids import check_tenant
from models.prepare import MANIFEST_NAME, models_dir, write_manifest

log = logging.getLogger(__name__)

TUNED_PREFIX = "embedder-"
TUNING_FILE = "tuning.json"
KEEP_TUNED = 2
"""Tuned models kept per tenant: the newest, and the one before it, which the served KB
version may still be built with until the reindex that follows publishing is done."""


@dataclass(frozen=True)
class TrainingOptions:
    """How long and how hard to train. The defaults take all-MiniLM-L6-v2 from 0.71 to 0.99
    held-out recall@1 on 1,080 Bitext pairs in about 4 minutes on two CPU cores; one epoch
    at 2e-5 reached 0.92 (``bench/tune_embedder.py``, docs/benchmarks.md)."""

    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_seq_length: int = 128
    """Tokens per text while training (an article longer than that is seen by its start);
    the saved model keeps its own limit for embedding."""
    warmup_ratio: float = 0.1
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tenant_models_dir(data_dir: Path, tenant: str) -> Path:
    """The folder of one tenant's tuned models."""
    return models_dir(data_dir) / "tenants" / check_tenant(tenant)


def tuned_embedders(data_dir: Path, tenant: str) -> list[Path]:
    """The tenant's published tuned embedders, oldest first (names sort by time)."""
    folder = tenant_models_dir(data_dir, tenant)
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.name.startswith(TUNED_PREFIX) and (path / MANIFEST_NAME).is_file()
    )


def newest_tuned_embedder(data_dir: Path, tenant: str) -> Path | None:
    """The tuned embedder a reindex of the tenant uses, or None (the base one)."""
    published = tuned_embedders(data_dir, tenant)
    return published[-1] if published else None


def unique_document_batches(
    documents: Sequence[str], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Indices of ``documents`` in shuffled batches of at most ``batch_size`` in which no
    document appears twice; a pair whose document is already in the batch waits for a
    later one. A tenant with fewer articles than ``batch_size`` gets batches of one
    question per article."""
    pending = list(range(len(documents)))
    rng.shuffle(pending)
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        seen: set[str] = set()
        waiting: list[int] = []
        for index in pending:
            if len(batch) < batch_size and documents[index] not in seen:
                batch.append(index)
                seen.add(documents[index])
            else:
                waiting.append(index)
        batches.append(batch)
        pending = waiting
    return batches


def fine_tune(
    base_path: str,
    pairs: Sequence[tuple[str, str]],
    options: TrainingOptions,
    *,
    device: str = "cpu",
    progress_bar: bool = True,
) -> Any:
    """A fresh float32 copy of the model at ``base_path`` trained on (question, document)
    pairs with in-batch negatives; returns the ``SentenceTransformer`` (not saved).

    An asymmetric model's "query" prompt goes before each question and its "document"
    prompt before each document, as the embedder does when it embeds them.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import batch_to_device
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if not pairs:
        raise ValueError("no pairs to train on")
    rng = random.Random(options.seed)
    torch.manual_seed(options.seed)
    model = SentenceTransformer(base_path, device=device, model_kwargs={"dtype": torch.float32})
    prompts = dict(getattr(model, "prompts", None) or {})
    query_prompt, document_prompt = prompts.get("query"), prompts.get("document")
    saved_max_tokens = model.max_seq_length
    model.max_seq_length = min(saved_max_tokens, options.max_seq_length)
    loss = MultipleNegativesRankingLoss(model)
    questions = [question for question, _ in pairs]
    documents = [document for _, document in pairs]
    plans = [
        unique_document_batches(documents, options.batch_size, rng) for _ in range(options.epochs)
    ]
    steps = sum(len(plan) for plan in plans)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(options.warmup_ratio * steps), steps)
    log.info(
        "training on %d pairs (%d distinct documents): %d epochs, %d steps of up to %d pairs, "
        "learning rate %g, %d tokens",
        len(pairs),
        len(set(documents)),
        options.epochs,
        steps,
        options.batch_size,
        options.learning_rate,
        model.max_seq_length,
    )
    started = time.perf_counter()
    model.train()
    no_labels = torch.empty(0)
    losses: list[float] = []
    with tqdm(total=steps, desc="training", unit="step", disable=not progress_bar) as bar:
        for epoch, plan in enumerate(plans, start=1):
            for batch in plan:
                features = [
                    batch_to_device(
                        model.preprocess([questions[i] for i in batch], prompt=query_prompt),
                        model.device,
                    ),
                    batch_to_device(
                        model.preprocess([documents[i] for i in batch], prompt=document_prompt),
                        model.device,
                    ),
                ]
                value = loss(features, no_labels)
                value.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                losses.append(float(value.detach()))
                bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.3f}")
                bar.update()
            recent = losses[-len(plan) :]
            log.info("epoch %d: mean loss %.4f", epoch, sum(recent) / len(recent))
    model.eval()
    model.max_seq_length = saved_max_tokens
    log.info("trained in %.1f s", time.perf_counter() - started)
    return model


def folder_digest(location: str) -> str | None:
    """SHA-256 over a model folder's file names and contents (None for a hub id): which
    exact base a tuned model came from."""
    folder = Path(location)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\x00")
        with path.open("rb") as handle:
            while chunk := handle.read(8 * 1024 * 1024):
                digest.update(chunk)
    return digest.hexdigest()


def staging_folder(data_dir: Path, tenant: str) -> Path:
    """An empty folder beside the tenant's published models for a model being built; the
    same file system, so publishing is one rename."""
    parent = tenant_models_dir(data_dir, tenant)
    parent.mkdir(parents=True, exist_ok=True)
    folder = parent / f".{TUNED_PREFIX}tmp-{os.getpid()}-{time.time_ns()}"
    folder.mkdir()
    return folder


def publish_tuned(
    data_dir: Path, tenant: str, staging: Path, tuning: dict[str, Any], *, base: str, digest: str
) -> Path:
    """Write ``tuning.json`` and the checksum manifest into ``staging``, rename it to
    ``embedder-<UTC time>`` and drop all but the newest ``KEEP_TUNED``; the new folder."""
    name = TUNED_PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    parent = staging.parent
    target = parent / name
    suffix = 1
    while target.exists():  # two publications within a second
        target = parent / f"{name}-{suffix}"
        suffix += 1
    (staging / TUNING_FILE).write_text(
        json.dumps({**tuning, "model": target.name}, indent=2, ensure_ascii=False)
    )
    write_manifest(staging, target.name, base, digest, kind="tuned", dtype="float32")
    staging.rename(target)
    fd = os.open(parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for old in tuned_embedders(data_dir, tenant)[:-KEEP_TUNED]:
        shutil.rmtree(old, ignore_errors=True)
        log.info("removed the older tuned embedder %s", old)
    return target


def read_tuning(folder: Path) -> dict[str, Any]:
    """The ``tuning.json`` of a published tuned embedder."""
    data: dict[str, Any] = json.loads((folder / TUNING_FILE).read_text())
    return data
