"""The per-stage, per-unit read of raw events (analytics.stage_units.read_stage_units).

``read_stage_units_row_by_row`` is the portable path (the embedded SQLite mode uses it) and the
reference: generated events (of the flag and of others, inside and around the window, with and
without the unit, a unit under one variant or two) must give exactly the same StageUnits through
the one PostgreSQL query. Then the behaviour, on events small enough to count by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import services
from analytics.models import EventBatch, RawEvent
from analytics.stage_units import (
    CONVERSION_RATE,
    ERROR_RATE,
    read_stage_units,
    read_stage_units_row_by_row,
    unit_coverage,
)
from analytics.stats.ratio import RatioSums
from flags.models import Environment
from tests.integration.analytics.conftest import exposure, metric

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

FLAG = "pdf"
START = datetime(2026, 12, 6, 14, 0, 0, 250_000, tzinfo=UTC)
END = START + timedelta(hours=2)
VARIANTS = ("off", "on")


def raw(
    environment: Environment,
    batch: EventBatch,
    kind: str,
    at: datetime,
    *,
    key: str = "u1",
    name: str = "",
    variant: str = "",
    assignments: dict[str, str] | None = None,
    units: dict[str, str] | None = None,
) -> RawEvent:
    return RawEvent(
        environment=environment, batch=batch, kind=kind, name=name, variant=variant,
        context_key=key, occurred_at=at, received_at=at, assignments=assignments or {},
        units=units or {}, value=1.0 if kind in ("latency", "custom") else None,
    )  # fmt: skip


@pytest.fixture
def batch(environment: Environment) -> EventBatch:
    return EventBatch.objects.create(
        environment=environment, batch_id="stage", event_count=0, received_at=START
    )


@st.composite
def stage_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events of a few users and accounts around [START, END): every kind, other flags and
    names, the window's edges to the microsecond, units present, absent or of another name."""
    window_us = (END - START) // timedelta(microseconds=1)
    moments = st.one_of(
        st.integers(-window_us // 4, window_us + window_us // 4),
        st.sampled_from([-1, 0, 1, window_us - 1, window_us, window_us + 1]),
    )
    events = []
    for _ in range(draw(st.integers(0, 60))):
        kind = draw(st.sampled_from(["exposure", "exposure", "error", "latency", "latency",
                                     "latency", "conversion", "custom"]))  # fmt: skip
        flag = draw(st.sampled_from([FLAG, FLAG, FLAG, "other"]))
        variant = draw(st.sampled_from(["on", "off", "off", "v3"]))
        assignments = {flag: variant}
        if draw(st.booleans()):
            assignments[draw(st.sampled_from([FLAG, "other", "third"]))] = draw(
                st.sampled_from(["on", "off"])
            )
        units = draw(
            st.sampled_from(
                [{}, {"accountId": "a1"}, {"accountId": "a2"}, {"accountId": "a3"},
                 {"accountId": "a4", "orgId": "o1"}, {"orgId": "o1"}]
            )
        )  # fmt: skip
        events.append(
            {
                "kind": kind,
                "at": START + timedelta(microseconds=draw(moments)),
                "key": draw(st.sampled_from(["u1", "u2", "u3", "u4", "u5"])),
                "name": (
                    flag
                    if kind == "exposure"
                    else draw(st.sampled_from(["signup", "invoice", FLAG]))
                    if kind == "custom"
                    else ""
                ),
                "variant": variant if kind == "exposure" else "",
                "assignments": assignments,
                "units": units,
            }
        )
    return events


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    events=stage_events(),
    unit=st.sampled_from(["targetingKey", "accountId", "orgId"]),
    custom=st.sampled_from([(), ("signup",), ("signup", "invoice", "signup"), ("nothing",)]),
)
def test_the_sql_read_equals_the_row_by_row_read(
    environment: Environment,
    batch: EventBatch,
    events: list[dict[str, Any]],
    unit: str,
    custom: tuple[str, ...],
) -> None:
    # The environment is shared by the examples: each one replaces every raw event first.
    RawEvent.objects.all().delete()
    other = Environment.objects.get_or_create(
        project=environment.project, key="elsewhere", defaults={"name": "Elsewhere"}
    )[0]
    rows = [
        raw(environment, batch, e["kind"], e["at"],
            **{k: v for k, v in e.items() if k not in ("kind", "at")})
        for e in events
    ]  # fmt: skip
    # The same events in another environment: never read.
    twins = [
        raw(other, batch, r.kind, r.occurred_at, key=r.context_key, name=r.name,
            variant=r.variant, assignments=r.assignments, units=r.units)
        for r in rows
    ]  # fmt: skip
    RawEvent.objects.bulk_create(rows + twins)
    assert connection.vendor == "postgresql"
    got = read_stage_units(environment.pk, FLAG, unit, START, END, VARIANTS, custom)
    reference = read_stage_units_row_by_row(
        environment.pk, FLAG, unit, START, END, VARIANTS, custom
    )
    assert got == reference
    names = {ERROR_RATE, CONVERSION_RATE, *(f"custom:{n}" for n in custom)}
    for variant in VARIANTS:
        assert set(got.cohort(variant).metrics) == names


