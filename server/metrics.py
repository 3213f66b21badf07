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
