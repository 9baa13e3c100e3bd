"""Celery tasks for analytics (thin wrappers around services)."""

from __future__ import annotations

from celery import shared_task

from analytics import services
from analytics.exports import services as exports


@shared_task(name="analytics.tasks.purge_expired_events", ignore_result=True)
def purge_expired_events() -> int:
    return services.purge_expired_events()


@shared_task(name="analytics.tasks.export_exposures", ignore_result=True)
def export_exposures() -> None:
    """Beat entry: one task per enabled exporter, so a slow vendor does not hold up another."""
    for exporter_id in exports.due_exporter_ids():
        export_exposures_to.delay(exporter_id)


@shared_task(name="analytics.tasks.export_exposures_to", ignore_result=True)
def export_exposures_to(exporter_id: int) -> int:
    return exports.run_exporter(exporter_id)
