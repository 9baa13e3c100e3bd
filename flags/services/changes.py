"""Change requests: a change that needs a second person is stored, reviewed, then applied.

The stored form is the pipeline's own (``operations``, the changes' payloads), so applying a
request runs exactly the checks a direct write runs, and a request whose base moved on since
becomes stale. Other apps register their own kinds of change (``register_kind``), e.g. the
approval of a rollout plan, so one review flow serves everything that alters evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.utils import timezone

from flags import roles
from flags.errors import ChangeRejected, FieldError, StaleChangeRequest, VersionConflict
from flags.history import stamp
from flags.models import ChangeRequest, Environment, FlagState, Project
from flags.preview import describe_effect
from flags.services.base import Actor, ActorLike, start
from flags.services.objects import KINDS, SEGMENT, Create, DeleteSegment, Edit
from flags.services.pipeline import Authority, Change, EnvironmentEffect, Mode, run

Loader = Callable[[dict[str, Any]], Change]
_LOADERS: dict[str, Loader] = {}


def register_kind(kind: str, loader: Loader) -> None:
    """Lets another app store its own changes in change requests (call from AppConfig.ready)."""
    _LOADERS[kind] = loader


def _load_edit(op: dict[str, Any]) -> Change:
    kind = KINDS[op["kind"]]
    try:
        target = kind.get(int(op["id"]))
    except kind.model.DoesNotExist as exc:  # type: ignore[attr-defined]
        raise VersionConflict(0, op.get("version")) from exc
    return Edit(kind, target, op["changes"], op["version"], note=op.get("note", ""))


def _load_create(op: dict[str, Any]) -> Change:
    kind = KINDS[op["kind"].removeprefix("create_")]
    return Create(kind, Project.objects.get(pk=op["project"]), op["data"])


def _load_delete(op: dict[str, Any]) -> Change:
    try:
        segment = SEGMENT.get(int(op["id"]))
    except SEGMENT.model.DoesNotExist as exc:  # type: ignore[attr-defined]
        raise VersionConflict(0, op.get("version")) from exc
    return DeleteSegment(segment, op["version"])


for _name in KINDS:
    register_kind(_name, _load_edit)
register_kind("create_flag", _load_create)
register_kind("create_segment", _load_create)
register_kind("delete_segment", _load_delete)


def load(operations: Iterable[dict[str, Any]]) -> list[Change]:
    changes = []
    for op in operations:
        loader = _LOADERS.get(op.get("kind", ""))
        if loader is None:
            raise ChangeRejected([FieldError("operations", f"Unknown change {op.get('kind')!r}.")])
        changes.append(loader(op))
    return changes


def _operation(change: Change) -> dict[str, Any]:
    op = change.payload()
    if op["kind"].startswith("create_"):
        op["project"] = change.project_id
    return op


def propose(
    project: Project,
    changes: Sequence[Change],
    effects: list[EnvironmentEffect],
    *,
    who: Actor,
    source: str,
    reason: str,
) -> ChangeRequest:
    """Stores ``changes`` as a pending request (called by the pipeline after its rollback)."""
    single = changes[0] if len(changes) == 1 else None
    edit = single if isinstance(single, Edit) else None
    state = edit.target if edit is not None and isinstance(edit.target, FlagState) else None
    version = edit.expected_version if edit is not None else None
    request = ChangeRequest(
        project=project,
        summary=(single.label if single is not None else f"{len(changes)} changes")[:300],
        operations=[_operation(c) for c in changes],
        environment_ids=[e.environment.pk for e in effects],
        preview=[describe_effect(e) for e in effects],
        flag_state=state,
        changes=dict(single.payload().get("changes", {})) if single is not None else {},
        base_version=version if isinstance(version, int) else None,
        reason=reason,
        source=source,
        author=who.user,
    )
    stamp(request, user=who.user, source=source, reason=reason)
    request.save()
    return request


def mark_stale(project: Project, saved: list[models.Model], applying: int | None = None) -> None:
    """Open requests on an object this write just changed can no longer apply as reviewed
    (``applying`` is the request being applied, which is not)."""
    touched = {(type(obj).__name__, obj.pk) for obj in saved}
    if not touched:
        return
    names = {
        "Flag": ("flag", "archive"),
        "FlagState": ("state",),
        "Segment": ("segment", "delete_segment"),
    }
    kinds = {(k, pk) for name, pk in touched for k in names.get(name, ())}
    open_requests = ChangeRequest.objects.filter(
        project=project,
        status__in=(ChangeRequest.Status.PENDING, ChangeRequest.Status.APPROVED),
    )
    if applying is not None:
        open_requests = open_requests.exclude(pk=applying)
    for request in open_requests:
        if any((op.get("kind"), op.get("id")) in kinds for op in request.operations):
            request.status = ChangeRequest.Status.STALE
            stamp(request, user=None, source="system", reason="what it changes moved on")
            request.save(update_fields=["status"])


def _lock(request: ChangeRequest) -> ChangeRequest:
    return (
        ChangeRequest.objects.select_for_update(of=("self",))
        .select_related("project")
        .get(pk=request.pk)
    )


def _expect(request: ChangeRequest, *statuses: str) -> None:
    if request.status not in statuses:
        raise ChangeRejected(
            [
                FieldError(
                    "status", f"This change request is {request.get_status_display()}.", "status"
                )
            ]
        )


def _environments(request: ChangeRequest) -> list[Environment]:
    return list(
        Environment.objects.filter(pk__in=request.environment_ids).select_related("project")
    )


def may_review(user: Any, request: ChangeRequest) -> bool:
    """Whether ``user`` may approve or reject ``request``: approve in every environment it alters,
    and not their own."""
    if user is None or request.author_id == getattr(user, "pk", None):
        return False
    envs = _environments(request)
    if not envs:
        return request.project is not None and roles.can(user, "manage", request.project)
    return all(roles.can(user, "approve", env) for env in envs)


def approve_change(
    request: ChangeRequest, *, actor: ActorLike, source: str, reason: str = ""
) -> ChangeRequest:
    """Approves a pending request; only someone other than its author, who may approve in every
    environment it alters. With the project's ``apply_on_approval`` it is applied at once."""
    who, reason = start(actor, source, reason)
    if who.user is None:
        raise PermissionDenied("Approval needs a person.")
    with transaction.atomic():
        locked = _lock(request)
        if locked.author_id == who.user.pk:
            raise PermissionDenied("You cannot approve your own change request.")
        if not may_review(who.user, locked):
            raise PermissionDenied("You may not approve changes in these environments.")
        _expect(locked, ChangeRequest.Status.PENDING)
        locked.status = ChangeRequest.Status.APPROVED
        locked.reviewer = who.user
        locked.reviewed_at = timezone.now()
        locked.review_comment = reason
        stamp(locked, user=who.user, source=source, reason=reason or "approved")
        locked.save()
    if locked.project is not None and locked.project.apply_on_approval:
        apply_change(locked, actor=who, source=source, reason=reason)
        locked.refresh_from_db()
    return locked


