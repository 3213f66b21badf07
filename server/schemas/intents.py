"""A tenant's own intent head as the admin API shows it (``/admin/tenants/{tenant}/intents``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TenantIntentsOut(BaseModel):
    """The tenant's intent head in force: also the ``result`` of its training job."""

    tenant: str
    version: int = Field(description="the published version serving now")
    intents: list[str] = Field(description="the labels it was taught")
    examples: int = Field(description="examples it was fitted on")
    metrics: dict[str, float] = Field(
        description="cross-validated on the examples: cv_accuracy, cv_macro_f1"
    )
    trained_at: str | None = Field(description="ISO 8601, UTC")
