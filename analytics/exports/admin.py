"""Exporters in the admin: the token is write-only, progress and refusals are read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from analytics.exports import services
from analytics.exports.models import Exporter, ExportRejection
from analytics.exports.selectors import exporter_lag
from flags import roles
from flags.models import AuditFields, Environment


class ExporterForm(forms.ModelForm):  # type: ignore[type-arg]
    token = forms.CharField(
        required=False,
        strip=True,
        # Never rendered back: a saved token is not shown again, only replaced.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Mixpanel project token or Amplitude API key. Stored encrypted and never "
        "shown again; leave empty to keep the saved one.",
    )
    server_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="Leave empty for the vendor's default (US) endpoint; e.g. the EU endpoint.",
    )
    reason = forms.CharField(required=False, help_text="Why: recorded in the history.")

    class Meta:
        model = Exporter
        fields = ["environment", "vendor", "enabled", "server_url", "batch_size"]

    def clean_batch_size(self) -> int:
        size: int = self.cleaned_data["batch_size"]
        if not 1 <= size <= services.MAX_BATCH_SIZE:
            raise forms.ValidationError(f"Between 1 and {services.MAX_BATCH_SIZE} events.")
        return size

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if not data.get("token") and not self.instance.token_encrypted:
            self.add_error("token", "A token or API key is required.")
        return data


def _owned_environments(user: Any) -> QuerySet[Environment]:
    return Environment.objects.filter(project__in=roles.projects_with(user, "own_project"))


@admin.register(Exporter)
class ExporterAdmin(SimpleHistoryAdmin):  # type: ignore[misc]
    form = ExporterForm
    list_display = [
        "__str__", "enabled", "pending", "lag", "last_success_at", "rejected", "short_error",
    ]  # fmt: skip
    list_filter = ["vendor", "enabled"]
    readonly_fields = [
        "token_status", "cursor", "exported_events", "pending", "lag", "last_attempt_at",
        "last_success_at", "last_error", "consecutive_failures", "next_attempt_at",
    ]  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[Exporter]:
        queryset: QuerySet[Exporter] = super().get_queryset(request)
        queryset = queryset.select_related("environment__project")
        if request.user.is_superuser:
            return queryset
        return queryset.filter(environment__in=_owned_environments(request.user))

    def _may_manage(self, request: HttpRequest, obj: Exporter | None = None) -> bool:
        user = request.user
        if obj is not None:
            return roles.can(user, "manage", obj.environment)
        return bool(user.is_superuser or roles.projects_with(user, "own_project").exists())

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may_manage(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_manage(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_manage(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_manage(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_manage(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "environment" and not request.user.is_superuser:
            kwargs["queryset"] = _owned_environments(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Exporter, form: Any, change: bool) -> None:
        assert isinstance(request.user, User)
        services.save_exporter(
            obj,
            token=form.cleaned_data.get("token", ""),
            user=request.user,
            source=AuditFields.Source.ADMIN,
            reason=form.cleaned_data.get("reason", ""),
        )

    @admin.display(description="token")
    def token_status(self, obj: Exporter) -> str:
        if not obj.token_encrypted:
            return "not set"
        saved = f" on {obj.token_saved_at:%Y-%m-%d %H:%M} UTC" if obj.token_saved_at else ""
        return f"saved{saved} (encrypted; not shown)"

    @admin.display(description="pending events")
    def pending(self, obj: Exporter) -> str:
        return exporter_lag(obj).pending_label if obj.pk else "-"

    @admin.display(description="lag")
    def lag(self, obj: Exporter) -> str:
        lag = exporter_lag(obj).lag(timezone.now()) if obj.pk else None
        return "caught up" if lag is None else f"{int(lag.total_seconds())} s"

    @admin.display(description="rejected")
    def rejected(self, obj: Exporter) -> int:
        return obj.rejections.count()

    @admin.display(description="last error")
    def short_error(self, obj: Exporter) -> str:
        return obj.last_error[:80]


@admin.register(ExportRejection)
class ExportRejectionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Events a vendor refused for good, with its reason: evidence, so read-only."""

    list_display = ["raw_event_id", "exporter", "reason", "rejected_at"]
    list_filter = ["exporter"]
    search_fields = ["insert_id", "reason"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExportRejection]:
        queryset = super().get_queryset(request).select_related("exporter__environment")
        if request.user.is_superuser:
            return queryset
        return queryset.filter(exporter__environment__in=_owned_environments(request.user))

    def has_module_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_superuser or roles.projects_with(user, "own_project").exists())

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