def reject_change(
    request: ChangeRequest, *, actor: ActorLike, source: str, reason: str = ""
) -> ChangeRequest:
    """Rejects a pending or approved request; its author may withdraw it the same way."""
    who, reason = start(actor, source, reason)
    with transaction.atomic():
        locked = _lock(request)
        is_author = who.user is not None and locked.author_id == who.user.pk
        if not is_author and not may_review(who.user, locked):
            raise PermissionDenied("You may not reject changes in these environments.")
        _expect(locked, ChangeRequest.Status.PENDING, ChangeRequest.Status.APPROVED)
        locked.status = ChangeRequest.Status.REJECTED
        locked.reviewer = who.user
        locked.reviewed_at = timezone.now()
        locked.review_comment = reason
        stamp(locked, user=who.user, source=source, reason=reason or "rejected")
        locked.save()
    return locked


def _mark(request: ChangeRequest, status: str, who: Actor, source: str, reason: str) -> None:
    request.status = status
    if status == ChangeRequest.Status.APPLIED:
        request.applied_by = who.user
        request.applied_at = timezone.now()
    stamp(request, user=who.user, source=source, reason=reason)
    request.save()


def apply_change(
    request: ChangeRequest, *, actor: ActorLike, source: str, reason: str = ""
) -> ChangeRequest:
    """Applies an approved request through the pipeline, with the approval standing in for the
    environments it was given for. If what it changes moved on since, the request becomes
    stale and VersionConflict is raised; nothing else is written."""
    who, reason = start(actor, source, reason)
    stale: VersionConflict | None = None
    with transaction.atomic():
        locked = _lock(request)
        if locked.status == ChangeRequest.Status.STALE:
            raise StaleChangeRequest(locked.pk, locked.base_version)
        _expect(locked, ChangeRequest.Status.APPROVED)
        if who.user is not None and who.user.pk not in (locked.author_id, locked.reviewer_id):
            raise PermissionDenied("Only the author or the approver applies a change request.")
        note = f"change request #{locked.pk}, approved by {locked.reviewer or '?'}"
        try:
            with transaction.atomic():
                changes = load(locked.operations)
                run(
                    changes, who=who, source=source,
                    reason=f"{locked.reason} ({note})".strip(),
                    mode=Mode.APPLY, authority=Authority.APPROVED,
                    approved_environments=frozenset(locked.environment_ids),
                    applying=locked.pk,
                )  # fmt: skip
        except VersionConflict:
            stale = StaleChangeRequest(locked.pk, locked.base_version)
            _mark(locked, ChangeRequest.Status.STALE, who, source, "stale")
        else:
            _mark(locked, ChangeRequest.Status.APPLIED, who, source, reason or "applied")
    if stale is not None:
        raise stale
    return locked
