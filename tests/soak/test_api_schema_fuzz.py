"""Schemathesis fuzzes every operation of the published OpenAPI schema over real HTTP.

What it proves: whatever a client sends that the schema allows (and much it does
not), the server answers without a 5xx, with a status code the operation declares,
a content type it declares, and a body that matches the declared schema. The OpenAPI
document is the contract SDKs and integrators build against, so a response that
strays from it is a bug even when the status is 4xx.

The target is a Concierge of its own (its own database and indexes), never the
session server: fuzzing writes junk customers, documents and products that would
disturb other tests. Generation is forwarded to the session's vLLM server and kept
to a few tokens per request (``schema_fuzz_hooks.cap_generation``).

Schemathesis runs as its CLI, ``schemathesis run``, against the live
``/openapi.json``: that is its supported interface and it runs every phase
(schema examples, boundary-value coverage, random fuzzing). Its pytest plugin's lazy
loader cannot run under pytest 9.2 (it sets ``Function._nodeid``, which pytest no
longer has). The run is bounded per operation and deterministic (Hypothesis
derandomized: no seed, no example database), so CI sends the same cases every time.
The server requires API keys; each operation is called with a key of the role it
declares (``schema_fuzz_hooks.auth_headers``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from server.store.api_keys import Role
from tests.servers import (
    CONCIERGE,
    REPO,
    ServerProcess,
    isolated_data_dir,
    remote_engine_env,
    start_server,
)
from tests.soak.schema_fuzz_hooks import KEYS_ENV, REAL_IDS_ENV

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
TENANT = "fuzz"
CUSTOMER = "fuzz-customer"
DOCUMENT = "fuzz-doc"
PRODUCT = "fuzz-product"
MAX_EXAMPLES = 15
"""Random cases per operation, on top of the schema's examples and the coverage phase."""
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
RUN_TIMEOUT_S = 420


@dataclass
class FuzzServer:
    server: ServerProcess
    keys: dict[str, str]
    """Role -> an API key of the fuzz tenant."""

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role.value]}"}


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, log_dir: Path, base_url: str
) -> Iterator[FuzzServer]:
    """A remote-engine Concierge requiring keys, on a data directory of its own."""
    own_dir = isolated_data_dir(tmp_path_factory.mktemp("fuzz-data"), data_dir)
    env = {
        **remote_engine_env(base_url),
        "CONCIERGE_DATA_DIR": str(own_dir),
        "CONCIERGE_AUTH": "keys",
        "CONCIERGE_DEFAULT_TENANT": TENANT,
        "CONCIERGE_REPLY_MAX_TOKENS": "16",  # the smallest reply the settings allow
        "CONCIERGE_RATE_LIMIT_PER_MINUTE": "0",  # the fuzzer is one busy client
        # schemathesis loads the schema before it sends any key: the operator opens it
        "CONCIERGE_API_DOCS_PUBLIC": "true",
    }
    running = start_server(log_dir, env, name="fuzz")
    try:
        keys = {role.value: create_key(env, TENANT, role) for role in Role}
        running.wait_ready(120)
        yield FuzzServer(running, keys)
    finally:
        running.stop()


def create_key(env: dict[str, str], tenant: str, role: Role) -> str:
    """A key made by the real ``concierge keys create`` on the server's database."""
    made = subprocess.run(
        [str(CONCIERGE), "keys", "create", "--tenant", tenant, "--role", role.value],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return made.stdout.strip()


def seed_resources(fuzz: FuzzServer) -> dict[str, str]:
    """Create a customer, a conversation, a document and a product; their ids by name."""
    service, admin = fuzz.headers(Role.SERVICE), fuzz.headers(Role.ADMIN)
    with httpx.Client(base_url=fuzz.url, timeout=120) as client:
        models = client.get("/v1/models", headers=service).raise_for_status()
        model = models.json()["data"][0]["id"]
        client.put(
            f"/v1/customers/{CUSTOMER}", json={"name": "Fuzz"}, headers=service
        ).raise_for_status()
        document = {"text": "Returns are free within 30 days.", "title": "Returns"}
        client.put(
            f"/admin/kb/{TENANT}/documents/{DOCUMENT}",
            params={"wait": "true"},
            json=document,
            headers=admin,
        ).raise_for_status()
        product = {"name": "Fuzz kettle", "category": "kitchen", "price": 20.0}
        client.put(
            f"/admin/catalog/products/{PRODUCT}", json=product, headers=admin
        ).raise_for_status()
        reply = client.post(
            "/v1/support/reply",
            json={"customer_id": CUSTOMER, "message": "Can I return it?"},
            headers=service,
        ).raise_for_status()
    return {
        "tenant": TENANT,
        "customer_id": CUSTOMER,
        "doc_id": DOCUMENT,
        "product_id": PRODUCT,
        "conversation_id": str(reply.json()["conversation_id"]),
        "model": str(model),
    }


def test_every_operation_keeps_to_its_published_schema(
    fuzz_server: FuzzServer, tmp_path: Path
) -> None:
    real_ids = seed_resources(fuzz_server)
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{fuzz_server.url}/openapi.json",
        f"--checks={','.join(CHECKS)}",
        "--phases=examples,coverage,fuzzing",
        f"--max-examples={MAX_EXAMPLES}",
        "--generation-deterministic",
        "--workers=1",
        "--request-timeout=120",
        "--no-color",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.soak.schema_fuzz_hooks",
        REAL_IDS_ENV: json.dumps(real_ids),
        KEYS_ENV: json.dumps(fuzz_server.keys),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        command,
        cwd=tmp_path,  # no stray schemathesis.toml or report folder in the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis found problems:\n{report}"
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", report)
    assert selected, report
    assert len(set(selected.groups())) == 1, f"not every operation was tested:\n{report}"
