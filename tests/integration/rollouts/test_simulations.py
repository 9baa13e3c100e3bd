"""simulate_rollout scenarios end to end: plan, SDK, events endpoint, the real check task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from flags.models import FlagState
from rollouts.models import RolloutPlan
from rollouts.simulation import false_rollback_figure, scenario

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def simulate(tmp_path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    out = tmp_path / "result.json"
    call_command("simulate_rollout", *args, "--json", str(out))
    result: dict = json.loads(out.read_text())  # type: ignore[type-arg]
    return result


def test_pdf_engine_rolls_back_during_the_5_percent_stage(tmp_path: Path) -> None:
    result = simulate(tmp_path, "--scenario", "pdf-engine")
    assert result["outcome"] == "rolled_back"
    assert len(result["stages"]) == 1
    assert result["stages"][0]["percent"] == 5
    assert 0 < result["accounts_exposed"] <= 600
    assert 0 < result["regression_to_rollback_seconds"] < 6 * 3600
    plan = RolloutPlan.objects.get(pk=result["plan_id"])
    last = plan.checks.order_by("-sequence").first()
    assert last is not None
    assert last.verdict == "rollback"
    assert any(g["guardrail"].startswith("error_rate") and g["status"] == "red"
               for g in last.guardrails)  # fmt: skip
    # The flag serves nobody the new engine any more, and its history says who and why.
    state = FlagState.objects.get(pk=plan.flag_state_id)
    assert state.default_serve["rollout"]["variants"][0] == {"variant": "on", "weight": 0}
    record = state.history.order_by("-history_id").first()
    assert record is not None
    assert record.history_source == "automation"
    assert f"rollout #{plan.pk} rollback" in record.history_change_reason


def test_healthy_progresses_to_100_percent_and_exposure_only_grows(tmp_path: Path) -> None:
    # Fewer accounts and shorter bakes than the command's default keep the suite quick.
    result = simulate(
        tmp_path, "--scenario", "healthy", "--accounts", "4000", "--traffic-per-hour", "2000",
        "--bake-hours", "6", "--min-sample", "100",
    )  # fmt: skip
    assert result["outcome"] == "completed", result["stages"]
    assert [s["percent"] for s in result["stages"]] == [5, 25, 50, 100]
    assert result["regression_to_rollback_seconds"] is None
    assert result["exposure_only_grew"] is True
    assert result["accounts_exposed"] > 0.9 * 4000


def test_latency_only_regression_is_caught_by_the_latency_guardrail(tmp_path: Path) -> None:
    result = simulate(tmp_path, "--scenario", "latency")
    assert result["outcome"] == "rolled_back"
    reasons = " ".join(result["stages"][-1]["reasons"])
    assert "latency_p95" in reasons
    assert "error_rate" not in reasons


def test_conversion_only_regression_is_caught_by_the_conversion_guardrail(tmp_path: Path) -> None:
    result = simulate(tmp_path, "--scenario", "conversion")
    assert result["outcome"] == "rolled_back"
    reasons = " ".join(result["stages"][-1]["reasons"])
    assert "conversion_rate" in reasons
    assert "latency" not in reasons


def test_false_rollbacks_of_200_healthy_rollouts_stay_within_the_configured_rate() -> None:
    # Looks are rebuilt from the data at each check, so checking every 8 h tests the same
    # sequential statistics as checking hourly, on fewer, coarser looks.
    base = scenario("healthy", check_minutes=480)
    figure = false_rollback_figure(200, base)
    assert figure["runs"] == 200
    assert figure["false_rollback_rate"] <= base.false_positive_rate
    assert figure["completed"] >= 180  # healthy rollouts do finish


def test_a_bad_scenario_option_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"acounts": 5}))
    with pytest.raises(Exception, match="acounts"):
        call_command("simulate_rollout", "--file", str(bad))
