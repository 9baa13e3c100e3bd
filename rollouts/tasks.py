"""Celery tasks for rollouts (thin wrappers around services)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from rollouts import notify, services


@shared_task(name="rollouts.tasks.check_rollouts", ignore_result=True)
def check_rollouts(now: str | None = None) -> int:
    """The beat pass: checks every due running rollout, then sends what is still pending.
    ``now`` (ISO 8601) is for simulated time; the schedule passes nothing."""
    moment = datetime.fromisoformat(now) if now else None
    done = len(services.check_due(moment))
    notify.deliver_due(moment)
    return done


@shared_task(name="rollouts.tasks.deliver_notifications", ignore_result=True)
def deliver_notifications(ids: list[int]) -> None:
    for pk in ids:
        notify.deliver(pk)


@shared_task(name="rollouts.tasks.demo_traffic", ignore_result=True)
def demo_traffic() -> int:
    """Synthetic traffic for the demo rollout (scheduled in the embedded demo only)."""
    from rollouts.demo import send_demo_traffic

    return send_demo_traffic()
