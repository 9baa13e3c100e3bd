"""Hygiene writes: the weekly stale-flag email (claimed once per week), code reference
uploads, and the rebuild of rulesets whose archived flags' grace period has ended."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from flags.models import Environment, Flag, Project, Ruleset
from flags.rulesets import in_archive_grace, rebuild_ruleset
from hygiene.models import CodeReference, ReferenceUpload, WeeklyReport
from hygiene.report import Report, StaleEntry, build_report, week_start

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeeklyResult:
    week_start: str
    sent: bool
    recipients: list[str]


def _message(
    report: Report, entries: list[StaleEntry], to: list[str], audience: str
) -> EmailMultiAlternatives:
    context = {"report": report, "entries": entries, "trend": report.trend, "audience": audience}
    subject = f"Flagsite: {len(entries)} stale flag(s), week of {report.trend.week_start}"
    text = render_to_string("hygiene/email/weekly.txt", context)
    html = render_to_string("hygiene/email/weekly.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, to)
    message.attach_alternative(html, "text/html")
    return message


def weekly_messages(report: Report) -> list[EmailMultiAlternatives]:
    """One message to the ops recipients with every stale flag, and one to each owner with
    their own (owners without stale flags get nothing)."""
    messages = []
    ops = list(settings.OPS_EMAILS)
    if ops:
        messages.append(_message(report, report.entries, ops, "ops"))
    owners = sorted({e.owner_email for e in report.entries if e.owner_email})
    for email in owners:
        messages.append(_message(report, report.for_owner(email), [email], "owner"))
    return messages


def send_weekly_report(now: datetime | None = None) -> WeeklyResult:
    """Sends the week's report once. The week's row is inserted and locked first: a retried
    or duplicated task waits for the lock, then finds the week sent and sends nothing. If
    sending fails, the transaction (and so the claim) rolls back and a retry sends."""
    now = now or timezone.now()
    start = week_start(now)
    with transaction.atomic():
        WeeklyReport.objects.get_or_create(week_start=start)
        claim = WeeklyReport.objects.select_for_update().get(week_start=start)
        if claim.sent_at is not None:
            return WeeklyResult(start.isoformat(), False, [])
        report = build_report(now)
        messages = weekly_messages(report)
        with get_connection() as connection:
            connection.send_messages(messages)
        recipients = sorted({r for m in messages for r in m.to})
        claim.sent_at = timezone.now()
        claim.recipients = recipients
        claim.summary = {
            "stale": len(report.entries),
            "added": len(report.trend.added),
            "removed": len(report.trend.removed),
            "newly_stale": len(report.trend.newly_stale),
            "at_full_over_30_days": report.trend.at_full_over_30_days,
        }
        claim.save(update_fields=["sent_at", "recipients", "summary"])
    log.info("weekly stale-flag report sent", extra={"recipients": len(recipients)})
    return WeeklyResult(start.isoformat(), True, recipients)


@dataclass(frozen=True)
class Found:
    flag_key: str
    path: str
    line: int
    context: str
    via: str


@dataclass(frozen=True)
class UploadResult:
    upload: ReferenceUpload
    unknown: list[str]
    archived: list[str]
    removed: list[CodeReference]


def upload_references(
    project: Project, *, repository: str, commit: str, found: Iterable[Found], user: User | None
) -> UploadResult:
    """Stores one scan; says which keys are unknown or archived and which references the
    previous scan of the repository had that this one lacks."""
    from hygiene.selectors import removed_references

    rows = list(found)
    with transaction.atomic():
        upload = ReferenceUpload.objects.create(
            project=project, repository=repository, commit=commit, uploaded_by=user
        )
        CodeReference.objects.bulk_create(
            CodeReference(
                upload=upload,
                flag_key=f.flag_key,
                path=f.path,
                line=f.line,
                context=f.context[:500],
                via=f.via,
            )
            for f in rows
        )
        removed = removed_references(upload)
    keys = {f.flag_key for f in rows}
    existing = dict(
        Flag.objects.filter(project=project, key__in=keys).values_list("key", "archived")
    )
    return UploadResult(
        upload,
        unknown=sorted(keys - set(existing)),
        archived=sorted(k for k, archived in existing.items() if archived),
        removed=removed,
    )


def rebuild_after_archive_grace(now: datetime | None = None) -> list[int]:
    """Rebuilds every ruleset that still serves an archived flag whose grace has ended (the
    normal rebuild drops it and publishes). Returns the rebuilt environment ids."""
    now = now or timezone.now()
    rebuilt = []
    expired = [
        f
        for f in Flag.objects.filter(archived=True, archived_at__isnull=False)
        if not in_archive_grace(f, now)
    ]
    projects = {f.project_id for f in expired}
    for ruleset in Ruleset.objects.filter(environment__project_id__in=projects):
        served = set((ruleset.document or {}).get("flags", {}))
        if not any(
            f.key in served and f.project_id == ruleset.environment.project_id for f in expired
        ):
            continue
        env = Environment.objects.select_related("project").get(pk=ruleset.environment_id)
        with transaction.atomic():
            result = rebuild_ruleset(env)
            if result.errors:
                log.error("ruleset rebuild refused", extra={"environment": env.pk})
                transaction.set_rollback(True)
                continue
        if result.changed:
            rebuilt.append(env.pk)
    return rebuilt
