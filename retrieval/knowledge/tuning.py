"""Tuning a tenant's embedder on its own KB: the pairs, the held-out split, the figures
before and after, the decision to publish, the reindex (``concierge models tune-embedder``).

The pairs are the questions the tenant's articles say they answer, each with its article:
the example questions of Markdown front matter (approved learned questions are written
there too) and the question of every FAQ entry. Some of them are held out, per article and
by a seeded draw, and never trained on; they decide. Articles are ranked for a held-out
question as the KB's dense search ranks them, by their best chunk, title mixed in
(``reindex.field_vectors``), but *without* their example-question rows: those would find
a held-out question's siblings, not measure what the embedder learned. The tuned model is
published only if it puts the right article first for more held-out questions than the
base does (a tie keeps the base: a model no better is only a cost), and the tenant's KB is
then rebuilt with it.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import InvalidRequestError, NotFoundError
from core.ids import check_tenant
from models.embedder import Embedder
from models.tuning import (
    TrainingOptions,
    fine_tune,
    folder_digest,
    publish_tuned,
    staging_folder,
)
from retrieval.documents import FAQ_SUFFIXES, DocumentStore
from retrieval.knowledge.config import RetrievalConfig
from retrieval.knowledge.knowledge_base import KnowledgeBase
from retrieval.knowledge.records import ChunkRecord
from retrieval.knowledge.reindex import ReindexMode, ReindexReport, chunk_records, field_vectors

log = logging.getLogger(__name__)

MIN_PAIRS = 10
"""Fewer questions than this teach nothing and hold out too few to judge by."""
MIN_ARTICLES = 2
"""In-batch negatives need another article in the batch."""
MIN_HELD_OUT = 2
EMBED_BATCH = 64


@dataclass(frozen=True)
class TuningPair:
    """A question a customer asks and the article that answers it."""

    question: str
    doc_id: str


@dataclass(frozen=True)
class Article:
    """A KB article as tuning sees it: its chunks (no example-question rows)."""

    doc_id: str
    chunks: list[ChunkRecord]

    @property
    def training_text(self) -> str:
        """What a question is paired with in training: the title and the lead passage, as
        the KB's lead chunk is embedded (training reads its first tokens)."""
        lead = self.chunks[0]
        return f"{lead.title}\n{lead.passage_text()}" if lead.title else lead.passage_text()


@dataclass(frozen=True)
class RankingScore:
    """How often the right article ranks first, and the mean reciprocal rank."""

    questions: int
    recall_at_1: float
    mrr: float

    def as_dict(self) -> dict[str, float]:
        return {
            "questions": self.questions,
            "recall_at_1": round(self.recall_at_1, 4),
            "mrr": round(self.mrr, 4),
        }


@dataclass
class TuningReport:
    """What one tuning did: the data, the figures, whether and where it published."""

    tenant: str
    base: str
    articles: int
    pairs: int
    train: int
    held_out: int
    before: RankingScore
    after: RankingScore
    published: Path | None = None
    reindex: ReindexReport | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def improved(self) -> bool:
        return self.after.recall_at_1 > self.before.recall_at_1

    def lines(self) -> list[str]:
        """The report a person reads."""
        lines = [
            f"tenant {self.tenant}: {self.pairs} question-article pairs over {self.articles} "
            f"articles; trained on {self.train}, held out {self.held_out}",
            f"held-out recall@1 {self.before.recall_at_1:.3f} -> {self.after.recall_at_1:.3f}, "
            f"MRR {self.before.mrr:.3f} -> {self.after.mrr:.3f} ({self.base} -> tuned)",
        ]
        if self.published is None:
            lines.append("not better on the held-out questions: kept the base embedder")
        else:
            lines.append(f"published {self.published}")
        if self.reindex is not None:
            lines.append(
                f"reindexed: version {self.reindex.version}, {self.reindex.chunks} chunks "
                f"in {self.reindex.seconds:.1f} s"
            )
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        lines.append(f"time: {timing}")
        return lines


def tenant_articles(
    store: DocumentStore, tenant: str, config: RetrievalConfig
) -> tuple[dict[str, Article], list[TuningPair]]:
    """The tenant's articles chunked as the KB chunks them, and its question-article pairs
    (each distinct pair once). A FAQ entry's question is its title: the entry counts it as a
    pair and is ranked and trained on by its answer alone."""
    documents = store.load(tenant, sorted(store.hashes(tenant)))
    articles: dict[str, Article] = {}
    pairs: dict[tuple[str, str], TuningPair] = {}
    for document in documents:
        faq = Path(document.source).suffix.lower() in FAQ_SUFFIXES and bool(document.title)
        chunks = chunk_records(document, config, title="" if faq else None)
        if not chunks:
            continue
        articles[document.doc_id] = Article(document.doc_id, chunks)
        questions = [document.title] if faq else document.example_questions()
        for question in questions:
            pairs.setdefault((question, document.doc_id), TuningPair(question, document.doc_id))
    return articles, list(pairs.values())


