"""What one rollout stage's cohorts did, per randomization unit, over one concurrent window.

A rollout check compares flag-on with control over the same time (the current stage, since it
started), counting units (the plan's ``bucket_by``: accounts for the seed's flags) rather than
requests. ``StageUnits`` is the one shape both producers give: the database read below (raw
events of the window) and the simulator's light path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.db import connections, router
from django.db.models import Count, Q, QuerySet

from analytics.models import EventKind, RawEvent
from analytics.stats.compare import (
    ComparisonConfig,
    SampleRatioCheck,
    VariantSeries,
    sample_ratio_check,
)
from analytics.stats.ratio import RatioSums

# The metric names of a ratio per request, as the decision's evidence keys them.
ERROR_RATE = "error_rate"
CONVERSION_RATE = "conversion_rate"


@dataclass(frozen=True)
class CohortUnits:
    """One variant's units in the window: how many were exposed, and per metric the sums over
    those units of (events, requests). A unit seen under both variants is in neither."""

    units: int = 0
    requests: int = 0
    # "error_rate", "conversion_rate", "custom:<name>" -> sums over units of (events, requests)
    metrics: dict[str, RatioSums] = field(default_factory=dict)


@dataclass(frozen=True)
class StageUnits:
    cohorts: dict[str, CohortUnits] = field(default_factory=dict)  # by variant name
    both_variants: int = 0  # units exposed to both variants in the window (left out)
    events: int = 0  # exposure and metric events of the flag in the window
    missing_unit: int = 0  # of those, events that do not carry the unit attribute
    error_events: int = 0  # error events of the flag in the window, any variant
    last_event_age_seconds: float | None = None  # None: no event of the flag in the window

    def cohort(self, variant: str) -> CohortUnits:
        return self.cohorts.get(variant) or CohortUnits()


def unit_sample_ratio(
    units: StageUnits, weights: dict[str, float], config: ComparisonConfig | None = None
) -> SampleRatioCheck:
    """The sample-ratio check of the units each variant exposed in the window against the split
    served over all of it. ``mismatch`` reads the always-valid (sequential) p-value, as a
    rollout's own SRM check does: the dashboard is read again and again while a stage runs, and
    the fixed-horizon p-value (reported too) would then cry wolf more often than ``srm_alpha``."""
    cfg = config or ComparisonConfig()
    series = [VariantSeries.single_look(v, units.cohort(v).units) for v in weights]
    check = sample_ratio_check(series, weights, cfg)
    mismatch = check.status == "ok" and check.sequential_p_value < cfg.srm_alpha
    return replace(check, mismatch=mismatch)


# --- The read ----------------------------------------------------------------------------------
#
# Which events belong to a flag: its exposures (kind "exposure", name = the flag key) and the
# metric events whose ``assignments`` name it (errors, requests, conversions: name ''; custom
# events: name = the metric's name, read for the names asked for). The variant of a metric event
# is the one its assignment names. The unit is the targeting key (``context_key``) when the
# plan buckets by it, else the event's ``units[attribute]``.

TARGETING_KEY = "targetingKey"
_METRIC_KINDS = (EventKind.ERROR, EventKind.LATENCY, EventKind.CONVERSION)


def read_stage_units(
    environment_id: int,
    flag_key: str,
    unit_attribute: str,
    start: datetime,
    end: datetime,
    variants: Sequence[str],
    custom_names: Sequence[str] = (),
) -> StageUnits:
    """What each variant's units did in [start, end): the flag's events of the window, grouped
    per unit. A unit seen under two variants in the window is in no cohort (``both_variants``);
    an event without the unit is in no cohort either (``missing_unit``).

    On PostgreSQL one query groups the window's events per unit and then per variant in SQL and
    returns a row per variant (and one each for the mixed and unit-less events); elsewhere (the
    embedded SQLite mode) the events are read and grouped in Python. Both give the same answer
    (tests/integration/analytics/test_stage_units.py)."""
    customs = list(dict.fromkeys(custom_names))
    connection = connections[router.db_for_read(RawEvent)]
    if connection.vendor == "postgresql":
        return _read_in_sql(
            connection, environment_id, flag_key, unit_attribute, start, end, variants, customs
        )
    return read_stage_units_row_by_row(
        environment_id, flag_key, unit_attribute, start, end, variants, customs
    )


def unit_coverage(
    environment_id: int,
    flag_key: str,
    unit_attribute: str,
    since: datetime,
    until: datetime,
    custom_names: Sequence[str] = (),
) -> tuple[int, int]:
    """(events of the flag in [since, until), how many of them lack the unit): a plan whose
    events do not carry the attribute it buckets by could never compare its cohorts."""
    events = _flag_events(environment_id, flag_key, since, until, custom_names)
    if unit_attribute == TARGETING_KEY:
        return events.count(), 0  # every event has a context key
    totals = events.aggregate(
        total=Count("id"), missing=Count("id", filter=~Q(units__has_key=unit_attribute))
    )
    return int(totals["total"]), int(totals["missing"])


def metric_names(custom_names: Sequence[str]) -> list[str]:
    """The metrics of a read, as CohortUnits.metrics keys them."""
    return [ERROR_RATE, CONVERSION_RATE, *(f"custom:{name}" for name in custom_names)]


def _flag_events(
    environment_id: int,
    flag_key: str,
    start: datetime,
    end: datetime,
    custom_names: Sequence[str],
) -> QuerySet[RawEvent]:
    # ``name__in`` first: with the environment and the time range it is what the raw_event_flag
    # index (environment, name, occurred_at) can answer; the kind and assignment tests then
    # run on the rows it finds.
    return RawEvent.objects.filter(
        environment_id=environment_id,
        name__in=[flag_key, "", *custom_names],
        occurred_at__gte=start,
        occurred_at__lt=end,
    ).filter(
        Q(kind=EventKind.EXPOSURE, name=flag_key)
        | Q(kind__in=_METRIC_KINDS, name="", assignments__has_key=flag_key)
        | Q(kind=EventKind.CUSTOM, name__in=list(custom_names), assignments__has_key=flag_key)
    )


@dataclass
class _Unit:
    """One unit's events in the window: the variants it was seen under, its requests and its
    events per metric (errors, conversions, then each custom name)."""

    variants: set[str]
    requests: int
    counts: list[int]


def read_stage_units_row_by_row(
    environment_id: int,
    flag_key: str,
    unit_attribute: str,
    start: datetime,
    end: datetime,
    variants: Sequence[str],
    custom_names: Sequence[str] = (),
) -> StageUnits:
    """``read_stage_units`` through the ORM, event by event: any database (the embedded mode
    uses it), and the reference the PostgreSQL query is tested against."""
    customs = list(dict.fromkeys(custom_names))
    column = {name: 2 + i for i, name in enumerate(customs)}
    by_context_key = unit_attribute == TARGETING_KEY
    rows = _flag_events(environment_id, flag_key, start, end, customs).values_list(
        "kind", "name", "variant", "context_key", "units", "assignments", "occurred_at"
    )
    units: dict[str, _Unit] = {}
    events = missing = errors = 0
    newest: datetime | None = None
    for kind, name, variant, context_key, unit_ids, assignments, occurred_at in rows.iterator():
        events += 1
        if newest is None or occurred_at > newest:
            newest = occurred_at
        if kind == EventKind.ERROR:
            errors += 1
        unit = context_key if by_context_key else (unit_ids or {}).get(unit_attribute)
        if unit is None:
            missing += 1
            continue
        seen = units.get(unit)
        if seen is None:
            seen = units[unit] = _Unit(set(), 0, [0] * (2 + len(customs)))
        seen.variants.add(variant if kind == EventKind.EXPOSURE else assignments[flag_key])
        if kind == EventKind.LATENCY:
            seen.requests += 1
        elif kind == EventKind.ERROR:
            seen.counts[0] += 1
        elif kind == EventKind.CONVERSION:
            seen.counts[1] += 1
        elif kind == EventKind.CUSTOM:
            seen.counts[column[name]] += 1
    members: dict[str, list[_Unit]] = {v: [] for v in variants}
    both = 0
    for unit_events in units.values():
        if len(unit_events.variants) > 1:
            both += 1
            continue
        (variant,) = unit_events.variants
        if variant in members:
            members[variant].append(unit_events)
    names = metric_names(customs)
    cohorts = {}
    for variant, cohort in members.items():
        requests = [u.requests for u in cohort]
        cohorts[variant] = CohortUnits(
            units=len(cohort),
            requests=sum(requests),
            metrics={
                metric: RatioSums.of_units([u.counts[i] for u in cohort], requests)
                for i, metric in enumerate(names)
            },
        )
    return StageUnits(
        cohorts=cohorts,
        both_variants=both,
        events=events,
        missing_unit=missing,
        error_events=errors,
        last_event_age_seconds=_age(end, newest),
    )


def _age(end: datetime, newest: datetime | None) -> float | None:
    return None if newest is None else (end - newest).total_seconds()


# Per unit (the inner GROUP BY), then per (kind of row, variant): 0 = events without the unit,
# 1 = units seen under more than one variant, 2 = units of one variant. A unit's requests (r)
# and metric events (x0 errors, x1 conversions, x2... custom) give the RatioSums sums: sum x,
# sum x^2, sum x r, and once for all metrics sum r and sum r^2; numeric, so no square overflows.
_SQL = """
SELECT CASE WHEN u IS NULL THEN 0 WHEN lo <> hi THEN 1 ELSE 2 END AS part,
       CASE WHEN u IS NOT NULL AND lo = hi THEN lo END AS variant,
       count(*), sum(n), sum(x0), max(newest), sum(r), sum(r::numeric * r){sums}