def test_the_read_is_one_query(environment: Environment, batch: EventBatch) -> None:
    RawEvent.objects.bulk_create(
        raw(environment, batch, "exposure", START + timedelta(minutes=i), key=f"u{i}",
            name=FLAG, variant="on", assignments={FLAG: "on"}, units={"accountId": f"a{i % 3}"})
        for i in range(30)
    )  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        units = read_stage_units(environment.pk, FLAG, "accountId", START, END, VARIANTS, ["x"])
    assert len(queries) == 1
    assert units.cohort("on").units == 3


def ingest(environment: Environment, events: list[dict[str, Any]]) -> None:
    services.ingest(environment.pk, {"batch_id": f"b{RawEvent.objects.count()}", "events": events})


def in_account(event: dict[str, Any], account: str) -> dict[str, Any]:
    return event | {"units": {"accountId": account}}


def now_window() -> tuple[datetime, datetime]:
    # Ingestion refuses events from the future and past the retention: a window ending now.
    from django.utils import timezone

    end = timezone.now()
    return end - timedelta(hours=2), end


def test_units_exposed_before_the_window_do_not_count(environment: Environment) -> None:
    start, end = now_window()
    before = start - timedelta(minutes=5)
    ingest(environment, [
        in_account(exposure(FLAG, "on", "u1", before), "early"),  # only before: not in the stage
        in_account(exposure(FLAG, "on", "u2", before), "back"),  # before, and again inside
        in_account(exposure(FLAG, "on", "u2", start + timedelta(minutes=1)), "back"),
        in_account(exposure(FLAG, "off", "u3", start), "edge"),  # at the start: inside
        in_account(exposure(FLAG, "off", "u4", end), "late"),  # at the end: outside
    ])  # fmt: skip
    units = read_stage_units(environment.pk, FLAG, "accountId", start, end, VARIANTS)
    assert (units.cohort("on").units, units.cohort("off").units) == (1, 1)
    assert units.events == 2
    assert units.last_event_age_seconds == pytest.approx((end - start).total_seconds() - 60)


def test_a_unit_seen_under_both_variants_is_left_out_and_counted(environment: Environment) -> None:
    start, end = now_window()
    at = start + timedelta(minutes=10)
    ingest(environment, [
        # Two users of one account were served different variants: the account is in neither.
        in_account(exposure(FLAG, "on", "u1", at), "shared"),
        in_account(exposure(FLAG, "off", "u2", at), "shared"),
        in_account(metric("error", "u2", at, {FLAG: "off"}), "shared"),
        # A metric event assigned to the other variant counts as being seen under it too.
        in_account(exposure(FLAG, "on", "u3", at), "switched"),
        in_account(metric("latency", "u3", at, {FLAG: "off"}, value=5), "switched"),
        in_account(exposure(FLAG, "on", "u4", at), "clean"),
    ])  # fmt: skip
    units = read_stage_units(environment.pk, FLAG, "accountId", start, end, VARIANTS)
    assert units.both_variants == 2
    assert (units.cohort("on").units, units.cohort("off").units) == (1, 0)
    assert units.events == 6
    assert units.error_events == 1  # every error of the flag, in a cohort or not


