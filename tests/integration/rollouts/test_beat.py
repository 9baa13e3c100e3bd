"""The rollout check runs on the real beat schedule: a real ``celery beat`` process sends it and
a real worker applies its verdict, with nothing called by hand."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from rollouts import services
from rollouts.models import RolloutCheck
from tests.integration.rollouts.conftest import World
from tests.support.processes import ROOT, child_env, stop_all, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "flagsite", *args],
                            cwd=ROOT, env=env)  # fmt: skip


@pytest.fixture
def beat_and_worker(tmp_path: Path) -> Iterator[None]:
    env = child_env(connection.settings_dict["NAME"], {"FLAGSITE_ROLLOUT_BEAT_SECONDS": "0.5"})
    procs = [
        _start(["beat", "--loglevel", "WARNING", "--schedule", str(tmp_path / "beat-schedule"),
                "--pidfile", str(tmp_path / "beat.pid")], env),
        _start(["worker", "--pool", "solo", "--loglevel", "WARNING", "--without-gossip",
                "--without-mingle"], env),
    ]  # fmt: skip
    yield
    stop_all(procs)


def test_the_beat_schedule_checks_a_due_rollout(world: World, beat_and_worker: None) -> None:
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    services.start(plan, user=world.manager, reason="ship it")
    # Due now, as if its check interval had passed (the schedule decides when it runs).
    type(plan).objects.filter(pk=plan.pk).update(next_check_at=timezone.now())

    def checked() -> bool:
        return RolloutCheck.objects.filter(plan=plan, manual=False).exists()

    wait_until(checked, 60, "the scheduled rollout check")
    record = RolloutCheck.objects.get(plan=plan, manual=False)
    assert record.verdict == "hold"  # nobody evaluated the flag yet: no traffic
    assert record.reasons[0]["code"] == "no_traffic"
    plan.refresh_from_db()
    assert plan.next_check_at is not None
    assert plan.next_check_at > record.checked_at
