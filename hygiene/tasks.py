"""Celery tasks for hygiene (thin wrappers around services)."""

from __future__ import annotations

from celery import shared_task

from hygiene import services


@shared_task(name="hygiene.tasks.send_weekly_stale_report", ignore_result=False)
def send_weekly_stale_report() -> dict[str, object]:
    result = services.send_weekly_report()
    return {"week_start": result.week_start, "sent": result.sent, "recipients": result.recipients}


@shared_task(name="hygiene.tasks.drop_expired_archived_flags", ignore_result=True)
def drop_expired_archived_flags() -> list[int]:
    return services.rebuild_after_archive_grace()
