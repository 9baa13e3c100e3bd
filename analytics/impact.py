"""Impact estimates for previews: how many of the last day's evaluated contexts a change moves.

Exposure events keep the context's targeting key and the variant it was served, never its
other attributes (the SDKs send none, and keeping them would store personal data the product
does not need). So the estimate is only as good as what a targeting key alone decides:

- a flag whose rules, before and after, read nothing but the targeting key (rollouts bucketed
  by it, segments of listed keys, conditions on it) is evaluated exactly, both ways, for every
  distinct key exposed to it in the last day;
- a change whose candidate reads only the key (a kill, "serve X to everyone", a flag that goes
  away) while the current rules read more is compared with the variant each context was last
  served, and says so;
- anything else says the estimate is unavailable and names the attributes it would need.

The cost is bounded: one query per flag and environment, at most ``MAX_ROWS`` exposures read
newest first and at most ``MAX_CONTEXTS`` distinct keys evaluated; beyond that the estimate
says it is a sample. It runs for previews and change requests only, never while evaluating.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from flagsite_sdk.engine import compile_ruleset
from flagsite_sdk.engine.operators import SEGMENT_OPERATORS, TARGETING_KEY

from analytics.models import EventKind, RawEvent
from flags.preview import Impact

WINDOW = timedelta(hours=24)
MAX_CONTEXTS = 10_000
MAX_ROWS = 100_000
# What an exposure tells about a context: its targeting key, nothing else.
KNOWN = frozenset({TARGETING_KEY})
Outcome = tuple[str | None, Any]


def _serve_attributes(serve: Mapping[str, Any]) -> set[str]:
    rollout = serve.get("rollout")
    return {rollout.get("bucketBy", TARGETING_KEY)} if isinstance(rollout, Mapping) else set()


def _segment_attributes(segment: Mapping[str, Any]) -> set[str]:
    used = {segment.get("keyAttribute", TARGETING_KEY)}
    for rule in segment.get("rules") or []:
        used |= {c.get("attribute", "?") for c in rule.get("conditions") or []}
    return used


def attributes_read(
    doc: Mapping[str, Any], key: str, seen: frozenset[str] = frozenset()
) -> set[str]:
    """The context attributes that can decide what ``key`` serves in ``doc`` (prerequisites
    and segments included); empty for a flag that is off, absent or serves one fixed variant."""
    entry = (doc.get("flags") or {}).get(key)
    if entry is None or not entry.get("enabled") or key in seen:
        return set()
    used = _serve_attributes(entry.get("defaultServe") or {})
    for pre in entry.get("prerequisites") or []:
        used |= attributes_read(doc, str(pre.get("flag")), seen | {key})
    segments = doc.get("segments") or {}
    for rule in entry.get("rules") or []:
        used |= _serve_attributes(rule.get("serve") or {})
        for cond in rule.get("conditions") or []:
            if cond.get("operator") in SEGMENT_OPERATORS:
                for name in cond.get("values") or []:
                    used |= _segment_attributes(segments.get(name) or {})
            else:
                used.add(cond.get("attribute", "?"))
    return used


def _closure(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``key`` and the flags it needs, so compiling stays cheap in a large ruleset."""
    flags = doc.get("flags") or {}
    wanted, todo = {}, [key]
    while todo:
        name = todo.pop()
        if name in wanted or name not in flags:
            continue
        wanted[name] = flags[name]
        todo.extend(str(p.get("flag")) for p in flags[name].get("prerequisites") or [])
    return {**doc, "flags": wanted}


class _Evaluator:
    def __init__(self, doc: Mapping[str, Any], key: str) -> None:
        self.key = key
        self.present = key in (doc.get("flags") or {})
        self.ruleset = compile_ruleset(_closure(doc, key), validate=False)

    def outcome(self, context_key: str) -> Outcome:
        if not self.present:
            return (None, None)  # not served: the application's own default
        details = self.ruleset.evaluate(self.key, {TARGETING_KEY: context_key})
        return (details.variant, details.value)


def _recent_contexts(environment_id: int, key: str) -> tuple[dict[str, str], bool]:
    """The most recent distinct targeting keys exposed to ``key`` in the window, each with the
    variant it was last served; True when capped. One query, newest first, read lazily."""
    since = timezone.now() - WINDOW
    rows = (
        RawEvent.objects.filter(
            environment_id=environment_id, kind=EventKind.EXPOSURE, name=key, occurred_at__gte=since
        )
        .order_by("-occurred_at")
        .values_list("context_key", "variant")[:MAX_ROWS]
    )
    latest: dict[str, str] = {}
    read = 0
    for context_key, variant in rows.iterator(chunk_size=5_000):
        read += 1
        if context_key not in latest:
            if len(latest) == MAX_CONTEXTS:
                return latest, True
            latest[context_key] = variant
    return latest, read == MAX_ROWS


def _last_served(doc: Mapping[str, Any], key: str, variant: str) -> Outcome:
    variants = ((doc.get("flags") or {}).get(key) or {}).get("variants") or {}
    return (variant, variants.get(variant))


def estimate(
    environment_id: int, key: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> Impact | None:
    """The registered estimator (``flags.preview.register_impact_estimator``)."""
    needs_before = attributes_read(before, key) - KNOWN
    needs_after = attributes_read(after, key) - KNOWN
    if needs_after:
        return Impact(
            None, 0, note=f"the rules use {', '.join(sorted(needs_after))}, "
            "attributes that exposures do not keep"
        )  # fmt: skip
    with transaction.atomic():  # a failed query must not spoil the caller's transaction
        contexts, sampled = _recent_contexts(environment_id, key)
    if not contexts:
        return Impact(0, 0, note="no contexts were evaluated in the last day")
    new = _Evaluator(after, key)
    old = None if needs_before else _Evaluator(before, key)
    changed = 0
    for context_key, served in contexts.items():
        was = old.outcome(context_key) if old else _last_served(before, key, served)
        if new.outcome(context_key) != was:
            changed += 1
    note = "" if old else "compared with the variant each was last served"
    return Impact(changed, len(contexts), sampled, note)
