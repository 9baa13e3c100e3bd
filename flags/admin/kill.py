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
    refused = [s for s in states if s not in allowed]
    if not allowed:
        raise PermissionDenied("You may not use the kill switch on these flags.")
    error = ""
    if refused:
        # All or nothing: a partial kill in an incident is worse than a clear refusal.
        error = (
            f"Nothing will be turned off while the selection includes flags you may not kill: "
            f"{', '.join(str(s) for s in refused)}. Select only the others."
        )
    elif request.method == "POST" and request.POST.get("confirm") == "yes":
        reason = request.POST.get("reason", "").strip()
        if not reason:
            error = "Give a reason: it is recorded in the history."
        elif len(reason) > REASON_MAX_LENGTH:
            error = f"Keep the reason to {REASON_MAX_LENGTH} characters or fewer."
        else:
            try:
                services.kill_many(allowed, actor=user, source=SOURCE, reason=reason)
            except (ChangeRejected, PermissionDenied) as exc:
                error = f"Nothing was turned off: {exc}"
            else:
                messages.success(request, f"Turned off: {', '.join(str(s) for s in allowed)}.")
                return HttpResponseRedirect(done_url)
    return TemplateResponse(
        request,
        "admin/flags/kill_confirmation.html",
        {
            **context,
            "states": allowed,
            "refused": refused,
            "error": error,
            "reason": request.POST.get("reason", ""),
            "title": "Kill switch: turn flags off now",
        },
    )


def serve_confirmation(
    request: HttpRequest, state: FlagState, *, context: dict[str, object], done_url: str
) -> HttpResponse:
    """ "Serve X to everyone now" for an ops or kill-switch flag, in both directions: asks for
    the variant and a reason, then serves it at once (no approval; the approvers are told)."""
    user = user_of(request)
    if not roles.can(user, "kill", state):
        raise PermissionDenied(f"You may not use emergency actions in {state.environment.key}.")
    error = ""
    variant = request.POST.get("variant", "")
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        try:
            services.serve_now(
                state, variant=variant, actor=user, source=SOURCE,
                reason=request.POST.get("reason", "").strip(),
            )  # fmt: skip
        except (ChangeRejected, PermissionDenied) as exc:
            error = f"Nothing was changed: {exc}"
        else:
            messages.success(
                request, f"{state.flag.key} now serves {variant} to everyone in "
                f"{state.environment.key}; the approvers were told."
            )  # fmt: skip
            return HttpResponseRedirect(done_url)
    return TemplateResponse(
        request,
        "admin/flags/serve_confirmation.html",
        {
            **context,
            "state": state,
            "variants": list(state.flag.variants or {}),
            "variant": variant,
            "error": error,
            "reason": request.POST.get("reason", ""),
            "title": f"Serve one variant of {state.flag.key} to everyone in "
            f"{state.environment.key} now",
        },
    )
