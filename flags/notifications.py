"""Telling the approvers that an emergency action bypassed their review (seed 002: a kill
switch is immediate, and auditable afterwards). Sent after commit; a mail failure is logged,
never raised into the emergency path."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from guardian.shortcuts import get_users_with_perms

from flags.models import FlagState

log = logging.getLogger(__name__)


def approvers(state: FlagState) -> list[str]:
    """E-mail addresses of everyone who may approve changes in the state's environment."""
    users = set(
        get_users_with_perms(
            state.environment, only_with_perms_in=["release_env"], with_superusers=True
        )
    )
    users |= set(User.objects.filter(is_superuser=True, is_active=True))
    return sorted({u.email for u in users if u.email and u.is_active})


def notify_emergency(state: FlagState, variant: str, who: Any, reason: str) -> None:
    recipients = approvers(state)
    if not recipients:
        return
    env = state.environment
    subject = f"[Flagsite] {state.flag.key} now serves {variant} to everyone in {env.key}"
    body = (
        f"{who} used an emergency action: {state.flag.key} serves {variant!r} to everyone in "
        f"{env.project.key}/{env.key}, without approval.\n\nReason: {reason}\n\n"
        "Please review it; the flag's history holds the previous targeting for a revert."
    )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:
        log.exception("emergency notification failed", extra={"flag": state.flag.key})
