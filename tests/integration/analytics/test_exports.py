"""Exports to Mixpanel and Amplitude: the real libraries against a real local HTTP server
that records what it receives (tests/support/vendor_server.py)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from analytics import services as ingest
from analytics.exports import secrets
from analytics.exports import services as exports
from analytics.exports.models import Exporter, ExportRejection, Vendor
from analytics.exports.payloads import Exposure
from analytics.models import RawEvent
from flags.models import Environment
from tests.integration.analytics.conftest import exposure, metric
from tests.support.vendor_server import Reply, VendorServer

TOKEN = "mp-token-0123456789abcdef"
API_KEY = "amp-key-fedcba9876543210"


@pytest.fixture
def vendor() -> Iterator[VendorServer]:
    server = VendorServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fast_retries(settings: Any) -> None:
    settings.EXPORT_SETTLE_SECONDS = 0
    settings.EXPORT_RETRY_BASE_SECONDS = 0.01
    settings.EXPORT_RETRY_ATTEMPTS = 4


def store_exposures(environment: Environment, count: int, batch: str = "b") -> list[int]:
    now = timezone.now() - timedelta(minutes=5)
    events: list[dict[str, Any]] = [
        exposure(
            "new-checkout", "on" if i % 2 else "off", f"user-{i}", now + timedelta(seconds=i),
            **{"new-checkout": "on" if i % 2 else "off", "dark-mode": "true"},
        )
        for i in range(count)
    ]  # fmt: skip
    # A metric event is stored too, and must not be exported.
    events.append(metric("conversion", "user-0", now, {"new-checkout": "off"}))
    ingest.ingest(environment.id, {"batch_id": batch, "events": events})
    return list(
        RawEvent.objects.filter(environment=environment, kind="exposure")
        .order_by("id")
        .values_list("id", flat=True)
    )


def make_exporter(environment: Environment, vendor_kind: str, url: str, **extra: Any) -> Exporter:
    token = TOKEN if vendor_kind == Vendor.MIXPANEL else API_KEY
    server_url = url if vendor_kind == Vendor.MIXPANEL else f"{url}/2/httpapi"
    return Exporter.objects.create(
        environment=environment,
        vendor=vendor_kind,
        token_encrypted=secrets.encrypt(token),
        server_url=server_url,
        **extra,
    )


def insert_ids(raw_ids: list[int], environment: Environment) -> list[str]:
    now = timezone.now()
    return [Exposure(i, environment.id, "", "", "", now, {}).insert_id for i in raw_ids]


def mixpanel_ids(server: VendorServer, nth: int = -1) -> list[str]:
    return [e["properties"]["$insert_id"] for e in server.to("/import")[nth].json()]


def amplitude_ids(server: VendorServer, nth: int = -1) -> list[str]:
    return [e["insert_id"] for e in server.to("/2/httpapi")[nth].json()["events"]]


def test_mixpanel_gets_experiment_started_events_and_profile_assignments(
    environment: Environment, vendor: VendorServer
) -> None:
    raw_ids = store_exposures(environment, 3)
    exporter = make_exporter(environment, Vendor.MIXPANEL, vendor.url)

    outcome = exports.export_batch(exporter.pk)

    assert (outcome.status, outcome.sent, outcome.rejected) == ("sent", 3, 0)
    (request,) = vendor.to("/import")
    assert request.query == {"strict": ["1"]}
    assert request.basic_auth_user == TOKEN  # /import takes the project token as basic auth
    events = request.json()
    assert [e["event"] for e in events] == ["$experiment_started"] * 3
    first = events[1]["properties"]
    stored = RawEvent.objects.get(pk=raw_ids[1])
    assert first["Experiment name"] == "new-checkout"
    assert first["Variant name"] == "on"
    assert first["distinct_id"] == "user-1"
    assert first["token"] == TOKEN
    assert first["time"] == int(stored.occurred_at.timestamp() * 1000)
    assert [e["properties"]["$insert_id"] for e in events] == insert_ids(raw_ids, environment)
    (profiles,) = vendor.to("/engage")
    updates = {p["$distinct_id"]: p for p in profiles.json()}
    assert updates["user-1"]["$set"] == {
        "[Experiment] dark-mode": "true",
        "[Experiment] new-checkout": "on",
    }
    assert updates["user-1"]["$token"] == TOKEN
    exporter.refresh_from_db()
    assert exporter.cursor == raw_ids[-1]
    assert exporter.exported_events == 3
    assert exporter.last_success_at is not None
    # Caught up: the next run sends nothing.
    assert exports.export_batch(exporter.pk).status == "idle"
    assert len(vendor.to("/import")) == 1


def test_amplitude_gets_exposure_events_with_experiment_user_properties(
    environment: Environment, vendor: VendorServer
) -> None:
    raw_ids = store_exposures(environment, 2)
    exporter = make_exporter(environment, Vendor.AMPLITUDE, vendor.url)

    assert exports.export_batch(exporter.pk).sent == 2

    (request,) = vendor.to("/2/httpapi")
    body = request.json()
    assert body["api_key"] == API_KEY
    assert body["options"] == {"min_id_length": 1}
    event = body["events"][1]
    stored = RawEvent.objects.get(pk=raw_ids[1])
    assert event["event_type"] == "$exposure"
    assert event["user_id"] == "user-1"
    assert event["event_properties"] == {"flag_key": "new-checkout", "variant": "on"}
    assert event["user_properties"] == {
        "$set": {"[Experiment] dark-mode": "true", "[Experiment] new-checkout": "on"}
    }
    assert event["time"] == int(stored.occurred_at.timestamp() * 1000)
    assert [e["insert_id"] for e in body["events"]] == insert_ids(raw_ids, environment)


@pytest.mark.parametrize(
    ("vendor_kind", "path", "ids"),
    [
        (Vendor.MIXPANEL, "/import", mixpanel_ids),
        (Vendor.AMPLITUDE, "/2/httpapi", amplitude_ids),
    ],
)
@pytest.mark.parametrize(
    "failure",
    [
        Reply(500, {"error": "internal"}),
        Reply(503, {"error": "unavailable"}),
        Reply(429, {"code": 429, "error": "Project exceeded rate limits."}),
    ],
)
def test_a_failed_request_is_retried_with_the_same_dedup_ids(
    environment: Environment,
    vendor: VendorServer,
    vendor_kind: str,
    path: str,
    ids: Any,
    failure: Reply,
) -> None:
    raw_ids = store_exposures(environment, 4)
    exporter = make_exporter(environment, vendor_kind, vendor.url)
    vendor.queue(path, failure, failure)

    outcome = exports.export_batch(exporter.pk)

    assert outcome.status == "sent"
    assert len(vendor.to(path)) == 3  # two failures, then accepted
    expected = insert_ids(raw_ids, environment)
    assert ids(vendor, 0) == ids(vendor, 1) == ids(vendor, 2) == expected
    exporter.refresh_from_db()
    assert (exporter.cursor, exporter.exported_events, exporter.last_error) == (raw_ids[-1], 4, "")


def test_a_retry_waits_for_retry_after(environment: Environment, vendor: VendorServer) -> None:
    store_exposures(environment, 1)
    exporter = make_exporter(environment, Vendor.MIXPANEL, vendor.url)
    vendor.queue("/import", Reply(429, {"code": 429}, {"Retry-After": "0.5"}))

    exports.export_batch(exporter.pk)

    first, second = vendor.to("/import")
    assert second.at - first.at >= 0.5


@pytest.mark.parametrize("vendor_kind", [Vendor.MIXPANEL, Vendor.AMPLITUDE])
def test_a_vendor_that_keeps_failing_leaves_the_cursor_and_backs_off(
    environment: Environment, vendor: VendorServer, vendor_kind: str
) -> None:
    store_exposures(environment, 2)
    exporter = make_exporter(environment, vendor_kind, vendor.url)
    path = "/import" if vendor_kind == Vendor.MIXPANEL else "/2/httpapi"
    vendor.queue(path, *[Reply(500, {"error": "down"})] * 4)

    outcome = exports.export_batch(exporter.pk)

    assert outcome.status == "failed"
    assert "HTTP 500" in outcome.error
    assert len(vendor.to(path)) == 4  # EXPORT_RETRY_ATTEMPTS
    exporter.refresh_from_db()
    assert (exporter.cursor, exporter.exported_events) == (0, 0)
    assert exporter.consecutive_failures == 1
    assert "HTTP 500" in exporter.last_error
    assert exporter.next_attempt_at is not None
    assert exporter.next_attempt_at >= timezone.now() + timedelta(seconds=14)
    # Not due yet: the next beat skips it; once due, the same batch goes out and succeeds.
    assert exports.export_batch(exporter.pk).status == "skipped"
    assert len(vendor.to(path)) == 4
    later = exporter.next_attempt_at + timedelta(seconds=1)
    assert exports.export_batch(exporter.pk, now=later).status == "sent"
    exporter.refresh_from_db()
    assert (exporter.exported_events, exporter.consecutive_failures) == (2, 0)


def test_mixpanel_refusing_one_event_records_it_and_moves_on(
    environment: Environment, vendor: VendorServer
) -> None:
    raw_ids = store_exposures(environment, 3)
    exporter = make_exporter(environment, Vendor.MIXPANEL, vendor.url)
    refused = {
        "code": 400,
        "error": "some data points in the request failed validation",
        "num_records_imported": 2,
        "status": "Bad Request",
        "failed_records": [
            {"index": 1, "insert_id": "x", "field": "properties.distinct_id",
             "message": "'properties.distinct_id' is invalid"},
        ],
    }  # fmt: skip
    vendor.queue("/import", Reply(400, refused))

    outcome = exports.export_batch(exporter.pk)

    assert (outcome.status, outcome.sent, outcome.rejected) == ("sent", 2, 1)
    assert len(vendor.to("/import")) == 1  # a partial success is not resent
    rejection = ExportRejection.objects.get()
    assert rejection.raw_event_id == raw_ids[1]
    assert rejection.reason == "properties.distinct_id: 'properties.distinct_id' is invalid"
    assert rejection.payload["context_key"] == "user-1"
    # The refused user's profile is not updated.
    assert {p["$distinct_id"] for p in vendor.to("/engage")[0].json()} == {"user-0", "user-2"}
    exporter.refresh_from_db()
    assert (exporter.cursor, exporter.exported_events) == (raw_ids[-1], 2)


def test_amplitude_refusing_one_event_records_it_and_resends_the_rest(
    environment: Environment, vendor: VendorServer
) -> None:
    raw_ids = store_exposures(environment, 3)
    exporter = make_exporter(environment, Vendor.AMPLITUDE, vendor.url)
    refused = {
        "code": 400,
        "error": "Request missing required field",
        "events_with_invalid_fields": {"time": [0]},
    }
    vendor.queue("/2/httpapi", Reply(400, refused))

    outcome = exports.export_batch(exporter.pk)

    assert (outcome.status, outcome.sent, outcome.rejected) == ("sent", 2, 1)
    assert len(vendor.to("/2/httpapi")) == 2
    assert amplitude_ids(vendor, 1) == insert_ids(raw_ids[1:], environment)
    assert ExportRejection.objects.get().raw_event_id == raw_ids[0]
    assert "Request missing required field" in ExportRejection.objects.get().reason


def test_amplitude_payload_too_large_is_split(
    environment: Environment, vendor: VendorServer
) -> None:
    raw_ids = store_exposures(environment, 4)
    exporter = make_exporter(environment, Vendor.AMPLITUDE, vendor.url)
    vendor.queue("/2/httpapi", Reply(413, {"code": 413, "error": "Payload too large"}))

    assert exports.export_batch(exporter.pk).sent == 4

    sizes = [len(r.json()["events"]) for r in vendor.to("/2/httpapi")]
    assert sizes == [4, 2, 2]
    assert amplitude_ids(vendor, 1) + amplitude_ids(vendor, 2) == insert_ids(raw_ids, environment)


def test_batches_follow_the_cursor_without_gaps_or_repeats(
    environment: Environment, vendor: VendorServer
) -> None:
    raw_ids = store_exposures(environment, 7)
    exporter = make_exporter(environment, Vendor.MIXPANEL, vendor.url, batch_size=3)

    assert exports.run_exporter(exporter.pk) == 7

    sent = [i for n in range(len(vendor.to("/import"))) for i in mixpanel_ids(vendor, n)]
    assert [len(r.json()) for r in vendor.to("/import")] == [3, 3, 1]
    assert sent == insert_ids(raw_ids, environment)


def test_events_younger_than_the_settle_time_wait(
    environment: Environment, vendor: VendorServer, settings: Any
) -> None:
    settings.EXPORT_SETTLE_SECONDS = 3600
    store_exposures(environment, 2)
    exporter = make_exporter(environment, Vendor.MIXPANEL, vendor.url)
    assert exports.export_batch(exporter.pk).status == "idle"
    later = timezone.now() + timedelta(hours=2)
    assert exports.export_batch(exporter.pk, now=later).sent == 2


def test_the_token_is_stored_encrypted_and_never_shown_again(
    environment: Environment, vendor: VendorServer
) -> None:
    admin = User.objects.create_superuser("root", "root@example.test", "pw-root-123")
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/admin/analytics/exporter/add/",
        {
            "environment": environment.pk, "vendor": "mixpanel", "enabled": "on",
            "server_url": vendor.url, "batch_size": 500, "token": TOKEN, "reason": "go",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    exporter = Exporter.objects.get()
    assert TOKEN not in exporter.token_encrypted
    assert secrets.decrypt(exporter.token_encrypted) == TOKEN
    page = client.get(f"/admin/analytics/exporter/{exporter.pk}/change/").content.decode()
    assert TOKEN not in page
    assert "encrypted; not shown" in page
    record = exporter.history.get()
    assert (record.history_user, record.history_change_reason) == (admin, "go")
    # Saving without a token keeps the stored one.
    client.post(
        f"/admin/analytics/exporter/{exporter.pk}/change/",
        {"environment": environment.pk, "vendor": "mixpanel", "server_url": vendor.url,
         "batch_size": 100, "token": "", "reason": "smaller batches"},
    )  # fmt: skip
    exporter.refresh_from_db()
    assert (exporter.batch_size, exporter.enabled) == (100, False)
    assert secrets.decrypt(exporter.token_encrypted) == TOKEN


def test_the_admin_form_names_bad_fields(environment: Environment) -> None:
    admin = User.objects.create_superuser("root", "root@example.test", "pw-root-123")
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/admin/analytics/exporter/add/",
        {"environment": environment.pk, "vendor": "amplitude", "batch_size": 5000, "token": ""},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"token", "batch_size"}
    assert not Exporter.objects.exists()


def test_the_admin_list_shows_lag_rejections_and_last_success(
    environment: Environment, vendor: VendorServer
) -> None:
    store_exposures(environment, 2)
    exporter = make_exporter(environment, Vendor.AMPLITUDE, vendor.url)
    admin = User.objects.create_superuser("root", "root@example.test", "pw-root-123")
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/analytics/exporter/").content.decode()
    assert ">2<" in page  # pending events
    vendor.queue("/2/httpapi", Reply(400, {"code": 400, "error": "bad", "silenced_events": [0]}))
    exports.export_batch(exporter.pk)
    page = client.get("/admin/analytics/exporter/").content.decode()
    assert "caught up" in page
    rejections = client.get("/admin/analytics/exportrejection/").content.decode()
    assert "HTTP 400: bad" in rejections


def test_an_unreadable_token_fails_the_run_with_a_clear_error(
    environment: Environment, vendor: VendorServer
) -> None:
    store_exposures(environment, 1)
    exporter = make_exporter(environment, Vendor.MIXPANEL, vendor.url)
    Exporter.objects.filter(pk=exporter.pk).update(
        token_encrypted=base64.urlsafe_b64encode(b"garbage").decode()
    )
    outcome = exports.export_batch(exporter.pk)
    assert outcome.status == "failed"
    assert "enter it again" in outcome.error
    assert vendor.requests == []
