"""Hostile input to the analytics endpoints: JSON 4xx naming the field, nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import EventBatch, RawEvent
from analytics.serializers import MAX_BATCH_EVENTS, MAX_CONTEXT_KEY, MAX_KEY
from flags.models import Environment
from tests.factories import FlagFactory, FlagStateFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

URL = "/api/v1/events"


def post_raw(client: APIClient, raw: bytes) -> Any:
    return client.generic("POST", URL, raw, content_type="application/json")  # type: ignore[arg-type]  # bytes work; the stubs say str


def an_event(**fields: Any) -> dict[str, Any]:
    event = {
        "type": "exposure",
        "flag": "checkout",
        "variant": "on",
        "context_key": "u1",
        "timestamp": timezone.now().isoformat(),
        "assignments": {"checkout": "on"},
    }
    return {**event, **fields}


def nothing_stored() -> bool:
    return not EventBatch.objects.exists() and not RawEvent.objects.exists()


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"batch_id": "b\\u0000", "events": []}', "batch_id"),
        (b'{"batch_id": "b", "events": [{"context_key": "u\\u0000"}]}', "events[0].context_key"),
        (b'{"batch_id": "b", "events": [{"context_key": "\\ud800"}]}', "events[0].context_key"),
        (
            b'{"batch_id": "b", "events": [{"assignments": {"\\u0000": "on"}}]}',
            "events[0].assignments.",
        ),
        (
            b'{"batch_id": "b", "events": [{"units": {"accountId": "a\\u0000"}}]}',
            "events[0].units.accountId",
        ),
        (b'{"batch_id": "b", "events": [{"units": {"\\ud800": "a"}}]}', "events[0].units."),
    ],
    ids=[
        "nul-batch-id",
        "nul-context-key",
        "surrogate-context-key",
        "nul-assignment-key",
        "nul-unit-value",
        "surrogate-unit-name",
    ],
)
def test_nul_and_surrogates_in_events_are_400_with_the_path(
    events_client: APIClient, raw: bytes, path: str
) -> None:
    response = post_raw(events_client, raw)
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert error["path"].startswith(path)
    assert nothing_stored()


def test_an_event_timestamp_with_an_offset_beyond_1559_is_400(events_client: APIClient) -> None:
    now = timezone.now()
    events = [an_event(), an_event(timestamp=now.strftime("%Y-%m-%dT%H:%M:%S+20:00"))]
    response = events_client.post(URL, {"batch_id": "b", "events": events}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [
        {"index": 1, "field": "timestamp", "message": "has a time-zone offset beyond +-15:59"}
    ]
    assert nothing_stored()


def test_a_unit_that_is_a_number_is_400_naming_the_event_and_the_field(
    events_client: APIClient,
) -> None:
    events = [an_event(units={"accountId": "acct-7"}) for _ in range(4)]
    events[3]["units"] = {"accountId": 7}
    events[1]["units"] = {"accountId": "acct-7", "plan": False}
    response = events_client.post(URL, {"batch_id": "b", "events": events}, format="json")
    assert response.status_code == 400, response.content
    message = "must be a string (send a numeric id as text)"
    assert response.json()["errors"] == [
        {"index": 1, "field": "units.plan", "message": message},
        {"index": 3, "field": "units.accountId", "message": message},
    ]
    assert nothing_stored()


def test_units_deeper_than_one_level_are_refused(events_client: APIClient) -> None:
    event = an_event(units={"accountId": {"id": "acct-7"}})
    response = events_client.post(URL, {"batch_id": "b", "events": [event]}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == "units.accountId"
    assert nothing_stored()


def test_the_largest_documented_batch_is_accepted(events_client: APIClient, settings: Any) -> None:
    # 10,000 events with every key at its longest: the documented maximum, well under the limit.
    long_key = "k" * MAX_KEY
    at = timezone.now().isoformat()
    events = [
        an_event(
            flag=long_key,
            variant=long_key,
            context_key=f"{i:0{MAX_CONTEXT_KEY}d}",
            timestamp=at,
            assignments={long_key: long_key},
        )
        for i in range(MAX_BATCH_EVENTS)
    ]
    raw = orjson.dumps({"batch_id": "biggest", "events": events})
    assert len(raw) < settings.FLAGSITE_EVENTS_MAX_BODY_BYTES
    response = post_raw(events_client, raw)
    assert response.status_code == 202, response.content[:500]
    assert response.json() == {"accepted": MAX_BATCH_EVENTS, "duplicate": False}


def test_a_batch_over_the_limit_is_413_in_json(events_client: APIClient, settings: Any) -> None:
    limit = settings.FLAGSITE_EVENTS_MAX_BODY_BYTES
    raw = b'{"batch_id": "b", "events": [], "padding": "%s"}' % (b"x" * limit)
    response = post_raw(events_client, raw)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert str(limit) in response.json()["detail"]
    assert nothing_stored()


@pytest.fixture
def reports_client(key_for: Callable[[str], str], environment: Environment) -> APIClient:
    flag = FlagFactory.create(project=environment.project, key="checkout")
    FlagStateFactory.create(flag=flag, environment=environment, enabled=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_for('server')}")
    return client


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start=2026-11-20T00:00:00%2B16:00", "start"),
        ("end=2026-11-20T00:00:00-23:59", "end"),
        ("end=2026-11-20T00:00:00%2B99:00", "end"),
        ("end=9999-12-31T23:59:59-10:00", "end"),
        ("start=0001-01-01T00:00:00%2B10:00", "start"),
        ("end=0001-01-01T10:00:00Z", "end"),
        ("start=2026-02-30T00:00:00Z", "start"),
        ("end=2026-11-20T25:00:00Z", "end"),
        ("look_minutes=%EF%BC%95", "look_minutes"),
    ],
)
def test_out_of_range_dates_and_offsets_in_the_window_are_400(
    reports_client: APIClient, query: str, field: str
) -> None:
    response = reports_client.get(f"/api/v1/analytics/flags/checkout/comparison?{query}")
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == [field]


def test_an_offset_of_1559_is_accepted(reports_client: APIClient) -> None:
    end = timezone.now().strftime("%Y-%m-%dT%H:%M:%S") + "%2B15:59"
    response = reports_client.get(f"/api/v1/analytics/flags/checkout/comparison?end={end}")
    assert response.status_code == 200, response.content
