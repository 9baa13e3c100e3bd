"""The API's one JSON parser (orjson), with the limits every body must respect.

- Size: at most ``FLAGSITE_API_MAX_BODY_BYTES`` (event batches: ``FLAGSITE_EVENTS_MAX_BODY_BYTES``);
  a larger body is a 413 before it is parsed.
- Depth: arrays and objects nested at most ``MAX_JSON_DEPTH`` levels; deeper is a 400. Nothing
  downstream (serializers, the validator, psycopg's JSON dumps) then risks a RecursionError.
- Text: a body that is stored (management, events) may not hold a NUL character or a lone UTF-16
  surrogate in any string or key: PostgreSQL cannot store either. The 400 names the path
  (``rules[0].conditions[1].values[2]``). Evaluation bodies are never stored: there a lone
  surrogate becomes U+FFFD, exactly what the engine does to it before hashing (docs/ruleset.md),
  so the server answers as every SDK does.

The common case costs one orjson call and a count of brackets; the slow paths run only for the
rare body that needs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser

MAX_JSON_DEPTH = 64
_NUL_ESCAPE = b"\\u0000"
_SURROGATE = re.compile("[\ud800-\udfff]")


class BodyInvalid(exceptions.ParseError):
    """A body that is not acceptable JSON; ``path`` names the offending place ("" = the body)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = _without_surrogates(path)  # the path may hold the offending key itself
        self.message = message


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _without_surrogates(text: str) -> str:
    # The engine's rule (spec decision 2): each lone surrogate becomes U+FFFD. Pairs written as
    # two escapes were already joined into one character by the JSON decoder.
    return _SURROGATE.sub("\ufffd", text)


def _child_path(path: str, name: object) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else str(name)


def _walk(data: Any) -> Iterator[tuple[str, int, Any]]:
    """(path, depth, value) of every value, keys included (as the value at their own path)."""
    stack: list[tuple[str, int, Any]] = [("", 0, data)]
    while stack:
        path, depth, value = stack.pop()
        yield path, depth, value
        if isinstance(value, dict):
            for name, child in value.items():
                child_path = _child_path(path, name)
                yield child_path, depth + 1, name
                stack.append((child_path, depth + 1, child))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                stack.append((_child_path(path, index), depth + 1, child))


def check_depth(data: Any, raw: bytes) -> None:
    # A body with few brackets cannot be deep: the walk is for the rare body that might be.
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return
    for path, depth, value in _walk(data):
        if depth > MAX_JSON_DEPTH and isinstance(value, dict | list):
            raise BodyInvalid(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.", path)


def check_text(data: Any) -> None:
    for path, _, value in _walk(data):
        if isinstance(value, str):
            if "\x00" in value:
                raise BodyInvalid("NUL characters are not allowed.", path)
            if _has_lone_surrogate(value):
                raise BodyInvalid("Lone UTF-16 surrogates are not allowed.", path)


def replace_surrogates(data: Any) -> Any:
    """A copy of ``data`` with every lone surrogate, in keys and strings, replaced by U+FFFD."""
    if isinstance(data, str):
        return _without_surrogates(data) if _has_lone_surrogate(data) else data
    if isinstance(data, dict):
        return {replace_surrogates(k): replace_surrogates(v) for k, v in data.items()}
    if isinstance(data, list):
        return [replace_surrogates(v) for v in data]
    return data


def loads(raw: bytes, *, stored: bool) -> Any:
    """Parse ``raw`` under the limits above; BodyInvalid says what is wrong and where."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "depth" in message:
            raise BodyInvalid(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from None
        if "surrogate" not in message:
            raise BodyInvalid(f"JSON parse error - {message}") from None
        # orjson refuses lone surrogates; the standard library reads them, so the body can be
        # refused with a path (stored) or repaired as the engine would (evaluation).
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as again:
            raise BodyInvalid(f"JSON parse error - {again}") from None
        check_depth(data, raw)
        if stored:
            check_text(data)
        return replace_surrogates(data)
    check_depth(data, raw)
    if stored and _NUL_ESCAPE in raw:
        check_text(data)
    return data


class JSONBodyParser(BaseParser):
    """orjson, size- and depth-limited; refuses NUL and lone surrogates (bodies that are stored)."""

    media_type = "application/json"
    stored = True
    setting = "FLAGSITE_API_MAX_BODY_BYTES"

    def limit(self) -> int:
        limit: int = getattr(settings, self.setting)
        return limit

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = self.limit()
        request = (parser_context or {}).get("request")
        declared = getattr(request, "META", {}).get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"The body is larger than {limit} bytes.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise BodyTooLarge(f"The body is larger than {limit} bytes.")
        return loads(raw, stored=self.stored)


class EvaluationJSONParser(JSONBodyParser):
    """For evaluation contexts, which are never stored: lone surrogates become U+FFFD."""

    stored = False


class EventBatchJSONParser(JSONBodyParser):
    """Event batches may be larger: up to 10,000 events in one body."""

    setting = "FLAGSITE_EVENTS_MAX_BODY_BYTES"
