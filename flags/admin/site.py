"""The admin's sidebar: what product managers look for first, in their words.

Unfold calls ``navigation`` on every page; each item carries the permission Django's admin
would apply (the model admin's view permission), so nobody sees a link that would 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse


def _can_view(app_label: str, model_name: str) -> Callable[[HttpRequest], bool]:
    def check(request: HttpRequest) -> bool:
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            return False
        model_admin = admin.site._registry.get(model)
        return model_admin is not None and bool(model_admin.has_view_permission(request))

    return check


def _item(title: str, icon: str, app_label: str, model_name: str) -> dict[str, Any] | None:
    try:
        link = reverse(f"admin:{app_label}_{model_name}_changelist")
    except NoReverseMatch:
        return None  # an app that is not installed (rollouts, while it is being built)
    return {
        "title": title,
        "icon": icon,
        "link": link,
        "permission": _can_view(app_label, model_name),
    }


def _signed_in(request: HttpRequest) -> bool:
    return bool(request.user.is_authenticated)


def navigation(request: HttpRequest) -> list[dict[str, Any]]:
    groups: list[tuple[str, list[dict[str, Any] | None]]] = [
        (
            "Targeting",
            [
                {"title": "Dashboard", "icon": "dashboard", "link": reverse("admin:index"),
                 "permission": _signed_in},
                _item("Flags", "flag", "flags", "flag"),
                _item("Targeting per environment", "tune", "flags", "flagstate"),
                _item("Segments", "groups", "flags", "segment"),
                {"title": "Why does it get that? (debugger)", "icon": "bug_report",
                 "link": reverse("admin:flags_debugger"), "permission": _signed_in},
                _item("Saved test contexts", "person_search", "flags", "savedcontext"),
                _item("Change requests", "approval", "flags", "changerequest"),
            ],
        ),
        ("Rollouts", [_item("Rollouts", "trending_up", "rollouts", "rollout")]),
        (
            "Analytics",
            [
                _item("Event batches", "inbox", "analytics", "eventbatch"),
                _item("Rollups", "bar_chart", "analytics", "rollup"),
            ],
        ),
        (
            "Settings",
            [
                _item("Projects", "folder", "flags", "project"),
                _item("Environments", "layers", "flags", "environment"),
                _item("API keys", "key", "apikeys", "apikey"),
                _item("Roles", "badge", "flags", "rolegrant"),
                _item("Users", "person", "auth", "user"),
                _item("Groups", "group", "auth", "group"),
            ],
        ),
    ]  # fmt: skip
    result = []
    for title, items in groups:
        # Only what this person may open; a heading with nothing under it is left out.
        present = [i for i in items if i is not None and i["permission"](request)]
        if present:
            result.append({"title": title, "separator": True, "items": present})
    return result
