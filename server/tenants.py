"""Per-tenant configuration: the business (time zone), brand voice, escalation policy,
recommendations, webhook.

Each tenant has one TOML file, ``<tenants_dir>/<tenant>.toml`` (see
``examples/tenant.toml``). Files are re-read when their modification time changes,
so a support lead can adjust the voice or the refund limit without a restart; a file
that fails validation is refused with a message naming the field, and the last good
version keeps serving. A tenant without a file gets the defaults below.
"""

from __future__ import annotations

import logging
import os
import threading
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from core.errors import ConfigurationError, InvalidRequestError
from core.ids import check_tenant
from server.security.outbound import WebhookPolicy
from server.voice import BrandVoice
from server.voice import StrictModel as _Strict

log = logging.getLogger(__name__)

Priority = Literal["low", "normal", "high", "urgent"]


class Business(_Strict):
    """Facts about the business itself that every reply needs."""

    timezone: str = Field(
        "UTC", max_length=64, description="IANA time zone: 'today' and dates are shown in it"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as 'Europe/Berlin')"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


Reason = Literal[
    "safety",
    "legal",
    "chargeback",
    "privacy",
    "explicit_request",
    "refund_limit",
    "repeated_failure",
    "frustration",
    "sensitive_intent",
]
REASONS: tuple[Reason, ...] = get_args(Reason)
KEYWORD_REASONS = ("safety", "legal", "chargeback", "privacy", "explicit_request")
"""Reasons read from the customer's words; a tenant may add phrases to each, per language."""
DEFAULT_PRIORITIES: dict[Reason, Priority] = {
    "safety": "urgent",
    "legal": "urgent",
    "chargeback": "high",
    "privacy": "high",
    "repeated_failure": "high",
    "frustration": "high",
}
"""Ticket priorities a tenant does not set; the other reasons take ``priority_default``."""


class EscalationPolicy(_Strict):
    """When a person takes over, why, and how urgently (docs/support.md, "Hand-over").

    ``order`` is both the switch and the precedence: a reason not listed never fires, and
    when several fire the first listed names the ticket.
    """

    order: tuple[Reason, ...] = REASONS
    priorities: dict[Reason, Priority] = Field(
        default_factory=dict, description="ticket priority per reason, over the defaults"
    )
    priority_default: Priority = "normal"
    keywords: dict[Reason, dict[str, tuple[str, ...]]] = Field(
        default_factory=dict,
        description="extra phrases per reason and language, added to the built-in ones",
    )
    refund_limit: float | None = Field(200.0, ge=0, description="in `currency`; none: off")
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    rates: dict[str, float] = Field(
        default_factory=dict,
        description="1 unit of another currency in `currency` (USD = 0.92); an amount in a "
        "currency without a rate is not compared",
    )
    frustrated_turns: int = Field(
        1, ge=0, le=20, description="turns flagged frustrated (fed up, shouting); 0: off"
    )
    negative_turns: int = Field(
        2, ge=0, le=20, description="consecutive negative turns that count as frustration; 0: off"
    )
    failed_answers: int = Field(
        2, ge=0, le=20, description="turns saying an answer did not help; 0: off"
    )
    ungrounded_turns: int = Field(
        0,
        ge=0,
        le=20,
        description="consecutive replies without a KB passage, counted as repeated failure; 0: off",
    )
    sensitive_intents: tuple[str, ...] = Field(
        (), description="intents always handed over (reason sensitive_intent)"
    )

    @model_validator(mode="before")
    @classmethod
    def _earlier_names(cls, data: Any) -> Any:
        """Tenant files written for the first policy keep working: ``on_human_request`` and
        ``on_frustration`` switch a reason off, ``refund_limit_eur`` is a limit in EUR."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        order = list(data.get("order", REASONS))
        if data.pop("on_human_request", True) is False and "explicit_request" in order:
            order.remove("explicit_request")
        if data.pop("on_frustration", True) is False:
            data.setdefault("frustrated_turns", 0)
        if "refund_limit_eur" in data:
            data.setdefault("refund_limit", data.pop("refund_limit_eur"))
            data.setdefault("currency", "EUR")
        if "order" in data or len(order) != len(REASONS):
            data["order"] = tuple(order)
        return data

    @field_validator("order")
    @classmethod
    def _no_repeats(cls, value: tuple[Reason, ...]) -> tuple[Reason, ...]:
        repeated = sorted({r for r in value if value.count(r) > 1})
        if repeated:
            raise ValueError(f"each reason once; repeated: {', '.join(repeated)}")
        return value

    @field_validator("keywords")
    @classmethod
    def _keyword_tables(
        cls, value: dict[Reason, dict[str, tuple[str, ...]]]
    ) -> dict[Reason, dict[str, tuple[str, ...]]]:
        for reason, table in value.items():
            if reason not in KEYWORD_REASONS:
                raise ValueError(
                    f"{reason} is not read from words; phrases go to {', '.join(KEYWORD_REASONS)}"
                )
            for code, phrases in table.items():
                if not (2 <= len(code) <= 3 and code.isascii() and code.isalpha()):
                    raise ValueError(f"{reason}: {code!r} is not a language code")
                if any(not p.strip() or len(p) > 200 for p in phrases):
                    raise ValueError(f"{reason}.{code}: phrases are 1-200 characters")
        return value

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        for code, rate in value.items():
            if not (len(code) == 3 and code.isascii() and code.isupper()):
                raise ValueError(f"{code!r} is not a currency code such as 'USD'")
            if not rate > 0:
                raise ValueError(f"the rate of {code} must be above 0")
        return value

    def priority_of(self, reason: Reason) -> Priority:
        """The tenant's priority for ``reason``, else the built-in one, else the default."""
        return (
            self.priorities.get(reason) or DEFAULT_PRIORITIES.get(reason) or (self.priority_default)
        )


