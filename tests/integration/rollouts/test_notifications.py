"""Rollback alerts: email through a real local SMTP server, signed webhooks to a real local
HTTP receiver, retried with backoff when the receiver fails."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from rollouts import notify, services
from rollouts.models import Notification
from tests.integration.rollouts.conftest import World
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                failing = receiver.fail_next > 0
                receiver.fail_next -= 1
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_rollback_sends_email_and_a_signed_webhook_retried_with_backoff(
    world: World, smtp: tuple[Inbox, int], receiver: Receiver
) -> None:
    inbox, port = smtp
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1", EMAIL_PORT=port, EMAIL_USE_TLS=False,
        EMAIL_HOST_USER="", EMAIL_HOST_PASSWORD="",
    ):  # fmt: skip
        plan = services.create_from_template(
            world.state, template="standard", user=world.manager,
            email_recipients=["ops@example.com"],
            webhooks=[services.WebhookSpec(receiver.url, SECRET),
                      services.WebhookSpec(receiver.url, SECRET, slack_format=True)],
        )  # fmt: skip
        services.start(plan, user=world.manager, reason="go")
        receiver.fail_next = 1  # the first webhook attempt fails
        services.rollback(plan, user=world.manager, reason="errors on large invoices")
        now = timezone.now()
        notify.deliver_due(now)
        rows = Notification.objects.filter(plan=plan)
        assert rows.count() == 3
        assert rows.filter(status="delivered").count() == 2
        failed = rows.get(status="pending")
        assert failed.attempts == 1
        assert "HTTP 503" in failed.log[0]["error"]
        assert failed.next_attempt_at is not None
        assert failed.next_attempt_at >= now + timedelta(seconds=2)
        # Not retried before its backoff; retried after it.
        assert notify.deliver_due(now + timedelta(seconds=1)) == 0
        assert notify.deliver_due(now + timedelta(seconds=3)) == 1
        failed.refresh_from_db()
        assert failed.status == "delivered"
        assert failed.attempts == 2

    assert len(inbox.messages) == 1
    mail = message_from_bytes(inbox.messages[0])
    assert "Rolled back" in mail["Subject"]
    parts = {p.get_content_type(): p.get_payload(decode=True) for p in mail.walk()}
    assert b"errors on large invoices" in parts["text/plain"]
    assert b"<h2>" in parts["text/html"]

    assert len(receiver.requests) == 3
    for headers, body in receiver.requests:
        headers = {k.lower(): v for k, v in headers.items()}
        # The receiver's side of Standard Webhooks: verify raises on a bad signature.
        Webhook(SECRET).verify(body, headers)
    bodies = [json.loads(body) for _, body in receiver.requests]
    assert any(b.get("type") == "rollout.rolled_back" and b["flag"] == "pdf" for b in bodies)
    assert any("text" in b and "blocks" in b for b in bodies)  # the Slack-compatible body


def test_a_tampered_webhook_fails_verification(receiver: Receiver) -> None:
    body = '{"a":1}'
    now = timezone.now()
    signature = Webhook(SECRET).sign("msg_1", now, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": signature}  # fmt: skip
    Webhook(SECRET).verify(body, headers)
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(SECRET).verify('{"a":2}', headers)
