"""Admin forms: each saves through flags.services (see base.ServiceForm)."""

from __future__ import annotations

from typing import Any

from django import forms

from flags import grants, roles, services
from flags.admin.base import SOURCE, ServiceForm
from flags.admin.widgets import LinesField, TargetingWidget
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
        fields = ("project", "key", "name", "sort_order", "is_production", "requires_approval")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "project" in self.fields:
            _limit(self.fields["project"], roles.projects_with(self.request.user, "own_project"))

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
        help_texts = {"variants": 'Variant name -> value, e.g. {"on": true, "off": false}.'}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "project" in self.fields:
            _limit(
                self.fields["project"], roles.projects_with(self.request.user, "edit_project_flags")
            )
        if "variants" in self.fields:
            self.fields["variants"].required = False

    def apply(self, changes: dict[str, Any], reason: str) -> Flag:
        project = changes.pop("project")
        return services.create_flag(
            project, data=changes, actor=self.actor, source=SOURCE, reason=reason
        )

    def change(self, changes: dict[str, Any]) -> services.Change:
        changes.pop("project", None)
        expected = self.cleaned_data["expected_version"]
        return services.Edit(services.FLAG, self.instance, changes, expected)


class FlagStateForm(ServiceForm):
    class Meta:
        model = FlagState
        fields = ("enabled", "off_variant", "default_serve", "rules", "prerequisites")
        help_texts = {
            "rules": "Checked in order; the first rule whose conditions all match serves.",
            "default_serve": "What everyone else gets while the flag is on.",
            "prerequisites": 'Advanced: [{"flag": "other-flag", "variants": ["on"]}].',
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
        if state.environment.is_production:
            self.fields["reason"].required = True

    def change(self, changes: dict[str, Any]) -> services.Change:
        if changes.get("rules") is None:
            changes["rules"] = []
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
