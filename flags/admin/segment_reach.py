"""A segment's reach: which flags and environments use it, whether a context is in it, and
how many contexts it holds, estimated from exposure events where there are some.

Exposures are the analytics app's rows; flags may not import analytics, so they are read
through the app registry, and the estimate is simply absent when analytics is not there.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db.models import Count
from django.utils import timezone
from flagsite_sdk.engine.explain import segment_membership

from flags import describe
from flags.models import FlagState, Segment
from flags.rulesets import segment_document

WINDOW_DAYS = 30


@dataclass(frozen=True)
class Use:
    flag_key: str
    flag_id: int
    environment: str
    enabled: bool
    rule: str  # the rule in words


@dataclass(frozen=True)
class SizeEstimate:
    contexts: int
    flag_key: str
    environment: str
    variant: str


def uses(segment: Segment) -> list[Use]:
    """Every flag state (of unarchived flags) whose rules name the segment."""
    found = []
    attributes = {segment.key: {"key_attribute": segment.key_attribute}}
    states = FlagState.objects.filter(flag__project_id=segment.project_id, flag__archived=False)
    for state in states.select_related("flag", "environment").order_by(
        "flag__key", "environment__sort_order"
    ):
        for rule in state.rules or []:
            if any(_names(c, segment.key) for c in rule.get("conditions", [])):
                found.append(
                    Use(
                        state.flag.key,
                        state.flag_id,
                        state.environment.key,
                        state.enabled,
                        describe.describe_rule(rule, attributes),
                    )
                )
    return found


def _names(condition: dict[str, Any], key: str) -> bool:
    return condition.get("operator") in ("in_segment", "not_in_segment") and key in (
        condition.get("values") or []
    )


def is_member(segment: Segment, context: dict[str, Any]) -> bool | None:
    return segment_membership(segment_document(segment), context)


def estimated_size(segment: Segment) -> SizeEstimate | None:
    """Distinct contexts exposed, in the last WINDOW_DAYS, to the variant a rule serves only
    to members (a rule with the one condition ``in_segment`` and a fixed variant that the
    flag's default serve does not give). The largest such count is a lower bound of the
    members who use the product; None without exposures or such a rule."""
    try:
        raw_event = apps.get_model("analytics", "RawEvent")
    except LookupError:
        return None
    since = timezone.now() - datetime.timedelta(days=WINDOW_DAYS)
    best: SizeEstimate | None = None
    states = FlagState.objects.filter(flag__project_id=segment.project_id, enabled=True)
    for state in states.select_related("flag", "environment"):
        default = (state.default_serve or {}).get("variant")
        for rule in state.rules or []:
            conditions = rule.get("conditions") or []
            variant = (rule.get("serve") or {}).get("variant")
            only_segment = len(conditions) == 1 and conditions[0].get("operator") == "in_segment"
            if not (only_segment and _names(conditions[0], segment.key)) or variant in (
                None,
                default,
            ):
                continue
            count = raw_event.objects.filter(
                environment_id=state.environment_id,
                kind="exposure",
                name=state.flag.key,
                variant=variant,
                occurred_at__gte=since,
            ).aggregate(n=Count("context_key", distinct=True))["n"]  # fmt: skip
            if count and (best is None or count > best.contexts):
                best = SizeEstimate(count, state.flag.key, state.environment.key, str(variant))
    return best
