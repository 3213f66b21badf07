"""Admin routes for the knowledge base: documents, bulk uploads, reindex jobs, search.

Thin: request parsing here, the work in ``KnowledgeService``. Writes answer once the
documents are committed; the reindex that makes new text searchable runs as a job
(``?wait=true`` waits for it).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from core.errors import InvalidRequestError
from core.json_input import read_json
from retrieval.knowledge import ReindexMode
from server.api.responses import error_responses
from server.deps import AuditDep, KnowledgeServiceDep
from server.http.json_body import StrictJsonRoute
from server.schemas.retrieval import (
    BulkDocumentsIn,
    DocumentIn,
    DocumentOut,
    DocumentsChangedOut,
    JobOut,
    KbStatsOut,
    QuestionCandidatesOut,
    QuestionDecisionOut,
    ReindexIn,
    SearchIn,
    SearchOut,
)
from server.security.access import PrincipalDep, requires
from server.store.api_keys import Role
from server.store.learned_questions import Decision

router = APIRouter(prefix="/admin", tags=["admin"], route_class=StrictJsonRoute)

_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 429)
MAX_UPLOAD_FILES = 1_000

Wait = Annotated[bool, Query(description="wait for the reindex job to finish")]
_FINISHED = {  # a job that is done when the answer goes out (``wait``, or nothing to do)
    "description": "The job, already finished",
    "model": JobOut,
}


@router.put(
    "/kb/{tenant}/documents/{doc_id:path}",
    **requires(Role.ADMIN),
    response_model=DocumentsChangedOut,
    responses=_ERRORS,
)
async def put_document(
    tenant: str,
    doc_id: str,
    body: DocumentIn,
    service: KnowledgeServiceDep,
    audit: AuditDep,
    wait: Wait = False,
) -> DocumentsChangedOut:
    """Create or replace a document; its old text stops matching at once."""
    changed = await service.put_document(tenant, doc_id, body, wait)
    await audit.record(tenant, "kb.document.put", doc_id)
    return changed


@router.get(
    "/kb/{tenant}/documents/{doc_id:path}",
    **requires(Role.ADMIN),
    response_model=DocumentOut,
    responses=_ERRORS,
)
async def get_document(tenant: str, doc_id: str, service: KnowledgeServiceDep) -> DocumentOut:
    """A stored document as uploaded."""
    return await service.get_document(tenant, doc_id)


@router.delete(
    "/kb/{tenant}/documents/{doc_id:path}",
    **requires(Role.ADMIN),
    response_model=DocumentsChangedOut,
    responses=_ERRORS,
)
async def delete_document(
    tenant: str, doc_id: str, service: KnowledgeServiceDep, audit: AuditDep, wait: Wait = False
) -> DocumentsChangedOut:
    """Delete a document; it stops matching at once, and the next version drops it."""
    changed = await service.delete_document(tenant, doc_id, wait)
    await audit.record(tenant, "kb.document.delete", doc_id)
    return changed


@router.post(
    "/kb/{tenant}/documents:bulk",
    **requires(Role.ADMIN),
    response_model=DocumentsChangedOut,
    responses=_ERRORS,
)
async def bulk_documents(
    tenant: str,
    request: Request,
    service: KnowledgeServiceDep,
    audit: AuditDep,
    wait: Wait = False,
) -> DocumentsChangedOut:
    """Many documents at once: a JSON body ``{"documents": [...]}`` or multipart ``files``.

    Files: ``.md``, ``.html``, ``.txt`` (one document each, id = file name) and FAQ
    ``.csv`` / ``.json`` (question/answer; one document per entry).
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=MAX_UPLOAD_FILES)
        uploads = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
        if not uploads:
            raise InvalidRequestError(
                "multipart upload needs one or more 'files' parts", param="files"
            )
        files = [(upload.filename or "", await upload.read()) for upload in uploads]
        reindex = str(form.get("reindex", "true")).lower() not in {"false", "0", "no"}
        changed = await service.bulk_files(tenant, files, reindex, wait)
        await audit.record(tenant, "kb.documents.bulk", "files", {"files": len(files)})
        return changed
    if not content_type.startswith("application/json"):
        raise InvalidRequestError(
            "send application/json or multipart/form-data", param="content-type"
        )
    try:
        body = BulkDocumentsIn.model_validate(read_json(await request.body()))
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"invalid JSON: {exc.msg}", param="body") from exc
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    changed = await service.bulk_json(tenant, body, wait)
    await audit.record(tenant, "kb.documents.bulk", "json", {"documents": len(body.documents)})
    return changed