def test_events_without_the_unit_are_counted_and_left_out(environment: Environment) -> None:
    start, end = now_window()
    at = start + timedelta(minutes=10)
    ingest(environment, [
        in_account(exposure(FLAG, "on", "u1", at), "a1"),
        exposure(FLAG, "on", "u2", at),  # keyed by user only
        metric("error", "u2", at, {FLAG: "on"}),
        metric("latency", "u3", at, {FLAG: "on"}, units={"userId": "u3"}, value=3),
        metric("latency", "u4", at, {"other": "on"}, value=3),  # another flag's: not counted
    ])  # fmt: skip
    units = read_stage_units(environment.pk, FLAG, "accountId", start, end, VARIANTS)
    assert (units.events, units.missing_unit) == (4, 3)
    assert units.cohort("on").units == 1
    assert unit_coverage(environment.pk, FLAG, "accountId", start, end) == (4, 3)
    by_key = read_stage_units(environment.pk, FLAG, "targetingKey", start, end, VARIANTS)
    assert (by_key.missing_unit, by_key.cohort("on").units) == (0, 3)
    assert unit_coverage(environment.pk, FLAG, "targetingKey", start, end) == (4, 0)


def test_each_metric_is_summed_per_unit(environment: Environment) -> None:
    start, end = now_window()
    at = start + timedelta(minutes=30)
    on = {FLAG: "on", "other": "x"}
    events = [in_account(exposure(FLAG, "on", "u1", at), "a1")]
    # a1: 4 requests, 2 errors, 1 conversion, 3 signups; a2 (no exposure event: its metric
    # events say it was served "on"): 1 request, 1 signup; a3: exposed, no requests at all.
    for account, requests, errors, conversions, signups in (("a1", 4, 2, 1, 3), ("a2", 1, 0, 0, 1)):
        user = f"user-of-{account}"
        events += [in_account(metric("latency", user, at, on, value=10), account)] * requests
        events += [in_account(metric("error", user, at, on), account)] * errors
        events += [in_account(metric("conversion", user, at, on), account)] * conversions
        events += [
            in_account(metric("custom", user, at, on, name="signup", value=1), account)
        ] * signups
    events.append(in_account(exposure(FLAG, "on", "u9", at), "a3"))
    events.append(in_account(metric("custom", "u1", at, on, name="unasked", value=1), "a1"))
    ingest(environment, events)
    units = read_stage_units(environment.pk, FLAG, "accountId", start, end, VARIANTS, ["signup"])
    cohort = units.cohort("on")
    assert (cohort.units, cohort.requests) == (3, 5)
    per_unit = [4, 1, 0]  # requests of a1, a2, a3
    assert cohort.metrics[ERROR_RATE] == RatioSums.of_units([2, 0, 0], per_unit)
    assert cohort.metrics[CONVERSION_RATE] == RatioSums.of_units([1, 0, 0], per_unit)
    assert cohort.metrics["custom:signup"] == RatioSums.of_units([3, 1, 0], per_unit)
    assert units.cohort("off").units == 0
    assert units.cohort("off").metrics[ERROR_RATE] == RatioSums()
    assert units.events == 2 + 5 + 2 + 1 + 4  # exposures, requests, errors, conversions, signups
    assert units.error_events == 2


def test_nothing_in_the_window(environment: Environment) -> None:
    start, end = now_window()
    units = read_stage_units(environment.pk, FLAG, "accountId", start, end, VARIANTS)
    assert units.events == 0
    assert units.last_event_age_seconds is None
    assert units.cohort("on").units == 0
    assert unit_coverage(environment.pk, FLAG, "accountId", start, end) == (0, 0)
