"""Schemathesis hooks for ``test_api_schema_fuzz``, loaded by its ``schemathesis run``.

They run inside the schemathesis process (``SCHEMATHESIS_HOOKS`` names this module)
and learn what the test prepared from environment variables: the ids of resources
the test seeded, so fuzzed path parameters name real ones part of the time, and the
API keys to call each operation with when the server under test requires keys.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, HookContext

REAL_IDS_ENV = "CONCIERGE_FUZZ_REAL_IDS"
"""JSON object: path parameter (or body field) name -> an id the server knows."""
KEYS_ENV = "CONCIERGE_FUZZ_KEYS"
"""JSON object: role (service, admin, ops) -> an API key of the test's tenant."""
ROLE_EXTENSION = "x-concierge-role"
MAX_TOKENS = 4
"""The most tokens one fuzzed generation may ask for: generation on CPU is the slow part."""
GENERATING_PATHS = ("/v1/chat/completions", "/v1/completions")


# The tenant file (PUT /admin/tenants/{tenant}) is TOML text: fuzzed strings go out as
# text, and whatever does not parse or validate must be a clear 400.
schemathesis.serializer.alias("application/toml", "text/plain")


def _real_ids() -> dict[str, str]:
    return dict(json.loads(os.environ.get(REAL_IDS_ENV, "{}")))


def auth_headers(operation: APIOperation) -> dict[str, str]:
    """Headers that authorize a call of ``operation``: the key of the role it requires.

    Each operation names its role in ``x-concierge-role``. While the server under test
    runs open (development mode on loopback) the test passes no keys, and none is sent.
    """
    keys: dict[str, str] = json.loads(os.environ.get(KEYS_ENV, "{}"))
    role = operation.definition.raw.get(ROLE_EXTENSION)
    if role not in keys:
        return {}
    return {"Authorization": f"Bearer {keys[role]}"}


VALID_BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "Hi"}]},
    "/v1/completions": {"prompt": "Hello"},
    "/v1/support/reply": {"message": "Where is my order?"},
}
"""Bodies the server accepts, for requests whose fuzzed body would be refused anyway."""


@schemathesis.hook
def flatmap_case(context: HookContext, case: Case) -> st.SearchStrategy[Case]:
    """Mix in cases that reach real work: known ids, and accepted (streamed) requests.

    Random data seldom gets past the validators the schema cannot express (``n`` must be
    1, tools are refused, ids must exist), so generation and streaming would go untested.
    """
    variants = [st.just(case), st.just(case).map(_with_real_ids)]
    if case.operation.path in VALID_BODIES and case.operation.method.upper() == "POST":
        variants.append(st.booleans().map(lambda stream: _accepted(case, stream)))
    return st.one_of(variants)


def _accepted(case: Case, stream: bool) -> Case:
    real = _real_ids()
    body = dict(VALID_BODIES[case.operation.path], stream=stream)
    if case.operation.path == "/v1/support/reply":
        body["customer_id"] = real["customer_id"]
    else:
        body["model"] = real["model"]
    case.body = body
    return case


def _with_real_ids(case: Case) -> Case:
    real = _real_ids()
    parameters = case.path_parameters or {}
    for name, value in parameters.items():
        if name in real and isinstance(value, str):
            parameters[name] = real[name]
    if isinstance(case.body, dict):
        for name in ("model", "customer_id"):
            if name in real and isinstance(case.body.get(name), str):
                case.body[name] = real[name]
    return case


@schemathesis.hook
def before_call(context: HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    """Cap what a request may generate, and authorize it."""
    cap_generation(case)
    case.headers = {**(case.headers or {}), **auth_headers(case.operation)}


def cap_generation(case: Case) -> None:
    """Keep a fuzzed generation to a few tokens; values out of range are left to be refused."""
    if case.operation.path not in GENERATING_PATHS or not isinstance(case.body, dict):
        return
    body: dict[str, Any] = case.body
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
            body[name] = MAX_TOKENS
    if body.get("max_tokens") is None:
        body["max_tokens"] = MAX_TOKENS
