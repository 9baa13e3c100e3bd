"""Hygiene in the flag admin: a "stale" filter and badge on the list, status per environment
and code references on the flag page, and an archive action that warns about flags code
still references. Done by subclassing flags' FlagAdmin (re-registered), not by editing it."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from flags import roles
from flags.admin.base import user_of
from flags.admin.flag import FlagAdmin
from flags.models import Flag, Project
from hygiene import report, selectors
from hygiene.lifecycle import Assessment, Stage
from hygiene.models import HygieneSettings

CACHE_ATTR = "_hygiene_assessments"
LIST_REQUEST: ContextVar[HttpRequest | None] = ContextVar("hygiene_list_request", default=None)


def assessments(request: HttpRequest, projects: QuerySet[Project]) -> dict[int, Assessment]:
    """Flag id -> assessment for the projects' live flags, computed once per request."""
    cached: dict[int, Assessment] | None = getattr(request, CACHE_ATTR, None)
    if cached is None:
        now = timezone.now()
        cached = {
            flag.pk: a for p in projects for flag, _, a in report.assess_project(p, now)
        }  # fmt: skip
        setattr(request, CACHE_ATTR, cached)
    return cached


class StaleFilter(admin.SimpleListFilter):
    title = "hygiene"
    parameter_name = "stale"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("yes", "Stale"),
            ("no", "Not stale"),
            ("removal", "Ready for code removal"),
            ("archive", "Ready to archive"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Flag]) -> QuerySet[Flag]:
        value = self.value()
        if not value:
            return queryset
        projects = Project.objects.filter(pk__in=queryset.values("project_id"))
        found = assessments(request, projects)
        keep = [pk for pk, a in found.items() if _matches(a, value)]
        return queryset.filter(pk__in=keep)


def _matches(a: Assessment, value: str) -> bool:
    if value == "yes":
        return a.stale
    if value == "no":
        return not a.stale
    stage = {"removal": Stage.READY_FOR_CODE_REMOVAL, "archive": Stage.READY_TO_ARCHIVE}
    return a.stage == stage.get(value)


class HygieneFlagAdmin(FlagAdmin):
    list_filter = (StaleFilter, *FlagAdmin.list_filter)  # type: ignore[assignment]
    change_form_template = "admin/hygiene/flag/change_form.html"
    actions = ["archive_flags"]

    def get_list_display(self, request: HttpRequest) -> Any:
        return (*super().get_list_display(request), "hygiene_badge")

    @admin.display(description="Hygiene")
    def hygiene_badge(self, obj: Flag) -> str:
        request = LIST_REQUEST.get()
        if request is None or obj.archived:
            return ""
        found = assessments(request, roles.visible_projects(user_of(request))).get(obj.pk)
        if found is None or not found.stale:
            return ""
        why = "; ".join(r.message for r in found.reasons)
        return format_html(
            '<span title="{}" style="background:#ba2121;color:#fff;padding:1px 6px;'
            'border-radius:8px">stale</span> <small>{}</small>',
            why,
            found.stage,
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # The badge column needs the request (its projects and cache); the admin instance is
        # shared between threads, a context variable is not.
        token = LIST_REQUEST.set(request)
        try:
            response = super().changelist_view(request, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()
            return response
        finally:
            LIST_REQUEST.reset(token)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        flag = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if flag is not None and self.has_view_permission(request, flag):
            extra["hygiene"] = flag_hygiene(flag)
        return super().change_view(request, object_id, form_url, extra)

    @admin.action(description="Archive the selected flags (asks for a reason)")
    def archive_flags(self, request: HttpRequest, queryset: QuerySet[Flag]) -> Any:
        # Roles and all-or-nothing are checked by FlagAdmin.archive_flags, which names the
        # flag that blocks the selection.
        flags = list(queryset.select_related("project"))
        referenced = still_referenced(flags)
        if any(not roles.can(user_of(request), "archive_flag", f) for f in flags) or (
            request.POST.get("confirm") == "yes" and request.POST.get("reason", "").strip()
        ):
            super().archive_flags(request, queryset)  # archives (the reason is required there)
            if referenced:
                messages.warning(
                    request,
                    "Code still references "
                    + ", ".join(sorted(referenced))
                    + ": it gets the off variant until the grace period ends.",
                )
            return None
        return TemplateResponse(
            request,
            "admin/hygiene/archive_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "flags": flags,
                "referenced": referenced,
                "title": "Archive flags",
                "error": "Give a reason." if request.POST.get("confirm") == "yes" else "",
            },
        )


def still_referenced(flags: list[Flag]) -> dict[str, list[selectors.Reference]]:
    """Flag key -> references in the latest uploads, for the flags code still uses."""
    found: dict[str, list[selectors.Reference]] = {}
    projects = {f.project_id: f.project for f in flags}
    for project_id, project in projects.items():
        refs = selectors.references_by_flag(project) or {}
        for f in flags:
            if f.project_id == project_id and refs.get(f.key):
                found[f.key] = refs[f.key]
    return found


def flag_hygiene(flag: Flag) -> dict[str, Any]:
    """What the flag page shows: status per environment, why stale, code references and
    the references gone since the previous upload of each repository."""
    project = flag.project
    if flag.archived:
        return {"archived": True, "references": (selectors.references_by_flag(project) or {})}
    [(_, _, assessment)] = report.assess_project(project, timezone.now(), [flag])
    refs = selectors.references_by_flag(project)
    removed = [
        r
        for upload in selectors.latest_uploads(project)
        for r in selectors.removed_references(upload)
        if r.flag_key == flag.key
    ]
    return {
        "assessment": assessment,
        "references": None if refs is None else refs.get(flag.key, []),
        "removed": removed,
    }


admin.site.unregister(Flag)
admin.site.register(Flag, HygieneFlagAdmin)


@admin.register(HygieneSettings)
class HygieneSettingsAdmin(admin.ModelAdmin[HygieneSettings]):
    list_display = ("project", "release_lifetime_days", "ops_lifetime_days", "launched_days")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(user_of(request).is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._owner(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._owner(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(user_of(request).is_superuser)

    def _owner(self, request: HttpRequest, obj: HygieneSettings | None) -> bool:
        user = user_of(request)
        if obj is None:
            return bool(user.is_superuser)
        return roles.can(user, "manage", obj.project)
