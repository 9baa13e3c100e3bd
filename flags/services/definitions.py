"""Flags: create, edit the definition, archive or restore, revert."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flags.models import Flag, Project
from flags.services.base import ActorLike
from flags.services.objects import ARCHIVE, FLAG, Create, Edit
from flags.services.pipeline import Mode, Outcome
from flags.services.revert import revert_changes_of, revert_edit, snapshot
from flags.services.submit import submit


def create_flag(
    project: Project, *, data: Mapping[str, Any], actor: ActorLike, source: str, reason: str = ""
) -> Flag:
    """Creates a flag (``data``: key, name and any of FLAG_FIELDS), off in every environment."""
    change = Create(FLAG, project, data)
    submit([change], actor=actor, source=source, reason=reason)
    created: Flag = change.created
    return created


def update_flag(
    flag: Flag,
    *,
    changes: Mapping[str, Any],
    expected_version: object,
    actor: ActorLike,
    source: str,
    reason: str = "",
    mode: Mode = Mode.APPLY,
) -> Flag:
    """Edits a flag's definition. The key is immutable; archive with archive_flag."""
    edit = Edit(FLAG, flag, changes, expected_version)
    submit([edit], actor=actor, source=source, reason=reason, mode=mode)
    edited: Flag = edit.target
    return edited


def flag_snapshot(flag: Any) -> dict[str, Any]:
    """The definition fields of a flag or one of its historical records."""
    return snapshot(FLAG, flag)


def flag_revert_changes(flag: Flag, history_id: object) -> tuple[dict[str, Any], int]:
    return revert_changes_of(FLAG, flag, history_id)


def revert_flag(
    flag: Flag,
    history_id: object,
    *,
    actor: ActorLike,
    source: str,
    reason: str = "",
    expected_version: object = None,
    mode: Mode = Mode.APPLY,
) -> Flag:
    """Restores the definition of an earlier version as a new version (archiving is not part
    of it), through the same pipeline as any edit."""
    edit = revert_edit(FLAG, flag, history_id, expected_version)
    submit([edit], actor=actor, source=source, reason=reason, mode=mode)
    reverted: Flag = edit.target
    return reverted


def archive_edit(flag: Flag, archived: bool, expected_version: object) -> Edit | None:
    """The change that archives or restores ``flag``, None when it already is."""
    if flag.archived == archived:
        return None
    return Edit(ARCHIVE, flag, {"archived": archived}, expected_version)


def archive_flag(
    flag: Flag,
    *,
    actor: ActorLike,
    source: str,
    reason: str = "",
    archived: bool = True,
    expected_version: object = None,
    mode: Mode = Mode.APPLY,
) -> Flag:
    """Archives (or restores) a flag: it leaves every ruleset. ``expected_version`` defaults to
    the version of the ``flag`` passed in, i.e. the one the caller loaded."""
    version = flag.version if expected_version is None else expected_version
    edit = archive_edit(flag, archived, version)
    if edit is None:
        return flag
    submit([edit], actor=actor, source=source, reason=reason, mode=mode)
    result: Flag = edit.target
    return result


def archive_many(
    edits: list[Edit], *, actor: ActorLike, source: str, reason: str = ""
) -> Outcome | None:
    """Archives several flags in ONE write: all of them or none (the error names the flag that
    blocked it). Where approval is needed, one change request holds them all."""
    if not edits:
        return None
    return submit(edits, actor=actor, source=source, reason=reason, mode=Mode.AUTO)
