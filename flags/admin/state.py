"""Flag state admin: targeting per environment, the kill switch and change requests."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from flags import describe, roles, selectors, services
from flags.admin.base import SOURCE, RoleAdmin, user_of
from flags.admin.forms import FlagStateForm
from flags.admin.kill import kill_confirmation, serve_confirmation
from flags.errors import ChangeRejected, VersionConflict
from flags.models import ChangeRequest, FlagState
from flags.preview import field_lines, sentence


@admin.register(FlagState)
class FlagStateAdmin(RoleAdmin[FlagState]):
    form = FlagStateForm
    change_action = "edit_state"
    add_action = None
    list_display = ("flag", "environment", "enabled", "serving", "version", "updated_at")
    list_filter = ("environment__key", "enabled", "flag__kind", "flag__archived")
    search_fields = ("flag__key", "flag__name")
    list_select_related = ("flag", "environment", "environment__project")
    readonly_fields = ("flag", "environment", "version", "targeting_summary")
    actions = ["kill_switch"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Whoever may propose here may submit the form: the pipeline then applies it, or
        # (approval needed, or no release permission) stores it as a change request.
        if obj is not None and roles.can(user_of(request), "propose", obj):
            return True
        return super().has_change_permission(request, obj)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        editable = ["enabled", "off_variant", "default_serve", "rules", "prerequisites"]
        head = ["flag", "environment", "version", "targeting_summary"]
        if obj is not None and self.has_change_permission(request, obj):
            return [*head, *editable, "reason", "expected_version"]
        return [*head, *editable]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FlagState]:
        qs = super().get_queryset(request).select_related("flag", "environment__project")
        user = user_of(request)
        if user.is_superuser:
            return qs
        return qs.filter(environment__in=roles.visible_environments(user))

    @admin.display(description="Targeting")
    def serving(self, obj: FlagState) -> str:
        return describe.describe_state(services.state_snapshot(obj))

    @admin.display(description="Targeting at a glance")
    def targeting_summary(self, obj: FlagState) -> str:
        segments = selectors.segment_attributes(obj.flag.project_id)
        lines = describe.state_sentences(services.state_snapshot(obj), segments)
        inner = format_html_join("", "<div>{}</div>", ((line,) for line in lines))
        return format_html('<div class="targeting-summary">{}</div>', inner)

    @admin.action(description="Kill switch: turn off now (asks for a reason)")
    def kill_switch(self, request: HttpRequest, queryset: QuerySet[FlagState]) -> Any:
        return kill_confirmation(
            request,
            list(queryset),
            context={**self.admin_site.each_context(request), "opts": self.model._meta,
                     "action": "kill_switch",
                     "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)]},
            done_url=request.get_full_path(),
        )  # fmt: skip

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:pk>/kill/",
                self.admin_site.admin_view(self.kill_view),
                name="flags_flagstate_kill",
            ),
            path(
                "<int:pk>/serve/",
                self.admin_site.admin_view(self.serve_view),
                name="flags_flagstate_serve",
            ),
        ]
        return own + super().get_urls()

    def kill_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        state = get_object_or_404(self.get_queryset(request), pk=pk)
        back = reverse("admin:flags_flag_change", args=[state.flag_id])
        response = kill_confirmation(
            request,
            [state],
            context={**self.admin_site.each_context(request), "opts": self.model._meta},
            done_url=back,
        )
        assert response is not None
        return response

    def serve_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        state = get_object_or_404(self.get_queryset(request), pk=pk)
        return serve_confirmation(
            request,
            state,
            context={**self.admin_site.each_context(request), "opts": self.model._meta},
            done_url=reverse("admin:flags_flag_change", args=[state.flag_id]),
        )

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        state = get_object_or_404(self.get_queryset(request), pk=object_id)
        return HttpResponseRedirect(reverse("admin:flags_flag_history", args=[state.flag_id]))


@admin.register(ChangeRequest)
class ChangeRequestAdmin(RoleAdmin[ChangeRequest]):
    change_action = "view"
    add_action = None
    list_display = ("id", "summary", "environments", "status", "reason", "author", "created_at")
    list_filter = ("status", "project")
    search_fields = ("summary", "reason")
    change_form_template = "admin/flags/changerequest/change_form.html"
    readonly_fields = (
        "summary", "project", "status", "reason", "author", "created_at", "reviewer",
        "reviewed_at", "review_comment", "applied_by", "applied_at",
    )  # fmt: skip
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChangeRequest]:
        qs = super().get_queryset(request).select_related("project", "author", "reviewer")
        user = user_of(request)
        if user.is_superuser:
            return qs
        return qs.filter(project__in=roles.visible_projects(user))

    @admin.display(description="Alters")
    def environments(self, obj: ChangeRequest) -> str:
        return ", ".join(env["environment"] for env in obj.preview or []) or "nothing"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # decisions go through decide_view, never a form

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        obj = get_object_or_404(self.get_queryset(request), pk=object_id)
        user = user_of(request)
        extra = {
            **(extra_context or {}),
            "preview_sentence": sentence(obj.preview or []),
            "field_lines": field_lines(obj.operations or []),
            "can_decide": services.may_review(user, obj),
            "can_apply": user.pk in (obj.author_id, obj.reviewer_id),
            "is_author": obj.author_id == user.pk,
        }
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:pk>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="flags_changerequest_decide",
            )
        ]
        return own + super().get_urls()

    def decide_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405)
        obj = get_object_or_404(self.get_queryset(request), pk=pk)
        user = user_of(request)
        decision = request.POST.get("decision")
        comment = request.POST.get("comment", "")
        kwargs: dict[str, Any] = {"actor": user, "source": SOURCE, "reason": comment}
        try:
            if decision == "approve":
                services.approve_change(obj, **kwargs)
            elif decision == "reject":
                services.reject_change(obj, **kwargs)
            elif decision == "apply":
                services.apply_change(obj, **kwargs)
            else:
                return HttpResponse("unknown decision", status=400)
        except PermissionDenied:
            raise
        except VersionConflict:
            messages.error(
                request,
                "The flag changed after this request was made, so it was not applied and is "
                "now stale. Submit it again on top of the current version.",
            )
        except ChangeRejected as exc:
            messages.error(request, f"Not applied: {exc}")
        else:
            messages.success(request, f"Change request #{obj.pk}: {decision} done.")
        return HttpResponseRedirect(reverse("admin:flags_changerequest_change", args=[obj.pk]))

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        raise PermissionDenied
