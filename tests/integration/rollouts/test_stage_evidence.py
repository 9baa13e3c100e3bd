"""The check compares the cohorts of the current stage only: traffic before the plan (a dark
launch) or of an earlier attempt neither blocks nor helps it (issue 23, "gates that count the
right people"), and the verdict of a stage does not change with what happened before it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from analytics import services as analytics
from analytics.serializers import MAX_BATCH_EVENTS
from rollouts import services
from rollouts.models import RolloutPlan
from tests.integration.rollouts.conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

FLAG = "pdf"


def send(
    world: World, at: datetime, keys: list[str], variant: str, *, requests: int = 20,
    error_every: int = 100, exposures_only: bool = False,
) -> None:  # fmt: skip
    """Exposures of ``keys`` to ``variant`` at ``at`` and, per key, ``requests`` requests with
    one error every ``error_every`` requests (spread evenly: the rate is exact)."""
    stamp = at.isoformat()
    events: list[dict[str, Any]] = []
    index = 0
    for key in keys:
        common = {"context_key": key, "timestamp": stamp, "assignments": {FLAG: variant}}
        events.append({"type": "exposure", "flag": FLAG, "variant": variant, **common})
        if exposures_only:
            continue
        for _ in range(requests):
            events.append({"type": "latency", "value": 80.0 + index % 40, **common})
            if index % error_every == 0:
                events.append({"type": "error", **common})
            index += 1
    for offset in range(0, len(events), MAX_BATCH_EVENTS):
        batch = {
            "batch_id": f"t-{uuid.uuid4().hex}",
            "events": events[offset : offset + MAX_BATCH_EVENTS],
        }
        analytics.ingest(world.env.pk, batch)


def healthy_stage(world: World, at: datetime, keys_on: list[str], keys_off: list[str]) -> None:
    send(world, at, keys_on, "on")
    send(world, at, keys_off, "off")


def keys(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def new_plan(world: World) -> RolloutPlan:
    return services.create_from_template(
        world.state, template="standard", user=world.manager,
        email_recipients=["ops@example.com"],
    )  # fmt: skip


def test_a_dark_launched_flags_plan_progresses(world: World) -> None:
    now = timezone.now().replace(microsecond=0)
    # Ten hours of "off" for everyone before the plan: 5,000 control exposures that would
    # break the first stage's 5/95 split if they were counted.
    send(world, now - timedelta(hours=40), keys("dark", 5000), "off", exposures_only=True)
    plan = services.start(new_plan(world), user=world.manager, reason="go",
                          now=now - timedelta(hours=30))  # fmt: skip
    healthy_stage(world, now - timedelta(hours=2), keys("u-on", 250), keys("u-off", 4750))
    record = services.check(plan.pk, now)
    assert record is not None
    assert record.verdict == "progress", record.reasons
    assert record.samples["stage_control_users"] == 4750
    assert record.sample_ratio is not None
    assert record.sample_ratio["mismatch"] is False


def test_a_retried_plan_progresses(world: World) -> None:
    now = timezone.now().replace(microsecond=0)
    on_keys, off_keys = keys("u-on", 250), keys("u-off", 4750)
    first = services.start(new_plan(world), user=world.manager, reason="first try",
                           now=now - timedelta(hours=60))  # fmt: skip
    healthy_stage(world, now - timedelta(hours=59), on_keys, off_keys)
    services.abort(first, user=world.manager, reason="paused for a fix")
    # The same accounts come back in the second attempt: they count again, in its stage.
    second = services.start(new_plan(world), user=world.manager, reason="second try",
                            now=now - timedelta(hours=30))  # fmt: skip
    healthy_stage(world, now - timedelta(hours=2), on_keys, off_keys)
    record = services.check(second.pk, now)
    assert record is not None
    assert record.verdict == "progress", record.reasons
    assert record.samples["stage_treatment_users"] == 250


@pytest.mark.parametrize("before", ["none", "shared_incident", "flag_on_errors"])
def test_what_happened_before_the_stage_never_changes_its_verdict(
    world: World, before: str
) -> None:
    now = timezone.now().replace(microsecond=0)
    plan = services.start(new_plan(world), user=world.manager, reason="go",
                          now=now - timedelta(hours=30))  # fmt: skip
    # Before the plan started: nothing, an incident for everyone, or flag-on failing badly
    # (an earlier build): none of it is in the stage's window.
    early = now - timedelta(hours=31)
    if before == "shared_incident":
        send(world, early, keys("e-on", 250), "on", error_every=3)
        send(world, early, keys("e-off", 4750), "off", error_every=3)
    elif before == "flag_on_errors":
        send(world, early, keys("e-on", 250), "on", error_every=2)
    healthy_stage(world, now - timedelta(hours=2), keys("u-on", 250), keys("u-off", 4750))
    record = services.check(plan.pk, now)
    assert record is not None
    assert record.verdict == "progress", record.reasons
    assert record.samples["tests"]["error_rate"]["treatment"] == pytest.approx(0.01)


def test_an_incident_for_everyone_during_the_stage_does_not_roll_back(world: World) -> None:
    now = timezone.now().replace(microsecond=0)
    plan = services.start(new_plan(world), user=world.manager, reason="go",
                          now=now - timedelta(hours=5))  # fmt: skip
    # Both cohorts fail one request in five for the same hours: the flag is innocent.
    at = now - timedelta(hours=4)
    send(world, at, keys("u-on", 250), "on", error_every=5)
    send(world, at, keys("u-off", 4750), "off", error_every=5)
    record = services.check(plan.pk, now)
    assert record is not None
    assert record.verdict == "hold", record.reasons
    statuses = {g["guardrail"]: g["status"] for g in record.guardrails}
    assert "red" not in statuses.values(), statuses
    assert "yellow" not in statuses.values(), statuses
