"""Admin for rollouts: start from a template, steer with a reason, read the timeline and the
delivery log. Every change goes through rollouts.services (roles apply there)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from flags import roles
from flags.admin.widgets import LinesField
from flags.models import FlagState, Segment
from rollouts import approval, services
from rollouts.definition import approval_covers, edit_token
from rollouts.models import (
    HEALTH_CHECKS,
    NO_TRAFFIC_SECONDS,
    Guardrail,
    Notification,
    RolloutCheck,
    RolloutPlan,
    RolloutStage,
    WebhookTarget,
    validate_webhook_secret,
)
from rollouts.plan_templates import TEMPLATES


class ReasonActionForm(ActionForm):
    reason = forms.CharField(required=False, help_text="Why (required for every rollout action).")


def _recipients_field() -> LinesField:
    return LinesField(
        required=False, help_text="Ops email addresses told of rollbacks, holds, warnings and "
        "completion: one a line. Blank: the installation's OPS_EMAILS.",
    )  # fmt: skip


class HoursField(forms.DecimalField):
    """A duration typed in hours (36, 1.5) for a column of whole seconds: 1.5 h is stored as
    5400 s exactly, and what is shown converts back to the same seconds. ``seconds``: the
    column's bounds, said in hours when a value is outside them."""

    SHOWN = Decimal("0.000001")  # 0.0036 s: any whole number of seconds survives the trip

    def __init__(self, *, seconds: tuple[int, int], **kwargs: Any) -> None:
        self.bounds = seconds
        super().__init__(min_value=0, decimal_places=6, max_digits=12, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int):  # the stored seconds, shown as hours
            hours = (Decimal(value) / 3600).quantize(self.SHOWN, rounding=ROUND_HALF_EVEN)
            return f"{hours.normalize():f}"
        return value

    def clean(self, value: Any) -> int | None:
        hours = super().clean(value)
        if hours is None:
            return None
        seconds = int((hours * 3600).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        low, high = self.bounds
        if not low <= seconds <= high:
            raise ValidationError(
                f"From {self.prepare_value(low)} to {self.prepare_value(high)} hours.",
                code="bounds",
            )
        return seconds

    def has_changed(self, initial: Any, data: Any) -> bool:
        # initial is in seconds, data in hours: compared as seconds
        try:
            typed = self.clean(data)
        except ValidationError:
            return True
        return bool(typed != initial)


def _no_traffic_field() -> HoursField:
    return HoursField(
        seconds=NO_TRAFFIC_SECONDS, label="no-traffic time (hours)",
        initial=RolloutPlan._meta.get_field("no_traffic_seconds").get_default(),
        help_text="How long a stage may see no event of the flag at all before the no-traffic "
        "health check acts (10 minutes to 30 days; 24 by default).",
    )  # fmt: skip


def health_actions(cleaned: dict[str, Any]) -> dict[str, str]:
    """The health actions a plan form chose, by check."""
    return {
        check: str(cleaned[f"health_{check}"])
        for check in HEALTH_CHECKS
        if cleaned.get(f"health_{check}")
    }


class PlanAddForm(forms.ModelForm):  # type: ignore[type-arg]
    template = forms.ChoiceField(choices=[(k, f"{k}: {v[0]}") for k, v in TEMPLATES.items()])
    segment = forms.ModelChoiceField(
        queryset=Segment.objects.none(), required=False,
        help_text="The segment a segment-first template (launch-phases) starts with.",
    )  # fmt: skip
    email_recipients = _recipients_field()
    no_traffic_seconds = _no_traffic_field()
    user: Any = None  # set per request by RolloutPlanAdmin.get_form

    class Meta:
        model = RolloutPlan
        fields = ["flag_state", "name", "template", "on_variant", "segment", "bucket_by",
                  "rollback_action", "check_interval_seconds", "min_sample",
                  "email_recipients", "no_traffic_seconds",
                  *(f"health_{check}" for check in HEALTH_CHECKS)]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        self.fields["name"].help_text = "Blank: the flag's key and the template's."
        if self.user is not None:
            projects = roles.visible_projects(self.user)
            self.fields["segment"].queryset = Segment.objects.filter(  # type: ignore[attr-defined]
                project__in=projects
            ).select_related("project")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        state = cleaned.get("flag_state")
        if state is None or self.errors:
            return cleaned
        # The service's own checks, before anything is written: a problem shows on its field.
        try:
            services.check_new_plan(
                state, template=cleaned.get("template", ""), user=self.user,
                segment=cleaned.get("segment"), on_variant=cleaned.get("on_variant") or "on",
                rollback_action=cleaned.get("rollback_action") or "",
                bucket_by=cleaned.get("bucket_by") or "targetingKey",
                no_traffic_seconds=cleaned.get("no_traffic_seconds") or 24 * 3600,
                health_actions=health_actions(cleaned),
            )  # fmt: skip
        except services.RolloutError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        except PermissionDenied as exc:
            self.add_error("flag_state", str(exc))
        return cleaned


class PlanChangeForm(forms.ModelForm):  # type: ignore[type-arg]
    change_reason = forms.CharField(
        max_length=1000, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why you change this plan (its stages, guardrails, settings): recorded on its "
        "timeline. In an environment that requires approval, a changed plan needs approving "
        "again before its next stage.",
    )  # fmt: skip
    # What the page showed when it was opened (definition.edit_token): a save from a page that
    # another edit has overtaken is refused, never written over the other edit.
    opened_as = forms.CharField(widget=forms.HiddenInput, required=False)
    email_recipients = _recipients_field()
    no_traffic_seconds = _no_traffic_field()

    class Meta:
        model = RolloutPlan
        # Every editable column; the admin leaves out its read-only ones (status, stage, ...).
        fields = [
            f.name for f in RolloutPlan._meta.concrete_fields if f.editable and not f.primary_key
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["opened_as"].initial = edit_token(self.instance)

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        # The admin's save runs in one transaction: the row lock taken here holds until the
        # plan, its stages, guardrails and webhooks are saved, so two saves cannot interleave.
        with transaction.atomic():
            current = RolloutPlan.objects.select_for_update().get(pk=self.instance.pk)
            if cleaned.get("opened_as") != edit_token(current):
                raise ValidationError(
                    "Someone changed this plan after you opened this page (see its timeline); "
                    "nothing was saved. Reload the page and make your change again.",
                    code="stale",
                )
        return cleaned


class PlanPartInline(admin.TabularInline):  # type: ignore[type-arg]
    """A plan's stages, guardrails and webhooks: whoever may edit the flag's state in that
    environment (the role, as for the plan itself) edits them; Django's model permissions,
    which only a superuser holds here, do not decide."""

    extra = 0

    def _may_edit(self, request: HttpRequest, obj: Any) -> bool:
        if not isinstance(obj, RolloutPlan):
            return False
        return roles.can(request.user, "edit_state", obj.flag_state)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if isinstance(obj, RolloutPlan):
            return roles.can(request.user, "view", obj.flag_state)
        return bool(request.user.is_authenticated and request.user.is_staff)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_edit(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_edit(request, obj)


class PercentField(forms.DecimalField):
    """A stage's share in percent, as people think of it (5 = 5 %); the column keeps the
    engine's units (1/100,000), so 0.001 % is the finest step."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, max_value=100, decimal_places=3, max_digits=6, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int):  # the stored units, shown as a percent
            return f"{value / 1000:g}"
        return value

    def clean(self, value: Any) -> int | None:
        percent = super().clean(value)
        return None if percent is None else int(percent * 1000)

    def has_changed(self, initial: Any, data: Any) -> bool:
        # initial is in units, data in percent: compared as percents
        try:
            typed = self.to_python(data)
        except ValidationError:
            return True
        return typed != (None if initial is None else Decimal(initial) / 1000)


class StageForm(forms.ModelForm):  # type: ignore[type-arg]
    weight = PercentField(label="percent", help_text="Share of the rollout, in percent (5 = 5 %).")

    class Meta:
        model = RolloutStage
        fields = ["position", "name", "weight", "segment", "bake_seconds", "min_sample",
                  "requires_approval"]  # fmt: skip


class StageFormSet(forms.BaseInlineFormSet):  # type: ignore[type-arg]
    """What the services hold for stages, on the admin's path too: at least one stage, weights
    that never decrease (each stage keeps everyone the one before it reached), and, once the
    plan has started, the stages that ran (up to the current one) fixed, new ones after it."""

    def clean(self) -> None:
        super().clean()
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if not kept:
            raise ValidationError("A plan needs at least one stage.")
        ordered = sorted(kept, key=lambda f: f.cleaned_data["position"])
        weights = [f.cleaned_data["weight"] for f in ordered]
        if weights != sorted(weights):
            raise ValidationError(
                "Stage weights never decrease from one stage to the next: each stage keeps "
                "everyone the one before it reached."
            )
        plan = RolloutPlan.objects.get(pk=self.instance.pk)  # as locked by the plan's form
        if plan.current_stage < 0:
            return
        ran = list(plan.stages.order_by("position"))[: plan.current_stage + 1]
        ran_ids = {stage.pk for stage in ran}
        last_ran = ran[-1].position if ran else -1
        for form in self.forms:
            if form.instance.pk in ran_ids:
                if form.has_changed() or form.cleaned_data.get("DELETE"):
                    raise ValidationError(
                        f"Stage {form.instance.position} has run already: it stays as it ran."
                    )
            elif form.cleaned_data and form.cleaned_data["position"] <= last_ran:
                raise ValidationError(
                    f"A stage still to come needs a position after {last_ran}, the current stage."
                )


class StageInline(PlanPartInline):
    model = RolloutStage
    form = StageForm
    formset = StageFormSet
    fields = ("position", "name", "weight", "segment", "bake_seconds", "min_sample",
              "requires_approval")  # fmt: skip

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "segment":
            kwargs["queryset"] = Segment.objects.filter(
                project__in=roles.visible_projects(request.user)
            ).select_related("project")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class GuardrailInline(PlanPartInline):
    model = Guardrail


class SecretField(forms.CharField):
    """Never shown again once saved; a blank box keeps the current secret."""

    widget = forms.PasswordInput(render_value=False)

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data) and data != initial


class WebhookForm(forms.ModelForm):  # type: ignore[type-arg]
    url = forms.URLField(max_length=500, assume_scheme="https")
    secret = SecretField(
        required=False, max_length=200,
        help_text="Standard Webhooks secret (whsec_ and base64) the receiver verifies with. "
        "Leave blank to keep the current one.",
    )  # fmt: skip

    class Meta:
        model = WebhookTarget
        fields = ["url", "secret", "slack_format"]

    def clean_secret(self) -> str:
        value: str = self.cleaned_data.get("secret") or ""
        if not value:
            if self.instance.pk is not None:
                return str(self.instance.secret)
            raise ValidationError("A new webhook needs its secret.", code="required")
        validate_webhook_secret(value)
        return value


class WebhookInline(PlanPartInline):
    model = WebhookTarget
    form = WebhookForm


class CheckInline(admin.TabularInline):  # type: ignore[type-arg]
    model = RolloutCheck
    extra = 0
    can_delete = False
    ordering = ["-sequence"]
    fields = ("sequence", "checked_at", "stage", "verdict", "reasons_text", "guardrail_text",
              "samples", "applied", "actor")  # fmt: skip
    readonly_fields = ("sequence", "checked_at", "stage", "verdict", "reasons_text",
                       "guardrail_text", "samples", "applied", "actor")  # fmt: skip

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="reasons")
    def reasons_text(self, obj: RolloutCheck) -> str:
        return "; ".join(r["message"] for r in obj.reasons)

    @admin.display(description="guardrails")
    def guardrail_text(self, obj: RolloutCheck) -> str:
        return format_html_join(
            "", "<div>{}: <b>{}</b> {}</div>",
            ((g["guardrail"], g["status"], g["message"]) for g in obj.guardrails),
        )  # fmt: skip


@admin.register(RolloutPlan)
class RolloutPlanAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "flag_state", "status", "stage_display", "guardrail_status",
                    "next_check_at", "approved_by"]  # fmt: skip
    list_filter = ["status", "flag_state__environment"]
    search_fields = ["name", "flag_state__flag__key"]
    action_form = ReasonActionForm
    actions = ["request_approval", "start", "pause", "resume", "advance", "rollback", "abort"]
    readonly_fields = ["status", "status_reason", "current_stage", "stage_started_at",
                       "started_at", "finished_at", "applied_state_version", "next_check_at",
                       "last_checked_at", "approval", "approved_by", "approved_at", "created_by",
                       "version", "guardrail_status", "flag_state", "alerted_stage",
                       "health_warned"]  # fmt: skip
    # Fixed once the plan has started: who is in which cohort depends on them (a changed
    # bucketing or variant would reshuffle the exposed users).
    frozen_once_started = ["on_variant", "off_variant", "bucket_by", "template"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = type("PlanAddForm", (PlanAddForm,), {"user": request.user})
            kwargs["fields"] = PlanAddForm.Meta.fields
        else:
            kwargs["form"] = PlanChangeForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return PlanAddForm.Meta.fields if obj is None else super().get_fields(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        if obj.status == RolloutPlan.Status.DRAFT:
            return self.readonly_fields
        return [*self.readonly_fields, *self.frozen_once_started]

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else [StageInline, GuardrailInline, WebhookInline, CheckInline]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change:
            return
        edited = [name for name in form.changed_data if name != "change_reason"]
        edited += [str(fs.model._meta.verbose_name_plural) for fs in formsets if fs.has_changed()]
        if edited:
            services.record_edit(
                form.instance, user=request.user, what=edited,
                reason=form.cleaned_data["change_reason"],
            )  # fmt: skip

    def save_model(self, request: HttpRequest, obj: RolloutPlan, form: Any, change: bool) -> None:
        if change:
            # Only what the form changed: the plan's state (status, stage, version, the last
            # record's number) is the checks' and the services', and may have moved since the
            # page was opened; a whole-row save would put it back.
            columns = {f.name for f in obj._meta.concrete_fields}
            changed = [name for name in form.changed_data if name in columns]
            if changed:
                obj.save(update_fields=changed)
            return
        data = form.cleaned_data
        plan = services.create_from_template(
            data["flag_state"], template=data["template"], user=request.user,
            name=data["name"], bucket_by=data["bucket_by"], segment=data["segment"],
            on_variant=data["on_variant"],
            rollback_action=data["rollback_action"],
            check_interval_seconds=data["check_interval_seconds"], min_sample=data["min_sample"],
            email_recipients=data["email_recipients"] or [],
            no_traffic_seconds=data["no_traffic_seconds"], health_actions=health_actions(data),
        )  # fmt: skip
        obj.pk = plan.pk
        obj.refresh_from_db()
        # Made all the same (fixed outside the plan), but people should know before they try
        # to start it.
        for problem in services.start_problems(plan):
            self.message_user(request, f"{plan}: {problem.message}", messages.WARNING)

    @admin.display(description="stage")
    def stage_display(self, obj: RolloutPlan) -> str:
        stage = obj.stages.filter(position=obj.current_stage).first()
        return f"{obj.current_stage + 1}: {stage}" if stage else "-"

    @admin.display(description="approval")
    def approval(self, obj: RolloutPlan) -> str:
        if obj.approved_by is None:
            return "not approved"
        if approval_covers(obj):
            return f"approved by {obj.approved_by}"
        return f"approved by {obj.approved_by}, but the plan changed since: request it again"

    @admin.display(description="guardrails now")
    def guardrail_status(self, obj: RolloutPlan) -> str:
        last = obj.checks.exclude(guardrails=[]).order_by("-sequence").first()
        if last is None:
            return "-"
        return format_html_join(
            "", "<div>{}: <b>{}</b></div>", ((g["guardrail"], g["status"]) for g in last.guardrails)
        )

    def _run(self, request: HttpRequest, queryset: QuerySet[RolloutPlan], name: str) -> None:
        reason = request.POST.get("reason", "")
        action = approval.__dict__[name] if name == "request_approval" else services.__dict__[name]
        for plan in queryset:
            try:
                action(plan, user=request.user, reason=reason)
            except (services.RolloutError, PermissionDenied) as exc:
                self.message_user(request, f"{plan}: {exc}", messages.ERROR)
            except Exception as exc:
                self.message_user(request, f"{plan}: {type(exc).__name__}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{plan}: {name} done.", messages.SUCCESS)

    @admin.action(description="Request approval (a change request, reviewed by someone else)")
    def request_approval(self, request: HttpRequest, queryset: QuerySet[RolloutPlan]) -> None:
        self._run(request, queryset, "request_approval")

    @admin.action(description="Start")
    def start(self, request: HttpRequest, queryset: QuerySet[RolloutPlan]) -> None:
        self._run(request, queryset, "start")

    @admin.action(description="Pause")
    def pause(self, request: HttpRequest, queryset: QuerySet[RolloutPlan]) -> None:
        self._run(request, queryset, "pause")

    @admin.action(description="Resume")
    def resume(self, request: HttpRequest, queryset: QuerySet[RolloutPlan]) -> None:
        self._run(request, queryset, "resume")

    @admin.action(description="Advance to the next stage now")
    def advance(self, request: HttpRequest, queryset: QuerySet[RolloutPlan]) -> None:
        self._run(request, queryset, "advance")

    @admin.action(description="Roll back now")
    def rollback(self, request: HttpRequest, queryset: QuerySet[RolloutPlan]) -> None:
        self._run(request, queryset, "rollback")

    @admin.action(description="Abort (leave the flag as it is)")
    def abort(self, request: HttpRequest, queryset: QuerySet[RolloutPlan]) -> None:
        self._run(request, queryset, "abort")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "flag_state":
            # Only the flags the user may roll out: those whose state they may edit there.
            environments = [
                e.pk for e in roles.visible_environments(request.user).select_related("project")
                if roles.can(request.user, "edit_state", e)
            ]  # fmt: skip
            kwargs["queryset"] = FlagState.objects.filter(
                environment__in=environments, flag__archived=False
            ).select_related("flag", "environment__project")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[RolloutPlan]:
        # The list, the search and the actions see only the environments the user may view.
        plans = (
            super()
            .get_queryset(request)
            .select_related("flag_state__flag", "flag_state__environment__project")
        )
        if request.user.is_superuser:
            return plans
        return plans.filter(flag_state__environment__in=roles.visible_environments(request.user))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            return roles.can(request.user, "view", obj.flag_state)
        return bool(request.user.is_authenticated and request.user.is_staff)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            return roles.can(request.user, "edit_state", obj.flag_state)
        return bool(request.user.is_authenticated and request.user.is_staff)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_authenticated and request.user.is_staff)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The delivery log: every message and each attempt."""

    list_display = ["event", "channel", "target", "status", "attempts", "created_at",
                    "delivered_at"]  # fmt: skip
    list_filter = ["status", "channel", "event"]
    readonly_fields = ["plan", "check_record", "event", "channel", "target", "webhook",
                       "message_id", "payload", "status", "attempts", "next_attempt_at",
                       "attempts_log", "created_at", "delivered_at"]  # fmt: skip
    exclude = ["log"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Notification]:
        # Those of plans in the environments the user may view, as for the plans themselves.
        sent = super().get_queryset(request).select_related("plan__flag_state__environment")
        if request.user.is_superuser:
            return sent
        return sent.filter(
            plan__flag_state__environment__in=roles.visible_environments(request.user)
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            return roles.can(request.user, "view", obj.plan.flag_state)
        return bool(request.user.is_authenticated and request.user.is_staff)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a log: read only

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    @admin.display(description="delivery log")
    def attempts_log(self, obj: Notification) -> str:
        return format_html_join(
            "", "<div>#{} at {}: {}</div>",
            ((e["attempt"], e["at"], e.get("error", "delivered")) for e in obj.log),
        ) or format_html("{}", "no attempt yet")  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