FROM (
    SELECT u, min(v) AS lo, max(v) AS hi, count(*) AS n, max(occurred_at) AS newest,
           count(*) FILTER (WHERE kind = %(latency)s) AS r,
           count(*) FILTER (WHERE kind = %(error)s) AS x0,
           count(*) FILTER (WHERE kind = %(conversion)s) AS x1{counts}
    FROM (
        SELECT kind, name, occurred_at,
               CASE WHEN kind = %(exposure)s THEN variant ELSE assignments ->> %(flag)s END AS v,
               {unit} AS u
        FROM {table}
        WHERE environment_id = %(environment)s AND name = ANY(%(names)s::text[])
          AND occurred_at >= %(start)s AND occurred_at < %(end)s
          AND ((kind = %(exposure)s AND name = %(flag)s)
               OR (kind = ANY(%(metric_kinds)s::text[]) AND name = ''
                   AND assignments ? %(flag)s)
               OR (kind = %(custom)s AND name = ANY(%(customs)s::text[])
                   AND assignments ? %(flag)s))
    ) AS flag_events
    GROUP BY u
) AS per_unit
GROUP BY 1, 2
"""


def _sql(custom_count: int, by_context_key: bool) -> str:
    counts = "".join(
        f",\n           count(*) FILTER (WHERE kind = %(custom)s AND name = %(custom_{i})s)"
        f" AS x{2 + i}"
        for i in range(custom_count)
    )
    sums = "".join(
        f", sum(x{k}), sum(x{k}::numeric * x{k}), sum(x{k}::numeric * r)"
        for k in range(2 + custom_count)
    )
    # The attribute is a parameter, never text in the statement; only its kind picks the column.
    unit = "context_key" if by_context_key else "units ->> %(unit)s"
    return _SQL.format(table=RawEvent._meta.db_table, unit=unit, counts=counts, sums=sums)


def _read_in_sql(
    connection: Any,
    environment_id: int,
    flag_key: str,
    unit_attribute: str,
    start: datetime,
    end: datetime,
    variants: Sequence[str],
    customs: list[str],
) -> StageUnits:
    params: dict[str, Any] = {
        "environment": environment_id,
        "flag": flag_key,
        "unit": unit_attribute,
        "start": start,
        "end": end,
        "names": [flag_key, "", *customs],
        "customs": customs,
        "metric_kinds": [str(k) for k in _METRIC_KINDS],
        "exposure": str(EventKind.EXPOSURE),
        "latency": str(EventKind.LATENCY),
        "error": str(EventKind.ERROR),
        "conversion": str(EventKind.CONVERSION),
        "custom": str(EventKind.CUSTOM),
        **{f"custom_{i}": name for i, name in enumerate(customs)},
    }
    with connection.cursor() as cursor:
        cursor.execute(_sql(len(customs), unit_attribute == TARGETING_KEY), params)
        rows = cursor.fetchall()
    names = metric_names(customs)
    cohorts = {v: CohortUnits(metrics={m: RatioSums() for m in names}) for v in variants}
    events = missing = errors = both = 0
    newest: datetime | None = None
    for part, variant, units, n, error_events, last, r, rr, *sums in rows:
        events += int(n)
        errors += int(error_events)
        newest = last if newest is None or last > newest else newest
        if part == 0:
            missing += int(n)
        elif part == 1:
            both += int(units)
        elif variant in cohorts:
            cohorts[variant] = CohortUnits(
                units=int(units),
                requests=int(r),
                metrics={
                    metric: RatioSums(
                        int(units),
                        float(sums[3 * k]),
                        float(r),
                        float(sums[3 * k + 1]),
                        float(rr),
                        float(sums[3 * k + 2]),
                    )
                    for k, metric in enumerate(names)
                },
            )
    return StageUnits(
        cohorts=cohorts,
        both_variants=both,
        events=events,
        missing_unit=missing,
        error_events=errors,
        last_event_age_seconds=_age(end, newest),
    )
