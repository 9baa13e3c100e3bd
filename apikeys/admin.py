"""API keys in the admin, for the owners of each project: issue, see the prefix and last use,
revoke. Every write goes through apikeys.services.

The raw key is shown once, in the response to the issuing POST itself: a page of its own,
marked not to be cached. It is never put in the messages framework (whose default storage is
a cookie), the session or a redirect, so nothing but that one response ever carries it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from apikeys import services
from apikeys.models import ApiKey
from flags import roles
from flags.models import Environment


def _owned_environments(request: HttpRequest) -> QuerySet[Environment]:
    projects = roles.projects_with(request.user, "own_project")
    return Environment.objects.filter(project__in=projects).select_related("project")


class IssueForm(forms.ModelForm[ApiKey]):
    """Issues the key through the service once the input is valid, so the service's errors
    land on the form instead of becoming a 500 after it."""

    reason = forms.CharField(
        widget=forms.TextInput(attrs={"size": 80}),
        help_text="Who uses the key, for what: kept in the key's audit trail.",
    )
    request: HttpRequest

    class Meta:
        model = ApiKey
        fields = ["environment", "kind", "name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw_key: str | None = None

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        if self.errors:
            return
        try:
            key, self.raw_key = services.issue(
                self.cleaned_data["environment"], kind=self.cleaned_data["kind"],
                name=self.cleaned_data["name"], actor=self.request.user,
                reason=self.cleaned_data["reason"],
            )  # fmt: skip
        except ValidationError as exc:
            self.add_error(None, exc)
        except PermissionDenied as exc:
            self.add_error(None, str(exc) or "You may not issue keys here.")
        else:
            self.instance = key


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

    def get_form(
        self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return ["environment", "kind", "name", "reason"]
        return super().get_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        """The form's service call issued it already (see IssueForm)."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Keys have no related rows to save; the form never saves (it has no save_m2m)."""

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        raw = getattr(request, "_issued_raw_key", None)
        assert raw is not None, "IssueForm issues the key before the admin saves it"
        response = TemplateResponse(
            request,
            "admin/apikeys/apikey/issued.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Key issued: {obj.name}",
                "key": obj,
                "raw_key": raw,
            },
        )
        # The page is the one place the secret appears: no cache (browser, proxy) may keep it.
        add_never_cache_headers(response)
        response["Pragma"] = "no-cache"
        response["Referrer-Policy"] = "no-referrer"
        return response

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        if not change:
            request._issued_raw_key = form.raw_key  # type: ignore[attr-defined]
        return form.instance

    @admin.action(description="Revoke the selected keys")
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[ApiKey]
    ) -> HttpResponse | None:
        """Asks for confirmation and a reason first; then revokes every selected key or none,
        naming the key that stopped it (one of another project, one gone since)."""
        keys = list(queryset.order_by("pk"))
        posted = request.POST.getlist(ACTION_CHECKBOX_NAME)
        selected = sorted({int(pk) for pk in posted if pk.isdigit()})
        error = ""
        if request.POST.get("confirm") == "yes":
            reason = request.POST.get("reason", "").strip()
            # The queryset only holds keys this user may see; a selected key missing from it
            # belongs to a project they do not own (or was deleted): revoke none.
            hidden = sorted(set(selected) - {key.pk for key in keys})
            try:
                if hidden:
                    raise PermissionDenied(
                        f"Nothing was revoked: key #{hidden[0]} is not one you may revoke."
                    )
                services.revoke_many(keys, actor=request.user, reason=reason)
            except (ValidationError, PermissionDenied) as exc:
                error = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            else:
                messages.success(
                    request, f"Revoked {len(keys)} key(s); every server refuses them from now on."
                )
                return None
        return TemplateResponse(
            request,
            "admin/apikeys/revoke_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Revoke API keys",
                "keys": [key for key in keys if key.revoked_at is None],
                "selected": [str(pk) for pk in selected],
                "error": error,
                "reason": request.POST.get("reason", ""),
            },
        )
