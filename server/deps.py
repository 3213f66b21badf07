"""``Annotated`` dependency aliases: routes ask for what they need by type."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from models.engine.base import EngineClient
from server.config import Settings
from server.generation import GenerationService


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


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[EngineClient, Depends(get_engine)]
GenerationDep = Annotated[GenerationService, Depends(get_generation)]
