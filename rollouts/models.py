"""Rollout plans, their stages and guardrails, the timeline of checks, and notification logs.

A plan drives one flag in one environment through ordered stages. Percentages are stored in the
engine's units (1/100,000), so what a stage says is exactly what the ruleset serves.
"""

from __future__ import annotations

import base64
import binascii

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, validate_email
from django.db import models

from flags.models import FlagState, Segment
from rollouts.decision import DEFAULT_HEALTH_ACTIONS, HealthCheck

FULL = 100_000  # the engine's weight units: 100,000 = 100 %
WEBHOOK_SECRET_PREFIX = "whsec_"
CHECK_INTERVAL_SECONDS = (10, 7 * 24 * 3600)  # the bounds of a plan's check interval
# The bounds of a plan's no-traffic time: under ten minutes a quiet night is "no traffic"; past
# a month (the longest stage of a template) the check would never speak.
NO_TRAFFIC_SECONDS = (600, 30 * 24 * 3600)
# The health checks a plan sets an action for (rollouts.decision.HealthCheck's values); each has
# its column health_<check>.
HEALTH_CHECKS = (
    "no_traffic", "no_error_events", "unit_mismatch", "sample_ratio_mismatch", "both_variants",
)  # fmt: skip


def validate_email_list(value: object) -> None:
    """A list of email addresses (the plan's ops recipients)."""
    if not isinstance(value, list):
        raise ValidationError('A list of email addresses, such as ["ops@example.com"].')
    if len(value) > 50:
        raise ValidationError("At most 50 addresses.")
    for address in value:
        if not isinstance(address, str):
            raise ValidationError(f"{str(address)[:100]!r} is not an email address.")
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(f"{address[:100]!r} is not an email address.") from None


