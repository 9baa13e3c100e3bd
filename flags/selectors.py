"""Reads for people: one-line summaries of targeting, a flag across its environments, and
its history across environments with a field-by-field diff."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User

from flags import describe, roles
from flags.models import Environment, Flag, FlagState, Segment

BUCKETS = 100_000


def _values(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values)


def summarize_condition(cond: dict[str, Any]) -> str:
    op = str(cond.get("operator", "?"))
    values = cond.get("values", [])
    if op in ("in_segment", "not_in_segment"):
        text = f"{'in' if op == 'in_segment' else 'not in'} segment {_values(values)}"
    elif op in ("exists", "not_exists"):
        text = f"{cond.get('attribute')} {'is set' if op == 'exists' else 'is not set'}"
    else:
        text = f"{cond.get('attribute')} {op.replace('_', ' ')} {_values(values)}"
    return f"not ({text})" if cond.get("negate") else text


def summarize_serve(serve: dict[str, Any]) -> str:
    if "variant" in serve:
        return str(serve["variant"])
    rollout = serve.get("rollout") or {}
    parts = [
        f"{_percent(int(p.get('weight', 0)))} {p.get('variant')}"
        for p in rollout.get("variants", [])
        if p.get("weight")
    ]
    by = rollout.get("bucketBy")
    return " / ".join(parts) + (f" by {by}" if by else "")


def _percent(weight: int) -> str:
    return f"{weight * 100 / BUCKETS:g}%"


def summarize_rule(rule: dict[str, Any]) -> str:
    conditions = [summarize_condition(c) for c in rule.get("conditions", [])]
    when = " and ".join(conditions) if conditions else "everyone"
    return f"if {when} → {summarize_serve(rule.get('serve', {}))}"


def rollout_percentage(state: FlagState, on_variant: str | None = None) -> float | None:
    """Share of the default serve that does not get the off variant, in percent; None when
    the flag is off (nobody gets it but the rules' matches)."""
    if not state.enabled:
        return None
    serve = state.default_serve or {}
    if "variant" in serve:
        return 0.0 if serve["variant"] == state.off_variant else 100.0
    parts = (serve.get("rollout") or {}).get("variants", [])
    on = sum(int(p["weight"]) for p in parts if p.get("variant") != state.off_variant)
    return on * 100 / BUCKETS


@dataclass(frozen=True)
class StateOverview:
    environment: Environment
    state: FlagState
    rollout: float | None
    default_serve: str
    rules: list[str]
    can_edit: bool
    sentences: list[str] = field(default_factory=list)


def flag_overview(flag: Flag, user: User | AnonymousUser) -> list[StateOverview]:
    """The flag's state in every environment the user may see, in environment order."""
    states = (
        FlagState.objects.filter(flag=flag)
        .select_related("environment", "environment__project", "flag")
        .order_by("environment__sort_order", "environment__key")
    )
    segments = segment_attributes(flag.project_id)
    return [
        StateOverview(
            environment=s.environment,
            state=s,
            rollout=rollout_percentage(s),
            default_serve=describe.describe_serve(s.default_serve or {}),
            rules=[describe.describe_rule(r, segments) for r in s.rules or []],
            can_edit=roles.can(user, "edit_state", s),
            sentences=describe.state_sentences(
                {name: getattr(s, name) for name in describe.STATE_FIELDS}, segments
            ),
        )
        for s in states
        if roles.can(user, "view", s)
    ]


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str
    new: str


@dataclass
class HistoryEntry:
    history_id: int
    when: datetime
    who: str
    source: str
    reason: str
    subject: str  # "definition" or the environment key
    kind: str  # "+", "~" or "-"
    version: int
    state_id: int | None
    changes: list[FieldChange] = field(default_factory=list)
    can_revert: bool = False
    # The changes in sentences (flags.describe), what people read; ``changes`` keeps the raw diff.
    words: list[str] = field(default_factory=list)
    flag_key: str = ""


_HIDDEN = {"updated_at", "updated_by", "version", "created_at"}


def show_value(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


_SNAPSHOT_FIELDS = {
    "state": ("enabled", "off_variant", "prerequisites", "rules", "default_serve"),
    "flag": (
        "name", "description", "kind", "value_type", "variants", "salt", "client_visible",
        "tags", "expires_at", "archived",
    ),
    "segment": ("name", "description", "key_attribute", "included", "excluded", "rules"),
}  # fmt: skip


def _kind_of(subject: str) -> str:
    # Environment keys hold no spaces, so "segment <key>" never clashes with one.
    if subject == "definition":
        return "flag"
    return "segment" if subject == "segment" or subject.startswith("segment ") else "state"


def record_snapshot(record: Any, kind: str) -> dict[str, Any]:
    """The fields of a historical record that describe.describe_changes reads."""
    values = {name: getattr(record, name, None) for name in _SNAPSHOT_FIELDS[kind]}
    if kind == "flag":
        owner_id = getattr(record, "owner_id", None)
        user = User.objects.filter(pk=owner_id).first() if owner_id else None
        values["owner"] = user.get_username() if user else None
    return values


def change_words(record: Any, previous: Any | None, kind: str) -> list[str]:
    if record.history_type == "-":
        return ["deleted"]
    if previous is None:
        return [
            "created: "
            + "; ".join(describe.describe_changes(kind, {}, record_snapshot(record, kind)))
        ]
    return describe.describe_changes(
        kind, record_snapshot(previous, kind), record_snapshot(record, kind)
    ) or ["no change to the targeting (saved again)"]


def _entries(records: Iterable[Any], subject: str) -> list[HistoryEntry]:
    out: list[HistoryEntry] = []
    previous = None
    kind = _kind_of(subject)
    for record in records:
        entry = HistoryEntry(
            history_id=record.history_id,
            when=record.history_date,
            who=str(record.history_user or "—"),
            source=record.get_history_source_display(),
            reason=record.history_change_reason or "",
            subject=subject,
            kind=record.history_type,
            version=record.version,
            state_id=None if kind in ("flag", "segment") else record.id,
            words=change_words(record, previous, kind),
        )
        if previous is not None:
            delta = record.diff_against(previous)
            entry.changes = [
                FieldChange(c.field, show_value(c.old), show_value(c.new))
                for c in delta.changes
                if c.field not in _HIDDEN
            ]
        out.append(entry)
        previous = record
    return out


def flag_history(flag: Flag, user: User | AnonymousUser) -> list[HistoryEntry]:
    """The flag's definition history and its state history in every visible environment,
    newest first, each with what changed since the version before."""
    records = Flag.history.filter(id=flag.pk).order_by("history_id").select_related("history_user")
    entries = _entries(records, "definition")
    _revertible(entries, roles.can(user, "edit_flag", flag))
    for state in FlagState.objects.filter(flag=flag).select_related("environment__project"):
        if not roles.can(user, "view", state):
            continue
        records = FlagState.history.filter(id=state.pk).order_by("history_id")
        state_entries = _entries(records.select_related("history_user"), state.environment.key)
        _revertible(state_entries, roles.can(user, "edit_state", state))
        entries.extend(state_entries)
    entries.extend(_segment_entries_of(flag))
    entries.sort(key=lambda e: (e.when, e.history_id), reverse=True)
    return entries


def segments_used_by(states: Iterable[FlagState]) -> set[str]:
    keys: set[str] = set()
    for state in states:
        for rule in state.rules or []:
            for cond in rule.get("conditions", []):
                if cond.get("operator") in ("in_segment", "not_in_segment"):
                    keys.update(str(v) for v in cond.get("values") or [])
    return keys


def _segment_entries_of(flag: Flag) -> list[HistoryEntry]:
    """Changes that reached the flag through the segments its rules use now (a segment's
    rows are visible to whoever sees the project's flags). Reverted on the segment's page."""
    keys = segments_used_by(FlagState.objects.filter(flag=flag))
    entries: list[HistoryEntry] = []
    for segment in Segment.objects.filter(project_id=flag.project_id, key__in=keys):
        records = Segment.history.filter(id=segment.pk).order_by("history_id")
        entries += _entries(records.select_related("history_user"), f"segment {segment.key}")
    return entries


def recent_state_changes(states: Any, limit: int) -> list[HistoryEntry]:
    """The latest ``limit`` targeting changes among ``states``, newest first, in words."""
    records = (
        FlagState.history.filter(id__in=states.values("pk"))
        .select_related("history_user", "flag", "environment")
        .order_by("-history_date", "-history_id")[:limit]
    )
    out: list[HistoryEntry] = []
    for record in records:
        previous = (
            FlagState.history.filter(id=record.id, history_id__lt=record.history_id)
            .order_by("-history_id")
            .first()
        )
        entry = _entries([r for r in (previous, record) if r is not None], "state")[-1]
        entry.subject = record.environment.key
        entry.flag_key = record.flag.key
        out.append(entry)
    return out


def _revertible(entries: list[HistoryEntry], allowed: bool) -> None:
    """Every version but the current one (the last) may be restored, by those who may edit."""
    for entry in entries[:-1]:
        entry.can_revert = allowed and entry.kind != "-"


def segment_history(segment: Segment, user: User | AnonymousUser) -> list[HistoryEntry]:
    """The segment's versions, newest first, each with what changed since the one before."""
    records = Segment.history.filter(id=segment.pk).order_by("history_id")
    entries = _entries(records.select_related("history_user"), "segment")
    _revertible(entries, roles.can(user, "edit_segment", segment))
    entries.reverse()
    return entries


def segment_attributes(project_id: int) -> dict[str, dict[str, str]]:
    """Segment key -> {"key_attribute": ...}: what describe needs to say "accounts in"."""
    rows = Segment.objects.filter(project_id=project_id).values_list("key", "key_attribute")
    return {key: {"key_attribute": attribute} for key, attribute in rows}


def segment_references(segment: Segment) -> list[str]:
    """Where flag rules use the segment, as "flag@environment (rule id)"."""
    found = []
    states = FlagState.objects.filter(flag__project_id=segment.project_id, flag__archived=False)
    for state in states.select_related("flag", "environment").order_by("flag__key", "pk"):
        for rule in state.rules or []:
            for cond in rule.get("conditions", []):
                if "segment" in str(cond.get("operator")) and segment.key in (
                    cond.get("values") or []
                ):
                    found.append(f"{state.flag.key}@{state.environment.key} ({rule.get('id')})")
                    break
    return found
