"""The admin home: flags per environment, recent changes in words, pending change requests
and running rollouts (read through the app registry, since flags may not import rollouts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from flags import roles, selectors
from flags.admin.base import user_of
from flags.models import ChangeRequest, Environment, FlagState

RECENT = 10
RUNNING_STATUSES = ("running", "active", "in_progress", "progressing")


@dataclass(frozen=True)
class EnvironmentCount:
    environment: Environment
    on: int
    off: int
    link: str


def environment_counts(user: User | AnonymousUser) -> list[EnvironmentCount]:
    environments = (
        roles.visible_environments(user)
        .select_related("project")
        .annotate(
            on=Count("states", filter=Q(states__enabled=True, states__flag__archived=False)),
            off=Count("states", filter=Q(states__enabled=False, states__flag__archived=False)),
        )
        .order_by("project__key", "sort_order", "key")
    )
    base = reverse("admin:flags_flagstate_changelist")
    return [
        EnvironmentCount(e, e.on, e.off, f"{base}?environment__key={e.key}") for e in environments
    ]


def pending_change_requests(user: User | AnonymousUser) -> list[ChangeRequest]:
    return list(
        ChangeRequest.objects.filter(
            status=ChangeRequest.Status.PENDING,
            flag_state__environment__in=roles.visible_environments(user),
        ).select_related("flag_state__flag", "flag_state__environment", "author")[:RECENT]
    )


def running_rollouts(user: User | AnonymousUser) -> list[dict[str, str]]:
    """Rollouts whose status reads as running, from whichever rollouts models exist."""
    if not apps.is_installed("rollouts"):
        return []
    found: list[dict[str, str]] = []
    for model in apps.get_app_config("rollouts").get_models():
        names = {f.name for f in model._meta.get_fields()}
        if "status" not in names:
            continue
        for obj in model._default_manager.filter(status__in=RUNNING_STATUSES)[:RECENT]:
            try:
                link = reverse(
                    f"admin:{model._meta.app_label}_{model._meta.model_name}_change",
                    args=[obj.pk],
                )
            except NoReverseMatch:
                link = ""
            found.append(
                {"title": str(obj), "status": str(getattr(obj, "status", "")), "link": link}
            )
    return found


def recent_changes(user: User | AnonymousUser) -> list[selectors.HistoryEntry]:
    states = FlagState.objects.filter(environment__in=roles.visible_environments(user))
    return selectors.recent_state_changes(states, RECENT)


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    user = user_of(request)
    context.update(
        {
            "environment_counts": environment_counts(user),
            "pending_change_requests": pending_change_requests(user),
            "running_rollouts": running_rollouts(user),
            "recent_changes": recent_changes(user),
            "debugger_url": reverse("admin:flags_debugger"),
        }
    )
    return context
