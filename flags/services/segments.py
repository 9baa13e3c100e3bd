"""Segments: create, edit, revert, delete. Their effect reaches every flag that uses them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flags.models import Project, Segment
from flags.services.base import ActorLike
from flags.services.objects import SEGMENT, Create, DeleteSegment, Edit
from flags.services.pipeline import Mode
from flags.services.revert import revert_changes_of, revert_edit, snapshot
from flags.services.submit import submit


def create_segment(
    project: Project, *, data: Mapping[str, Any], actor: ActorLike, source: str, reason: str = ""
) -> Segment:
    change = Create(SEGMENT, project, data)
    submit([change], actor=actor, source=source, reason=reason)
    created: Segment = change.created
    return created


def update_segment(
    segment: Segment,
    *,
    changes: Mapping[str, Any],
    expected_version: object,
    actor: ActorLike,
    source: str,
    reason: str = "",
    mode: Mode = Mode.APPLY,
) -> Segment:
    """Edits a segment, authorized by its effect on every environment whose flags use it."""
    edit = Edit(SEGMENT, segment, changes, expected_version)
    submit([edit], actor=actor, source=source, reason=reason, mode=mode)
    edited: Segment = edit.target
    return edited


def segment_snapshot(segment: Any) -> dict[str, Any]:
    return snapshot(SEGMENT, segment)


def segment_revert_changes(segment: Segment, history_id: object) -> tuple[dict[str, Any], int]:
    return revert_changes_of(SEGMENT, segment, history_id)


def revert_segment(
    segment: Segment,
    history_id: object,
    *,
    actor: ActorLike,
    source: str,
    reason: str = "",
    expected_version: object = None,
    mode: Mode = Mode.APPLY,
) -> Segment:
    edit = revert_edit(SEGMENT, segment, history_id, expected_version)
    submit([edit], actor=actor, source=source, reason=reason, mode=mode)
    reverted: Segment = edit.target
    return reverted


def delete_segment(
    segment: Segment,
    *,
    actor: ActorLike,
    source: str,
    reason: str = "",
    expected_version: object = None,
) -> None:
    """Deletes a segment no flag refers to (the validation refuses otherwise)."""
    version = segment.version if expected_version is None else expected_version
    submit([DeleteSegment(segment, version)], actor=actor, source=source, reason=reason)
