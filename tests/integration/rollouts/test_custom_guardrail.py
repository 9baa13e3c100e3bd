"""A guardrail on a custom count metric (events a product sends under its own name, stored by
the analytics core as ``custom:<name>``): a much worse flag-on cohort is rolled back, an equal
one is not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from rollouts import services
from rollouts.models import RolloutPlan
from tests.integration.rollouts.scenario import make_rollout, send_traffic

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
METRIC = "pdf_render_failed"


def plan_with_custom_guardrail(project: str) -> RolloutPlan:
    rollout = make_rollout(project)
    plan = RolloutPlan.objects.get(pk=rollout.plan_id)
    services.add_guardrail(
        plan, user=User.objects.get(username="rollout-owner"), metric="custom",
        mode="relative", yellow=1.5, red=2.0, custom_name=METRIC,
    )  # fmt: skip
    return plan


def custom_traffic(plan: RolloutPlan, on_rate: float, off_rate: float) -> None:
    # Stage 1 is 5 %: a 5 % split, equal error rates, so only the custom metric differs.
    send_traffic(
        plan.flag_state.environment_id, timezone.now() - timedelta(minutes=30),
        on_users=20, off_users=380, custom=METRIC, on_custom_rate=on_rate,
        off_custom_rate=off_rate,
    )  # fmt: skip


def custom_result(record_guardrails: list[dict[str, object]]) -> dict[str, object]:
    return next(g for g in record_guardrails if g["guardrail"] == f"custom:{METRIC} (relative)")


def test_a_much_worse_custom_metric_rolls_back() -> None:
    plan = plan_with_custom_guardrail("custom-worse")
    custom_traffic(plan, on_rate=0.3, off_rate=0.02)

    record = services.check(plan.pk)

    assert record is not None
    assert record.verdict == "rollback", record.reasons
    assert [r["code"] for r in record.reasons] == ["red"]
    assert f"custom:{METRIC}" in record.reasons[0]["message"]
    result = custom_result(record.guardrails)
    assert result["status"] == "red"
    assert result["value"] == pytest.approx(15.0)
    plan.refresh_from_db()
    assert plan.status == "rolled_back"
    assert plan.flag_state.default_serve["rollout"]["variants"][0]["weight"] == 0


def test_an_equal_custom_metric_does_not_roll_back() -> None:
    plan = plan_with_custom_guardrail("custom-equal")
    custom_traffic(plan, on_rate=0.05, off_rate=0.05)

    record = services.check(plan.pk)

    assert record is not None
    assert record.verdict == "hold"  # still baking: stage 1 lasts 24 h
    # Not harm (an equal metric); green once the interval is short of the red line.
    assert custom_result(record.guardrails)["status"] in ("green", "inconclusive")
    assert record.samples["tests"][f"custom:{METRIC}"]["sequential_reject"] is False
    plan.refresh_from_db()
    assert plan.status == "running"
    assert plan.flag_state.default_serve["rollout"]["variants"][0]["weight"] == 5000


def test_a_custom_guardrail_needs_its_metric_name() -> None:
    rollout = make_rollout("custom-unnamed")
    plan = RolloutPlan.objects.get(pk=rollout.plan_id)
    with pytest.raises(services.RolloutError, match="custom_name"):
        services.add_guardrail(
            plan, user=User.objects.get(username="rollout-owner"), metric="custom",
            mode="relative", yellow=1.5, red=2.0,
        )  # fmt: skip
