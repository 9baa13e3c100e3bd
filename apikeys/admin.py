"""API keys in the admin, for the owners of each project: issue (the raw key is shown once),
see the prefix and last use, revoke."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from apikeys import services
from apikeys.models import ApiKey
from flags import roles
from flags.models import Environment


def _owned_environments(request: HttpRequest) -> QuerySet[Environment]:
    projects = roles.projects_with(request.user, "own_project")
    return Environment.objects.filter(project__in=projects).select_related("project")


class IssueForm(forms.ModelForm[ApiKey]):
    class Meta:
        model = ApiKey
        fields = ["environment", "kind", "name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ["name", "prefix", "kind", "environment", "created_by", "created_at",
                    "last_used_at", "revoked_at"]  # fmt: skip
    list_filter = ["kind", "environment__project", "environment"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at",
                       "revoked_by", "audit_trail"]  # fmt: skip
    actions = ["revoke_selected"]
    form = IssueForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        keys = super().get_queryset(request).select_related("environment__project", "created_by")
        return keys.filter(environment__in=_owned_environments(request))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "environment":
            kwargs["queryset"] = _owned_environments(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and _owned_environments(request).exists())

    def has_view_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        if obj is not None:
            return roles.can(request.user, "manage", obj.environment)
        return self.has_module_permission(request)

    has_add_permission = has_module_permission

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Keys are immutable; "change" only means running the revoke action.
        return self.has_view_permission(request, obj) and obj is None

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead, so the audit trail keeps the key

    @admin.display(description="Audit trail")
    def audit_trail(self, obj: ApiKey) -> str:
        rows = obj.history.select_related("history_user").order_by("history_date")
        return format_html(
            "<table><tr><th>When</th><th>Who</th><th>Source</th><th>What</th><th>Why</th></tr>"
            "{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        r.history_date.strftime("%Y-%m-%d %H:%M:%S %Z"),
                        r.history_user or "-",
                        r.history_source,
                        "issued" if r.history_type == "+" else "revoked",
                        r.history_change_reason or "",
                    )
                    for r in rows
                ),
            ),
        )

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        key, raw = services.issue(
            obj.environment, kind=obj.kind, name=obj.name, actor=request.user,
            reason="issued in the admin",
        )  # fmt: skip
        obj.pk = key.pk
        messages.warning(
            request,
            f"The key for {key.name!r} is {raw} — copy it now: it is stored hashed and will "
            "not be shown again.",
        )

    @admin.action(description="Revoke the selected keys")
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[ApiKey]
    ) -> HttpResponse | None:
        """Asks for confirmation and a reason first; the reason goes into the audit trail."""
        keys = list(queryset.filter(revoked_at__isnull=True))
        error = ""
        if request.POST.get("confirm") == "yes":
            reason = request.POST.get("reason", "").strip()
            try:
                for key in keys:
                    services.revoke(key, actor=request.user, reason=reason)
            except ValidationError as exc:
                error = " ".join(exc.messages)
            else:
                messages.success(request, "Revoked; every server refuses them from now on.")
                return None
        return TemplateResponse(
            request,
            "admin/apikeys/revoke_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Revoke API keys",
                "keys": keys,
                "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
                "error": error,
                "reason": request.POST.get("reason", ""),
            },
        )
