"""The beat schedule has the weekly task, and a real Celery worker runs it: the email reaches
a real SMTP server once, however often the task runs that week."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.db import connection

from flagsite.celery import app
from hygiene.models import WeeklyReport
from tests.integration.hygiene.conftest import SmtpServer
from tests.integration.hygiene.world import build_world
from tests.support.processes import ROOT, child_env, wait_until

pytestmark = pytest.mark.integration
TASK = "hygiene.tasks.send_weekly_stale_report"


def test_the_beat_schedule_sends_the_report_weekly() -> None:
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == TASK]
    assert len(entries) == 1
    schedule = entries[0]["schedule"]
    assert isinstance(schedule, crontab)
    assert schedule.day_of_week == {1}  # type: ignore[attr-defined]  # Mondays
    assert TASK in app.tasks or _registered()


def _registered() -> bool:
    app.loader.import_default_modules()
    return TASK in app.tasks


@pytest.fixture
def worker(smtp_server: SmtpServer) -> Iterator[str]:
    """A real worker on a queue of this test's own, mailing to the recording SMTP server."""
    queue = f"hygiene-{uuid.uuid4().hex[:8]}"
    env = child_env(
        connection.settings_dict["NAME"],
        {
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp_server.port}",
            "OPS_EMAILS": "ops@example.test",
            "FLAGSITE_BASE_URL": "https://flags.example.test",
        },
    )
    cmd = [
        sys.executable, "-m", "celery", "-A", "flagsite", "worker", "--pool", "solo",
        "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "-Q", queue,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    yield queue
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_weekly_task_once_per_week(
    worker: str, smtp_server: SmtpServer
) -> None:
    build_world()
    first = app.send_task(TASK, queue=worker).get(timeout=90)
    assert first["sent"] is True
    assert "ops@example.test" in first["recipients"]
    wait_until(lambda: len(smtp_server.to("ops@example.test")) == 1, 30, "the ops email")
    message = smtp_server.to("ops@example.test")[0]
    assert "shop/ghost-flag" in message.part("text/plain")
    assert "https://flags.example.test/admin/flags/flag/" in message.part("text/html")

    # A duplicated delivery of the same week's task sends nothing more.
    again = app.send_task(TASK, queue=worker).get(timeout=90)
    assert again["sent"] is False
    assert len(smtp_server.to("ops@example.test")) == 1
    assert WeeklyReport.objects.count() == 1
