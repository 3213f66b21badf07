"""Every Concierge metric, defined here and nowhere else.

Names carry the ``concierge_`` prefix and base units (``_seconds``); histograms have
explicit buckets; label sets are fixed and bounded (route templates, not raw paths;
configured upstream addresses, never customer data). They live in the process-wide
default registry next to vLLM's ``vllm:*`` metrics, so one scrape of ``/metrics``
shows the gateway and the engine together.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
_TTFT_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_TOKEN_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)

HTTP_REQUESTS = Counter(
    "concierge_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "concierge_http_request_duration_seconds",
    "Time from request start to the end of the response body (whole stream for SSE).",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "concierge_http_requests_in_flight",
    "HTTP requests being processed now.",
)
HTTP_REJECTED_BODIES = Counter(
    "concierge_http_rejected_bodies",
    "Requests refused before routing, by reason (too_large, malformed, "
    "request_header_fields_too_large, request_timeout).",
    ["reason"],
)

ENGINE_READY = Gauge(
    "concierge_engine_ready",
    "1 when the generation engine answers health checks, else 0.",
)
GENERATION_TIME_TO_FIRST_TOKEN = Histogram(
    "concierge_generation_time_to_first_token_seconds",
    "Time from accepting a generation request to its first output text.",
    ["endpoint"],
    buckets=_TTFT_BUCKETS,
)
GENERATION_OUTPUT_TOKENS = Histogram(
    "concierge_generation_output_tokens",
    "Output tokens per finished generation request.",
    ["endpoint"],
    buckets=_TOKEN_BUCKETS,
)
GENERATION_PROMPT_TOKENS = Histogram(
    "concierge_generation_prompt_tokens",
    "Prompt tokens per finished generation request.",
    ["endpoint"],
    buckets=_TOKEN_BUCKETS,
)
GENERATION_REQUESTS = Counter(
    "concierge_generation_requests",
    "Generation requests by endpoint (chat, completion, support) and outcome "
    "(stop, length, abort, error).",
    ["endpoint", "outcome"],
)
GENERATION_IN_FLIGHT = Gauge(
    "concierge_generation_requests_in_flight",
    "Generation requests asked of the engine and not finished: those waiting in Concierge's "
    "admission queue (concierge_generation_queue_depth) plus those the engine holds, "
    "running or queued there (vllm:num_requests_waiting). The autoscaling signal.",
)
GENERATION_QUEUE_DEPTH = Gauge(
    "concierge_generation_queue_depth",
    "Generation requests waiting for a slot in the engine (CONCIERGE_ENGINE_MAX_CONCURRENCY "
    "are let in at once); at CONCIERGE_MAX_QUEUED_REQUESTS new ones get 503 overloaded.",
)
GENERATION_QUEUE_WAIT = Histogram(
    "concierge_generation_queue_wait_seconds",
    "Time an admitted generation waited for its slot in the engine.",
    buckets=(0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
GENERATION_SHED = Counter(
    "concierge_generation_shed",
    "Generations refused or cut by admission control, by reason: queue_full (503 "
    "overloaded), shutting_down (503, refused or cut while draining), deadline (504 "
    "deadline_exceeded, in the queue or in the engine).",
    ["reason"],
)
GENERATION_INTER_TOKEN_LATENCY = Histogram(
    "concierge_generation_inter_token_latency_seconds",
    "Time per output token after the first output of one generation, as the gateway sees "
    "it (an output of several tokens counts its gap once per token).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0),
)

REMOTE_UPSTREAM_HEALTHY = Gauge(
    "concierge_remote_upstream_healthy",
    "1 when a configured OpenAI-compatible upstream passed its last health probe.",
    ["upstream"],
)
REMOTE_UPSTREAM_IN_FLIGHT = Gauge(
    "concierge_remote_upstream_in_flight",
    "Requests in flight to each configured upstream.",
    ["upstream"],
)
REMOTE_UPSTREAM_REQUESTS = Counter(
    "concierge_remote_upstream_requests_total",
    "Generation requests sent to each configured upstream; routed: 'affinity' (a "
    "conversation's own upstream), 'spilled' (its own was busy or down), 'load' (no key).",
    ["upstream", "routed"],
)

# retrieval: embeddings, KB indexes, reindex jobs, searches
_SEARCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_REINDEX_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

EMBEDDING_DURATION = Histogram(
    "concierge_embedding_duration_seconds",
    "Time to embed one batch of texts, by purpose "
    "(query, document, history, catalog, classifier, api).",
    ["purpose"],
    buckets=_SEARCH_BUCKETS,
)
EMBEDDED_TEXTS = Counter(
    "concierge_embedded_texts",
    "Texts embedded, by purpose (query, document, history, catalog, classifier, api).",
    ["purpose"],
)
INDEX_DOCUMENTS = Gauge(
    "concierge_index_documents",
    "Documents in the served index version, per tenant and collection.",
    ["tenant", "collection"],
)
INDEX_CHUNKS = Gauge(
    "concierge_index_chunks",
    "Chunks (vectors) in the served index version, per tenant and collection.",
    ["tenant", "collection"],
)
INDEX_VERSION = Gauge(
    "concierge_index_version",
    "Number of the served index version, per tenant and collection.",
    ["tenant", "collection"],
)
INDEX_PENDING_DOCUMENTS = Gauge(
    "concierge_index_pending_documents",
    "Documents added, changed or deleted since the served version was built (not yet "
    "searchable as they are now): above 0 for long means a reindex is due or failing.",
    ["tenant", "collection"],
)
INDEX_AGE = Gauge(
    "concierge_index_age_seconds",
    "Seconds since the served index version was built.",
    ["tenant", "collection"],
)
INDEX_LOAD_FAILURES = Counter(
    "concierge_index_load_failures",
    "Index versions refused at load (corrupt, truncated, wrong model), per tenant.",
    ["tenant", "collection"],
)
REINDEX_DURATION = Histogram(
    "concierge_reindex_duration_seconds",
    "Wall time of finished reindex jobs, by mode (incremental, full) and outcome.",
    ["mode", "outcome"],
    buckets=_REINDEX_BUCKETS,
)
REINDEX_DOCUMENTS_PER_SECOND = Gauge(
    "concierge_reindex_documents_per_second",
    "Documents processed per second by the tenant's last successful reindex.",
    ["tenant"],
)
REINDEX_DOCUMENTS = Counter(
    "concierge_reindex_documents",
    "Documents handled by reindex jobs, by action (embedded, reused, removed).",
    ["action"],
)
JOBS = Gauge(
    "concierge_jobs",
    "Background jobs now queued or running, by kind and state.",
    ["kind", "state"],
)
JOBS_FINISHED = Counter(
    "concierge_jobs_finished",
    "Background jobs finished, by kind and final state (succeeded, failed, cancelled).",
    ["kind", "state"],
)
for _state in ("succeeded", "failed", "cancelled"):  # exported at 0, so alerts see the series
    for _kind in ("kb_reindex", "tenant_intents"):
        JOBS_FINISHED.labels(kind=_kind, state=_state)
SEARCH_DURATION = Histogram(
    "concierge_search_duration_seconds",
    "Search time inside the index (embedding excluded), by collection and mode.",
    ["collection", "mode"],
    buckets=_SEARCH_BUCKETS,
)
SEARCH_EMPTY_RESULTS = Counter(
    "concierge_search_empty_results",
    "Searches that returned nothing, by collection (kb, history, catalog): KB gaps.",
    ["collection"],
)
for _collection in ("kb", "history", "catalog"):  # exported at 0 from the start
    SEARCH_EMPTY_RESULTS.labels(collection=_collection)

# ---------------------------------------------------------------- the support reply pipeline

_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

PIPELINE_STAGE_DURATION = Histogram(
    "concierge_pipeline_stage_duration_seconds",
    "Time spent in each stage of /v1/support/reply (analysis, recall, retrieval, "
    "recommend, rerank, prompt, time_to_first_token, generation, persist, total).",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)
RERANK_JUDGED_PASSAGES = Counter(
    "concierge_rerank_judged_passages",
    "KB passages the generation model judged for the LLM reranker (CONCIERGE_RERANK=llm).",
)
RERANK_FIRST_CHANGED = Counter(
    "concierge_rerank_first_changed",
    "Replies whose first KB passage the LLM reranker changed.",
)
RERANK_FAILURES = Counter(
    "concierge_rerank_failures",
    "Replies whose passages kept the retrieval order because the LLM judge failed, by "
    "reason: timeout (CONCIERGE_RERANK_TIMEOUT_S), admission (overloaded, draining), "
    "engine (an engine or upstream error), error (unexpected).",
    ["reason"],
)
REPLIES = Counter(
    "concierge_replies",
    "Support replies by outcome: answered (model), handed_over (escalated this turn "
    "without a model reply), human_queue (conversation owned by a person), aborted, error.",
    ["outcome"],
)
REPLY_PROMPT_TOKENS = Histogram(
    "concierge_reply_prompt_tokens",
    "Prompt tokens of support replies after fitting the context budget.",
    buckets=_TOKEN_BUCKETS,
)
PROMPT_PARTS_DROPPED = Counter(
    "concierge_prompt_parts_dropped",
    "Prompt parts dropped to fit the context window, by kind.",
    ["kind"],
)
ESCALATIONS = Counter(
    "concierge_escalations",
    "Conversations handed to a person, by reason.",
    ["reason"],
)
SENTIMENT = Counter(
    "concierge_sentiment",
    "Customer messages by detected sentiment label; frustrated is counted separately.",
    ["label"],
)
FRUSTRATED_MESSAGES = Counter(
    "concierge_frustrated_messages",
    "Customer messages flagged as frustrated.",
)
INTENTS = Counter(
    "concierge_intents",
    "Customer messages by detected intent (labels of the intent model: a bounded set).",
    ["intent"],
)
UNGROUNDED_REPLIES = Counter(
    "concierge_ungrounded_replies",
    "Model replies written without any KB passage above the grounding threshold.",
)
REPLY_CHECKS = Counter(
    "concierge_reply_checks",
    "Model replies checked against their evidence, per tenant, by outcome: passed, "
    "fallback (replaced by an answer composed from the evidence), marked (failed, sent as "
    "written because reply_check=mark).",
    ["tenant", "outcome"],
)
REPLY_CHECK_PROBLEMS = Counter(
    "concierge_reply_check_problems",
    "What failed replies were failed for: unsupported, repetition, prompt_echo, "
    "wrong_language, off_evidence, empty.",
    ["problem"],
)
RECOMMENDATIONS = Counter(
    "concierge_recommendations",
    "Products recommended in replies.",
)
CSAT = Histogram(
    "concierge_csat_score",
    "Customer satisfaction scores (1-5) received as feedback.",
    buckets=(1, 2, 3, 4, 5),
)
FEEDBACK = Counter(
    "concierge_feedback",
    "Feedback received, by kind (csat, thumbs_up, thumbs_down, comment).",
    ["kind"],
)
TICKETS = Counter(
    "concierge_tickets",
    "Tickets created for escalated conversations, by priority.",
    ["priority"],
)
WEBHOOK_DELIVERIES = Counter(
    "concierge_webhook_deliveries",
    "Ticket webhook attempts by outcome (delivered, retry, failed; refused: the target is "
    "not allowed by the operator's policy, nothing was sent).",
    ["outcome"],
)
for _outcome in ("delivered", "retry", "failed", "refused"):
    WEBHOOK_DELIVERIES.labels(outcome=_outcome)


def export_at_zero(counter: Counter, label: str, values: Iterable[str]) -> None:
    """Export a counter's known label values at 0 before their first event.

    A series that appears with its first increment already at 1 is invisible to
    ``rate()`` and ``increase()`` until a second event, so a lone escalation would
    never show on a dashboard or fire an alert.
    """
    for value in values:
        counter.labels(**{label: value})


export_at_zero(GENERATION_SHED, "reason", ("queue_full", "shutting_down", "deadline"))


CUSTOMER_ERASURES = Counter(
    "concierge_customer_erasures",
    "Customers erased through DELETE /v1/customers/{id}.",
)
RETENTION_PURGED = Counter(
    "concierge_retention_purged",
    "Rows deleted because they outlived CONCIERGE_CONVERSATION_RETENTION_DAYS, by table.",
    ["table"],
)
PII_REDACTIONS = Counter(
    "concierge_pii_redactions",
    "Pieces of personal data redacted before storage, indexing or the prompt, by kind "
    "(email, phone, card, iban, national_id) and where (message, history, profile).",
    ["kind", "where"],
)


# ---------------------------------------------------------------- process and GPU memory

GC_PAUSE = Histogram(
    "concierge_gc_pause_seconds",
    "Time the interpreter stood still for one garbage collection, by generation: a long "
    "pause stalls every request of the process at once.",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

GPU_MEMORY_ALLOCATED = Gauge(
    "concierge_gpu_memory_allocated_bytes",
    "CUDA memory held by tensors of this process (embedder, classifiers), per device; "
    "absent without CUDA. vLLM's own KV cache use is vllm:kv_cache_usage_perc.",
    ["device"],
)
GPU_MEMORY_RESERVED = Gauge(
    "concierge_gpu_memory_reserved_bytes",
    "CUDA memory reserved by PyTorch's caching allocator in this process, per device.",
    ["device"],
)


def watch_gpu_memory() -> bool:
    """Export the CUDA memory gauges, read at scrape time; False (nothing exported) without CUDA.

    Process memory and CPU come from prometheus_client's default process collector
    (``process_resident_memory_bytes``, ``process_cpu_seconds_total``).
    """
    try:
        import torch
    except ImportError:
        return False
    if not torch.cuda.is_available():
        return False
    for index in range(torch.cuda.device_count()):
        device = str(index)
        GPU_MEMORY_ALLOCATED.labels(device).set_function(
            functools.partial(_cuda_bytes, torch.cuda.memory_allocated, index)
        )
        GPU_MEMORY_RESERVED.labels(device).set_function(
            functools.partial(_cuda_bytes, torch.cuda.memory_reserved, index)
        )
    return True


def _cuda_bytes(read: Callable[[int], int], device: int) -> float:
    return float(read(device))


# ---------------------------------------------------------------- bounded tenant labels

OTHER_TENANTS = "other"


class TenantLabels:
    """Map tenant names to a bounded, configured set of label values.

    A label value per tenant name a caller sends would let anyone explode the series
    count (and push real tenants out). Only configured tenants get their own value:
    those named in ``CONCIERGE_METRICS_TENANTS`` when it is set, else the default
    tenant and every tenant an admin installed a tenant file for. Everyone else shares
    ``other``: counters still add up, and per-tenant gauges (documents, index age) are
    not exported for them, since one gauge cannot hold several tenants' values.
    """

    def __init__(self) -> None:
        self.configure((), None, ())

    def configure(
        self, named: tuple[str, ...], tenants_dir: Path | None, always: tuple[str, ...]
    ) -> None:
        self._named = frozenset(named)
        self._always = frozenset(always)
        self._tenants_dir = tenants_dir

    def label(self, tenant: str) -> str:
        if self._named:
            return tenant if tenant in self._named else OTHER_TENANTS
        if tenant in self._always:
            return tenant
        installed = (
            self._tenants_dir is not None and (self._tenants_dir / f"{tenant}.toml").is_file()
        )
        return tenant if installed else OTHER_TENANTS


TENANT_LABELS = TenantLabels()
ACCESS_DENIED = Counter(
    "concierge_access_denied",
    "Requests refused by access control, by reason: missing_key, invalid_key, revoked_key "
    "(401) and role, tenant (403).",
    ["reason"],
)
export_at_zero(
    ACCESS_DENIED, "reason", ("missing_key", "invalid_key", "revoked_key", "role", "tenant")
)
RATE_LIMITED = Counter(
    "concierge_rate_limited",
    "Requests refused with 429 because their API key spent its rate limit.",
)
