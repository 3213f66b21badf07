"""Values one database stores and another refuses get a 400, never a 500.

PostgreSQL refuses NUL characters in text that SQLite keeps. The handler is checked
with a real store on both backends behind the app's own error handlers.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from core.crypto import Keyring
from server.http.errors import install_error_handlers
from server.store.customers import CustomerStore
from tests.error_shape import assert_error_shape

KEYRING = Keyring.generate()
"""One key for every store of this module, so a reopened store reads what it wrote."""


def test_a_name_with_a_nul_character_is_stored_or_refused_with_a_400(
    store_engine: Engine,
) -> None:
    store = CustomerStore(store_engine, KEYRING)
    app = FastAPI()
    install_error_handlers(app)

    @app.put("/customers/{customer_id}")
    def put(customer_id: str, name: str) -> dict[str, str]:
        store.upsert(
            "t", customer_id, name=name, tier="standard", locale="en", consent={}, attributes={}
        )
        return {"stored": customer_id}

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.put("/customers/c-1", params={"name": "Ana\x00Ribeiro"})
        if store_engine.dialect.name == "postgresql":
            assert_error_shape(response, 400, "invalid_request_error")
            assert "\x00" not in response.text and "Ribeiro" not in response.text
            assert store.get("t", "c-1") is None  # nothing half-written
        else:
            assert response.status_code == 200
        assert client.put("/customers/c-2", params={"name": "Ben"}).status_code == 200
