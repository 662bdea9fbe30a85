"""Parsing request bodies as JSON without letting hostile input reach a 500.

``json.loads`` recurses once per nesting level: ``[[[[...]]]]`` a hundred thousand deep raises
``RecursionError`` (not ``ValueError``), and a body just under the interpreter's limit parses but
leaves no stack for the code that walks it next. No body this site accepts nests deeper than a
few levels, so anything deeper than ``MAX_DEPTH`` is refused as a bad body, before any
validation or write.
"""

from __future__ import annotations

import json
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 32


class JsonBodyError(ValueError):
    """The body is not JSON this site will read; ``str()`` says why (for ``"body: ..."``)."""


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests arrays/objects deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads(raw: bytes | str) -> Any:
    """``json.loads`` that raises only ``JsonBodyError`` for what a client can send."""
    try:
        value = json.loads(raw)
    except RecursionError as exc:
        raise JsonBodyError(f"nested deeper than {MAX_DEPTH} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonBodyError("not valid JSON") from exc
    if too_deep(value):
        raise JsonBodyError(f"nested deeper than {MAX_DEPTH} levels")
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with ``loads()``: a too-deep body is a 400, not a RecursionError."""

    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            return loads(raw)
        except JsonBodyError as exc:
            raise ParseError(str(exc)) from exc
