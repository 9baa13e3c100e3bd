"""A fast yes/no check that a document has the shape ruleset.schema.json describes.

jsonschema needs ~0.2 ms per flag, which alone would take a 1,000-flag compile far
past its 50 ms budget. This hand-written mirror of the schema answers "valid" in a
few milliseconds; only when it says no does validation run jsonschema, whose errors
(with their paths) are the ones reported. The mirror may be stricter than the
schema, never looser: tests/unit/engine/test_shape.py checks that every document it
accepts also passes the schema.
"""

from __future__ import annotations

from typing import Any

from .keys import KEY_RE as _KEY
from .operators import OPERATORS, SEGMENT_OPERATORS

_ROOT = {"schemaVersion", "project", "environment", "version", "generatedAt", "flags", "segments"}
_ROOT_REQUIRED = {"schemaVersion", "environment", "version", "flags", "segments"}
_FLAG_REQUIRED = {
    "key",
    "version",
    "valueType",
    "variants",
    "enabled",
    "offVariant",
    "salt",
    "rules",
    "defaultServe",
}
_FLAG = _FLAG_REQUIRED | {"description", "clientVisible", "prerequisites"}
_VALUE_TYPES = {"boolean", "string", "number", "json"}
_CONDITION = {"attribute", "operator", "values", "negate", "caseInsensitive"}
_SEGMENT = {"key", "version", "description", "keyAttribute", "included", "excluded", "rules"}


def has_schema_shape(doc: Any) -> bool:
    """True only if `doc` certainly validates against ruleset.schema.json."""
    if type(doc) is not dict or not _ROOT_REQUIRED <= doc.keys() <= _ROOT:
        return False
    if not (
        _is_int(doc["schemaVersion"])
        and doc["schemaVersion"] == 1
        and _is_text(doc["environment"], 1)
        and _is_count(doc["version"])
        and type(doc.get("project", "")) is str
        and type(doc.get("generatedAt", "")) is str
        and type(doc["flags"]) is dict
        and type(doc["segments"]) is dict
    ):
        return False
    return all(_is_key(k) and _flag_ok(f) for k, f in doc["flags"].items()) and all(
        _is_key(k) and _segment_ok(s) for k, s in doc["segments"].items()
    )


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_count(v: Any) -> bool:
    return type(v) is int and v >= 0


def _is_text(v: Any, min_len: int = 0, max_len: int | None = None) -> bool:
    return type(v) is str and len(v) >= min_len and (max_len is None or len(v) <= max_len)


def _is_key(v: Any) -> bool:
    return type(v) is str and _KEY.fullmatch(v) is not None


def _is_name(v: Any) -> bool:
    return _is_text(v, 1, 128)


def _flag_ok(f: Any) -> bool:
    if type(f) is not dict or not _FLAG_REQUIRED <= f.keys() <= _FLAG:
        return False
    variants = f["variants"]
    return (
        _is_key(f["key"])
        and _is_count(f["version"])
        and type(f.get("description", "")) is str
        and type(f["valueType"]) is str
        and f["valueType"] in _VALUE_TYPES
        and type(variants) is dict
        and len(variants) > 0
        and all(_is_name(n) for n in variants)
        and type(f["enabled"]) is bool
        and _is_name(f["offVariant"])
        and _is_text(f["salt"], 1)
        and type(f.get("clientVisible", False)) is bool
        and type(f.get("prerequisites", [])) is list
        and all(_prerequisite_ok(p) for p in f.get("prerequisites", []))
        and type(f["rules"]) is list
        and all(_rule_ok(r, serve=True) for r in f["rules"])
        and _serve_ok(f["defaultServe"])
    )


def _prerequisite_ok(p: Any) -> bool:
    return (
        type(p) is dict
        and p.keys() == {"flag", "variants"}
        and _is_key(p["flag"])
        and type(p["variants"]) is list
        and len(p["variants"]) > 0
        and all(_is_name(v) for v in p["variants"])
    )


def _rule_ok(r: Any, *, serve: bool) -> bool:
    required = {"id", "conditions", "serve"} if serve else {"id", "conditions"}
    return (
        type(r) is dict
        and required <= r.keys() <= required | {"description"}
        and _is_name(r["id"])
        and type(r.get("description", "")) is str
        and type(r["conditions"]) is list
        and all(_condition_ok(c) for c in r["conditions"])
        and (not serve or _serve_ok(r["serve"]))
    )


def _condition_ok(c: Any) -> bool:
    if type(c) is not dict or not c.keys() <= _CONDITION:
        return False
    op = c.get("operator")
    if type(op) is not str or op not in OPERATORS:
        return False
    if op in SEGMENT_OPERATORS:
        if "values" not in c:
            return False
    elif "attribute" not in c:
        return False
    values = c.get("values", [])
    return (
        ("attribute" not in c or _is_text(c["attribute"], 1))
        and type(values) is list
        and all(type(v) in (str, int, float, bool) for v in values)
        and type(c.get("negate", False)) is bool
        and type(c.get("caseInsensitive", False)) is bool
    )


def _serve_ok(s: Any) -> bool:
    if type(s) is not dict or len(s) != 1:
        return False
    if "variant" in s:
        return _is_name(s["variant"])
    if "rollout" not in s:
        return False
    r = s["rollout"]
    return (
        type(r) is dict
        and "variants" in r
        and r.keys() <= {"bucketBy", "fallbackVariant", "variants"}
        and ("bucketBy" not in r or _is_text(r["bucketBy"], 1))
        and ("fallbackVariant" not in r or _is_name(r["fallbackVariant"]))
        and type(r["variants"]) is list
        and len(r["variants"]) > 0
        and all(_split_part_ok(p) for p in r["variants"])
    )


def _split_part_ok(p: Any) -> bool:
    return (
        type(p) is dict
        and p.keys() == {"variant", "weight"}
        and _is_name(p["variant"])
        and type(p["weight"]) is int
        and 0 <= p["weight"] <= 100_000
    )


def _segment_ok(s: Any) -> bool:
    return (
        type(s) is dict
        and {"key", "version"} <= s.keys() <= _SEGMENT
        and _is_key(s["key"])
        and _is_count(s["version"])
        and type(s.get("description", "")) is str
        and ("keyAttribute" not in s or _is_text(s["keyAttribute"], 1))
        and all(_string_list(s.get(name, [])) for name in ("included", "excluded"))
        and type(s.get("rules", [])) is list
        and all(_rule_ok(r, serve=False) for r in s.get("rules", []))
    )


def _string_list(v: Any) -> bool:
    return type(v) is list and all(type(x) is str for x in v)
