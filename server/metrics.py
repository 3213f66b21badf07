"""Every Concierge metric, defined here and nowhere else.

Names carry the ``concierge_`` prefix and base units (``_seconds``); histograms have
explicit buckets; label sets are fixed and bounded (route templates, not raw paths;
configured upstream addresses, never customer data). They live in the process-wide
default registry next to vLLM's ``vllm:*`` metrics, so one scrape of ``/metrics``
shows the gateway and the engine together.
"""

from __future__ import annotations

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
    "Requests refused before routing, by reason (too_large, malformed).",
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
    "Generation requests by endpoint and outcome (stop, length, abort, error).",
    ["endpoint", "outcome"],
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
SEARCH_DURATION = Histogram(
    "concierge_search_duration_seconds",
    "Search time inside the index (embedding excluded), by collection and mode.",
    ["collection", "mode"],
    buckets=_SEARCH_BUCKETS,
)
SEARCH_EMPTY_RESULTS = Counter(
    "concierge_search_empty_results",
    "Searches that returned nothing, by collection.",
    ["collection"],
)

# ---------------------------------------------------------------- the support reply pipeline

_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

PIPELINE_STAGE_DURATION = Histogram(
    "concierge_pipeline_stage_duration_seconds",
    "Time spent in each stage of /v1/support/reply (analysis, recall, retrieval, "
    "recommend, prompt, time_to_first_token, generation, persist, total).",
    ["stage"],
    buckets=_STAGE_BUCKETS,
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
    "Ticket webhook attempts by outcome (delivered, retry, failed).",
    ["outcome"],
)