@router.post(
    "/kb/{tenant}/reindex",
    **requires(Role.ADMIN),
    status_code=202,
    response_model=JobOut,
    responses={**_ERRORS, 200: _FINISHED},
)
async def reindex(
    tenant: str,
    response: Response,
    service: KnowledgeServiceDep,
    audit: AuditDep,
    body: ReindexIn | None = None,
    mode: Literal["incremental", "full"] | None = None,
    wait: Wait = False,
) -> JobOut:
    """Start a reindex job (``mode`` as query parameter or JSON); 202 with the job."""
    chosen = ReindexMode(mode or (body.mode if body else "incremental"))
    job = await service.reindex(tenant, chosen, wait)
    await audit.record(tenant, "kb.reindex", job.job_id, {"mode": str(chosen)})
    response.status_code = 200 if job.state.finished else 202
    return JobOut.model_validate(job.as_dict())


@router.get("/jobs/{job_id}", **requires(Role.ADMIN), response_model=JobOut, responses=_ERRORS)
async def get_job(job_id: str, service: KnowledgeServiceDep, principal: PrincipalDep) -> JobOut:
    """A job's state, progress (documents done/total, ETA), and result or error."""
    job = await service.job(job_id, principal.tenant)
    return JobOut.model_validate(job.as_dict())


@router.post(
    "/jobs/{job_id}/cancel",
    **requires(Role.ADMIN),
    status_code=202,
    response_model=JobOut,
    responses=_ERRORS,
)
async def cancel_job(
    job_id: str, service: KnowledgeServiceDep, audit: AuditDep, principal: PrincipalDep
) -> JobOut:
    """Ask a job to stop; nothing it built is published."""
    job = await service.cancel_job(job_id, principal.tenant)
    await audit.record(job.tenant, "kb.reindex.cancel", job_id)
    return JobOut.model_validate(job.as_dict())


@router.get(
    "/kb/{tenant}/stats", **requires(Role.ADMIN), response_model=KbStatsOut, responses=_ERRORS
)
async def kb_stats(tenant: str, service: KnowledgeServiceDep) -> KbStatsOut:
    """Documents, chunks, served version and its age, stale chunks, running jobs."""
    return await service.stats(tenant)


@router.post(
    "/kb/{tenant}/search", **requires(Role.ADMIN), response_model=SearchOut, responses=_ERRORS
)
async def search(tenant: str, body: SearchIn, service: KnowledgeServiceDep) -> SearchOut:
    """Run a retrieval query as the reply pipeline would, with per-method scores."""
    return await service.search(tenant, body)


@router.get(
    "/kb/{tenant}/questions",
    **requires(Role.ADMIN),
    response_model=QuestionCandidatesOut,
    responses=_ERRORS,
)
async def question_candidates(
    tenant: str,
    service: KnowledgeServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> QuestionCandidatesOut:
    """Customer messages an article answered, offered as its example questions: rated
    well, or followed by another question without a hand-over; best supported first."""
    return await service.question_candidates(tenant, limit)


@router.post(
    "/kb/{tenant}/questions/{question_id}/{decision}",
    **requires(Role.ADMIN),
    response_model=QuestionDecisionOut,
    responses=_ERRORS,
)
async def decide_question(
    tenant: str,
    question_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")],
    decision: Literal["approve", "reject"],
    service: KnowledgeServiceDep,
    audit: AuditDep,
    principal: PrincipalDep,
    wait: Wait = False,
) -> QuestionDecisionOut:
    """``approve``: the question joins its article's front matter and the article is
    reindexed; ``reject``: it is never offered again."""
    chosen = Decision.APPROVED if decision == "approve" else Decision.REJECTED
    decided = await service.decide_question(tenant, question_id, chosen, principal.actor, wait)
    await audit.record(tenant, f"kb.question.{chosen}", decided.document_id, {"id": question_id})
    return decided