def validate_webhook_secret(value: str) -> None:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of at least 16 random bytes. Checked
    here so a bad one is refused when typed, not found out when a rollback's alert is signed."""
    problem = "A Standard Webhooks secret: whsec_ then the base64 of at least 16 random bytes."
    if not value.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValidationError(problem)
    try:
        key = base64.b64decode(value[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(problem) from None
    if len(key) < 16:
        raise ValidationError(problem)


def _default_action(check: HealthCheck) -> str:
    """The decision's default for a health check: one definition of the defaults."""
    return str(DEFAULT_HEALTH_ACTIONS[check])


class RolloutPlan(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft (not started)"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        ROLLED_BACK = "rolled_back", "Rolled back"
        ABORTED = "aborted", "Aborted"

    class RollbackAction(models.TextChoices):
        ZERO = "zero", "Set the rollout to 0%"
        KILL = "kill", "Use the flag's kill switch"

    class HealthAction(models.TextChoices):
        WARN = "warn", "Warn: tell people, carry on"
        HOLD = "hold", "Hold the stage and tell people"
        ROLLBACK = "rollback", "Roll back"

    ACTIVE = (Status.RUNNING, Status.PAUSED)

    flag_state = models.ForeignKey(FlagState, on_delete=models.CASCADE, related_name="rollouts")
    name = models.CharField(max_length=200)
    template = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    status_reason = models.TextField(blank=True)
    on_variant = models.CharField(max_length=100, default="on")
    off_variant = models.CharField(max_length=100, default="off")
    bucket_by = models.CharField(max_length=100, default="targetingKey")
    # -1 before the first stage is applied.
    current_stage = models.IntegerField(default=-1)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The FlagState version the rollout itself last wrote: any other version means a hand edit.
    applied_state_version = models.PositiveIntegerField(null=True, blank=True)
    check_interval_seconds = models.PositiveIntegerField(
        default=300,
        validators=[
            MinValueValidator(CHECK_INTERVAL_SECONDS[0]),
            MaxValueValidator(CHECK_INTERVAL_SECONDS[1]),
        ],
    )
    min_sample = models.PositiveIntegerField(
        default=200, help_text="Flag-on users needed in each stage before it may progress."
    )
    insufficient_traffic_extension_seconds = models.PositiveIntegerField(
        default=24 * 3600,
        help_text="After the bake time, how long to wait for the minimum sample before holding "
        "and alerting.",
    )
    false_positive_rate = models.FloatField(
        default=0.05,
        # 0 would never roll back, and past one half the test rolls back healthy rollouts.
        validators=[MinValueValidator(0.0001), MaxValueValidator(0.5)],
        help_text="Chance that a healthy rollout is rolled back, shared by all guardrails.",
    )
    design_sample = models.PositiveIntegerField(
        default=500,
        validators=[MinValueValidator(1)],
        help_text="Flag-on users at which the sequential test is most sensitive.",
    )
    rollback_action = models.CharField(
        max_length=8, choices=RollbackAction.choices, default=RollbackAction.ZERO
    )
    email_recipients = models.JSONField(default=list, blank=True, validators=[validate_email_list])
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    alerted_stage = models.IntegerField(
        default=-1, help_text="The last stage a hold-with-alert was sent for (sent once)."
    )
    # What already told people of a warn-action health finding: {"stage": n, "codes": [...]}.
    # A finding is told once per stage (as alerted_stage does for holds); another stage starts
    # afresh, since it reads new traffic.
    health_warned = models.JSONField(default=dict, blank=True, editable=False)
    # The health checks (docs/rollouts.md "Health checks"): the no-traffic time, and what each
    # finding does.
    no_traffic_seconds = models.PositiveIntegerField(
        default=24 * 3600,
        validators=[
            MinValueValidator(NO_TRAFFIC_SECONDS[0]),
            MaxValueValidator(NO_TRAFFIC_SECONDS[1]),
        ],
        help_text="How long the stage may see no event of the flag at all before the "
        "no-traffic check acts.",
    )
    health_no_traffic = models.CharField(
        max_length=8, choices=HealthAction.choices,
        default=_default_action(HealthCheck.NO_TRAFFIC),
        help_text="No event of the flag within the no-traffic time.",
    )  # fmt: skip
    health_no_error_events = models.CharField(
        max_length=8, choices=HealthAction.choices,
        default=_default_action(HealthCheck.NO_ERROR_EVENTS),
        help_text="Traffic, but no error event at all: the error guardrails cannot see harm.",
    )  # fmt: skip
    health_unit_mismatch = models.CharField(
        max_length=8, choices=HealthAction.choices,
        default=_default_action(HealthCheck.UNIT_MISMATCH),
        help_text="Events that do not carry the unit the flag buckets by.",
    )  # fmt: skip
    health_sample_ratio_mismatch = models.CharField(
        max_length=8, choices=HealthAction.choices,
        default=_default_action(HealthCheck.SAMPLE_RATIO_MISMATCH),
        help_text="Units exposed in the stage do not follow its split.",
    )  # fmt: skip
    health_both_variants = models.CharField(
        max_length=8, choices=HealthAction.choices,
        default=_default_action(HealthCheck.BOTH_VARIANTS),
        help_text="The same unit exposed to both variants.",
    )  # fmt: skip
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    # The definition the approval was given for (rollouts.definition.fingerprint): a plan
    # changed since is no longer covered by it.
    approved_definition = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=1)
    # The sequence number of the plan's last timeline record, kept on the (locked) plan so a
    # check need not look it up: RolloutCheck's (plan, sequence) uniqueness still guards it.
    last_sequence = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one active rollout per flag and environment: two would fight.
            models.UniqueConstraint(
                fields=["flag_state"],
                condition=models.Q(status__in=["running", "paused"]),
                name="one_active_rollout_per_flag_state",
            )
        ]
        indexes = [models.Index(fields=["status", "next_check_at"], name="rollout_due_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"

    def health_actions(self) -> dict[str, str]:
        """What each health check's finding does, by check (HEALTH_CHECKS)."""
        return {check: str(getattr(self, f"health_{check}")) for check in HEALTH_CHECKS}


class RolloutStage(models.Model):
    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="stages")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100, blank=True)
    weight = models.PositiveIntegerField(
        help_text="Share of the default rollout that gets the flag, in 1/100,000 (5% = 5000)."
    )
    segment = models.ForeignKey(
        Segment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Also serve the flag to everyone in this segment (internal users first).",
    )
    bake_seconds = models.PositiveIntegerField(default=24 * 3600)
    min_sample = models.PositiveIntegerField(null=True, blank=True)
    requires_approval = models.BooleanField(
        default=False, help_text="A person must approve leaving this stage."
    )

    class Meta:
        ordering = ["plan", "position"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "position"], name="rollout_stage_position"),
            models.CheckConstraint(
                condition=models.Q(weight__lte=FULL), name="rollout_stage_weight_max"
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.weight / 1000:g}%"

    def clean(self) -> None:
        # The admin's inline writes stages directly: a segment from another project is refused
        # here, as create_from_template refuses it.
        if self.segment is None or self.plan_id is None:
            return
        if self.segment.project_id != self.plan.flag_state.flag.project_id:
            raise ValidationError({"segment": "The segment belongs to another project."})


