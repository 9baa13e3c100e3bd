"""Celery tasks for analytics (thin wrappers around services)."""

from __future__ import annotations

from celery import shared_task

from analytics import services


@shared_task(name="analytics.tasks.purge_expired_events", ignore_result=True)
def purge_expired_events() -> int:
    return services.purge_expired_events()
