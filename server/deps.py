"""``Annotated`` dependency aliases: routes ask for what they need by type.

Every getter is ``async def`` although none of them awaits: FastAPI runs a plain ``def``
dependency in its thread pool, one thread hop per dependency per request, which under load
queues behind other work and made even a 503 wait its turn. These only read ``app.state``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from core.ids import check_tenant
from models.engine.base import EngineClient
from retrieval.runtime import Retrieval
from server.config import Settings
from server.http.logs import REQUEST_ID
from server.pipeline.reply import ReplyPipeline
from server.security.access import PrincipalDep
from server.services.catalog import CatalogService
from server.services.conversations import ConversationService
from server.services.customers import CustomerService
from server.services.embeddings import EmbeddingService
from server.services.generation import GenerationService
from server.services.intents import IntentService
from server.services.knowledge import KnowledgeService
from server.store.audit import AuditLog
from server.tenants import TenantConfigs


async def get_settings(request: Request) -> Settings:
    """The app's settings (built once by ``create_app``)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> EngineClient:
    """The process-wide engine built in the lifespan."""
    engine: EngineClient = request.app.state.engine
    return engine


async def get_generation(request: Request) -> GenerationService:
    """The serving object behind the OpenAI-compatible routes."""
    service: GenerationService = request.app.state.generation
    return service


async def get_retrieval(request: Request) -> Retrieval:
    """Embedder, KB, history and jobs, built once in the lifespan."""
    retrieval: Retrieval = request.app.state.retrieval
    return retrieval


async def get_knowledge_service(request: Request) -> KnowledgeService:
    service: KnowledgeService = request.app.state.knowledge_service
    return service


async def get_embedding_service(request: Request) -> EmbeddingService:
    service: EmbeddingService = request.app.state.embedding_service
    return service


async def get_customer_service(request: Request) -> CustomerService:
    service: CustomerService = request.app.state.customer_service
    return service


async def get_catalog_service(request: Request) -> CatalogService:
    service: CatalogService = request.app.state.catalog_service
    return service


async def get_conversation_service(request: Request) -> ConversationService:
    service: ConversationService = request.app.state.conversation_service
    return service


async def get_intent_service(request: Request) -> IntentService:
    service: IntentService = request.app.state.intent_service
    return service


async def get_reply_pipeline(request: Request) -> ReplyPipeline:
    pipeline: ReplyPipeline = request.app.state.reply_pipeline
    return pipeline


async def get_tenant(
    request: Request,
    principal: PrincipalDep,
    x_concierge_tenant: Annotated[str | None, Header(max_length=64)] = None,
) -> str:
    """The tenant a call acts for: its key's tenant; without keys the header, else the default.

    The route's guard has already refused a header naming a tenant other than the key's.
    """
    if principal.tenant is not None:
        return principal.tenant
    tenant = x_concierge_tenant or request.app.state.settings.default_tenant
    check_tenant(tenant)
    return tenant


async def get_tenant_configs(request: Request) -> TenantConfigs:
    configs: TenantConfigs = request.app.state.tenant_configs
    return configs


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[EngineClient, Depends(get_engine)]
GenerationDep = Annotated[GenerationService, Depends(get_generation)]
RetrievalDep = Annotated[Retrieval, Depends(get_retrieval)]
KnowledgeServiceDep = Annotated[KnowledgeService, Depends(get_knowledge_service)]
EmbeddingServiceDep = Annotated[EmbeddingService, Depends(get_embedding_service)]
CustomerServiceDep = Annotated[CustomerService, Depends(get_customer_service)]
CatalogServiceDep = Annotated[CatalogService, Depends(get_catalog_service)]
ConversationServiceDep = Annotated[ConversationService, Depends(get_conversation_service)]
IntentServiceDep = Annotated[IntentService, Depends(get_intent_service)]
ReplyPipelineDep = Annotated[ReplyPipeline, Depends(get_reply_pipeline)]
TenantDep = Annotated[str, Depends(get_tenant)]
TenantConfigsDep = Annotated[TenantConfigs, Depends(get_tenant_configs)]


@dataclass(frozen=True)
class Auditor:
    """Writes admin actions to the audit log with this request's id and actor."""

    log: AuditLog
    request_id: str
    actor: str

    async def record(
        self, tenant: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        await asyncio.to_thread(
            self.log.record, tenant, self.actor, action, target, self.request_id, detail
        )


async def get_auditor(request: Request, principal: PrincipalDep) -> Auditor:
    return Auditor(request.app.state.audit_log, REQUEST_ID.get(), principal.actor)


AuditDep = Annotated[Auditor, Depends(get_auditor)]
