"""Where a rollout stands, its timeline rows and its verdict, from plain (unsaved) records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboards.rollout import check_entry, guardrail_verdict
from rollouts.models import RolloutCheck, RolloutPlan, RolloutStage
from rollouts.status import metric_statuses, plan_status

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STAGES = [RolloutStage(position=i, name=f"{w // 1000}%", weight=w, bake_seconds=86_400)
          for i, w in enumerate((5_000, 25_000, 50_000, 100_000))]  # fmt: skip
GUARDRAILS = [
    {"guardrail": "error_rate (relative)", "status": "red", "value": 4.0, "yellow": 1.5,
     "red": 2.0, "sequential_evidence": True, "message": "4 (red > 2), sequential test rejects"},
    {"guardrail": "latency_p95 (absolute)", "status": "green", "value": 210.0, "yellow": 300.0,
     "red": 500.0, "sequential_evidence": False, "message": "210 (red > 500)"},
]  # fmt: skip
SAMPLES: dict[str, Any] = {
    "treatment_users": 300, "control_users": 5700,
    "tests": {"error_rate": {"control": 0.01, "treatment": 0.04},
              "latency_p95": {"control": 200.0, "treatment": 210.0}},
}  # fmt: skip


def plan(status: str = "running", stage: int = 1, **kw: Any) -> RolloutPlan:
    return RolloutPlan(
        pk=7, name="pdf", status=status, current_stage=stage,
        stage_started_at=NOW - timedelta(hours=6), next_check_at=NOW + timedelta(minutes=5),
        **kw,
    )  # fmt: skip


def check(verdict: str = "hold", **kw: Any) -> RolloutCheck:
    fields: dict[str, Any] = {
        "plan_id": 7, "sequence": 12, "checked_at": NOW, "stage": 1, "verdict": verdict,
        "reasons": [{"code": "red", "message": "error rate too high"}],
        "guardrails": GUARDRAILS, "samples": SAMPLES, "actor": "automation:rollout:7",
    }  # fmt: skip
    return RolloutCheck(**{**fields, **kw})


def test_a_running_stage_says_where_it_is_and_when_it_may_progress() -> None:
    s = plan_status(plan(), STAGES, None, NOW)
    assert (s.stage_number, s.stage_count, s.percent, s.stage_name) == (2, 4, 25.0, "25%")
    assert s.bake_ends_at == NOW + timedelta(hours=18)
    assert s.bake_left_seconds == 18 * 3600
    assert s.label == "stage 2 of 4 · 25%"
    assert s.next_decision == (
        "next check 2026-03-01 12:05:00 UTC; it may progress from 2026-03-02 06:00:00 UTC "
        "(end of the bake time)"
    )
    assert s.overall == "insufficient_data"  # no check yet


def test_the_demo_time_scale_shortens_the_bake_and_a_baked_stage_has_none_left() -> None:
    scaled = plan_status(plan(), STAGES, None, NOW, time_scale=720)  # 24 h take 2 min
    assert scaled.bake_ends_at == NOW - timedelta(hours=6) + timedelta(minutes=2)
    assert scaled.bake_left_seconds == 0
    assert scaled.next_decision == "next check 2026-03-01 12:05:00 UTC"


@pytest.mark.parametrize(
    ("status", "label", "decision"),
    [
        ("paused", "stage 2 of 4 · 25% · paused", "none while paused: resume the rollout to go on"),
        ("rolled_back", "rolled back at stage 2 (25%)", "none: the rollout is rolled back"),
        ("aborted", "aborted at stage 2 (25%)", "none: the rollout is aborted"),
        ("completed", "completed · 25%", "none: the rollout is completed"),
    ],
)  # fmt: skip
def test_stopped_rollouts_say_so(status: str, label: str, decision: str) -> None:
    s = plan_status(plan(status), STAGES, None, NOW)
    assert s.label == label
    assert s.next_decision == decision
    assert s.next_check_at is None


def test_a_stage_needing_approval_says_so() -> None:
    stages = [*STAGES[:1], RolloutStage(position=1, weight=25_000, bake_seconds=0,
                                        requires_approval=True)]  # fmt: skip
    s = plan_status(plan(), stages, None, NOW)
    assert s.next_decision.endswith("leaving this stage needs a person's approval")


def test_each_guardrail_has_its_metric_values_and_the_worst_colour_wins() -> None:
    s = plan_status(plan(), STAGES, check(), NOW)
    assert [m.as_dict() for m in s.metrics] == [
        {"guardrail": "error_rate (relative)", "metric": "error_rate", "status": "red",
         "value": 4.0, "yellow": 1.5, "red": 2.0, "treatment": 0.04, "control": 0.01,
         "message": "4 (red > 2), sequential test rejects"},
        {"guardrail": "latency_p95 (absolute)", "metric": "latency_p95", "status": "green",
         "value": 210.0, "yellow": 300.0, "red": 500.0, "treatment": 210.0, "control": 200.0,
         "message": "210 (red > 500)"},
    ]  # fmt: skip
    assert s.overall == "red"
    yellow = check(guardrails=[{**GUARDRAILS[0], "status": "yellow"}, GUARDRAILS[1]])
    assert plan_status(plan(), STAGES, yellow, NOW).overall == "yellow"
    assert metric_statuses(None) == ()


def test_the_verdict_is_the_latest_checks_and_a_rollback_is_red() -> None:
    several_yellows = check("rollback", guardrails=[{**g, "status": "yellow"} for g in GUARDRAILS])
    verdict = guardrail_verdict(plan_status(plan(), STAGES, several_yellows, NOW), None)
    assert verdict.verdict == "red"
    assert verdict.source == "rollout check #12 of plan #7 (Roll back)"
    assert verdict.reasons == ["error rate too high"]
    assert verdict.checked_at == NOW
    assert [m["status"] for m in verdict.metrics] == ["yellow", "yellow"]
    green = check(guardrails=[{**g, "status": "green"} for g in GUARDRAILS])
    assert guardrail_verdict(plan_status(plan(), STAGES, green, NOW), None).verdict == "green"
    unchecked = guardrail_verdict(plan_status(plan(), STAGES, None, NOW), None)
    assert (unchecked.verdict, unchecked.source) == ("insufficient_data", "rollout plan #7")


@pytest.mark.parametrize(
    ("verdict", "applied", "kind", "title"),
    [
        ("start", "stage 1 (5%)", "stage", "rollout started: stage 1 (5%)"),
        ("progress", "stage 3 (50%)", "stage", "progressed to stage 3 (50%)"),
        ("complete", "completed", "stage", "rollout completed after stage 2"),
        ("rollback", "zero", "rollback", "rolled back at stage 2 (rollout set to 0%)"),
        ("rollback", "kill", "rollback", "rolled back at stage 2 (kill switch)"),
        ("hold", "", "decision", "hold at stage 2"),
        ("pause", "", "decision", "pause at stage 2"),
        ("approve", "", "decision", "plan approved at stage 2"),
    ],
)
def test_timeline_rows_name_what_happened(
    verdict: str, applied: str, kind: str, title: str
) -> None:
    entry = check_entry(check(verdict, applied=applied), "pdf")
    assert (entry.kind, entry.title) == (kind, title)
    assert entry.detail == "error rate too high"
    assert entry.actor == "automation:rollout:7"
    assert entry.evidence["guardrails"] == GUARDRAILS
    assert entry.evidence["samples"] == {"treatment_users": 300, "control_users": 5700}
    assert entry.evidence["tests"] == SAMPLES["tests"]


def test_a_persons_action_has_no_evidence_but_says_who() -> None:
    entry = check_entry(check("pause", guardrails=[], samples={}, actor="rm1", manual=True), "p")
    assert entry.actor == "rm1 (by hand)"
    assert entry.evidence == {"plan": 7, "plan_name": "p", "check": 12}