def split_pairs(
    pairs: Sequence[TuningPair], holdout: float, seed: int
) -> tuple[list[TuningPair], list[TuningPair]]:
    """(train, held out): per article, a seeded ``holdout`` share of its questions (rounded,
    at least one where the article has two or more) is held out, so every article is both
    trained on and judged. A question worded alike for two articles goes to train only:
    a held-out question is never seen in training."""
    if not 0 < holdout < 1:
        raise InvalidRequestError(
            f"holdout must be between 0 and 1, got {holdout}", param="holdout"
        )
    by_article: dict[str, list[TuningPair]] = {}
    for pair in sorted(pairs, key=lambda p: (p.doc_id, p.question)):
        by_article.setdefault(pair.doc_id, []).append(pair)
    rng = random.Random(seed)
    train: list[TuningPair] = []
    held_out: list[TuningPair] = []
    for doc_id in sorted(by_article):
        group = by_article[doc_id]
        rng.shuffle(group)
        count = max(1, round(len(group) * holdout)) if len(group) > 1 else 0
        held_out += group[:count]
        train += group[count:]
    trained = {pair.question for pair in train}
    moved = [pair for pair in held_out if pair.question in trained]
    held_out = [pair for pair in held_out if pair.question not in trained]
    return train + moved, held_out


def rank_articles(
    embedder: Embedder,
    articles: dict[str, Article],
    pairs: Sequence[TuningPair],
    *,
    title_weight: float,
    progress_bar: bool = True,
) -> RankingScore:
    """Recall@1 and MRR of each pair's article among all ``articles``, ranked for its
    question by the best chunk's field-vector score (the KB's dense ranking)."""
    chunks = [chunk for article in articles.values() for chunk in article.chunks]
    chunk_vectors = _in_batches(
        lambda batch: field_vectors(embedder, batch, title_weight), chunks, "articles", progress_bar
    )
    question_vectors = _in_batches(
        lambda batch: embedder.embed_sync(batch, purpose="query"),
        [pair.question for pair in pairs],
        "questions",
        progress_bar,
    )
    doc_ids = sorted(articles)
    column = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    owner = np.array([column[chunk.doc_id] for chunk in chunks])
    scores = question_vectors @ chunk_vectors.T
    best = np.full((len(pairs), len(doc_ids)), -np.inf, dtype=np.float32)
    for col in range(len(doc_ids)):
        best[:, col] = scores[:, owner == col].max(axis=1)
    right = np.array([column[pair.doc_id] for pair in pairs])
    right_scores = best[np.arange(len(pairs)), right]
    ranks = 1 + (best > right_scores[:, None]).sum(axis=1)  # ties count in the article's favour
    return RankingScore(
        questions=len(pairs),
        recall_at_1=float(np.mean(ranks == 1)) if len(pairs) else 0.0,
        mrr=float(np.mean(1.0 / ranks)) if len(pairs) else 0.0,
    )


def _in_batches(
    embed: Any, items: Sequence[Any], what: str, progress_bar: bool
) -> npt.NDArray[np.float32]:
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=len(items), desc=f"embedding {what}", disable=not progress_bar) as bar:
        for start in range(0, len(items), EMBED_BATCH):
            batch = list(items[start : start + EMBED_BATCH])
            parts.append(embed(batch))
            bar.update(len(batch))
    return np.concatenate(parts).astype(np.float32)