Mood = Literal["negative", "neutral", "positive"]


class Recommendations(_Strict):
    """When products may be suggested (docs/support.md, "Recommendations")."""

    enabled: bool = True
    max_items: int = Field(2, ge=0, le=10)
    min_similarity: float = Field(0.3, ge=-1, le=1)
    moods: tuple[Mood, ...] = Field(
        ("neutral", "positive"), description="the customer's moods that allow suggestions"
    )
    only_when_asked: bool = Field(
        True,
        description="suggest only when the customer asks what to buy or for advice on a "
        "product, never beside a delivery, repair or billing question",
    )
    after_escalation: bool = Field(
        False, description="suggest in a conversation that was handed over or reported harm"
    )
    blocked_intents: tuple[str, ...] = (
        "complaint",
        "contact_human_agent",
        "cancel_order",
        "delete_account",
        "get_refund",
        "track_refund",
        "payment_issue",
    )


class Intents(_Strict):
    """How sure the intent heads must be before an intent counts."""

    min_confidence: float = Field(
        0.3,
        ge=0,
        le=1,
        description="below this, the tenant's head defers to the general one, "
        "and below it there too the intent is 'unknown'",
    )


class Webhook(_Strict):
    url: AnyHttpUrl | None = None
    secret: SecretStr | None = None
    attempts: int = Field(4, ge=1, le=20)
    timeout_s: float = Field(5.0, gt=0, le=60)
    backoff_s: float = Field(0.5, ge=0, le=60)


class TenantConfig(_Strict):
    business: Business = Business()
    voice: BrandVoice = BrandVoice()
    escalation: EscalationPolicy = EscalationPolicy()
    recommendations: Recommendations = Recommendations()
    intents: Intents = Intents()
    webhook: Webhook = Webhook()


def parse_tenant_config(text: str, source: str) -> TenantConfig:
    """Validate TOML text; errors name the file and the offending field."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequestError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return TenantConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidRequestError(f"{source}: {where}: {first['msg']}", param=where) from exc


class TenantConfigs:
    """Reads tenant files on demand and caches them by modification time."""

    def __init__(self, directory: Path, webhook_policy: WebhookPolicy | None = None) -> None:
        self.directory = directory
        self.webhook_policy = webhook_policy or WebhookPolicy()
        self._cache: dict[str, tuple[float, TenantConfig]] = {}
        self._lock = threading.Lock()

    def path_for(self, tenant: str) -> Path:
        check_tenant(tenant)
        return self.directory / f"{tenant}.toml"

    def get(self, tenant: str) -> TenantConfig:
        path = self.path_for(tenant)
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return TenantConfig()
        with self._lock:
            cached = self._cache.get(tenant)
            if cached is not None and cached[0] == mtime:
                return cached[1]
            try:
                config = parse_tenant_config(path.read_text(encoding="utf-8"), str(path))
            except (InvalidRequestError, OSError) as exc:
                if cached is None:
                    raise ConfigurationError(f"tenant {tenant!r} configuration: {exc}") from exc
                log.error("keeping the previous configuration of tenant %s: %s", tenant, exc)
                return cached[1]
            self._cache[tenant] = (mtime, config)
            return config

    def install(self, tenant: str, text: str, source: str) -> TenantConfig:
        """Validate and atomically write a tenant's file (temp file, fsync, rename)."""
        config = parse_tenant_config(text, source)
        url = config.webhook.url
        self.webhook_policy.check_config(
            str(url) if url is not None else None, config.webhook.secret is not None
        )
        path = self.path_for(tenant)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(f".toml.{os.getpid()}.tmp")
        with open(staging, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
        return config
