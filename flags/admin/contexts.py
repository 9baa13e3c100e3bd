"""Saved test contexts for the evaluation debugger (no ruleset reads them)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from flags import roles
from flags.admin.base import RoleAdmin, user_of
from flags.models import SavedContext


class SavedContextForm(forms.ModelForm[SavedContext]):
    class Meta:
        model = SavedContext
        fields = ("project", "name", "description", "context")

    def clean_context(self) -> Any:
        value = self.cleaned_data["context"]
        if not isinstance(value, dict):
            raise forms.ValidationError('Give a JSON object, e.g. {"accountId": "acct-1001"}.')
        return value


@admin.register(SavedContext)
class SavedContextAdmin(RoleAdmin[SavedContext]):
    """Anyone who may edit a project's segments may keep test contexts for it; viewers use them."""

    form = SavedContextForm
    change_action = "edit_segment"
    add_action = "edit_segment"
    delete_action = "edit_segment"
    list_display = ("name", "project", "attributes", "try_it")
    list_filter = ("project",)
    search_fields = ("name", "description")

    # Role checks run on the context's project (flags.roles knows projects, not contexts).
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj.project if obj is not None else None)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj.project if obj is not None else None)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj.project if obj is not None else None)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SavedContext]:
        qs = super().get_queryset(request).select_related("project")
        return qs.filter(project__in=roles.visible_projects(user_of(request)))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "project":
            kwargs["queryset"] = roles.projects_with(user_of(request), "edit_project_segments")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: SavedContext, form: Any, change: bool) -> None:
        # Not targeting: no ruleset or history is involved, a plain save is the whole write.
        if obj.created_by_id is None:
            obj.created_by = user_of(request)  # type: ignore[assignment]
        obj.save()

    @admin.display(description="Attributes")
    def attributes(self, obj: SavedContext) -> str:
        return ", ".join(f"{k}={v}" for k, v in (obj.context or {}).items())

    @admin.display(description="")
    def try_it(self, obj: SavedContext) -> str:
        url = reverse("admin:flags_debugger")
        return format_html('<a href="{}?saved={}&debug=1">try in the debugger</a>', url, obj.pk)
