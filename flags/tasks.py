"""Celery tasks of flags: thin wrappers over flags.services for changes made by a worker."""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task

from flags import services
from flags.models import FlagState


@shared_task(name="flags.tasks.kill_flag")
def kill_flag(state_id: int, reason: str, automation: str = "worker") -> dict[str, Any]:
    """Turns a flag off in one environment from a worker (an automated rollback).

    The result says when the change was committed, so a caller can tell how long the news
    took to reach the servers.
    """
    state = services.kill_flag(
        FlagState.objects.get(pk=state_id),
        actor=services.Actor.automation(automation),
        source=services.Source.AUTOMATION,
        reason=reason,
    )
    return {"state": state.pk, "enabled": state.enabled, "committed_at": time.time()}
