"""Hypothesis over the bodies routes read themselves: the KB bulk (JSON and multipart) and
customer events. Whatever arrives, the answer is a 2xx or a 4xx in the error shape, never
a 5xx, and the server keeps serving.

The schema fuzzer (test_api_schema_fuzz.py) cannot reach these well: the bulk route reads
its body itself (JSON or multipart, so its schema describes neither), and ``Any``-typed
event payloads are where the probe's 500s came from (a ``\\xff`` byte, 5000-deep nesting,
a lone surrogate). Here the bodies are built from the bytes up: valid shapes with hostile
values, broken JSON text, deep nesting, odd encodings, multipart parts with any name and
content. Generation is derandomized so CI sends the same cases every run.

The target is a Concierge of its own (junk documents and events stay out of the session
server's data), forwarding to the session's engine, which these routes never use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import ServerProcess, start_variant

TENANT = "fuzz-bodies"
CUSTOMER = "fuzz-body-customer"
EXAMPLES = 60
"""Cases per body kind: about a minute in all on two cores."""
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# ---------------------------------------------------------------- building blocks

hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", "\x00", "\ufeff", "‮", "%s%n", "../../etc/passwd", "a" * 5000]),
)
"""Strings a JSON encoder can write (lone surrogates come in as raw JSON text below)."""

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text,
)
json_values = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=20,
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


raw_json_text = st.one_of(
    st.builds(nested, st.integers(min_value=60, max_value=6000)),
    st.sampled_from(
        [
            '{"documents": [{"id": "a.txt", "text": "\\ud800"}]}',
            '{"kind": "note", "payload": {"text": "\\udfff\\ud800"}}',
            '{"documents": [{"id": "a.txt", "text": NaN}]}',
            '{"kind": "note", "payload": {"n": Infinity}}',
            '{"documents": ',
            "null",
            "[]",
            '"just a string"',
            '{"documents": [{"id": "a.txt", "text": "x"}], "documents": []}',
        ]
    ),
)
"""JSON text an encoder would never produce: lone surrogate escapes, NaN, deep nesting."""

raw_bytes = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"\xff\xfe{}", b'{"documents": [{"id": "\xff.txt", "text": "x"}]}']),
)

document = st.fixed_dictionaries(
    {"id": hostile_text, "text": hostile_text},
    optional={"title": hostile_text, "metadata": json_values, "format": hostile_text},
)
bulk_shaped = st.fixed_dictionaries(
    {"documents": st.lists(document, max_size=3)},
    optional={"delete": st.lists(hostile_text, max_size=3), "reindex": json_values},
)
event_shaped = st.fixed_dictionaries(
    {"kind": st.one_of(st.sampled_from(["order", "ticket", "note", "refund"]), hostile_text)},
    optional={"occurred_at": json_values, "payload": json_values},
)


# ---------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def target(
    base_url: str, data_dir: Path, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {"CONCIERGE_RATE_LIMIT_PER_MINUTE": "0"}
    running = start_variant("body-fuzz", env, base_url, data_dir, log_dir, tmp_path_factory)
    try:
        running.wait_ready(120)
        customer = {"name": "Fuzz", "tier": "standard", "locale": "en"}
        created = httpx.put(
            f"{running.url}/v1/customers/{CUSTOMER}",
            json=customer,
            headers={"X-Concierge-Tenant": TENANT},
            timeout=30,
        )
        assert created.status_code in (200, 201), created.text
        yield running
    finally:
        running.stop()


def check_answer(response: httpx.Response) -> None:
    """2xx, or a 4xx whose body is the one error shape; never a 5xx."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["type"], str) and isinstance(error["message"], str), error


def post(target: ServerProcess, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{target.url}{path}", headers={"X-Concierge-Tenant": TENANT}, timeout=60, **kwargs
    )


def post_json_text(target: ServerProcess, path: str, body: str | bytes) -> httpx.Response:
    """``body`` sent as it is, labelled JSON, whatever it holds."""
    content = body.encode() if isinstance(body, str) else body
    return httpx.post(
        f"{target.url}{path}",
        content=content,
        headers={"content-type": "application/json", "X-Concierge-Tenant": TENANT},
        timeout=60,
    )


BULK = f"/admin/kb/{TENANT}/documents:bulk"
EVENTS = f"/v1/customers/{CUSTOMER}/events"


# ---------------------------------------------------------------- the cases


@FUZZ
@given(body=st.one_of(bulk_shaped.map(json.dumps), raw_json_text, raw_bytes))
def test_the_bulk_route_answers_any_json_body_without_a_server_error(
    target: ServerProcess, body: str | bytes
) -> None:
    check_answer(post_json_text(target, BULK, body))


part_names = st.one_of(hostile_text, st.sampled_from(["faq.json", "faq.csv", "a.md", "b.html"]))
part_contents = st.one_of(
    raw_bytes,
    raw_json_text.map(str.encode),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.sampled_from([b"question,answer\nq,a\n", b"question\n\xff\n", b"# Title\n\nBody"]),
)


@FUZZ
@given(
    parts=st.lists(st.tuples(part_names, part_contents), min_size=0, max_size=3),
    field=st.sampled_from(["files", "file", "documents"]),
)
def test_the_bulk_route_answers_any_multipart_upload_without_a_server_error(
    target: ServerProcess, parts: list[tuple[str, bytes]], field: str
) -> None:
    files = [(field, (name, content, "application/octet-stream")) for name, content in parts]
    if not files:  # a multipart body with no part at all
        files = [("other", ("", b"", "text/plain"))]
    check_answer(post(target, BULK, files=files))


@FUZZ
@given(
    body=st.one_of(
        event_shaped.map(json.dumps),
        st.fixed_dictionaries({"events": st.lists(event_shaped, max_size=3)}).map(json.dumps),
        raw_json_text,
        raw_bytes,
    )
)
def test_the_events_route_answers_any_body_without_a_server_error(
    target: ServerProcess, body: str | bytes
) -> None:
    check_answer(post_json_text(target, EVENTS, body))


def test_the_server_still_serves_after_the_fuzzing(target: ServerProcess) -> None:
    assert httpx.get(f"{target.url}/readyz", timeout=30).status_code == 200
    stats = httpx.get(
        f"{target.url}/admin/kb/{TENANT}/stats", headers={"X-Concierge-Tenant": TENANT}, timeout=30
    )
    assert stats.status_code == 200, stats.text
