"""What the admin shows of an exporter: how far behind it is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from analytics.exports.models import Exporter
from analytics.models import EventKind, RawEvent

PENDING_COUNT_LIMIT = 100_000  # counting further would scan the raw table for a label


@dataclass(frozen=True)
class ExporterLag:
    pending: int  # capped at PENDING_COUNT_LIMIT
    oldest_pending_received_at: datetime | None

    @property
    def pending_label(self) -> str:
        return f"{self.pending:,}+" if self.pending >= PENDING_COUNT_LIMIT else f"{self.pending:,}"

    def lag(self, now: datetime | None = None) -> timedelta | None:
        if self.oldest_pending_received_at is None:
            return None
        return (now or timezone.now()) - self.oldest_pending_received_at


def exporter_lag(exporter: Exporter) -> ExporterLag:
    pending = RawEvent.objects.filter(
        environment_id=exporter.environment_id, kind=EventKind.EXPOSURE, id__gt=exporter.cursor
    ).order_by("id")
    first = pending.values_list("received_at", flat=True).first()
    count = pending[:PENDING_COUNT_LIMIT].count()
    return ExporterLag(count, first)
