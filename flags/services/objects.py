"""The changes the pipeline runs for flags, flag states and segments: edit, create, delete.

One generic edit serves every versioned row (a flag definition, a flag state, a segment, an
archive, a revert); what differs per kind of object is data in an ``ObjectKind``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import models

from flags import roles
from flags.errors import ChangeRejected, FieldError
from flags.history import stamp
from flags.models import Environment, Flag, FlagState, Segment
from flags.rulesets import default_off_variant
from flags.services.base import Actor, check_version, full_clean, require, unknown_fields

STATE_FIELDS = ("enabled", "off_variant", "rules", "default_serve", "prerequisites")
FLAG_FIELDS = (
    "name", "description", "kind", "value_type", "variants", "salt", "client_visible",
    "owner", "tags", "expires_at",
)  # fmt: skip
SEGMENT_FIELDS = ("name", "description", "key_attribute", "included", "excluded", "rules")
IMMUTABLE_KEY = FieldError("key", "The key cannot change once created.", "immutable")


@dataclass(frozen=True, slots=True)
class ObjectKind:
    name: str
    model: type[models.Model]
    fields: tuple[str, ...]
    action: roles.Action
    label: Callable[[Any], str]
    subject: Callable[[Any], str]
    select_related: tuple[str, ...] = ()
    clean_exclude: tuple[str, ...] = ()

    def lock(self, pk: int) -> Any:
        rows = self.model._default_manager.select_for_update(of=("self",))
        return rows.select_related(*self.select_related).get(pk=pk)

    def get(self, pk: int) -> Any:
        return self.model._default_manager.select_related(*self.select_related).get(pk=pk)


FLAG = ObjectKind(
    "flag", Flag, FLAG_FIELDS, "edit_flag",
    label=lambda f: f"flag {f.key} definition edit",
    subject=lambda f: f"flags.{f.key}",
    select_related=("project",),
)  # fmt: skip
ARCHIVE = ObjectKind(
    "archive", Flag, ("archived",), "archive_flag",
    label=lambda f: f"flag {f.key} {'archive' if f.archived else 'restore'}",
    subject=lambda f: f"flags.{f.key}",
    select_related=("project",),
)  # fmt: skip
STATE = ObjectKind(
    "state", FlagState, STATE_FIELDS, "propose",
    label=lambda s: f"{s.flag.key} targeting edit in {s.environment.key}",
    subject=lambda s: f"flags.{s.flag.key}",
    select_related=("flag", "environment__project"),
    clean_exclude=("flag", "environment", "updated_by"),
)  # fmt: skip
SEGMENT = ObjectKind(
    "segment", Segment, SEGMENT_FIELDS, "edit_segment",
    label=lambda s: f"segment {s.key} edit",
    subject=lambda s: f"segments.{s.key}",
    select_related=("project",),
)  # fmt: skip
KINDS = {k.name: k for k in (FLAG, ARCHIVE, STATE, SEGMENT)}


def project_id_of(obj: Any) -> int:
    if isinstance(obj, FlagState):
        return int(obj.environment.project_id)
    return int(obj.project_id)


def _encode(value: Any) -> Any:
    """JSON for a field value (the owner is stored by primary key, dates as ISO text)."""
    if isinstance(value, models.Model):
        return value.pk
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@dataclass(slots=True)
class Edit:
    """Sets fields of one versioned row; ``note`` ("revert to version 3") goes into history."""

    kind: ObjectKind
    target: Any
    changes: Mapping[str, Any]
    expected_version: object
    note: str = ""
    project_id: int = field(init=False)

    def __post_init__(self) -> None:
        self.project_id = project_id_of(self.target)
        if "key" in self.changes and self.changes["key"] != getattr(self.target, "key", None):
            raise ChangeRejected([IMMUTABLE_KEY])
        self.changes = {k: v for k, v in self.changes.items() if k != "key"}
        unknown_fields(self.changes, self.kind.fields)

    @property
    def label(self) -> str:
        return self.kind.label(self.target)

    @property
    def subject(self) -> str | None:
        return self.kind.subject(self.target)

    def authorize(self, who: Actor) -> None:
        require(who, self.kind.action, self.target)

    def apply(self, who: Actor, source: str, reason: str) -> list[models.Model]:
        locked = self.kind.lock(self.target.pk)
        check_version(locked, self.expected_version)
        for name, value in self.changes.items():
            if name == "owner" and isinstance(value, int):
                # A stored change request holds the owner by primary key.
                value = User.objects.filter(pk=value).first()
            setattr(locked, name, value)
        locked.version += 1
        if isinstance(locked, FlagState):
            locked.updated_by = who.user
        full_clean(locked, exclude=self.kind.clean_exclude)
        stamp(locked, user=who.user, source=source, reason=f"{reason} {self.note}".strip())
        locked.save()
        self.target = locked
        return [locked]

    def payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind.name,
            "id": self.target.pk,
            "changes": {k: _encode(v) for k, v in self.changes.items()},
            "version": self.expected_version,
            "note": self.note,
        }

    def declared_environments(self) -> frozenset[int]:
        return frozenset()


def _new_states(
    flag: Flag, environments: list[Environment], who: Actor, source: str, reason: str
) -> list[models.Model]:
    off = default_off_variant(flag)
    saved: list[models.Model] = []
    for env in environments:
        state = FlagState(
            flag=flag, environment=env, off_variant=off, default_serve={"variant": off}
        )
        state.updated_by = who.user
        stamp(state, user=who.user, source=source, reason=reason)
        state.save()
        saved.append(state)
    return saved


@dataclass(slots=True)
class Create:
    """Creates a flag (off in every environment) or a segment."""

    kind: ObjectKind
    project: Any
    data: Mapping[str, Any]
    project_id: int = field(init=False)
    created: Any = None

    def __post_init__(self) -> None:
        self.project_id = int(self.project.pk)
        unknown_fields(self.data, ("key", *self.kind.fields))

    @property
    def label(self) -> str:
        return f"new {self.kind.name} {self.data.get('key', '')}"

    @property
    def subject(self) -> str | None:
        return f"{'flags' if self.kind is FLAG else 'segments'}.{self.data.get('key', '')}"

    def authorize(self, who: Actor) -> None:
        require(who, self.kind.action, self.project)

    def apply(self, who: Actor, source: str, reason: str) -> list[models.Model]:
        values = dict(self.data)
        boolean = values.get("value_type", "boolean") == "boolean"
        if self.kind is FLAG and boolean and not values.get("variants"):
            values["variants"] = {"on": True, "off": False}
        obj = self.kind.model(project=self.project, **values)
        full_clean(obj)
        stamp(obj, user=who.user, source=source, reason=reason)
        obj.save()
        self.created = obj
        saved: list[models.Model] = [obj]
        if isinstance(obj, Flag):
            envs = list(Environment.objects.filter(project=self.project))
            saved += _new_states(obj, envs, who, source, reason)
        return saved

    def payload(self) -> dict[str, Any]:
        return {
            "kind": f"create_{self.kind.name}",
            "data": {k: _encode(v) for k, v in self.data.items()},
        }

    def declared_environments(self) -> frozenset[int]:
        return frozenset()


@dataclass(slots=True)
class DeleteSegment:
    """Deletes a segment no flag refers to (the validation refuses otherwise)."""

    target: Segment
    expected_version: object
    kind: str = "delete_segment"
    project_id: int = field(init=False)

    def __post_init__(self) -> None:
        self.project_id = int(self.target.project_id)

    @property
    def label(self) -> str:
        return f"segment {self.target.key} deletion"

    @property
    def subject(self) -> str | None:
        return None

    def authorize(self, who: Actor) -> None:
        require(who, "edit_segment", self.target)

    def apply(self, who: Actor, source: str, reason: str) -> list[models.Model]:
        locked = SEGMENT.lock(self.target.pk)
        check_version(locked, self.expected_version)
        stamp(locked, user=who.user, source=source, reason=reason)
        locked.delete()
        return []

    def payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.target.pk, "version": self.expected_version}

    def declared_environments(self) -> frozenset[int]:
        return frozenset()
