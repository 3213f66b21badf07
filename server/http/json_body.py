"""Routes whose JSON bodies FastAPI parses read them with ``core.json_input.read_json``.

FastAPI calls ``Request.json()`` for a route's body model; this route class hands it a
request whose ``json()`` is the strict reader, so a non-UTF-8, NaN-bearing, surrogate-
bearing or deeply nested body is a 400 "not valid JSON" before any handler runs. Every
router uses it (``create_app`` refuses a route that does not).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

from core.errors import ConfigurationError
from core.json_input import read_json


class StrictJsonRequest(Request):
    """A request whose ``json()`` refuses what ``read_json`` refuses."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = read_json(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """An API route that parses its JSON body with the strict reader."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler


def check_every_route_reads_json_strictly(app: FastAPI) -> None:
    """Refuse to build an app where some route would parse JSON leniently."""
    lenient = [
        route.path
        for route in app.routes
        if isinstance(route, APIRoute) and not isinstance(route, StrictJsonRoute)
    ]
    if lenient:
        raise ConfigurationError(f"routes without StrictJsonRoute: {lenient}")
