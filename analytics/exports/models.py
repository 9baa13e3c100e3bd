"""An exporter per (environment, vendor) with its cursor, and the events a vendor refused."""

from __future__ import annotations

from django.db import models
from simple_history.models import HistoricalRecords

from flags.models import AuditFields, Environment


class Vendor(models.TextChoices):
    MIXPANEL = "mixpanel", "Mixpanel"
    AMPLITUDE = "amplitude", "Amplitude"


class Exporter(models.Model):
    """Sends an environment's stored exposure events to one vendor, in id order.

    ``cursor`` is the id of the last raw event handled (sent or recorded as rejected); it moves
    only in the transaction that follows the vendor's answer, so a crash resends, never skips.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    vendor = models.CharField(max_length=16, choices=Vendor.choices)
    enabled = models.BooleanField(default=True)
    token_encrypted = models.TextField(
        help_text="Mixpanel project token or Amplitude API key, Fernet-encrypted."
    )
    token_saved_at = models.DateTimeField(null=True, blank=True)
    server_url = models.URLField(
        blank=True,
        help_text="Leave empty for the vendor's default (US) endpoint; e.g. the EU endpoint.",
    )
    batch_size = models.PositiveIntegerField(default=500)
    cursor = models.BigIntegerField(default=0)
    exported_events = models.BigIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Who configured what, when and why; the progress fields change every run and are not.
    history = HistoricalRecords(
        bases=[AuditFields],
        excluded_fields=[
            "cursor", "exported_events", "last_attempt_at", "last_success_at", "last_error",
            "consecutive_failures", "next_attempt_at",
        ],
    )  # fmt: skip

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["environment", "vendor"], name="exporter_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_vendor_display()} for {self.environment}"


class ExportRejection(models.Model):
    """An event the vendor refused for good (not a transient error), with its reason."""

    exporter = models.ForeignKey(Exporter, on_delete=models.CASCADE, related_name="rejections")
    raw_event_id = models.BigIntegerField()
    insert_id = models.CharField(max_length=64)
    reason = models.TextField()
    payload = models.JSONField()
    rejected_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["exporter", "raw_event_id"], name="export_rejection_unique"
            )
        ]

    def __str__(self) -> str:
        return f"event {self.raw_event_id}: {self.reason[:60]}"
