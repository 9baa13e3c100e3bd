"""Telling people: email (text and HTML) and signed webhooks on rollback, hold-with-alert,
pause, completion and health warnings.

Email goes to the plan's own addresses or, when it has none, to ``settings.OPS_EMAILS``: read
when a message is made, so a plan follows the installation's current ops list. A plan that
would reach nobody at all (no address, no webhook, no OPS_EMAILS) may not start.

Messages are rows written in the same transaction as the decision, so none is lost with a
crash; delivery happens after commit (a Celery task), and the beat pass retries what is still
pending, with exponential backoff, until MAX_ATTEMPTS. Each attempt is logged on the row (the
delivery log in the admin). Webhooks follow Standard Webhooks: ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` (HMAC-SHA256 over id.timestamp.body).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from standardwebhooks.webhooks import Webhook

from rollouts.decision import Code, Reason
from rollouts.models import Notification, RolloutCheck, RolloutPlan

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 600.0
TITLES = {
    "rolled_back": "Rolled back",
    "held": "Held, needs attention",
    "paused": "Paused",
    "completed": "Completed",
    "warning": "Warning, still running",
}
NOBODY_TOLD = "nobody would be told of a rollback: add a recipient or a webhook"


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1)))


def recipients(plan: RolloutPlan) -> list[str]:
    """Who is emailed about the plan: its own addresses, else the installation's ops list."""
    own = list(plan.email_recipients or [])
    return own or [str(address) for address in getattr(settings, "OPS_EMAILS", [])]


def nobody_to_tell(plan: RolloutPlan) -> bool:
    """Whether a rollback of the plan would reach no one: no address (its own or OPS_EMAILS)
    and no webhook."""
    return not recipients(plan) and not plan.webhooks.exists()


def payload_for(
    plan: RolloutPlan,
    record: RolloutCheck | None,
    event: str,
    summary: str,
    reasons: Sequence[dict[str, str]] | None = None,
) -> dict[str, Any]:
    state = plan.flag_state
    return {
        "type": f"rollout.{event}",
        "rollout": {"id": plan.pk, "name": plan.name, "status": plan.status},
        "flag": state.flag.key,
        "environment": state.environment.key,
        "stage": plan.current_stage + 1,
        "summary": summary,
        "reasons": list(reasons) if reasons is not None else (record.reasons if record else []),
        "guardrails": record.guardrails if record else [],
        "samples": {k: v for k, v in (record.samples if record else {}).items() if k != "tests"},
        "check": record.sequence if record else None,
    }


def queue(
    plan: RolloutPlan,
    record: RolloutCheck | None,
    event: str,
    summary: str,
    *,
    reasons: Sequence[dict[str, str]] | None = None,
) -> list[Notification]:
    """Creates the messages of an event for every target; delivery starts after commit.
    ``reasons``: what the message is about, when not the record's own reasons."""
    payload = payload_for(plan, record, event, summary, reasons)
    now = timezone.now()
    rows = [
        Notification(
            plan=plan,
            check_record=record,
            event=event,
            channel=Notification.Channel.EMAIL,
            target=address,
            message_id=f"msg_{uuid.uuid4().hex}",
            payload=payload,
            next_attempt_at=now,
        )
        for address in recipients(plan)
    ]
    rows += [
        Notification(
            plan=plan,
            check_record=record,
            event=event,
            channel=Notification.Channel.WEBHOOK,
            target=hook.url,
            webhook=hook,
            message_id=f"msg_{uuid.uuid4().hex}",
            payload=payload,
            next_attempt_at=now,
        )
        for hook in plan.webhooks.all()
    ]
    created = Notification.objects.bulk_create(rows)
    ids = [n.pk for n in created]
    if ids:
        transaction.on_commit(lambda: _dispatch(ids))
    return created


def _warning_key(warning: Reason) -> str:
    """What a warning is about, so that it is told once a stage. A health finding's reason
    reads "health check <check>: ..." (rollouts.decision): its check; any other, its code."""
    if warning.code == Code.HEALTH:
        head, sep, _ = warning.message.partition(":")
        if sep and head.startswith("health check "):
            return head.removeprefix("health check ").strip()
    return str(warning.code)


