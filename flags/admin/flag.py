"""Flag admin: the definition, a glance at every environment, history with diffs and revert."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html_join

from flags import describe, roles, selectors, services
from flags.admin.base import SOURCE, RoleAdmin, user_of
from flags.admin.debugger import debugger_context
from flags.admin.forms import FlagForm
from flags.admin.kinds import kind_note
from flags.admin.revert import RevertPage, require_role, revert_response
from flags.admin_panels import render_flag_panels
from flags.errors import ChangeRejected, VersionConflict
from flags.models import Flag, FlagState


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        tags: set[str] = set()
        for row in model_admin.get_queryset(request).values_list("tags", flat=True):
            tags.update(str(t) for t in row or [])
        return [(t, t) for t in sorted(tags)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Flag]) -> QuerySet[Flag]:
        value = self.value()
        return queryset.filter(tags__contains=[value]) if value else queryset


class EnvironmentStateFilter(admin.SimpleListFilter):
    title = "state per environment"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        keys = roles.visible_environments(user_of(request)).values_list("key", flat=True)
        return [
            (f"{key}:{on}", f"{key}: {on}") for key in sorted(set(keys)) for on in ("on", "off")
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Flag]) -> QuerySet[Flag]:
        value = self.value()
        if not value or ":" not in value:
            return queryset
        key, on = value.rsplit(":", 1)
        return queryset.filter(
            states__environment__key=key, states__enabled=(on == "on")
        ).distinct()


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("expired", "Expired"), ("14", "Expiring within 14 days"), ("none", "No expiry")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Flag]) -> QuerySet[Flag]:
        today = timezone.localdate()
        if self.value() == "expired":
            return queryset.filter(expires_at__lt=today)
        if self.value() == "14":
            soon = today + datetime.timedelta(days=14)
            return queryset.filter(expires_at__gte=today, expires_at__lte=soon)
        if self.value() == "none":
            return queryset.filter(expires_at__isnull=True)
        return queryset


@admin.register(Flag)
class FlagAdmin(RoleAdmin[Flag]):
    form = FlagForm
    change_action = "edit_flag"
    add_action = "edit_flag"
    list_display = ("key", "name", "kind", "environments", "owner", "tag_list", "expires_at")
    list_filter = (
        "kind", TagFilter, EnvironmentStateFilter, ("owner", admin.RelatedOnlyFieldListFilter),
        ExpiryFilter, "archived", "project",
    )  # fmt: skip
    search_fields = ("key", "name", "description")
    list_select_related = ("project", "owner")
    change_form_template = "admin/flags/flag/change_form.html"
    actions = ["archive_flags"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Flag]:
        qs = super().get_queryset(request).prefetch_related("states__environment")
        user = user_of(request)
        if user.is_superuser:
            return qs
        return qs.filter(project__in=roles.visible_projects(user))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("project", "key", "version", "archived") if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = [
            "project", "key", "name", "description", "kind", "value_type", "variants", "salt",
            "client_visible", "owner", "tags", "expires_at",
        ]  # fmt: skip
        if obj is not None:
            fields += ["version", "archived"]
        if obj is None or self.has_change_permission(request, obj):
            fields += ["reason", "expected_version"]
        return fields

    @admin.display(description="Targeting")
    def environments(self, obj: Flag) -> str:
        states = sorted(
            obj.states.all(), key=lambda s: (s.environment.sort_order, s.environment.key)
        )
        segments = self._segment_attributes(obj.project_id)
        return format_html_join(
            "",
            '<div class="flag-targeting" title="{}">{}</div>',
            (
                (
                    _glance(s),
                    describe.describe_state(
                        services.state_snapshot(s), s.environment.key, segments
                    ),
                )
                for s in states
            ),
        )

    def _segment_attributes(self, project_id: int) -> dict[str, dict[str, str]]:
        """Segment key -> its key attribute, once per list page (sentences say "accounts in")."""
        cache: dict[int, dict[str, dict[str, str]]] = self.__dict__.setdefault("_segments", {})
        if project_id not in cache:
            cache[project_id] = selectors.segment_attributes(project_id)
        return cache[project_id]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        self.__dict__.pop("_segments", None)
        return super().changelist_view(request, extra_context)

    @admin.display(description="Tags")
    def tag_list(self, obj: Flag) -> str:
        return ", ".join(obj.tags or [])

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        flag = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if flag is not None and self.has_view_permission(request, flag):
            extra["overview"] = selectors.flag_overview(flag, user_of(request))
            extra["kind_note"] = kind_note(flag.kind, flag.variants or {})
            extra.update(debugger_context(request, user_of(request), flag))
            extra["debugger_url"] = reverse("admin:flags_debugger")
            extra["flag_panels"] = render_flag_panels(flag, request)
        return super().change_view(request, object_id, form_url, extra)

    def debugger_view(self, request: HttpRequest) -> HttpResponse:
        user = user_of(request)
        if not roles.has_any_role(user):
            raise PermissionDenied
        return TemplateResponse(
            request,
            "admin/flags/debugger.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Why does this context get that?",
                **debugger_context(request, user, None),
            },
        )

    @admin.action(description="Archive the selected flags (asks for a reason)")
    def archive_flags(self, request: HttpRequest, queryset: QuerySet[Flag]) -> Any:
        """All or nothing: one write archives every selected flag, or none and says which one
        blocked it (a missing role, a flag another one needs as a prerequisite, ...)."""
        user = user_of(request)
        flags = list(queryset.select_related("project"))
        blocked = [f for f in flags if not roles.can(user, "archive_flag", f)]
        if blocked:
            messages.error(
                request,
                f"Nothing was archived: you may not archive {', '.join(f.key for f in blocked)}.",
            )
            return None
        reason = request.POST.get("reason", "").strip()
        if request.POST.get("confirm") == "yes" and reason:
            edits = [e for f in flags if (e := services.archive_edit(f, True, f.version))]
            try:
                outcome = services.archive_many(edits, actor=user, source=SOURCE, reason=reason)
            except (ChangeRejected, PermissionDenied, VersionConflict) as exc:
                messages.error(request, f"Nothing was archived: {exc}")
            else:
                if outcome is not None and outcome.change_request is not None:
                    messages.info(
                        request,
                        f"Archiving needs approval: change request #{outcome.change_request.pk} "
                        "was submitted.",
                    )
                else:
                    messages.success(request, f"Archived {len(edits)} flag(s).")
            return None
        return TemplateResponse(
            request,
            "admin/flags/archive_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "flags": flags,
                "title": "Archive flags",
                "error": "Give a reason." if request.POST.get("confirm") == "yes" else "",
            },
        )

    # --- History across environments, and revert ---------------------------------------

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "debugger/",
                self.admin_site.admin_view(self.debugger_view),
                name="flags_debugger",
            ),
            path(
                "<int:flag_id>/revert/<int:state_id>/<int:history_id>/",
                self.admin_site.admin_view(self.revert_view),
                name="flags_flag_revert",
            ),
            path(
                "<int:flag_id>/revert-definition/<int:history_id>/",
                self.admin_site.admin_view(self.revert_definition_view),
                name="flags_flag_revert_definition",
            ),
        ]
        return own + super().get_urls()

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        flag = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, flag):
            raise PermissionDenied
        return TemplateResponse(
            request,
            "admin/flags/flag/history.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": flag,
                "title": f"History of {flag.key}",
                "entries": selectors.flag_history(flag, user_of(request)),
            },
        )

    def revert_definition_view(
        self, request: HttpRequest, flag_id: int, history_id: int
    ) -> HttpResponse:
        # Looked up unfiltered so that someone without the role gets 403, not 404.
        flag = get_object_or_404(Flag.objects.select_related("project"), pk=flag_id)
        require_role(request, "edit_flag", flag)
        target, version = services.flag_revert_changes(flag, history_id)

        def apply(reason: str, expected: int) -> Flag:
            return services.revert_flag(
                flag, history_id, actor=user_of(request), source=SOURCE, reason=reason,
                expected_version=expected,
            )  # fmt: skip

        def current() -> Flag:
            return Flag.objects.get(pk=flag.pk)

        page = RevertPage(
            obj=flag,
            version=version,
            target=target,
            snapshot=lambda: services.flag_snapshot(current()),
            current_version=lambda: current().version,
            apply=apply,
            history_url=reverse("admin:flags_flag_history", args=[flag.pk]),
            kind="flag",
        )
        return revert_response(request, self.admin_site, self.model._meta, page)

    def revert_view(
        self, request: HttpRequest, flag_id: int, state_id: int, history_id: int
    ) -> HttpResponse:
        flag = get_object_or_404(self.get_queryset(request), pk=flag_id)
        state = get_object_or_404(
            FlagState.objects.select_related("environment"), pk=state_id, flag=flag
        )
        user = user_of(request)
        # Proposing is enough: where approval is needed, the pipeline makes it a request.
        if not roles.can(user, "edit_state", state) and not roles.can(user, "propose", state):
            raise PermissionDenied("You may not change this flag in this environment.")
        target, version = services.revert_changes(state, history_id)
        current = services.state_snapshot(state)
        diff = [(k, current[k], v) for k, v in target.items() if current[k] != v]
        error = ""
        if request.method == "POST":
            reason = request.POST.get("reason", "").strip()
            raw = request.POST.get("expected_version", "")
            # The version the page was shown at: missing or malformed is refused, never "no
            # check" (the service names the field).
            expected: object = int(raw) if raw.isdigit() else raw or None
            try:
                edit = services.revert_edit(services.STATE, state, history_id, expected)
                outcome = services.submit(
                    [edit], actor=user, source=SOURCE, reason=reason, mode=services.Mode.AUTO
                )
                if outcome.change_request is not None:
                    messages.info(
                        request, f"Revert submitted for approval as #{outcome.change_request.pk}."
                    )
                else:
                    messages.success(request, f"{state} reverted to version {version}.")
                return HttpResponseRedirect(reverse("admin:flags_flag_history", args=[flag.pk]))
            except VersionConflict as exc:
                error = (
                    f"The flag changed meanwhile (now version {exc.current_version}); "
                    "review the difference below and confirm again."
                )
                state.refresh_from_db()
                current = services.state_snapshot(state)
                diff = [(k, current[k], v) for k, v in target.items() if current[k] != v]
            except PermissionDenied as exc:
                error = str(exc)
            except ChangeRejected as exc:
                error = str(exc)
        segments = selectors.segment_attributes(flag.project_id)
        return TemplateResponse(
            request,
            "admin/flags/flag/revert.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": flag,
                "state": state,
                "version": version,
                "diff": diff,
                "words": describe.describe_changes("state", current, target),
                "restores": describe.describe_state(target, state.environment.key, segments),
                "now": describe.describe_state(current, state.environment.key, segments),
                "error": error,
                "title": f"Revert {state} to version {version}",
            },
        )


def _glance(state: FlagState) -> str:
    if not state.enabled:
        return "off"
    pct = selectors.rollout_percentage(state)
    rules = f" +{len(state.rules)} rule(s)" if state.rules else ""
    return f"on {pct:g}%{rules}" if pct is not None else f"on{rules}"
