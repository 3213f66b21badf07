"""The one JSON reader for client input: what it refuses, and that it reads the rest."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.json_input import MAX_DEPTH, read_json

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_any_json_a_client_may_send_reads_back(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False)
    assert read_json(raw.encode("utf-8")) == value
    assert read_json(raw) == value


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"documents": "\xff"}', "not UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper"),  # the probe's RecursionError
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested deeper"),
        (b'{"price": NaN}', "NaN is not a JSON number"),
        (b'{"price": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"note": "\\ud800"}', "unpaired surrogate"),  # the probe's UnicodeEncodeError
    ],
)
def test_what_no_client_should_send_is_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(json.JSONDecodeError, match=reason):
        read_json(raw)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"note": "[" * 500 + '"{' * 100})
    assert read_json(text) == {"note": "[" * 500 + '"{' * 100}
    assert read_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_a_surrogate_pair_written_as_escapes_is_one_character() -> None:
    assert read_json(b'"\\ud83d\\ude00"') == "\N{GRINNING FACE}"
