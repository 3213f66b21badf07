"""``Annotated`` dependency aliases: routes ask for what they need by type."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from models.engine.base import EngineClient
from server.config import Settings
from server.embeddings import EmbeddingService
from server.generation import GenerationService
from server.knowledge_service import KnowledgeService, Retrieval


def get_settings(request: Request) -> Settings:
    """The app's settings (built once by ``create_app``)."""
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> EngineClient:
    """The process-wide engine built in the lifespan."""
    engine: EngineClient = request.app.state.engine
    return engine


def get_generation(request: Request) -> GenerationService:
    """The serving object behind the OpenAI-compatible routes."""
    service: GenerationService = request.app.state.generation
    return service


def get_retrieval(request: Request) -> Retrieval:
    """Embedder, KB, history and jobs, built once in the lifespan."""
    retrieval: Retrieval = request.app.state.retrieval
    return retrieval


def get_knowledge_service(request: Request) -> KnowledgeService:
    service: KnowledgeService = request.app.state.knowledge_service
    return service


def get_embedding_service(request: Request) -> EmbeddingService:
    service: EmbeddingService = request.app.state.embedding_service
    return service


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[EngineClient, Depends(get_engine)]
GenerationDep = Annotated[GenerationService, Depends(get_generation)]
RetrievalDep = Annotated[Retrieval, Depends(get_retrieval)]
KnowledgeServiceDep = Annotated[KnowledgeService, Depends(get_knowledge_service)]
EmbeddingServiceDep = Annotated[EmbeddingService, Depends(get_embedding_service)]
