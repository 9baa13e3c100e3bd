"""Export use cases: configure an exporter, and export one batch at a time from the cursor.

A batch is read, delivered (with retries) and its cursor moved in one transaction that holds
the exporter's row lock, so two workers never export the same exporter at once, and a worker
killed mid-batch leaves the cursor where it was: the next run resends the batch with the same
deduplication ids. Events younger than EXPORT_SETTLE_SECONDS wait, so an ingest transaction
that took an id earlier but commits later is not overtaken by the cursor.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from analytics.exports import secrets
from analytics.exports.delivery import RetryPolicy, deliver
from analytics.exports.models import Exporter, ExportRejection, Vendor
from analytics.exports.payloads import Exposure
from analytics.exports.senders import AmplitudeSender, MixpanelSender, Sender
from analytics.models import EventKind, RawEvent
from flags import roles
from flags.history import stamp

logger = logging.getLogger(__name__)
MAX_BATCH_SIZE = 1000  # under both vendors' 2,000 events and 1-2 MB per request
FAILURE_BACKOFF = RetryPolicy(attempts=0, base_seconds=30.0, cap_seconds=3600.0)


def retry_policy() -> RetryPolicy:
    return RetryPolicy(
        attempts=settings.EXPORT_RETRY_ATTEMPTS,
        base_seconds=settings.EXPORT_RETRY_BASE_SECONDS,
        cap_seconds=settings.EXPORT_RETRY_CAP_SECONDS,
    )


def sender_for(exporter: Exporter) -> Sender:
    token = secrets.decrypt(exporter.token_encrypted)
    if exporter.vendor == Vendor.MIXPANEL:
        return MixpanelSender(token, exporter.server_url)
    return AmplitudeSender(token, exporter.server_url)


def save_exporter(
    exporter: Exporter, *, token: str, user: User, source: str, reason: str = ""
) -> Exporter:
    """Saves an exporter's configuration; a non-empty ``token`` replaces the stored one."""
    if not roles.can(user, "manage", exporter.environment):
        raise PermissionDenied("Only project owners configure analytics exports.")
    with transaction.atomic():
        if token:
            exporter.token_encrypted = secrets.encrypt(token)
            exporter.token_saved_at = timezone.now()
        if not exporter.token_encrypted:
            raise ValueError("token: a token or API key is required")
        stamp(exporter, user=user, source=source, reason=reason or "exporter configured")
        exporter.save()
    return exporter


@dataclass(frozen=True)
class BatchOutcome:
    status: str  # "sent", "idle" (nothing to send), "failed", "skipped" (locked, paused, due later)
    sent: int = 0
    rejected: int = 0
    error: str = ""


def _exposures(exporter: Exporter, now: datetime) -> list[Exposure]:
    settled = now - timedelta(seconds=settings.EXPORT_SETTLE_SECONDS)
    rows = (
        RawEvent.objects.filter(
            environment_id=exporter.environment_id,
            kind=EventKind.EXPOSURE,
            id__gt=exporter.cursor,
            received_at__lte=settled,
        )
        .order_by("id")
        .values_list("id", "name", "variant", "context_key", "occurred_at", "assignments")
    )[: min(exporter.batch_size, MAX_BATCH_SIZE)]
    return [
        Exposure(raw_id, exporter.environment_id, flag, variant, key, at, assignments or {})
        for raw_id, flag, variant, key, at, assignments in rows
    ]


def export_batch(exporter_id: int, now: datetime | None = None) -> BatchOutcome:
    now = now or timezone.now()
    with transaction.atomic():
        exporter = (
            Exporter.objects.select_for_update(skip_locked=True)
            .filter(pk=exporter_id, enabled=True)
            .first()
        )
        if exporter is None or (exporter.next_attempt_at and exporter.next_attempt_at > now):
            return BatchOutcome("skipped")
        batch = _exposures(exporter, now)
        if not batch:
            return BatchOutcome("idle")
        exporter.last_attempt_at = now
        try:
            report = deliver(sender_for(exporter), batch, retry_policy())
        except secrets.SecretUnreadableError as exc:
            return _failed(exporter, str(exc), now)
        _record_rejections(exporter, batch, report.rejected, now)
        if report.error:
            return _failed(exporter, report.error, now, rejected=len(report.rejected))
        sent = len(batch) - len(report.rejected)
        exporter.cursor = batch[-1].raw_id
        exporter.exported_events += sent
        exporter.last_success_at = timezone.now()
        exporter.last_error = ""
        exporter.consecutive_failures = 0
        exporter.next_attempt_at = None
        exporter.save(update_fields=_PROGRESS_FIELDS)
    return BatchOutcome("sent", sent=sent, rejected=len(report.rejected))


_PROGRESS_FIELDS = [
    "cursor", "exported_events", "last_attempt_at", "last_success_at", "last_error",
    "consecutive_failures", "next_attempt_at",
]  # fmt: skip


def _failed(exporter: Exporter, error: str, now: datetime, rejected: int = 0) -> BatchOutcome:
    """The batch stays where it is; the exporter waits longer after each failed run."""
    exporter.consecutive_failures += 1
    exporter.last_error = error
    wait = FAILURE_BACKOFF.delay(exporter.consecutive_failures, None, random.Random())
    exporter.next_attempt_at = now + timedelta(seconds=wait)
    exporter.save(update_fields=_PROGRESS_FIELDS)
    logger.warning(
        "analytics export failed",
        extra={"exporter": exporter.pk, "error": error, "retry_in_s": round(wait, 1)},
    )
    return BatchOutcome("failed", rejected=rejected, error=error)


def _record_rejections(
    exporter: Exporter, batch: list[Exposure], rejected: dict[int, str], now: datetime
) -> None:
    if not rejected:
        return
    by_id = {e.raw_id: e for e in batch}
    ExportRejection.objects.bulk_create(
        [
            ExportRejection(
                exporter=exporter,
                raw_event_id=raw_id,
                insert_id=by_id[raw_id].insert_id,
                reason=reason[:2000],
                payload=_describe(by_id[raw_id]),
                rejected_at=now,
            )
            for raw_id, reason in rejected.items()
        ],
        ignore_conflicts=True,  # a batch resent after a crash may be refused again
    )


def _describe(exposure: Exposure) -> dict[str, Any]:
    return {
        "flag": exposure.flag_key,
        "variant": exposure.variant,
        "context_key": exposure.context_key,
        "occurred_at": exposure.occurred_at.isoformat(),
    }


def run_exporter(exporter_id: int, max_batches: int = 20) -> int:
    """Exports batches until caught up, failed or ``max_batches``; returns the events sent."""
    sent = 0
    for _ in range(max_batches):
        outcome = export_batch(exporter_id)
        sent += outcome.sent
        if outcome.status != "sent":
            break
    return sent


def due_exporter_ids() -> list[int]:
    return list(Exporter.objects.filter(enabled=True).order_by("pk").values_list("pk", flat=True))