def tune_tenant_embedder(
    knowledge: KnowledgeBase,
    tenant: str,
    data_dir: Path,
    *,
    base: Embedder | None = None,
    holdout: float = 0.2,
    seed: int = 0,
    options: TrainingOptions | None = None,
    progress_bar: bool = True,
) -> TuningReport:
    """Collect the tenant's pairs, split them, rank before, train, rank after, publish the
    tuned model under ``data_dir`` if it ranks better, and then reindex the tenant with it.

    ``base``: the embedder to start from (default: the KB's base embedder). Raises
    ``NotFoundError`` for a tenant without KB documents and ``InvalidRequestError`` for one
    with too few questions to train on and judge by.
    """
    check_tenant(tenant)
    options = options or TrainingOptions(seed=seed)
    base = base or knowledge.embedder
    seconds: dict[str, float] = {}
    mark = time.perf_counter()
    if knowledge.store.count(tenant) == 0:
        known = ", ".join(knowledge.store.tenants()) or "none"
        raise NotFoundError(
            f"tenant {tenant} has no KB documents (tenants with documents: {known})",
            param="tenant",
        )
    articles, pairs = tenant_articles(knowledge.store, tenant, knowledge.config)
    _check_enough(tenant, articles, pairs)
    train, held_out = split_pairs(pairs, holdout, seed)
    if len(held_out) < MIN_HELD_OUT:
        raise InvalidRequestError(
            f"tenant {tenant}: holding out {holdout:g} of {len(pairs)} questions leaves "
            f"{len(held_out)} to judge by; at least {MIN_HELD_OUT} are needed (add questions "
            "or raise --holdout)",
            param="holdout",
        )
    log.info(
        "tenant %s: %d pairs over %d articles (%d with questions); %d to train on, %d held out "
        "(seed %d)",
        tenant,
        len(pairs),
        len(articles),
        len({p.doc_id for p in pairs}),
        len(train),
        len(held_out),
        seed,
    )
    weight = knowledge.config.title_weight
    log.info("ranking the held-out questions with the base embedder %s", base.model_name)
    before = rank_articles(base, articles, held_out, title_weight=weight, progress_bar=progress_bar)
    log.info("before: recall@1 %.3f, MRR %.3f", before.recall_at_1, before.mrr)
    seconds["before"] = time.perf_counter() - mark

    mark = time.perf_counter()
    base.warm_up()
    model = fine_tune(
        base.load_path(),
        [(pair.question, articles[pair.doc_id].training_text) for pair in train],
        options,
        device=base.device,
        progress_bar=progress_bar,
    )
    staging = staging_folder(data_dir, tenant)
    published = None
    try:
        model.save(str(staging))
        del model
        seconds["training"] = time.perf_counter() - mark
        mark = time.perf_counter()
        tuned = Embedder(replace(base.config, model=str(staging)))
        try:
            log.info("ranking the held-out questions with the tuned embedder")
            after = rank_articles(
                tuned, articles, held_out, title_weight=weight, progress_bar=progress_bar
            )
        finally:
            tuned.shutdown()
        log.info("after: recall@1 %.3f, MRR %.3f", after.recall_at_1, after.mrr)
        seconds["after"] = time.perf_counter() - mark
        report = TuningReport(
            tenant=tenant,
            base=base.model_name,
            articles=len(articles),
            pairs=len(pairs),
            train=len(train),
            held_out=len(held_out),
            before=before,
            after=after,
            seconds=seconds,
        )
        if report.improved:
            location = base.load_path()
            digest = folder_digest(location) or ""
            published = publish_tuned(
                data_dir,
                tenant,
                staging,
                _tuning_record(report, location, digest, holdout, seed, options),
                base=base.model_name,
                digest=digest,
            )
            report.published = published
            log.info("tenant %s: published the tuned embedder %s", tenant, published)
        else:
            log.info("tenant %s: the tuned embedder is no better; keeping the base", tenant)
    finally:
        if published is None:
            shutil.rmtree(staging, ignore_errors=True)
    if published is not None:
        mark = time.perf_counter()
        report.reindex = _reindex(knowledge, tenant, progress_bar)
        seconds["reindex"] = time.perf_counter() - mark
    return report


def _check_enough(tenant: str, articles: dict[str, Article], pairs: list[TuningPair]) -> None:
    with_questions = len({pair.doc_id for pair in pairs})
    if len(pairs) < MIN_PAIRS or with_questions < MIN_ARTICLES:
        raise InvalidRequestError(
            f"tenant {tenant} has {len(pairs)} example questions on {with_questions} of its "
            f"{len(articles)} articles; tuning needs at least {MIN_PAIRS} questions on at least "
            f"{MIN_ARTICLES} articles (front matter `questions:` of Markdown articles, FAQ "
            "entries, or learned questions approved with `concierge kb questions`)",
            param="tenant",
        )


def _tuning_record(
    report: TuningReport,
    location: str,
    digest: str,
    holdout: float,
    seed: int,
    options: TrainingOptions,
) -> dict[str, Any]:
    return {
        "tenant": report.tenant,
        "base": {"model": report.base, "location": location, "sha256": digest or None},
        "pairs": {
            "total": report.pairs,
            "train": report.train,
            "held_out": report.held_out,
            "articles": report.articles,
        },
        "split": {"holdout": holdout, "seed": seed, "by": "question, per article"},
        "training": options.as_dict(),
        "before": report.before.as_dict(),
        "after": report.after.as_dict(),
        "seconds": {k: round(v, 2) for k, v in report.seconds.items()},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _reindex(knowledge: KnowledgeBase, tenant: str, progress_bar: bool) -> ReindexReport:
    """Rebuild the tenant's KB with its new embedder (every document re-embedded)."""
    from tqdm.auto import tqdm

    log.info("reindexing tenant %s with its tuned embedder", tenant)
    with tqdm(desc="reindexing", unit="doc", disable=not progress_bar) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        report = knowledge.reindex(tenant, ReindexMode.FULL, progress=progress)
    log.info("tenant %s: %s", tenant, report.as_dict())
    return report
