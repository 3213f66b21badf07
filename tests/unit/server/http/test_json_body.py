"""Every route parses JSON with the strict reader, and the app refuses one that would not."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from core.errors import ConfigurationError
from server.app import create_app
from server.config import Settings
from server.http.json_body import StrictJsonRoute, check_every_route_reads_json_strictly


def test_every_route_of_the_app_reads_json_strictly() -> None:
    routes = [route for route in create_app(Settings()).routes if isinstance(route, APIRoute)]
    assert routes and all(isinstance(route, StrictJsonRoute) for route in routes)


def test_an_app_with_a_lenient_route_is_refused() -> None:
    app = FastAPI()
    lenient = APIRouter()

    @lenient.post("/items")
    async def add_item(item: dict[str, int]) -> dict[str, int]:
        return item

    app.include_router(lenient)
    with pytest.raises(ConfigurationError, match="/items"):
        check_every_route_reads_json_strictly(app)
