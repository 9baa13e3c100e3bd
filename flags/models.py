"""Projects, environments, flags, per-environment flag state and segments.

These rows compile into the engine's ruleset document (see docs/ruleset.md); the engine's
validator is the only validator, so nothing saved here can be rejected by an SDK.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from flagsite_sdk.engine import key_problem
from simple_history.models import HistoricalRecords


def validate_key(value: str) -> None:
    """The engine's definition of a key (flagsite_sdk.engine.keys), so nothing saved here can
    be refused by an SDK. A plain function: migrations refer to it by name, so a change of
    the pattern needs no migration."""
    problem = key_problem(value)
    if problem is not None:
        raise ValidationError(problem, code="invalid_key")


KEY_VALIDATOR = validate_key


class AuditFields(models.Model):
    """Extra columns on every historical record: where the change came from.

    The reason ("why") is simple-history's own history_change_reason.
    """

    class Source(models.TextChoices):
        ADMIN = "admin", "Admin"
        API = "api", "API"
        AUTOMATION = "automation", "Automation"
        SYSTEM = "system", "System"

    history_source = models.CharField(max_length=16, choices=Source.choices, default=Source.SYSTEM)

    class Meta:
        abstract = True


def _history() -> Any:
    return HistoricalRecords(bases=[AuditFields], cascade_delete_history=False)


class Project(models.Model):
    key = models.CharField(max_length=100, unique=True, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    apply_on_approval = models.BooleanField(
        default=False,
        help_text="Approving a change request applies it at once; otherwise it needs a "
        "separate apply.",
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    history = _history()

    class Meta:
        ordering = ["key"]
        # Object permissions granted per project through roles (see flags.roles).
        permissions = [
            ("view_project_content", "Can view the project's flags and segments"),
            ("edit_project_flags", "Can create and edit flag definitions"),
            ("edit_project_segments", "Can edit segments"),
            ("archive_project_flags", "Can archive flags"),
            ("own_project", "Can manage the project, environments, API keys and roles"),
        ]

    def __str__(self) -> str:
        return self.name


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def validate_origins(value: object) -> None:
    """A list of origins: scheme://host[:port] with no path, or "*"."""
    if not isinstance(value, list):
        raise ValidationError('A list of origins, such as ["https://app.example.com"].')
    for origin in value:
        if origin != "*" and not (isinstance(origin, str) and _ORIGIN.fullmatch(origin)):
            raise ValidationError(
                f"{str(origin)[:100]!r} is not an origin: scheme://host[:port], no path."
            )


class Environment(models.Model):
    DEFAULT_KEYS = ("development", "staging", "production")

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="environments")
    key = models.CharField(max_length=100, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    sort_order = models.PositiveSmallIntegerField(default=0)
    is_production = models.BooleanField(
        default=False, help_text="Production rules: a reason is required for every change."
    )
    requires_approval = models.BooleanField(
        default=False, help_text="Changes need a second person's approval before they apply."
    )
    cors_origins = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_origins],
        help_text=(
            "Web origins (https://app.example.com) whose pages may call the browser endpoints "
            'with this environment\'s keys; "*" allows any origin.'
        ),
    )
    version = models.PositiveIntegerField(default=1)
    history = _history()

    class Meta:
        ordering = ["project", "sort_order", "key"]
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="environment_key_unique")
        ]
        # Object permissions per environment; a role grant may cover only some environments.
        permissions = [
            ("view_env_flags", "Can view flag states in the environment"),
            ("edit_env_targeting", "Can edit flag targeting in a non-production environment"),
            ("release_env", "Can edit flag state in any environment and use the kill switch"),
        ]

    def __str__(self) -> str:
        return f"{self.project.key}/{self.key}"


