"""One reader for JSON that clients send: UTF-8, bounded depth, no NaN, encodable text.

Python's ``json`` module is lenient where a server must not be: it reads ``NaN`` and
``Infinity`` (which JSON does not have, and which the database then stores as null), it
returns lone surrogates (``"\\ud800"``) that later fail to encode on their way to the
encryption or the database, and it recurses once per nesting level until a deep enough
body raises ``RecursionError``. Every JSON body Concierge reads, whether FastAPI parses
it for a route (``server/http/json_body.py``) or a route or an upload parser reads it
itself (bulk documents, FAQ files), goes through ``read_json``; what it refuses is raised
as ``json.JSONDecodeError``, which the API answers as a 400 in the one error shape.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
"""Nesting deeper than this is no document a support system sends: refused before
parsing, so no parser or validator recurses on it."""

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def read_json(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in ``raw``; ``json.JSONDecodeError`` says why when it is refused."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError("the body is not UTF-8", "", exc.start) from exc
    else:
        text = raw
    _check_depth(text, max_depth)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as exc:  # a safety net: _check_depth refuses this first
        raise json.JSONDecodeError("nested too deeply", "", 0) from exc
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise json.JSONDecodeError(
            "a string holds an unpaired surrogate escape (\\ud800-\\udfff)", "", 0
        ) from exc
    return value


def _check_depth(text: str, max_depth: int) -> None:
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                raise json.JSONDecodeError(f"nested deeper than {max_depth} levels", "", 0)
        else:
            depth -= 1


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", "", 0)
