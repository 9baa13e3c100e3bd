"""Hygiene records: per-project thresholds, uploaded code references, weekly report claims."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from flags.models import Project


class HygieneSettings(models.Model):
    """A project's lifecycle thresholds; a project without a row uses these defaults."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="hygiene")
    release_lifetime_days = models.PositiveIntegerField(default=40)
    experiment_lifetime_days = models.PositiveIntegerField(default=40)
    ops_lifetime_days = models.PositiveIntegerField(default=7)
    kill_switch_tag = models.CharField(
        max_length=100,
        default="kill-switch",
        help_text="Ops flags with this tag are kill switches: permanent, reported only unused.",
    )
    launched_days = models.PositiveIntegerField(
        default=14, help_text="Stale once serving one variant everywhere for over this."
    )
    unused_days = models.PositiveIntegerField(
        default=30, help_text="Stale once not evaluated for over this."
    )
    new_days = models.PositiveIntegerField(default=7)
    inactive_days = models.PositiveIntegerField(default=7)

    class Meta:
        verbose_name = "hygiene settings"
        verbose_name_plural = "hygiene settings"

    def __str__(self) -> str:
        return f"Hygiene settings of {self.project.key}"


class ReferenceUpload(models.Model):
    """One scan of one repository at one commit, as sent by find_flag_references --upload."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    repository = models.CharField(max_length=300)
    commit = models.CharField(max_length=100)
    uploaded_at = models.DateTimeField(auto_now_add=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-uploaded_at", "-pk"]
        indexes = [models.Index(fields=["project", "repository", "-uploaded_at"])]

    def __str__(self) -> str:
        return f"{self.repository}@{self.commit[:12]}"


class CodeReference(models.Model):
    upload = models.ForeignKey(ReferenceUpload, on_delete=models.CASCADE, related_name="references")
    flag_key = models.CharField(max_length=100)
    path = models.CharField(max_length=1000)
    line = models.PositiveIntegerField()
    context = models.CharField(max_length=500, blank=True)
    via = models.CharField(max_length=40, help_text="What the key was used through.")

    class Meta:
        ordering = ["flag_key", "path", "line"]
        indexes = [models.Index(fields=["upload", "flag_key"])]

    def __str__(self) -> str:
        return f"{self.flag_key} at {self.path}:{self.line}"


class WeeklyReport(models.Model):
    """Claimed (inserted) before the weekly email goes out: a second run the same week finds
    the row and sends nothing."""

    week_start = models.DateField(unique=True)
    claimed_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.JSONField(default=list)
    summary = models.JSONField(default=dict)

    class Meta:
        ordering = ["-week_start"]

    def __str__(self) -> str:
        return f"Week of {self.week_start}"
