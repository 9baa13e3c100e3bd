"""Admin forms: each saves through flags.services (see base.ServiceForm)."""

from __future__ import annotations

from typing import Any

from django import forms

from flags import grants, roles, services
from flags.admin.base import SOURCE, ServiceForm
from flags.admin.kinds import default_variants
from flags.admin.widgets import LinesField, RowsWidget, TargetingWidget
from flags.models import Environment, Flag, FlagState, Project, RoleGrant, Segment


def _limit(field: forms.Field, queryset: Any) -> None:
    assert isinstance(field, forms.ModelChoiceField)
    field.queryset = queryset


class ProjectForm(ServiceForm):
    class Meta:
        model = Project
        fields = ("key", "name")

    def apply(self, changes: dict[str, Any], reason: str) -> Project:
        if self.instance.pk is None:
            return services.create_project(
                key=changes["key"], name=changes["name"], actor=self.actor, source=SOURCE,
                reason=reason,
            )  # fmt: skip
        changes.pop("key", None)
        return services.update_project(
            self.instance, changes=changes, expected_version=self.cleaned_data["expected_version"],
            actor=self.actor, source=SOURCE, reason=reason,
        )  # fmt: skip


class EnvironmentForm(ServiceForm):
    class Meta:
        model = Environment
        fields = (
            "project", "key", "name", "sort_order", "is_production", "requires_approval",
            "cors_origins",
        )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "project" in self.fields:
            _limit(self.fields["project"], roles.projects_with(self.request.user, "own_project"))
        if "cors_origins" in self.fields:
            self.fields["cors_origins"].required = False

    def clean_cors_origins(self) -> Any:
        # An empty box means no browser origin, never a null the column refuses.
        return self.cleaned_data.get("cors_origins") or []

    def apply(self, changes: dict[str, Any], reason: str) -> Environment:
        if self.instance.pk is None:
            project = changes.pop("project")
            return services.create_environment(
                project, data=changes, actor=self.actor, source=SOURCE, reason=reason
            )
        changes.pop("project", None)
        changes.pop("key", None)
        return services.update_environment(
            self.instance, changes=changes, expected_version=self.cleaned_data["expected_version"],
            actor=self.actor, source=SOURCE, reason=reason,
        )  # fmt: skip


class TagsField(forms.CharField):
    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list):
            return value
        return [t.strip() for t in str(value or "").split(",") if t.strip()]


