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
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from core.errors import ConfigurationError, InvalidRequestError
from core.ids import check_tenant

log = logging.getLogger(__name__)

Priority = Literal["low", "normal", "high", "urgent"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class BrandVoice(_Strict):
    persona: str = Field(
        "You are the customer support assistant of an online shop.", max_length=2000
    )
    tone: str = Field("friendly, clear and concise", max_length=500)
    do: tuple[str, ...] = ("Answer the question first, then add helpful details.",)
    dont: tuple[str, ...] = ("Do not invent order details, prices or policies.",)
    sign_off: str = Field("", max_length=200)
    languages: tuple[str, ...] = ("en",)
    handover_message: str = Field(
        "I'm passing this conversation to a colleague from our support team. They can see "
        "everything we discussed and will reply here as soon as possible.",
        max_length=1000,
    )
    human_mode_ack: str = Field(
        "Thank you, I've added your message to this conversation. A colleague from our "
        "support team is looking after it and will reply here shortly.",
        max_length=1000,
    )


class EscalationPolicy(_Strict):
    on_human_request: bool = True
    on_frustration: bool = True
    negative_turns: int = Field(2, ge=0, description="consecutive negative turns; 0 disables")
    ungrounded_turns: int = Field(2, ge=0, description="consecutive ungrounded replies; 0 off")
    sensitive_intents: tuple[str, ...] = ("complaint",)
    refund_limit_eur: float | None = Field(200.0, ge=0)
    priority_default: Priority = "normal"


class Recommendations(_Strict):
    enabled: bool = True
    max_items: int = Field(2, ge=0, le=10)
    min_similarity: float = Field(0.3, ge=-1, le=1)


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

    def __init__(self, directory: Path) -> None:
        self.directory = directory
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
        path = self.path_for(tenant)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(f".toml.{os.getpid()}.tmp")
        with open(staging, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
        return config
