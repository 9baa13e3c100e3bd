"""Project, environment, segment and role-grant admins."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from flags import grants, roles, selectors, services
from flags.admin.base import SOURCE, RoleAdmin, user_of
from flags.admin.forms import EnvironmentForm, ProjectForm, RoleGrantForm, SegmentForm
from flags.admin.revert import RevertPage, require_role, revert_response
from flags.errors import ChangeRejected
from flags.models import Environment, Project, RoleGrant, Segment


@admin.register(Project)
class ProjectAdmin(RoleAdmin[Project]):
    form = ProjectForm
    change_action = "manage"
    list_display = ("key", "name", "created_at")
    search_fields = ("key", "name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("flags.add_project"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("key",) if obj is not None else ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return roles.visible_projects(user_of(request))


@admin.register(Environment)
class EnvironmentAdmin(RoleAdmin[Environment]):
    form = EnvironmentForm
    change_action = "manage"
    add_action = "manage"
    list_display = ("key", "name", "project", "is_production", "requires_approval", "sort_order")
    list_filter = ("project", "is_production", "requires_approval")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("project", "key") if obj is not None else ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Environment]:
        qs = super().get_queryset(request).select_related("project")
        user = user_of(request)
        return qs if user.is_superuser else qs.filter(pk__in=roles.visible_environments(user))


@admin.register(Segment)
class SegmentAdmin(RoleAdmin[Segment]):
    form = SegmentForm
    change_action = "edit_segment"
    add_action = "edit_segment"
    delete_action = "edit_segment"
    list_display = ("key", "name", "project", "version", "updated_at")
    list_filter = ("project",)
    search_fields = ("key", "name", "description")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("project", "key", "version") if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = [
            "project", "key", "name", "description", "key_attribute", "included", "excluded",
            "rules",
        ]  # fmt: skip
        if obj is not None:
            fields.append("version")
        if obj is None or self.has_change_permission(request, obj):
            fields += ["reason", "expected_version"]
        return fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Segment]:
        qs = super().get_queryset(request).select_related("project")
        user = user_of(request)
        return qs if user.is_superuser else qs.filter(project__in=roles.visible_projects(user))

    def get_actions(self, request: HttpRequest) -> Any:
        # The bulk delete would bypass delete_segment (its checks, reason and rebuild).
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def _segment(self, object_id: object) -> Segment:
        # Looked up unfiltered so that someone without the role gets 403, not 404.
        return get_object_or_404(Segment.objects.select_related("project"), pk=object_id)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        segment = self._segment(object_id)
        require_role(request, "edit_segment", segment)
        error = ""
        if request.method == "POST" and request.POST.get("post") == "yes":
            try:
                services.delete_segment(
                    segment, actor=user_of(request), source=SOURCE,
                    reason=request.POST.get("reason", "").strip(),
                )  # fmt: skip
            except ChangeRejected as exc:
                error = f"Not deleted: {exc}"
            else:
                messages.success(request, f"Segment {segment.key} deleted.")
                return HttpResponseRedirect(reverse("admin:flags_segment_changelist"))
        return TemplateResponse(
            request,
            "admin/flags/segment/delete_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": segment,
                "title": f"Delete segment {segment.key}",
                "references": selectors.segment_references(segment),
                "error": error,
                "reason": request.POST.get("reason", ""),
            },
        )

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        segment = self._segment(object_id)
        require_role(request, "view", segment)
        return TemplateResponse(
            request,
            "admin/flags/segment/history.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": segment,
                "title": f"History of segment {segment.key}",
                "entries": selectors.segment_history(segment, user_of(request)),
            },
        )

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:segment_id>/revert/<int:history_id>/",
                self.admin_site.admin_view(self.revert_view),
                name="flags_segment_revert",
            )
        ]
        return own + super().get_urls()

    def revert_view(self, request: HttpRequest, segment_id: int, history_id: int) -> HttpResponse:
        segment = self._segment(segment_id)
        require_role(request, "edit_segment", segment)
        target, version = services.segment_revert_changes(segment, history_id)

        def apply(reason: str, expected: int) -> Segment:
            return services.revert_segment(
                segment, history_id, actor=user_of(request), source=SOURCE, reason=reason,
                expected_version=expected,
            )  # fmt: skip

        def current() -> Segment:
            return Segment.objects.get(pk=segment.pk)

        page = RevertPage(
            obj=segment,
            version=version,
            target=target,
            snapshot=lambda: services.segment_snapshot(current()),
            current_version=lambda: current().version,
            apply=apply,
            history_url=reverse("admin:flags_segment_history", args=[segment.pk]),
        )
        return revert_response(request, self.admin_site, self.model._meta, page)


@admin.register(RoleGrant)
class RoleGrantAdmin(RoleAdmin[RoleGrant]):
    form = RoleGrantForm
    view_action = "manage"
    change_action = "manage"
    add_action = "manage"
    delete_action = "manage"
    list_display = ("user", "project", "role", "scope")
    list_filter = ("project", "role")
    filter_horizontal = ("environments",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return roles.projects_with(user_of(request), "own_project").exists()

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        return roles.can(user_of(request), "manage", obj.project)

    has_change_permission = has_view_permission

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["user", "project", "role", "environments", "reason"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # Giving the grant to someone else would leave the first user's permissions in place:
        # revoke it and grant the other user instead (flags.grants refuses it as well).
        return ("user", "project") if obj is not None else ()

    @admin.display(description="Environments")
    def scope(self, obj: RoleGrant) -> str:
        keys = [e.key for e in obj.environments.all()]
        return ", ".join(keys) if keys else "all"

    def get_queryset(self, request: HttpRequest) -> QuerySet[RoleGrant]:
        qs = super().get_queryset(request).select_related("user", "project")
        return qs.filter(project__in=roles.projects_with(user_of(request), "own_project"))

    def get_actions(self, request: HttpRequest) -> Any:
        # The bulk delete would skip the reason and the audit of flags.grants.revoke.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        """Revokes the grant through flags.grants, asking for the reason first."""
        grant = get_object_or_404(RoleGrant.objects.select_related("user", "project"), pk=object_id)
        require_role(request, "manage", grant.project)
        error = ""
        if request.method == "POST" and request.POST.get("post") == "yes":
            try:
                grants.revoke(
                    grant, actor=user_of(request), source=SOURCE,
                    reason=request.POST.get("reason", "").strip(),
                )  # fmt: skip
            except ChangeRejected as exc:
                error = f"Not revoked: {'; '.join(e.message for e in exc.errors)}"
            else:
                messages.success(request, f"{grant.user} no longer has a role in {grant.project}.")
                return HttpResponseRedirect(reverse("admin:flags_rolegrant_changelist"))
        return TemplateResponse(
            request,
            "admin/flags/rolegrant/delete_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": grant,
                "title": f"Revoke the role of {grant.user} in {grant.project.key}",
                "error": error,
                "reason": request.POST.get("reason", ""),
            },
        )
