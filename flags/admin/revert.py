"""The confirmation page that reverts a flag definition or a segment to an earlier version.

It shows what would change, asks for a reason and calls the object's revert service, which
checks the role, the version the page was shown at and the resulting ruleset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from flags import describe, roles, selectors
from flags.admin.base import user_of
from flags.errors import ChangeRejected, FieldError, VersionConflict
from flags.history import REASON_MAX_LENGTH


def require_role(request: HttpRequest, action: roles.Action, obj: object) -> None:
    """403 for anyone without ``action`` on ``obj`` (viewers, other projects' people)."""
    if not roles.can(user_of(request), action, obj):
        raise PermissionDenied(f"You may not {action.replace('_', ' ')} {obj}.")


def field_diff(current: Mapping[str, Any], target: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    show = selectors.show_value
    return [(k, show(current[k]), show(v)) for k, v in target.items() if current[k] != v]


@dataclass(frozen=True)
class RevertPage:
    """One object's revert: what it is now, what the chosen version had, how to apply it."""

    obj: models.Model
    version: int
    target: Mapping[str, Any]
    snapshot: Callable[[], Mapping[str, Any]]  # the object's values, read again
    current_version: Callable[[], int]
    apply: Callable[[str, int], object]  # (reason, expected_version)
    history_url: str
    kind: str = ""  # "flag" or "segment": how describe.describe_changes reads the fields


def revert_response(
    request: HttpRequest, site: AdminSite, opts: Any, page: RevertPage
) -> HttpResponse:
    error = ""
    reason = ""
    if request.method == "POST":
        reason = request.POST.get("reason", "").strip()
        try:
            if len(reason) > REASON_MAX_LENGTH:
                raise ChangeRejected(
                    [FieldError("reason", f"At most {REASON_MAX_LENGTH} characters.", "max_length")]
                )
            raw = request.POST.get("expected_version", "")
            if not raw.isdigit():
                # Never "no check": the version the page was shown at is part of the request.
                raise ChangeRejected(
                    [FieldError("expected_version", "Missing or not a number: reload the page.")]
                )
            page.apply(reason, int(raw))
        except VersionConflict as exc:
            error = (
                f"It changed meanwhile (now version {exc.current_version}); review the "
                "difference below and confirm again."
            )
        except ChangeRejected as exc:
            error = f"Not reverted: {exc}"
        else:
            messages.success(request, f"{page.obj} reverted to version {page.version}.")
            return HttpResponseRedirect(page.history_url)
    return TemplateResponse(
        request,
        "admin/flags/object_revert.html",
        {
            **site.each_context(request),
            "opts": opts,
            "original": page.obj,
            "version": page.version,
            "current_version": page.current_version(),
            "diff": field_diff(page.snapshot(), page.target),
            "words": describe.describe_changes(page.kind, page.snapshot(), page.target),
            "error": error,
            "reason": reason,
            "history_url": page.history_url,
            "back_url": page.history_url,
            "title": f"Revert {page.obj} to version {page.version}",
        },
    )