def queue_warnings(
    plan: RolloutPlan, record: RolloutCheck | None, warnings: Sequence[Reason]
) -> list[Notification]:
    """Tells people of a check's warn-action findings (``Verdict.warnings``), each once per
    stage: a finding that stays true is not told again at every check (every few minutes),
    as ``alerted_stage`` does for a hold. The caller holds the plan's lock, inside the check's
    transaction, so what was told is written with the messages or not at all."""
    stage = plan.current_stage
    warned = plan.health_warned if isinstance(plan.health_warned, dict) else {}
    told = set(warned.get("codes", [])) if warned.get("stage") == stage else set()
    new = [w for w in warnings if _warning_key(w) not in told]
    fresh = list(dict.fromkeys(_warning_key(w) for w in new))
    if not fresh:
        return []
    plan.health_warned = {"stage": stage, "codes": sorted(told | set(fresh))}
    RolloutPlan.objects.filter(pk=plan.pk).update(health_warned=plan.health_warned)
    summary = "; ".join(w.message for w in new)
    return queue(plan, record, "warning", summary, reasons=[w.as_dict() for w in new])


def _dispatch(ids: list[int]) -> None:
    from rollouts import tasks

    try:
        tasks.deliver_notifications.delay(ids)
    except Exception:
        logger.warning("could not queue notification delivery; the next beat pass will")


def _email(notification: Notification) -> None:
    p = notification.payload
    event = TITLES.get(notification.event, notification.event)
    title = f"[Flagsite] {event}: {p['flag']} in {p['environment']}"
    rollout = p["rollout"]
    lines = [
        f"Rollout {rollout['name']} (#{rollout['id']}), stage {p['stage']}: {rollout['status']}.",
        "",
        p["summary"],
        "",
    ]
    lines += [f"- {g['guardrail']}: {g['status']} ({g['message']})" for g in p["guardrails"]]
    lines += ["", f"Samples: {json.dumps(p['samples'])}"]
    html = format_html(
        "<h2>{}</h2><p>Rollout <b>{}</b> (#{}), stage {}: {}.</p><p>{}</p><ul>{}</ul>",
        title, p["rollout"]["name"], p["rollout"]["id"], p["stage"], p["rollout"]["status"],
        p["summary"],
        format_html_join("", "<li>{}: <b>{}</b> ({})</li>",
                         ((g["guardrail"], g["status"], g["message"]) for g in p["guardrails"])),
    )  # fmt: skip
    message = EmailMultiAlternatives(
        title, "\n".join(lines), settings.DEFAULT_FROM_EMAIL, [notification.target],
        headers={"Message-ID": f"<{notification.message_id}@flagsite>"},
    )  # fmt: skip
    message.attach_alternative(str(html), "text/html")
    message.send(fail_silently=False)


def slack_body(payload: dict[str, Any]) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body (text plus one section block)."""
    text = (
        f"*{TITLES.get(payload['type'].removeprefix('rollout.'), payload['type'])}*: "
        f"`{payload['flag']}` in {payload['environment']} (rollout #{payload['rollout']['id']}, "
        f"stage {payload['stage']}): {payload['summary']}"
    )
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def _webhook(notification: Notification, now: datetime) -> None:
    hook = notification.webhook
    if hook is None:
        raise RuntimeError("the webhook target was deleted")
    body = json.dumps(
        slack_body(notification.payload) if hook.slack_format else notification.payload,
        separators=(",", ":"),
    )
    signature = Webhook(hook.secret).sign(notification.message_id, now, body)
    headers = {
        "content-type": "application/json",
        "webhook-id": notification.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    response = httpx.post(hook.url, content=body, headers=headers, timeout=5.0)
    if response.status_code >= 300:
        raise RuntimeError(f"HTTP {response.status_code}")


def deliver(notification_id: int, now: datetime | None = None) -> str | None:
    """One delivery attempt if the message is due; returns its status (None: not due, or
    another worker has it)."""
    now = now or timezone.now()
    with transaction.atomic():
        row = (
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("webhook")
            .filter(pk=notification_id, status=Notification.Status.PENDING)
            .first()
        )
        if row is None or (row.next_attempt_at is not None and row.next_attempt_at > now):
            return None
        row.attempts += 1
        try:
            if row.channel == Notification.Channel.EMAIL:
                _email(row)
            else:
                _webhook(row, now)
        except Exception as exc:
            entry = {
                "at": now.isoformat(),
                "attempt": row.attempts,
                "error": f"{type(exc).__name__}: {exc}",
            }
            if row.attempts >= MAX_ATTEMPTS:
                row.status = Notification.Status.FAILED
                row.next_attempt_at = None
            else:
                row.next_attempt_at = now + backoff(row.attempts)
        else:
            entry = {"at": now.isoformat(), "attempt": row.attempts, "ok": True}
            row.status = Notification.Status.DELIVERED
            row.delivered_at = now
            row.next_attempt_at = None
        row.log = [*row.log, entry]
        row.save()
        return row.status


def deliver_due(now: datetime | None = None) -> int:
    now = now or timezone.now()
    ids = list(
        Notification.objects.filter(status=Notification.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:500]
    )
    return sum(1 for pk in ids if deliver(pk, now) == Notification.Status.DELIVERED)
