"""One way back for every versioned object: restore the fields of an earlier version."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from flags.errors import ChangeRejected, FieldError
from flags.services.objects import FLAG, ObjectKind


def snapshot(kind: ObjectKind, obj: Any) -> dict[str, Any]:
    """The editable fields of an object or one of its historical records."""
    values = {name: getattr(obj, name) for name in kind.fields if name != "owner"}
    if kind is FLAG:
        # A historical record's owner may be a user deleted since: restore no owner then.
        values["owner"] = User.objects.filter(pk=obj.owner_id).first() if obj.owner_id else None
    return values


def historical(kind: ObjectKind, obj: Any, history_id: object) -> Any:
    if isinstance(history_id, bool) or not isinstance(history_id, int):
        raise ChangeRejected(
            [FieldError("history_id", "Give a history id (an integer).", "invalid")]
        )
    model: Any = kind.model
    try:
        record = model.history.get(history_id=history_id, id=obj.pk)
    except model.history.model.DoesNotExist as exc:
        raise ChangeRejected(
            [FieldError("history_id", f"No such version of this {kind.name}.", "not_found")]
        ) from exc
    if record.history_type == "-":
        raise ChangeRejected([FieldError("history_id", "That record is a deletion.", "not_found")])
    return record


def revert_changes_of(kind: ObjectKind, obj: Any, history_id: object) -> tuple[dict[str, Any], int]:
    """The fields of an earlier version of ``obj`` and that version's number."""
    record = historical(kind, obj, history_id)
    return snapshot(kind, record), int(record.version)


def revert_edit(kind: ObjectKind, obj: Any, history_id: object, expected_version: object) -> Any:
    """The edit that restores an earlier version of ``obj`` (a flag, state or segment)."""
    from flags.services.objects import Edit

    changes, old_version = revert_changes_of(kind, obj, history_id)
    return Edit(kind, obj, changes, expected_version, note=f"(revert to version {old_version})")
