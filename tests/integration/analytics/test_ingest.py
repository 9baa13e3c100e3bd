"""POST /api/v1/events: validation, atomicity, idempotency, authentication, bulk size."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import EventBatch, FirstSeen, RawEvent, Rollup
from flags.models import Environment
from tests.integration.analytics.conftest import exposure, metric

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

URL = "/api/v1/events"


def good_events(n: int = 4) -> list[dict[str, Any]]:
    now = timezone.now()
    on = {"checkout": "on"}
    events = [exposure("checkout", "on", f"u{i}", now) for i in range(n)]
    events.append(metric("error", "u1", now, on))
    events.append(metric("latency", "u2", now, on, value=123.5))
    events.append(metric("conversion", "u3", now, on, value=20))
    events.append(metric("custom", "u3", now, on, name="basket_size", value=3))
    return events


def stored() -> tuple[int, int, int, int]:
    return (
        EventBatch.objects.count(),
        RawEvent.objects.count(),
        Rollup.objects.count(),
        FirstSeen.objects.count(),
    )


def test_a_valid_batch_is_stored_with_its_rollups(events_client: APIClient) -> None:
    response = events_client.post(URL, {"batch_id": "b-1", "events": good_events()}, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 8, "duplicate": False}
    assert RawEvent.objects.count() == 8
    metrics = dict(Rollup.objects.filter(flag_key="checkout").values_list("metric", "events"))
    assert metrics == {
        "exposure": 4,
        "error": 1,
        "latency": 1,
        "conversion": 1,
        "custom:basket_size": 1,
    }
    latency = Rollup.objects.get(metric="latency")
    assert latency.histogram is not None
    assert sum(latency.histogram) == 1


def test_a_bad_event_rejects_the_whole_batch_with_its_index_and_reason(
    events_client: APIClient,
) -> None:
    events = good_events()
    events[2]["timestamp"] = "yesterday"
    events[5]["value"] = -4
    del events[6]["assignments"]
    response = events_client.post(URL, {"batch_id": "b-bad", "events": events}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [
        (2, "timestamp"),
        (5, "value"),
        (6, "assignments"),
    ]
    assert all(e["message"] for e in errors)
    assert stored() == (0, 0, 0, 0)


def test_events_carry_their_units_into_the_raw_events(events_client: APIClient) -> None:
    events = good_events()
    events[0]["units"] = {"accountId": "acct-7"}
    events[5]["units"] = {"accountId": "acct-7", "org id (legacy)": "o-1"}  # any attribute name
    events[6]["units"] = None  # null is the same as leaving it out
    response = events_client.post(URL, {"batch_id": "units", "events": events}, format="json")
    assert response.status_code == 202, response.content
    by_key = {
        (e.kind, e.context_key): e.units for e in RawEvent.objects.order_by("id").only("kind")
    }
    assert by_key[("exposure", "u0")] == {"accountId": "acct-7"}
    assert by_key[("latency", "u2")] == {"accountId": "acct-7", "org id (legacy)": "o-1"}
    assert by_key[("conversion", "u3")] == {}
    assert by_key[("exposure", "u1")] == {}  # no units: an empty object, never NULL


def test_units_at_their_limits_are_accepted(events_client: APIClient) -> None:
    units = {f"{i}".rjust(100, "a"): "v" * 256 for i in range(8)}
    events = [exposure("checkout", "on", "u1", timezone.now()) | {"units": units}]
    response = events_client.post(URL, {"batch_id": "wide", "events": events}, format="json")
    assert response.status_code == 202, response.content
    assert RawEvent.objects.get().units == units


@pytest.mark.parametrize(
    ("units", "field", "message"),
    [
        ({"accountId": 7}, "units.accountId", "must be a string (send a numeric id as text)"),
        ({"accountId": 7.5}, "units.accountId", "must be a string (send a numeric id as text)"),
        ({"accountId": True}, "units.accountId", "must be a string (send a numeric id as text)"),
        ({"accountId": None}, "units.accountId", "must be a string (send a numeric id as text)"),
        ({"accountId": ["a"]}, "units.accountId", "must be a string (send a numeric id as text)"),
        ({"accountId": ""}, "units.accountId", "must not be empty"),
        ({"accountId": "x" * 257}, "units.accountId", "must be at most 256 characters"),
        ({"": "a"}, "units", "attribute name '' must be 1-100 chars"),
        ({"n" * 101: "a"}, "units", f"attribute name {'n' * 100!r} must be 1-100 chars"),
        ({f"a{i}": "x" for i in range(9)}, "units", "may name at most 8 attributes"),
        (["accountId", "acct-7"], "units", "must be an object of attribute name to unit id"),
        ("acct-7", "units", "must be an object of attribute name to unit id"),
    ],
)
def test_bad_units_are_refused_naming_the_event_and_the_field(
    events_client: APIClient, units: Any, field: str, message: str
) -> None:
    events = good_events()
    events[3]["units"] = units
    response = events_client.post(URL, {"batch_id": "bad-units", "events": events}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [{"index": 3, "field": field, "message": message}]
    assert stored() == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"events": []},
        {"batch_id": "", "events": [{}]},
        {"batch_id": "x", "events": "nope"},
        {"batch_id": "x", "events": good_events(), "sdk": {"dropped": -1}},
        {"batch_id": "x", "events": good_events(), "sdk": "many"},
    ],
)
def test_malformed_batches_are_rejected(events_client: APIClient, payload: Any) -> None:
    response = events_client.post(URL, payload, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]
    assert stored() == (0, 0, 0, 0)


def test_drops_an_sdk_reports_are_stored_with_the_batch_and_counted_once(
    events_client: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    from prometheus_client import REGISTRY

    def exported() -> float:
        # Other tests may have counted drops in this process: compare before and after.
        samples = [
            s.value
            for metric in REGISTRY.collect()
            if metric.name == "flagsite_sdk_dropped_events"
            for s in metric.samples
            if s.name.endswith("_total")
        ]
        return sum(samples)

    before = exported()
    body = {"batch_id": "with-drops", "events": good_events(), "sdk": {"dropped": 7}}
    with django_capture_on_commit_callbacks(execute=True):
        assert events_client.post(URL, body, format="json").status_code == 202
        assert events_client.post(URL, body, format="json").json()["duplicate"] is True
    assert EventBatch.objects.get().client_dropped == 7
    assert exported() - before == 7
    bad = {"batch_id": "bad-drops", "events": good_events(), "sdk": {"dropped": "7"}}
    response = events_client.post(URL, bad, format="json")
    assert response.json()["errors"][0]["field"] == "sdk.dropped"


def test_a_repeated_batch_id_stores_nothing_twice(events_client: APIClient) -> None:
    body = {"batch_id": "retry-me", "events": good_events()}
    assert events_client.post(URL, body, format="json").status_code == 202
    before = stored()
    rollups_before = list(Rollup.objects.values_list("metric", "events", "users"))
    again = events_client.post(URL, body, format="json")
    assert again.status_code == 202
    assert again.json() == {"accepted": 8, "duplicate": True}
    assert stored() == before
    assert list(Rollup.objects.values_list("metric", "events", "users")) == rollups_before


def test_the_same_batch_id_in_another_environment_is_a_different_batch(
    events_client: APIClient, environment: Environment
) -> None:
    from apikeys.services import provision

    other = Environment.objects.create(project=environment.project, key="staging", name="S")
    _, raw = provision(environment=other, kind="server", name="staging")
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    body = {"batch_id": "same", "events": good_events()}
    assert events_client.post(URL, body, format="json").json()["duplicate"] is False
    assert other_client.post(URL, body, format="json").json()["duplicate"] is False
    assert EventBatch.objects.count() == 2


def test_a_10000_event_batch_is_accepted(events_client: APIClient) -> None:
    now = timezone.now()
    events = [
        exposure("search", "on" if i % 2 else "off", f"user-{i % 3000}", now) for i in range(10_000)
    ]
    response = events_client.post(URL, {"batch_id": "big", "events": events}, format="json")
    assert response.status_code == 202, response.content[:500]
    assert RawEvent.objects.count() == 10_000
    users = dict(Rollup.objects.values_list("variant", "users"))
    assert users == {"on": 1500, "off": 1500}


def test_too_many_events_are_refused(events_client: APIClient) -> None:
    now = timezone.now()
    events = [exposure("f", "on", "u", now)] * 10_001
    response = events_client.post(URL, {"batch_id": "huge", "events": events}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "events"


def test_events_older_than_retention_or_in_the_future_are_refused(
    events_client: APIClient,
) -> None:
    now = timezone.now()
    events = [
        exposure("f", "on", "u", now - timedelta(days=400)),
        exposure("f", "on", "u", now + timedelta(days=2)),
    ]
    response = events_client.post(URL, {"batch_id": "t", "events": events}, format="json")
    assert [e["index"] for e in response.json()["errors"]] == [0, 1]


@pytest.mark.parametrize(
    ("kind", "allowed"), [("server", True), ("client", True), ("management", False)]
)
def test_server_and_client_keys_may_post_events(
    key_for: Callable[[str], str], kind: str, allowed: bool
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for(kind)}")
    response = client.post(URL, {"batch_id": kind, "events": good_events()}, format="json")
    assert response.status_code == (202 if allowed else 403)


def test_no_key_is_refused(environment: Environment) -> None:
    response = APIClient().post(URL, {"batch_id": "x", "events": good_events()}, format="json")
    assert response.status_code in {401, 403}
    assert stored() == (0, 0, 0, 0)


def test_event_batches_are_rate_limited_per_key(
    events_client: APIClient, key_for: Callable[[str], str], settings: Any
) -> None:
    # A flood guard: client keys ship in browsers, so anyone may hold one.
    settings.FLAGSITE_API_RATES = {**settings.FLAGSITE_API_RATES, "events": "2/min"}
    statuses = [
        events_client.post(URL, {"batch_id": f"r{i}", "events": good_events()}, format="json")
        for i in range(3)
    ]
    assert [r.status_code for r in statuses] == [202, 202, 429]
    assert 0 < int(statuses[2]["Retry-After"]) <= 60
    assert EventBatch.objects.count() == 2  # the refused batch stored nothing
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for('client')}")
    body = {"batch_id": "other-key", "events": good_events()}
    assert other.post(URL, body, format="json").status_code == 202