class Guardrail(models.Model):
    class Metric(models.TextChoices):
        ERROR_RATE = "error_rate", "Error rate (share of users with an error)"
        LATENCY_P95 = "latency_p95", "p95 latency (ms)"
        CONVERSION_RATE = "conversion_rate", "Conversion rate"
        CUSTOM = "custom", "Custom count metric (events per exposed user)"

    class Mode(models.TextChoices):
        RELATIVE = "relative", "Relative to the control cohort"
        ABSOLUTE = "absolute", "Absolute value of the flag-on cohort"

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="guardrails")
    metric = models.CharField(max_length=20, choices=Metric.choices)
    custom_name = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices)
    # Relative: a ratio to control (2.0 = twice control; 0.9 = 10 % lower). Absolute: the value.
    yellow = models.FloatField()
    red = models.FloatField()
    higher_is_worse = models.BooleanField(default=True)

    class Meta:
        ordering = ["plan", "id"]

    def __str__(self) -> str:
        name = self.custom_name if self.metric == self.Metric.CUSTOM else self.metric
        return f"{name} {self.mode} red {self.red:g}"

    def clean(self) -> None:
        # One set of rules for every path: add_guardrail calls it, and so does the admin's
        # inline (which writes guardrails directly). The lines make a yellow band before red,
        # on the metric's scale: rates, ratios and milliseconds are not negative.
        errors: dict[str, str] = {}
        if (self.metric == self.Metric.CUSTOM) != bool(self.custom_name.strip()):
            errors["custom_name"] = "A custom metric needs its name; others take none."
        for line in ("yellow", "red"):
            value = getattr(self, line)
            if value is not None and not 0 <= value < float("inf"):
                errors[line] = "A number, not below 0."
        if "yellow" not in errors and "red" not in errors:
            beyond = self.red >= self.yellow if self.higher_is_worse else self.red <= self.yellow
            if not beyond:
                errors["red"] = "The red line must lie beyond the yellow line."
        if errors:
            raise ValidationError(errors)


class RolloutCheck(models.Model):
    """One decision on the timeline: a scheduled check or a person's action, with the evidence."""

    class Verdict(models.TextChoices):
        PROGRESS = "progress", "Progress"
        HOLD = "hold", "Hold"
        ROLLBACK = "rollback", "Roll back"
        PAUSE = "pause", "Pause"
        RESUME = "resume", "Resume"
        START = "start", "Start"
        ABORT = "abort", "Abort"
        COMPLETE = "complete", "Complete"
        APPROVE = "approve", "Plan approved"
        APPROVAL_REQUESTED = "approval_requested", "Approval requested"
        EDIT = "edit", "Plan edited"

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="checks")
    sequence = models.PositiveIntegerField()
    checked_at = models.DateTimeField()
    stage = models.IntegerField()
    verdict = models.CharField(max_length=24, choices=Verdict.choices)
    reasons = models.JSONField(default=list)
    guardrails = models.JSONField(default=list)
    samples = models.JSONField(default=dict)
    sample_ratio = models.JSONField(null=True, blank=True)
    applied = models.CharField(max_length=200, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    manual = models.BooleanField(default=False)

    class Meta:
        ordering = ["plan", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "sequence"], name="rollout_check_sequence")
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.verdict}"


class WebhookTarget(models.Model):
    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    secret = models.CharField(
        max_length=200,
        validators=[validate_webhook_secret],
        help_text="Standard Webhooks secret (whsec_… base64) used to sign.",
    )
    slack_format = models.BooleanField(default=False, help_text="Send a Slack-compatible body.")

    def __str__(self) -> str:
        return self.url


class Notification(models.Model):
    """One message to one target, with every delivery attempt (the delivery log)."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="notifications")
    check_record = models.ForeignKey(
        RolloutCheck, null=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    event = models.CharField(max_length=32)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    target = models.CharField(max_length=500)
    webhook = models.ForeignKey(WebhookTarget, null=True, blank=True, on_delete=models.SET_NULL)
    message_id = models.CharField(max_length=64, unique=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    log = models.JSONField(default=list, help_text="One entry per attempt: when, outcome.")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} → {self.target} ({self.status})"