class Flag(models.Model):
    class Kind(models.TextChoices):
        RELEASE = "release", "Release"
        EXPERIMENT = "experiment", "Experiment"
        OPS = "ops", "Ops"
        KILL_SWITCH = "kill_switch", "Kill switch"
        PERMISSION = "permission", "Permission"

    class ValueType(models.TextChoices):
        BOOLEAN = "boolean", "Boolean"
        STRING = "string", "String"
        NUMBER = "number", "Number"
        JSON = "json", "JSON"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="flags")
    key = models.CharField(max_length=100, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.RELEASE)
    value_type = models.CharField(max_length=16, choices=ValueType.choices, default="boolean")
    # Variant name -> value, e.g. {"on": true, "off": false}.
    variants = models.JSONField(default=dict)
    salt = models.CharField(
        max_length=100, blank=True, help_text="Bucketing salt; the key if blank."
    )
    client_visible = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tags = models.JSONField(default=list, blank=True)
    expires_at = models.DateField(null=True, blank=True)
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)
    history = _history()

    class Meta:
        ordering = ["project", "key"]
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="flag_key_unique")]

    def __str__(self) -> str:
        return self.key


class FlagState(models.Model):
    """A flag's targeting in one environment. ``version`` is the optimistic-concurrency token."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="states")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="states")
    enabled = models.BooleanField(default=False)
    off_variant = models.CharField(max_length=100)
    rules = models.JSONField(default=list, blank=True)
    default_serve = models.JSONField(default=dict)
    prerequisites = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    history = _history()

    class Meta:
        ordering = ["flag", "environment"]
        constraints = [
            models.UniqueConstraint(fields=["flag", "environment"], name="flag_state_unique")
        ]

    def __str__(self) -> str:
        return f"{self.flag.key}@{self.environment.key}"


class Segment(models.Model):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="segments")
    key = models.CharField(max_length=100, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    key_attribute = models.CharField(max_length=100, default="targetingKey")
    included = models.JSONField(default=list, blank=True)
    excluded = models.JSONField(default=list, blank=True)
    rules = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    history = _history()

    class Meta:
        ordering = ["project", "key"]
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="segment_key_unique")
        ]

    def __str__(self) -> str:
        return self.key


class Ruleset(models.Model):
    """The compiled ruleset document an environment serves, rebuilt on every committed change."""

    environment = models.OneToOneField(
        Environment, on_delete=models.CASCADE, related_name="ruleset"
    )
    version = models.PositiveBigIntegerField(default=0)
    document = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.environment} v{self.version}"


class RoleGrant(models.Model):
    """A user's role in a project, optionally narrowed to some environments.

    The grant is the record people manage; flags.roles turns it into django-guardian object
    permissions, which every permission check reads.
    """

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        EDITOR = "editor", "Editor"
        RELEASE_MANAGER = "release_manager", "Release manager"
        OWNER = "owner", "Owner"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flag_role_grants"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="role_grants")
    role = models.CharField(max_length=32, choices=Role.choices)
    environments = models.ManyToManyField(
        Environment,
        blank=True,
        related_name="+",
        help_text="Leave empty for every environment of the project.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = _history()

    class Meta:
        ordering = ["project", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="role_grant_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.get_role_display()} of {self.project.key}"


class ChangeRequest(models.Model):
    """A proposed change that alters an environment needing a second person's approval.

    ``operations`` is the change as the write pipeline stores it (flags.services.changes.load
    turns it back into changes); ``preview`` is what it alters, in words, at proposal time.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPROVED = "approved", "Approved"
        APPLIED = "applied", "Applied"
        REJECTED = "rejected", "Rejected"
        STALE = "stale", "Stale (what it changes moved on since)"

    project = models.ForeignKey(
        Project, null=True, on_delete=models.CASCADE, related_name="change_requests"
    )
    summary = models.CharField(max_length=300, blank=True)
    operations = models.JSONField(default=list)
    environment_ids = models.JSONField(default=list, help_text="The environments it alters.")
    preview = models.JSONField(default=list, help_text="What it alters, per environment.")
    # The single flag state it edits, when it is a targeting edit (for lists and filters).
    flag_state = models.ForeignKey(
        FlagState, null=True, blank=True, on_delete=models.CASCADE, related_name="change_requests"
    )
    changes = models.JSONField(default=dict, blank=True, help_text="Field name -> value.")
    base_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version of the edited object it was made on."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField(blank=True)
    source = models.CharField(
        max_length=16, choices=AuditFields.Source.choices, default=AuditFields.Source.ADMIN
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_comment = models.TextField(blank=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    history = _history()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Change #{self.pk}: {self.summary}" if self.summary else f"Change #{self.pk}"
