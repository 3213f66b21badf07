"""The KB admin surface: document edits, bulk uploads, reindex jobs, stats, search, and
example questions learned from conversations (``server/store/learned_questions.py``).

Routes in ``server/api/kb.py`` stay thin; this class does the work and keeps the
event loop free (store and index calls run in worker threads). Every write schedules
an incremental reindex (coalesced per tenant), so an admin never has to remember to
reindex, and edits are excluded from answers the moment the write returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from core.errors import ConflictError, InvalidRequestError, NotFoundError
from core.ids import check_document_id, check_tenant
from retrieval.documents import (
    Document,
    DocumentFormat,
    StoreChange,
    check_front_matter,
    documents_from_upload,
    with_example_question,
)
from retrieval.job import Job
from retrieval.knowledge import (
    KnowledgeBase,
    ReindexMode,
    SearchHit,
    SearchMode,
)
from retrieval.runtime import Retrieval
from server.schemas.retrieval import (
    BulkDocumentsIn,
    DocumentChangeOut,
    DocumentIn,
    DocumentOut,
    DocumentsChangedOut,
    KbStatsOut,
    QuestionCandidateOut,
    QuestionCandidatesOut,
    QuestionDecisionOut,
    SearchHitOut,
    SearchIn,
    SearchOut,
)
from server.store.learned_questions import (
    Decision,
    LearnedQuestions,
    QuestionCandidate,
)

log = logging.getLogger(__name__)

MAX_WAIT_S = 600.0


class KnowledgeService:
    """What the admin routes call."""

    def __init__(self, retrieval: Retrieval) -> None:
        self._kb = retrieval.knowledge
        self._jobs = retrieval.jobs
        self._learned = LearnedQuestions(retrieval.database, retrieval.keyring)

    async def question_candidates(self, tenant: str, limit: int) -> QuestionCandidatesOut:
        check_tenant(tenant)
        candidates = await asyncio.to_thread(self._learned.candidates, tenant)
        return QuestionCandidatesOut(
            tenant=tenant, candidates=[_candidate_out(c) for c in candidates[:limit]]
        )

    async def decide_question(
        self, tenant: str, question_id: str, decision: Decision, actor: str, wait: bool
    ) -> QuestionDecisionOut:
        """Approve (the question joins its article's front matter, then a reindex) or
        reject (never offered again) one candidate."""
        check_tenant(tenant)
        promised = await self._promise(tenant, decision is Decision.APPROVED)
        try:
            candidate, changes = await asyncio.to_thread(
                decide_learned_question,
                self._kb,
                self._learned,
                tenant,
                question_id,
                decision,
                actor,
            )
        except BaseException:
            await asyncio.to_thread(self._jobs.release, tenant, promised)
            raise
        written = await self._after_write(tenant, changes, True, wait, promised)
        return QuestionDecisionOut(
            tenant=tenant,
            question_id=candidate.question_id,
            document_id=candidate.doc_id,
            question=candidate.question,
            decision=str(decision),
            job=written.job,
        )

    async def put_document(
        self, tenant: str, doc_id: str, body: DocumentIn, wait: bool
    ) -> DocumentsChangedOut:
        check_tenant(tenant)
        document = _document(doc_id, body)
        promised = await self._promise(tenant, True)
        changes = await asyncio.to_thread(self._kb.put_documents, tenant, [document])
        return await self._after_write(tenant, changes, True, wait, promised)

    async def delete_document(self, tenant: str, doc_id: str, wait: bool) -> DocumentsChangedOut:
        check_tenant(tenant)
        doc_id = check_document_id(doc_id)
        promised = await self._promise(tenant, True)
        changes = await asyncio.to_thread(self._kb.delete_documents, tenant, [doc_id])
        if changes[0].action == "missing":
            await asyncio.to_thread(self._jobs.release, tenant, promised)
            raise NotFoundError(f"tenant {tenant} has no document {doc_id!r}", param="doc_id")
        return await self._after_write(tenant, changes, True, wait, promised)

    async def get_document(self, tenant: str, doc_id: str) -> DocumentOut:
        check_tenant(tenant)
        check_document_id(doc_id)
        doc = await asyncio.to_thread(self._kb.store.get, tenant, doc_id)
        if doc is None:
            raise NotFoundError(f"tenant {tenant} has no document {doc_id!r}", param="doc_id")
        return DocumentOut(
            id=doc.doc_id,
            title=doc.title,
            text=doc.text,
            format=doc.format,
            source=doc.source,
            metadata=doc.metadata,
            content_hash=doc.content_hash,
        )

    async def bulk_json(
        self, tenant: str, body: BulkDocumentsIn, wait: bool
    ) -> DocumentsChangedOut:
        check_tenant(tenant)
        documents = [_document(item.id, item) for item in body.documents]
        _refuse_duplicates([d.doc_id for d in documents])
        deletions = [check_document_id(doc_id) for doc_id in body.delete]
        promised = await self._promise(tenant, body.reindex)
        changes = await asyncio.to_thread(self._kb.put_documents, tenant, documents)
        if deletions:
            changes += await asyncio.to_thread(self._kb.delete_documents, tenant, deletions)
        return await self._after_write(tenant, changes, body.reindex, wait, promised)

    async def bulk_files(
        self, tenant: str, files: Sequence[tuple[str, bytes]], reindex: bool, wait: bool
    ) -> DocumentsChangedOut:
        """Uploaded files: Markdown, HTML and text become one document each; FAQ files many."""
        check_tenant(tenant)
        documents: list[Document] = []
        for name, content in files:
            if not name:
                raise InvalidRequestError("every uploaded file needs a file name", param="files")
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRequestError(f"{name}: not UTF-8 text", param="files") from exc
            documents.extend(documents_from_upload(Path(name).name, text))
        if not documents:
            raise InvalidRequestError("no documents in the upload", param="files")
        _refuse_duplicates([d.doc_id for d in documents])
        promised = await self._promise(tenant, reindex)
        changes = await asyncio.to_thread(self._kb.put_documents, tenant, documents)
        return await self._after_write(tenant, changes, reindex, wait, promised)

    async def reindex(self, tenant: str, mode: ReindexMode, wait: bool) -> Job:
        check_tenant(tenant)
        promised = await asyncio.to_thread(self._jobs.promise, tenant, mode)
        job = self._jobs.submit(tenant, mode, promised)
        await self._jobs.save(job)
        if wait:
            await _wait_for(job)
        return job

    async def job(self, job_id: str, tenant: str | None = None) -> Job:
        """The job, whichever replica runs it; with ``tenant``, a job of another tenant is
        reported as missing.

        Job ids are global, so a key of one tenant must not learn that another
        tenant's job exists, let alone its progress or cancel it.
        """
        job = await self._jobs.find(job_id)
        if tenant is not None and job.tenant != tenant:
            raise NotFoundError(f"no job {job_id!r}")
        return job

    async def cancel_job(self, job_id: str, tenant: str | None = None) -> Job:
        await self.job(job_id, tenant)
        return await self._jobs.cancel_anywhere(job_id)

    async def stats(self, tenant: str) -> KbStatsOut:
        check_tenant(tenant)
        stats = await asyncio.to_thread(self._kb.stats, tenant)
        stats["jobs"] = [job.as_dict() for job in self._jobs.active(tenant)]
        return KbStatsOut.model_validate(stats)

    async def search(self, tenant: str, body: SearchIn) -> SearchOut:
        check_tenant(tenant)
        started = time.perf_counter()
        mode = SearchMode(body.mode) if body.mode else None
        hits = await self._kb.asearch(tenant, body.query, body.top_k, mode)
        return SearchOut(
            tenant=tenant,
            mode=str(mode or self._kb.config.default_mode),
            version=await asyncio.to_thread(self._kb.version_number, tenant),
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            results=[_hit_out(hit) for hit in hits],
        )

    async def _promise(self, tenant: str, reindex: bool) -> int | None:
        """Before a write that will be acknowledged with a reindex: promise it durably, so
        that a crash before the reindex runs leaves it owed, resumed at the next start."""
        if not reindex:
            return None
        return await asyncio.to_thread(self._jobs.promise, tenant)

    async def _after_write(
        self,
        tenant: str,
        changes: list[StoreChange],
        reindex: bool,
        wait: bool,
        promised: int | None,
    ) -> DocumentsChangedOut:
        job = None
        if reindex and any(c.action != "unchanged" for c in changes):
            job = self._jobs.submit(tenant, ReindexMode.INCREMENTAL, promised)
            await self._jobs.save(job)
            if wait:
                await _wait_for(job)
        else:  # nothing to index: the promise is kept by doing nothing
            await asyncio.to_thread(self._jobs.release, tenant, promised)
        return DocumentsChangedOut(
            tenant=tenant,
            changes=[DocumentChangeOut(id=c.doc_id, action=c.action) for c in changes],
            job=job.as_dict() if job else None,
        )


def decide_learned_question(
    kb: KnowledgeBase,
    learned: LearnedQuestions,
    tenant: str,
    question_id: str,
    decision: Decision,
    actor: str,
) -> tuple[QuestionCandidate, list[StoreChange]]:
    """Record the decision on a candidate; an approval writes the question into its
    article's front matter first (the admin routes and ``concierge kb questions``)."""
    candidate = next((c for c in learned.candidates(tenant) if c.question_id == question_id), None)
    if candidate is None:
        raise NotFoundError(
            f"no undecided example question {question_id!r} for tenant {tenant}",
            param="question_id",
        )
    changes: list[StoreChange] = []
    if decision is Decision.APPROVED:
        document = kb.store.get(tenant, candidate.doc_id)
        if document is None:
            raise ConflictError(f"document {candidate.doc_id!r} no longer exists")
        if document.format is not DocumentFormat.MARKDOWN:
            raise ConflictError(
                f"{candidate.doc_id} is not Markdown: only Markdown articles carry example "
                "questions (in their front matter)"
            )
        changes = kb.put_documents(tenant, [with_example_question(document, candidate.question)])
    learned.decide(tenant, candidate, decision, actor)
    return candidate, changes


def _candidate_out(candidate: QuestionCandidate) -> QuestionCandidateOut:
    return QuestionCandidateOut(
        question_id=candidate.question_id,
        document_id=candidate.doc_id,
        question=candidate.question,
        evidence=str(candidate.evidence),
        seen=candidate.seen,
        last_seen=candidate.last_seen,
    )


async def _wait_for(job: Job) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(job.finished.wait(), MAX_WAIT_S)


def _document(doc_id: str, body: DocumentIn) -> Document:
    document = Document(
        doc_id=check_document_id(doc_id),
        text=body.text,
        title=body.title,
        format=body.format,
        source=body.source,
        metadata=body.metadata,
    )
    check_front_matter(document)  # example questions that cannot be read: a 400 now
    return document


def _refuse_duplicates(doc_ids: list[str]) -> None:
    seen: set[str] = set()
    for doc_id in doc_ids:
        if doc_id in seen:
            raise InvalidRequestError(f"document id {doc_id!r} appears twice", param="documents")
        seen.add(doc_id)


def _hit_out(hit: SearchHit) -> SearchHitOut:
    return SearchHitOut(
        chunk_id=str(hit.chunk_id),
        document_id=hit.doc_id,
        title=hit.title,
        source=hit.source,
        position=hit.position,
        section=hit.section,
        text=hit.text,
        score=round(hit.score, 6),
        dense_score=None if hit.dense_score is None else round(hit.dense_score, 6),
        lexical_score=None if hit.lexical_score is None else round(hit.lexical_score, 6),
    )
