"""Forward compatibility: what an SDK does with a ruleset from a newer server.

The server refuses everything outside the contract at save time. An SDK has no such choice:
the document it holds may come from a newer server (an operator or serve kind this engine does
not know, an optional field added since) or from an older one (an operand that a former
grammar let through). Refusing the whole document would leave every flag on its last version
or, for a new process, on the caller's defaults; a kill switch in the same version would never
apply. So, as docs/ruleset.md says:

- unknown optional fields are dropped before validation (adding an optional field does not
  change the schema version, so an older engine may ignore it);
- a flag (or a segment) that still does not validate is *broken*: it alone answers
  ERROR / PARSE_ERROR, and so does every flag that uses a broken segment. A flag whose
  prerequisite is broken is not broken itself: the prerequisite serves no variant, so it is
  not met and the flag serves its offVariant.
- only a document whose top level is unusable (not an object, another schemaVersion, no
  flags) is refused whole.

The Node engine (sdk/js/packages/node/src/engine/compiler.ts) follows the same rules;
tests/vectors/forward.json holds the cases both pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .keys import is_key
from .operators import SEGMENT_OPERATORS
from .shape import has_schema_shape
from .types import RulesetError
from .validate import ruleset_schema, validate_ruleset


@dataclass(frozen=True, slots=True)
class Partition:
    """A document split into what compiles and what does not."""

    document: dict[str, Any]  # unknown fields dropped; every flag and segment kept
    top_level: list[RulesetError]  # non-empty: the document cannot be used at all
    broken_flags: dict[str, list[RulesetError]]
    broken_segments: dict[str, list[RulesetError]]


def partition(doc: Any) -> Partition:
    """Validates `doc` flag by flag, after dropping the fields this engine does not know."""
    if not isinstance(doc, Mapping):
        error = RulesetError("", "the ruleset must be a JSON object", "schema.type")
        return Partition({}, [error], {}, {})
    # The fast shape check accepts no unknown field: when it passes, nothing needs stripping
    # (and validate_ruleset's own shape check below answers from the same warm data).
    stripped = doc if has_schema_shape(doc) else strip_unknown_fields(doc)
    if not isinstance(stripped, dict):
        stripped = dict(stripped)
    flags = stripped.get("flags")
    segments = stripped.get("segments")
    if type(flags) is not dict or type(segments) is not dict:
        return Partition(stripped, validate_ruleset(stripped) or _missing(), {}, {})
    # A key outside the key grammar fails the schema at the path "flags" (propertyNames),
    # which names no entry; such entries are set aside as broken and validated no further.
    bad_flags = {k: [_bad_key("flags", k)] for k in flags if not is_key(k)}
    bad_segments = {k: [_bad_key("segments", k)] for k in segments if not is_key(k)}
    checked = {
        **stripped,
        "flags": {
            k: _without_prerequisites_on(f, bad_flags)
            for k, f in flags.items()
            if k not in bad_flags
        },
        "segments": {k: s for k, s in segments.items() if k not in bad_segments},
    }
    top_level: list[RulesetError] = []
    broken_flags: dict[str, list[RulesetError]] = dict(bad_flags)
    broken_segments: dict[str, list[RulesetError]] = dict(bad_segments)
    errors = validate_ruleset(checked)
    if errors and not any(e.code != "number_range" for e in errors):
        # Numbers no double holds are reported alone, before anything else is checked: set
        # their owners aside and validate the rest again, or its other problems go unseen.
        _assign(errors, flags, segments, broken_flags, broken_segments, top_level)
        if top_level:
            return Partition(stripped, top_level, broken_flags, broken_segments)
        checked = _without(checked, broken_flags, broken_segments)
        errors = validate_ruleset(checked)
    _assign(errors, flags, segments, broken_flags, broken_segments, top_level)
    if not top_level:
        for key, flag in flags.items():
            if key in broken_flags:
                continue
            used = _broken_segments_used(flag, broken_segments)
            if used is not None:
                message = f"uses segment {used!r}, which could not be compiled"
                broken_flags[key] = [RulesetError(f"flags.{key}", message, "broken_segment")]
    return Partition(stripped, top_level, broken_flags, broken_segments)


def _assign(
    errors: list[RulesetError],
    flags: Mapping[str, Any],
    segments: Mapping[str, Any],
    broken_flags: dict[str, list[RulesetError]],
    broken_segments: dict[str, list[RulesetError]],
    top_level: list[RulesetError],
) -> None:
    """Files each error under the flag or segment its path names, or the top level."""
    for error in errors:
        parts = error.path.split(".")
        if len(parts) >= 2 and parts[0] == "flags" and parts[1] in flags:
            broken_flags.setdefault(parts[1], []).append(error)
        elif len(parts) >= 2 and parts[0] == "segments" and parts[1] in segments:
            broken_segments.setdefault(parts[1], []).append(error)
        else:
            top_level.append(error)


def _without(
    doc: dict[str, Any], flags: Mapping[str, Any], segments: Mapping[str, Any]
) -> dict[str, Any]:
    """`doc` less the given flags and segments, and less the prerequisites naming them."""
    return {
        **doc,
        "flags": {
            k: _without_prerequisites_on(f, flags)
            for k, f in doc["flags"].items()
            if k not in flags
        },
        "segments": {k: s for k, s in doc["segments"].items() if k not in segments},
    }


def _missing() -> list[RulesetError]:
    return [RulesetError("", "flags and segments must be objects", "schema.type")]


def _bad_key(kind: str, key: str) -> RulesetError:
    return RulesetError(f"{kind}.{key}", f"{key!r} is not a key", "schema.pattern")


def _without_prerequisites_on(flag: Any, bad: Mapping[str, Any]) -> Any:
    """`flag` for validation, minus prerequisites on set-aside flags (served as not met)."""
    if not bad or type(flag) is not dict or type(flag.get("prerequisites")) is not list:
        return flag
    kept = [p for p in flag["prerequisites"] if not (type(p) is dict and p.get("flag") in bad)]
    return {**flag, "prerequisites": kept}


def _broken_segments_used(flag: Any, broken: Mapping[str, Any]) -> str | None:
    if not broken:
        return None
    for rule in flag.get("rules", []):
        for cond in rule.get("conditions", []):
            if cond.get("operator") in SEGMENT_OPERATORS:
                for name in cond.get("values", []):
                    if name in broken:
                        return str(name)
    return None


def strip_unknown_fields(doc: Any) -> Any:
    """`doc` without the properties ruleset.schema.json does not name (copies what it changes).

    Driven by the schema itself, so a field added to the schema is kept without a change
    here. Values of the wrong type are left as they are, for validation to report.
    """
    schema = ruleset_schema()
    return _strip(doc, schema, schema["$defs"])


def _strip(value: Any, node: Mapping[str, Any], defs: Mapping[str, Any]) -> Any:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        node = defs[ref.removeprefix("#/$defs/")]
    if type(value) is dict:
        known: Mapping[str, Any] = node.get("properties", {})
        extra = node.get("additionalProperties")
        out: dict[str, Any] = {}
        changed = False
        for name, item in value.items():
            if name in known:
                new = _strip(item, known[name], defs)
            elif isinstance(extra, Mapping):
                new = _strip(item, extra, defs)
            elif extra is False:
                changed = True
                continue
            else:
                new = item
            changed = changed or new is not item
            out[name] = new
        return out if changed else value
    if type(value) is list and isinstance(node.get("items"), Mapping):
        items = [_strip(item, node["items"], defs) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return items
    return value
