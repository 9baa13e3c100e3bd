"""What the dashboards show of staged rollouts and of flag hygiene.

The one place that reads the ``rollouts`` and ``hygiene`` apps, so the pages keep working
(with what the flag state and the comparison say) where those have nothing for a flag. Every
read here is a fixed number of queries: the timeline is capped (the plan's admin page keeps
every check), whatever the number of checks a long rollout records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analytics.stats import ComparisonReport
from flags.models import Flag, FlagState
from hygiene import report as hygiene_report
from rollouts import status as rollout_status
from rollouts.models import RolloutCheck
from rollouts.services import time_scale

# A check every few minutes for days makes thousands of records: the page shows every stage
# change, rollback and person's action up to this many, and only the latest holds.
TIMELINE_DECISIONS = 60
TIMELINE_HOLDS = 10

Verdict = RolloutCheck.Verdict
PlanStatus = rollout_status.PlanStatus


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "manual", "stage", "decision", "rollback"
    title: str
    detail: str = ""
    actor: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutTimeline:
    entries: list[TimelineEntry]
    total_checks: int  # all the flag state's rollout records; len(entries) may be fewer


@dataclass(frozen=True)
class GuardrailVerdict:
    verdict: str  # "green", "yellow", "red", "insufficient_data"
    source: str
    reasons: list[str]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    checked_at: datetime | None = None


@dataclass(frozen=True)
class StaleBadge:
    text: str
    why: str


def current_rollout(state: FlagState, now: datetime) -> PlanStatus | None:
    """The flag state's newest started rollout, where it stands (three queries)."""
    found = rollout_status.load(rollout_status.latest_plans([state.pk]), now, time_scale())
    return found[0] if found else None


def _title(check: RolloutCheck) -> tuple[str, str]:
    stage = f"stage {check.stage + 1}"
    if check.verdict == Verdict.START:
        return "stage", f"rollout started: {check.applied or stage}"
    if check.verdict == Verdict.PROGRESS:
        return "stage", f"progressed to {check.applied}" if check.applied else f"{stage}: progress"
    if check.verdict == Verdict.COMPLETE:
        return "stage", f"rollout completed after {stage}"
    if check.verdict == Verdict.ROLLBACK:
        how = "kill switch" if check.applied == "kill" else "rollout set to 0%"
        return "rollback", f"rolled back at {stage} ({how})"
    if check.verdict == Verdict.HOLD:
        return "decision", f"hold at {stage}"
    return "decision", f"{check.get_verdict_display().lower()} at {stage}"


def check_entry(check: RolloutCheck, plan_name: str) -> TimelineEntry:
    """One timeline row from a rollout record, with the evidence the decision was made on."""
    kind, title = _title(check)
    evidence: dict[str, Any] = {"plan": check.plan_id, "plan_name": plan_name,
                                "check": check.sequence}  # fmt: skip
    if check.guardrails:
        evidence["guardrails"] = check.guardrails
    if check.samples:
        evidence["samples"] = {k: v for k, v in check.samples.items() if k != "tests"}
        evidence["tests"] = check.samples.get("tests", {})
    if check.sample_ratio:
        evidence["sample_ratio"] = check.sample_ratio
    return TimelineEntry(
        at=check.checked_at,
        kind=kind,
        title=title,
        detail="; ".join(str(r.get("message", "")) for r in check.reasons or []),
        actor=check.actor + (" (by hand)" if check.manual else ""),
        evidence=evidence,
    )


def rollout_timeline(state: FlagState) -> RolloutTimeline:
    """Stages, decisions and rollbacks (with their evidence) of the flag state's rollouts,
    newest first: three queries, at most TIMELINE_DECISIONS + TIMELINE_HOLDS rows."""
    records = RolloutCheck.objects.filter(plan__flag_state=state).select_related("plan")
    newest = ("-checked_at", "-sequence")
    decisions = list(records.exclude(verdict=Verdict.HOLD).order_by(*newest)[:TIMELINE_DECISIONS])
    holds = list(records.filter(verdict=Verdict.HOLD).order_by(*newest)[:TIMELINE_HOLDS])
    total = records.count()
    entries = [check_entry(c, c.plan.name) for c in [*decisions, *holds]]
    return RolloutTimeline(sorted(entries, key=lambda e: e.at, reverse=True), total)


def rollout_stages(states: Iterable[FlagState], now: datetime) -> dict[int, PlanStatus]:
    """Flag state id -> its newest started rollout, for those with one (three queries)."""
    plans = rollout_status.latest_plans([s.pk for s in states])
    return {p.plan.flag_state_id: p for p in rollout_status.load(plans, now, time_scale())}


def stale_badges(flags: Iterable[Flag], now: datetime) -> dict[int, StaleBadge]:
    """Flag id -> stale badge, for the flags the hygiene checks call stale: hygiene's fixed
    number of queries per project, whatever the number of flags or events."""
    by_project: dict[int, list[Flag]] = defaultdict(list)
    for flag in flags:
        by_project[flag.project_id].append(flag)
    badges: dict[int, StaleBadge] = {}
    for members in by_project.values():
        for flag, _, assessment in hygiene_report.assess_project(members[0].project, now, members):
            if assessment.stale:
                why = "; ".join(r.message for r in assessment.reasons)
                badges[flag.pk] = StaleBadge(f"stale · {assessment.stage}", why)
    return badges


def guardrail_verdict(
    rollout: PlanStatus | None, report: ComparisonReport | None
) -> GuardrailVerdict:
    """The latest rollout check's verdict where the flag state has a rollout; without one,
    what the comparison shows: red when a variant is significantly worse on errors or latency
    than the control."""
    if rollout is not None:
        return _rollout_verdict(rollout)
    if report is None or not report.comparisons:
        return GuardrailVerdict("insufficient_data", "comparison", ["no variant to compare"])
    reasons: list[str] = []
    sufficient = False
    for comparison in report.comparisons:
        for metric in comparison.metrics:
            if metric.metric not in ("error_rate", "latency") or metric.status != "ok":
                continue
            sufficient = True
            if metric.significant and (metric.difference or 0) > 0:
                reasons.append(f"{comparison.variant}: {metric.metric} significantly higher")
    if reasons:
        return GuardrailVerdict("red", "comparison", reasons)
    if not sufficient:
        return GuardrailVerdict("insufficient_data", "comparison", ["not enough data yet"])
    return GuardrailVerdict("green", "comparison", ["no significant regression"])


def _rollout_verdict(rollout: PlanStatus) -> GuardrailVerdict:
    plan, check = rollout.plan, rollout.last_check
    if check is None:
        return GuardrailVerdict(
            "insufficient_data", f"rollout plan #{plan.pk}", ["no check has judged it yet"]
        )
    # Several yellows roll back too: a rollback is red whatever the colours were.
    verdict = "red" if check.verdict == Verdict.ROLLBACK else rollout.overall
    return GuardrailVerdict(
        verdict,
        f"rollout check #{check.sequence} of plan #{plan.pk} ({check.get_verdict_display()})",
        [str(r.get("message", "")) for r in check.reasons or []],
        [m.as_dict() for m in rollout.metrics],
        check.checked_at,
    )
