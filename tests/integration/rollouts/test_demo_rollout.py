"""The README's demo rollout: seeded by ``./bin/run``, fed by its synthetic healthy traffic, it
advances on accelerated time (a 24 h bake takes two minutes at the demo's scale of 720)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from rollouts import demo, services
from rollouts.models import RolloutPlan

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@override_settings(FLAGSITE_ROLLOUT_TIME_SCALE=720.0)
def test_the_demo_rollout_advances_on_accelerated_time() -> None:
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo_rollout", stdout=io.StringIO())
    call_command("seed_demo_rollout", stdout=io.StringIO())  # idempotent: still one plan
    assert RolloutPlan.objects.filter(name=demo.DEMO_NAME).count() == 1
    plan = RolloutPlan.objects.get(name=demo.DEMO_NAME)
    assert plan.status == RolloutPlan.Status.RUNNING
    first_stage = plan.current_stage

    moment = timezone.now()
    for _ in range(12):  # each round: a burst of traffic, then a beat pass 30 s later
        demo.send_demo_traffic(seed=len(plan.checks.all()))
        moment += timedelta(seconds=30)
        services.check_due(moment)
        plan.refresh_from_db()
        if plan.current_stage != first_stage:
            break
    assert plan.current_stage > first_stage, list(plan.checks.values("verdict", "reasons"))
    assert plan.checks.filter(verdict="progress").exists()
