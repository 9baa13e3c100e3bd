"""Compiles an environment's flags and segments into the engine's ruleset document.

The document shape is the engine's (flagsite_sdk/engine/ruleset.schema.json and
docs/ruleset.md); the engine's validate_ruleset is the only validator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone
from flagsite_sdk.engine import RULESET_SCHEMA_VERSION, RulesetError, validate_ruleset

from flags.models import Environment, Flag, FlagState, Ruleset, Segment
from flags.realtime import publish_ruleset


def default_off_variant(flag: Flag) -> str:
    variants: dict[str, Any] = flag.variants or {}
    if "off" in variants:
        return "off"
    return next(iter(variants), "off")


def flag_document(flag: Flag, state: FlagState | None) -> dict[str, Any]:
    """One flag's entry. A flag without a state row yet is served off."""
    off = state.off_variant if state is not None else default_off_variant(flag)
    doc: dict[str, Any] = {
        "key": flag.key,
        # Increases whenever the definition or this environment's targeting changes.
        "version": flag.version + (state.version if state is not None else 1) - 1,
        "valueType": flag.value_type,
        "variants": flag.variants,
        "enabled": state.enabled if state is not None else False,
        "offVariant": off,
        "salt": flag.salt or flag.key,
        "clientVisible": flag.client_visible,
        "rules": state.rules if state is not None else [],
        "defaultServe": state.default_serve if state is not None else {"variant": off},
    }
    if flag.description:
        doc["description"] = flag.description
    if state is not None and state.prerequisites:
        doc["prerequisites"] = state.prerequisites
    return doc


def segment_document(segment: Segment) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": segment.key,
        "version": segment.version,
        "keyAttribute": segment.key_attribute,
        "included": segment.included,
        "excluded": segment.excluded,
        "rules": segment.rules,
    }
    if segment.description:
        doc["description"] = segment.description
    return doc


def build_ruleset_document(environment: Environment, *, version: int = 0) -> dict[str, Any]:
    """The document of ``environment`` as the database holds it now (in this transaction)."""
    states = {s.flag_id: s for s in FlagState.objects.filter(environment=environment)}
    flags = Flag.objects.filter(project_id=environment.project_id, archived=False)
    segments = Segment.objects.filter(project_id=environment.project_id)
    return {
        "schemaVersion": RULESET_SCHEMA_VERSION,
        "project": environment.project.key,
        "environment": environment.key,
        "version": version,
        "generatedAt": timezone.now().isoformat(),
        "flags": {f.key: flag_document(f, states.get(f.pk)) for f in flags.order_by("key")},
        "segments": {s.key: segment_document(s) for s in segments.order_by("key")},
    }


def validate_document(doc: dict[str, Any]) -> list[RulesetError]:
    return validate_ruleset(doc)


@dataclass(frozen=True, slots=True)
class RebuildResult:
    environment: Environment
    version: int
    changed: bool
    errors: list[RulesetError]


def _content(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("version", "generatedAt")}


def lock_rulesets(environments: list[Environment]) -> dict[int, Ruleset]:
    """Locks (creating where missing) the ruleset rows of ``environments``, in a fixed order so
    that concurrent writers of one project queue up instead of deadlocking."""
    for env in environments:
        Ruleset.objects.get_or_create(environment=env)
    rows = Ruleset.objects.select_for_update().filter(environment__in=environments)
    return {row.environment_id: row for row in rows.order_by("environment_id")}


def store_ruleset(ruleset: Ruleset, doc: dict[str, Any]) -> bool:
    """Stores a validated candidate document as the next version of a locked ruleset row.

    An unchanged document keeps its version. The publish is deferred to transaction.on_commit,
    so a rollback neither bumps nor announces anything. Returns whether it changed.
    """
    if ruleset.document and _content(ruleset.document) == _content(doc):
        return False
    ruleset.version += 1
    ruleset.document = {**doc, "version": ruleset.version}
    ruleset.save(update_fields=["version", "document", "updated_at"])
    transaction.on_commit(partial(publish_ruleset, ruleset.environment_id, ruleset.version))
    return True


def rebuild_ruleset(environment: Environment) -> RebuildResult:
    """Rebuilds, validates and stores the environment's ruleset (system upkeep, e.g. a new
    environment). Must run inside the transaction that made the change; an invalid document
    is not stored."""
    ruleset = lock_rulesets([environment])[environment.pk]
    doc = build_ruleset_document(environment, version=ruleset.version + 1)
    errors = validate_document(doc)
    if errors:
        return RebuildResult(environment, ruleset.version, changed=True, errors=errors)
    changed = store_ruleset(ruleset, doc)
    return RebuildResult(environment, ruleset.version, changed=changed, errors=[])
