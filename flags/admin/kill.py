"""The kill switch: a confirmation page that asks for a reason, then turns flags off at once."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from flags import roles, services
from flags.admin.base import SOURCE, user_of
from flags.errors import ChangeRejected
from flags.history import REASON_MAX_LENGTH
from flags.models import FlagState


def kill_confirmation(
    request: HttpRequest,
    states: Sequence[FlagState],
    *,
    context: dict[str, object],
    done_url: str,
) -> HttpResponse | None:
    """Renders the confirmation, or on a confirmed POST kills every state and redirects."""
    user = user_of(request)
    allowed = [s for s in states if roles.can(user, "kill", s)]
    if not allowed:
        raise PermissionDenied("You may not use the kill switch on these flags.")
    error = ""
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        reason = request.POST.get("reason", "").strip()
        if not reason:
            error = "Give a reason: it is recorded in the history."
        elif len(reason) > REASON_MAX_LENGTH:
            error = f"Keep the reason to {REASON_MAX_LENGTH} characters or fewer."
        else:
            try:
                for s in allowed:
                    services.kill_flag(s, actor=user, source=SOURCE, reason=reason)
            except ChangeRejected as exc:
                error = str(exc)
            else:
                messages.success(request, f"Turned off: {', '.join(str(s) for s in allowed)}.")
                return HttpResponseRedirect(done_url)
    return TemplateResponse(
        request,
        "admin/flags/kill_confirmation.html",
        {
            **context,
            "states": allowed,
            "refused": [s for s in states if s not in allowed],
            "error": error,
            "reason": request.POST.get("reason", ""),
            "title": "Kill switch: turn flags off now",
        },
    )
