"""Every error Concierge reports, with its HTTP status and its ``type`` in the error shape.

Services raise these; the HTTP layer turns any of them into
``{"error": {"type", "message", "param"}}`` with the matching status. Nothing else
decides status codes, so one failure always looks the same to a client.
"""

from __future__ import annotations

import math


class ConciergeError(Exception):
    """Base class: a failure with a client-facing message."""

    status_code: int = 500
    error_type: str = "internal_error"

    def __init__(
        self, message: str, *, param: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        """Response headers this error carries (``Retry-After`` when a retry time is known)."""
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class InvalidRequestError(ConciergeError):
    """The request is well-formed JSON but asks for something we will not do."""

    status_code = 400
    error_type = "invalid_request_error"


class ContextLengthExceededError(InvalidRequestError):
    """Prompt plus requested output does not fit the model's context window."""

    error_type = "context_length_exceeded"


class NotFoundError(ConciergeError):
    """No such route or resource."""

    status_code = 404
    error_type = "not_found"


class ModelNotFoundError(ConciergeError):
    """The named model is not served here, or not known to the registry."""

    status_code = 404
    error_type = "model_not_found"


class PayloadTooLargeError(ConciergeError):
    """The request body exceeds the configured limit."""

    status_code = 413
    error_type = "payload_too_large"


class ClientClosedRequestError(ConciergeError):
    """The client went away before the answer was ready (nginx's 499); nobody reads it."""

    status_code = 499
    error_type = "client_closed_request"


class AuthenticationError(ConciergeError):
    """No API key, or one that is unknown, malformed or revoked."""

    status_code = 401
    error_type = "authentication_error"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class PermissionDeniedError(ConciergeError):
    """A valid key whose role or tenant does not cover what it asked for."""

    status_code = 403
    error_type = "permission_error"


class RateLimitedError(ConciergeError):
    """Too many requests right now; the client should back off and retry."""

    status_code = 429
    error_type = "rate_limit_exceeded"


class EngineUnavailableError(ConciergeError):
    """The engine is still starting, or has died; retry later or elsewhere."""

    status_code = 503
    error_type = "engine_unavailable"


class OverloadedError(ConciergeError):
    """The generation queue is full; retry after ``Retry-After`` (here or on another replica)."""

    status_code = 503
    error_type = "overloaded"


class ShuttingDownError(ConciergeError):
    """The server is draining for shutdown: new generations are refused, running ones cut
    at the end of the grace period; the client should retry on another replica."""

    status_code = 503
    error_type = "shutting_down"


class DeadlineExceededError(ConciergeError):
    """The request did not finish within ``CONCIERGE_REQUEST_DEADLINE_S`` (queue wait
    included); the engine request has been aborted."""

    status_code = 504
    error_type = "deadline_exceeded"


class UpstreamError(ConciergeError):
    """A remote OpenAI-compatible engine failed in a way the client did not cause."""

    status_code = 502
    error_type = "upstream_error"


class UpstreamTimeoutError(ConciergeError):
    """A remote engine did not finish the request within its deadline."""

    status_code = 504
    error_type = "upstream_timeout"


class GenerationError(ConciergeError):
    """The engine failed while generating."""

    status_code = 500
    error_type = "generation_error"


class ModelPreparationError(ConciergeError):
    """Converting or verifying a model's weights failed."""

    status_code = 500
    error_type = "model_preparation_error"


class ConfigurationError(ConciergeError):
    """Settings that cannot work together; raised at start-up, never per request."""

    status_code = 500
    error_type = "configuration_error"


class EncryptionKeyError(ConfigurationError):
    """A stored value names an encryption key this process does not have, or the key
    configuration is unusable; the value is refused rather than returned as garbage."""

    error_type = "encryption_key_error"


class DecryptionError(ConciergeError):
    """A stored encrypted value fails authentication: altered, truncated or moved from
    another column. Refused, never returned."""

    status_code = 500
    error_type = "decryption_error"


class ConflictError(ConciergeError):
    """The request clashes with the current state (e.g. a job that already finished)."""

    status_code = 409
    error_type = "conflict"


class IndexCorruptError(ConciergeError):
    """An index version on disk fails verification; it is refused, never half-loaded."""

    status_code = 500
    error_type = "index_corrupt"


class JobCancelledError(ConciergeError):
    """A background job was cancelled; raised inside the job to unwind it."""

    status_code = 409
    error_type = "job_cancelled"
