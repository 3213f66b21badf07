"""Request and response models of the KB admin API and ``/v1/embeddings``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from retrieval.documents import MAX_DOCUMENT_CHARS, DocumentFormat

MAX_QUERY_CHARS = 4_000
MAX_BULK_DOCUMENTS = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocumentIn(_Strict):
    """A document's content, for ``PUT /admin/kb/{tenant}/documents/{doc_id}``."""

    text: str = Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)
    title: str = Field("", max_length=1_000)
    format: DocumentFormat = DocumentFormat.MARKDOWN
    source: str = Field("", max_length=2_000)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value


class BulkDocumentIn(DocumentIn):
    """One document of a JSON bulk upload: the content plus its id."""

    id: str = Field(min_length=1, max_length=200)


class BulkDocumentsIn(_Strict):
    """JSON form of ``POST /admin/kb/{tenant}/documents:bulk``."""

    documents: list[BulkDocumentIn] = Field(min_length=1, max_length=MAX_BULK_DOCUMENTS)
    delete: list[str] = Field(default_factory=list, max_length=MAX_BULK_DOCUMENTS)
    reindex: bool = True


class DocumentChangeOut(BaseModel):
    id: str
    action: Literal["created", "updated", "unchanged", "deleted", "missing"]


class DocumentsChangedOut(BaseModel):
    """What a write did, and the reindex job that will make it searchable."""

    tenant: str
    changes: list[DocumentChangeOut]
    job: dict[str, Any] | None = None


class DocumentOut(BaseModel):
    id: str
    title: str
    text: str
    format: DocumentFormat
    source: str
    metadata: dict[str, Any]
    content_hash: str


class ReindexIn(_Strict):
    mode: Literal["incremental", "full"] = "incremental"


class SearchIn(_Strict):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    top_k: int = Field(5, ge=1, le=100)
    mode: Literal["hybrid", "dense", "lexical"] | None = None


class SearchHitOut(BaseModel):
    chunk_id: str  # 64-bit ids as strings: JSON numbers lose precision above 2**53
    document_id: str
    title: str
    source: str
    position: int
    section: str
    text: str
    score: float
    dense_score: float | None
    lexical_score: float | None


class SearchOut(BaseModel):
    tenant: str
    mode: str
    version: int | None
    took_ms: float
    results: list[SearchHitOut]


class EmbeddingRequest(_Strict):
    """OpenAI ``POST /v1/embeddings``; token-id inputs are refused (text only)."""

    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = Field(None, max_length=256)

    @field_validator("input", mode="before")
    @classmethod
    def _texts_only(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
            raise ValueError(
                "input must be a string or a list of strings (token ids are not accepted)"
            )
        return value

    @field_validator("input")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ValueError("input must not be empty")
        if any(not text for text in texts):
            raise ValueError("input must not contain empty strings")
        return value


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


class JobProgressOut(BaseModel):
    """Documents reindexed so far (of a ``tenant_intents`` job: examples embedded)."""

    documents_done: int
    documents_total: int
    fraction: float | None
    eta_seconds: float | None


class JobOut(BaseModel):
    """A background job (``kind``: ``kb_reindex``, ``tenant_intents``): its state,
    progress (with an ETA), and result or error."""

    id: str
    kind: str
    tenant: str
    mode: Literal["incremental", "full"] | None = Field(description="a reindex's; else null")
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    progress: JobProgressOut
    cancel_requested: bool
    error: str | None
    result: dict[str, Any] | None


class KbStatsOut(BaseModel):
    """A tenant's KB: what is stored, what is served and how old it is, jobs running."""

    tenant: str
    documents_stored: int
    version: int | None
    documents_indexed: int
    chunks: int
    stale_chunks: int
    index_kind: str | None
    embedding_model: str | None
    created_at: float | None
    age_seconds: float | None
    versions_on_disk: list[int]
    load_error: str | None
    jobs: list[JobOut]


class QuestionCandidateOut(BaseModel):
    """A customer message an article answered, offered as its example question."""

    question_id: str
    document_id: str
    question: str
    evidence: Literal["positive_feedback", "not_repeated"]
    seen: int = Field(description="turns that asked it (the same words, the same article)")
    last_seen: float


class QuestionCandidatesOut(BaseModel):
    tenant: str
    candidates: list[QuestionCandidateOut]


class QuestionDecisionOut(BaseModel):
    """An approved question is in its article's front matter; the job reindexes it."""

    tenant: str
    question_id: str
    document_id: str
    question: str
    decision: Literal["approved", "rejected"]
    job: dict[str, Any] | None = None