class FlagForm(ServiceForm):
    tags = TagsField(required=False, help_text="Comma separated.")

    class Meta:
        model = Flag
        fields = (
            "project", "key", "name", "description", "kind", "value_type", "variants", "salt",
            "client_visible", "owner", "tags", "expires_at",
        )  # fmt: skip
        help_texts = {
            "variants": "Each variant's name and value. Left empty, a new flag starts with its "
            "kind's variants (on/off for boolean flags; control/treatment for string experiments)."
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "project" in self.fields:
            _limit(
                self.fields["project"], roles.projects_with(self.request.user, "edit_project_flags")
            )
        if "variants" in self.fields:
            self.fields["variants"].required = False
            self.fields["variants"].widget = RowsWidget(
                "variants", value_type=self.instance.value_type or "boolean"
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        variants = data.get("variants")
        if variants in (None, "", {}):
            return data
        if not isinstance(variants, dict):
            self.add_error("variants", "Give the variants as name → value pairs.")
            return data
        value_type = data.get("value_type") or self.instance.value_type
        for name, value in variants.items():
            problem = _value_problem(value, value_type)
            if not 1 <= len(name) <= 128:
                self.add_error("variants", f"Variant names are 1 to 128 characters: {name!r}.")
            elif problem:
                self.add_error(
                    "variants", f"Variant {name!r}: {problem} (the flag is {value_type})."
                )
        return data

    def apply(self, changes: dict[str, Any], reason: str) -> Flag:
        if not changes.get("variants"):
            changes["variants"] = default_variants(
                changes.get("kind", "release"), changes.get("value_type", "boolean")
            )
        project = changes.pop("project")
        return services.create_flag(
            project, data=changes, actor=self.actor, source=SOURCE, reason=reason
        )

    def change(self, changes: dict[str, Any]) -> services.Change:
        changes.pop("project", None)
        expected = self.cleaned_data["expected_version"]
        return services.Edit(services.FLAG, self.instance, changes, expected)


def _value_problem(value: Any, value_type: str) -> str:
    if value_type == "boolean" and not isinstance(value, bool):
        return "the value must be true or false"
    if value_type == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "the value must be a number"
    if value_type == "string" and not isinstance(value, str):
        return "the value must be text"
    return ""


class FlagStateForm(ServiceForm):
    class Meta:
        model = FlagState
        fields = ("enabled", "off_variant", "default_serve", "rules", "prerequisites")
        help_texts = {
            "rules": "Checked in order; the first rule whose conditions all match serves.",
            "default_serve": "What everyone else gets while the flag is on.",
            "prerequisites": "Flags that must serve one of the ticked variants first; "
            "otherwise everyone gets the off variant (e.g. only if maintenance-mode is off).",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        state: FlagState = self.instance
        if state.pk is None:
            return
        variants = list(state.flag.variants or {})
        if "off_variant" in self.fields:
            self.fields["off_variant"] = forms.ChoiceField(
                choices=[(v, v) for v in variants], initial=state.off_variant,
                help_text="Served to everyone while the flag is off.",
            )  # fmt: skip
        for name, kind in (("rules", "rules"), ("default_serve", "serve")):
            if name in self.fields:
                self.fields[name].widget = TargetingWidget(kind, variants)
        if "rules" in self.fields:
            self.fields["rules"].required = False
        if "prerequisites" in self.fields:
            others = Flag.objects.filter(project_id=state.flag.project_id, archived=False)
            self.fields["prerequisites"].widget = RowsWidget(
                "prerequisites",
                flags={f.key: list(f.variants or {}) for f in others.exclude(pk=state.flag_id)},
            )
            self.fields["prerequisites"].required = False
        if state.environment.is_production:
            self.fields["reason"].required = True

    def change(self, changes: dict[str, Any]) -> services.Change:
        if changes.get("rules") is None:
            changes["rules"] = []
        if "prerequisites" in changes and changes["prerequisites"] is None:
            changes["prerequisites"] = []
        expected = self.cleaned_data["expected_version"]
        return services.Edit(services.STATE, self.instance, changes, expected)


class SegmentForm(ServiceForm):
    included = LinesField(required=False, help_text="Keys always in the segment, one a line.")
    excluded = LinesField(required=False, help_text="Keys never in the segment, one a line.")

    class Meta:
        model = Segment
        fields = (
            "project", "key", "name", "description", "key_attribute", "included", "excluded",
            "rules",
        )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "project" in self.fields:
            _limit(
                self.fields["project"],
                roles.projects_with(self.request.user, "edit_project_segments"),
            )
        if "rules" in self.fields:
            self.fields["rules"].widget = TargetingWidget("segment-rules")
            self.fields["rules"].required = False

    def apply(self, changes: dict[str, Any], reason: str) -> Segment:
        if changes.get("rules") is None:
            changes["rules"] = []
        project = changes.pop("project")
        return services.create_segment(
            project, data=changes, actor=self.actor, source=SOURCE, reason=reason
        )

    def change(self, changes: dict[str, Any]) -> services.Change:
        if changes.get("rules") is None:
            changes["rules"] = []
        changes.pop("project", None)
        expected = self.cleaned_data["expected_version"]
        return services.Edit(services.SEGMENT, self.instance, changes, expected)


class RoleGrantForm(ServiceForm):
    class Meta:
        model = RoleGrant
        fields = ("user", "project", "role", "environments")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owned = roles.projects_with(self.request.user, "own_project")
        if "project" in self.fields:
            self.fields["project"].queryset = owned  # type: ignore[attr-defined]
        if "environments" in self.fields:
            self.fields["environments"].queryset = Environment.objects.filter(  # type: ignore[attr-defined]
                project__in=owned
            )

    def apply(self, changes: dict[str, Any], reason: str) -> RoleGrant:
        envs = list(changes.get("environments") or [])
        if self.instance.pk is None:
            return grants.grant(
                changes["user"], changes["project"], changes["role"], envs, actor=self.actor,
                reason=reason, source=SOURCE,
            )  # fmt: skip
        # The user and project are read-only on an existing grant (see RoleGrantAdmin), so
        # they are not in ``changes``; the service refuses them if they ever were.
        return grants.change(
            self.instance, role=changes["role"], environments=envs, actor=self.actor,
            reason=reason, source=SOURCE,
        )  # fmt: skip
