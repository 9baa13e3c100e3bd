"""GET /api/v1/analytics/flags/<key>/comparison: the flag's configured split feeds the SRM check,
over the units exposed since the split was set (the flag state's last targeting change)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics import services
from flags.models import Environment, FlagState
from tests.factories import FlagFactory, FlagStateFactory
from tests.integration.analytics.conftest import exposure, metric

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

HALF_AND_HALF = {
    "rollout": {
        "variants": [{"variant": "on", "weight": 50000}, {"variant": "off", "weight": 50000}]
    }
}


def url(key: str) -> str:
    return f"/api/v1/analytics/flags/{key}/comparison"


def client_with(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def rolled_out_flag(
    environment: Environment, key: str, *, set_ago: timedelta = timedelta(hours=2), **state: Any
) -> FlagState:
    """A flag whose targeting was last changed ``set_ago``: the sample-ratio check counts the
    units exposed since then (the traffic below is stamped within the last hour)."""
    flag = FlagFactory.create(project=environment.project, key=key)
    made = FlagStateFactory.create(flag=flag, environment=environment, enabled=True, **state)
    FlagState.objects.filter(pk=made.pk).update(updated_at=timezone.now() - set_ago)
    made.refresh_from_db()
    return made


def ingest_cohorts(
    environment: Environment, flag: str, users: dict[str, int], error_rate: dict[str, float]
) -> None:
    """Exposures and errors spread over the last hour, one batch per variant."""
    rng = random.Random(7)
    now = timezone.now()
    for variant, count in users.items():
        events = []
        for i in range(count):
            at = now - timedelta(minutes=rng.uniform(1, 59))
            user = f"{variant}-{i}"
            events.append(exposure(flag, variant, user, at))
            if rng.random() < error_rate[variant]:
                events.append(metric("error", user, at, {flag: variant}))
        services.ingest(environment.pk, {"batch_id": f"{flag}-{variant}", "events": events})


def test_a_planted_57_43_split_on_a_declared_50_50_flag_is_a_mismatch(
    environment: Environment, key_for: Callable[[str], str]
) -> None:
    # The mismatch is read on the always-valid p-value (the check is read again and again):
    # 1,150 against 850 gives about 6e-9 (55/45, 1,100 against 900, only 0.0016).
    state = rolled_out_flag(environment, "checkout", default_serve=HALF_AND_HALF)
    ingest_cohorts(environment, "checkout", {"on": 1150, "off": 850}, {"on": 0.02, "off": 0.02})

    response = client_with(key_for("server")).get(url("checkout"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["control"] == "off"
    srm = body["sample_ratio"]
    assert srm["observed"] == {"off": 850, "on": 1150}
    assert srm["expected"] == {"off": 1000.0, "on": 1000.0}
    assert srm["mismatch"] is True
    assert srm["p_value"] < 1e-4
    assert srm["sequential_p_value"] < 0.001
    window = body["sample_ratio_window"]
    assert window["start"] == state.updated_at.isoformat()
    assert window["unit"] == "targetingKey"
    assert "last targeting change" in window["since"]


def test_a_planted_doubling_of_the_error_rate_is_significant(
    environment: Environment, key_for: Callable[[str], str]
) -> None:
    rolled_out_flag(environment, "checkout", default_serve=HALF_AND_HALF)
    ingest_cohorts(environment, "checkout", {"on": 3000, "off": 3000}, {"on": 0.10, "off": 0.05})

    body = client_with(key_for("management")).get(url("checkout")).json()

    assert body["sample_ratio"]["mismatch"] is False
    (versus_control,) = body["comparisons"]
    assert versus_control["variant"] == "on"
    error = next(m for m in versus_control["metrics"] if m["metric"] == "error_rate")
    assert error["significant"] is True
    assert error["difference"] > 0.03
    assert error["sequential"]["reject"] is True


def test_targeting_rules_make_the_sample_ratio_check_inapplicable(
    environment: Environment, key_for: Callable[[str], str]
) -> None:
    rules = [
        {
            "id": "staff",
            "conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@x.io"]}],
            "serve": {"variant": "on"},
        }
    ]
    rolled_out_flag(environment, "checkout", default_serve=HALF_AND_HALF, rules=rules)
    ingest_cohorts(environment, "checkout", {"on": 300, "off": 100}, {"on": 0.0, "off": 0.0})

    body = client_with(key_for("server")).get(url("checkout")).json()

    assert body["sample_ratio"] is None
    assert "targeting rules" in body["sample_ratio_note"]


def test_the_sample_ratio_counts_only_the_units_exposed_since_the_split_was_set(
    environment: Environment, key_for: Callable[[str], str]
) -> None:
    # 10 % on until 40 minutes ago, then 50/50: cumulative exposures over the default 24 hours
    # (582 on, 1,381 off) would be a mismatch against 50/50; the units since the change are not.
    ten_percent = {
        "rollout": {
            "variants": [{"variant": "on", "weight": 10_000}, {"variant": "off", "weight": 90_000}]
        }
    }
    state = rolled_out_flag(environment, "checkout", default_serve=ten_percent)
    now = timezone.now()
    changed = now - timedelta(minutes=40)
    rng = random.Random(3)
    before = [
        exposure("checkout", "on" if i < 100 else "off", f"early-{i}",
                 changed - timedelta(minutes=rng.uniform(1, 50)))
        for i in range(1000)
    ]  # fmt: skip
    after = [
        exposure("checkout", "on" if i % 2 else "off", f"late-{i}",
                 changed + timedelta(minutes=rng.uniform(0, 39)))
        for i in range(960)
    ]  # fmt: skip
    # Three users of the old split come back and are served the new one: counted once each,
    # under the variant they have now (their earlier exposure is before the window).
    after += [
        exposure("checkout", "on", f"early-{i}", now - timedelta(minutes=1)) for i in (900, 901)
    ]
    after += [exposure("checkout", "off", f"early-{i}", now - timedelta(minutes=1)) for i in (0,)]
    services.ingest(environment.pk, {"batch_id": "split-change", "events": before + after})
    FlagState.objects.filter(pk=state.pk).update(default_serve=HALF_AND_HALF, updated_at=changed)

    body = client_with(key_for("server")).get(url("checkout")).json()

    srm = body["sample_ratio"]
    assert srm["observed"] == {"on": 482, "off": 481}
    assert srm["mismatch"] is False
    assert srm["status"] == "ok"
    assert body["sample_ratio_window"]["start"] == changed.isoformat()
    # The rest of the report still covers the whole window, from the rollups.
    exposed = {v["name"]: v["exposed_users"] for v in body["variants"]}
    assert exposed == {"on": 100 + 480 + 2, "off": 900 + 480 + 1}


def test_a_window_ending_before_the_split_was_set_has_no_sample_ratio(
    environment: Environment, key_for: Callable[[str], str]
) -> None:
    rolled_out_flag(environment, "checkout", default_serve=HALF_AND_HALF, set_ago=timedelta(0))
    ingest_cohorts(environment, "checkout", {"on": 300, "off": 300}, {"on": 0.0, "off": 0.0})
    end = (timezone.now() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")

    body = client_with(key_for("server")).get(f"{url('checkout')}?end={end}").json()

    assert body["sample_ratio"] is None
    assert "after the window's end" in body["sample_ratio_note"]


def test_the_sample_ratio_counts_the_units_the_flag_buckets_by(
    environment: Environment, key_for: Callable[[str], str]
) -> None:
    by_account = {"rollout": {"bucketBy": "accountId", **HALF_AND_HALF["rollout"]}}
    rolled_out_flag(environment, "checkout", default_serve=by_account)
    at = timezone.now() - timedelta(minutes=10)
    events = [
        exposure("checkout", "on" if account % 2 else "off", f"user-{account}-{n}", at)
        | {"units": {"accountId": f"acct-{account}"}}
        for account in range(300)
        for n in range(3)  # three users per account: the account is the unit
    ]
    events += [exposure("checkout", "on", "keyed-by-user-only", at)]
    services.ingest(environment.pk, {"batch_id": "accounts", "events": events})

    body = client_with(key_for("server")).get(url("checkout")).json()

    assert body["sample_ratio"]["observed"] == {"on": 150, "off": 150}
    window = body["sample_ratio_window"]
    assert (window["unit"], window["missing_unit"], window["both_variants"]) == ("accountId", 1, 0)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start=yesterday", "start"),
        ("end=2026-11-23T10:00:00", "end"),
        ("look_minutes=0", "look_minutes"),
        ("start=2026-11-23T10:00:00Z&end=2026-11-22T10:00:00Z", "start"),
        ("start=2025-01-01T00:00:00Z&end=2026-11-22T10:00:00Z", "start"),
    ],
)
def test_a_bad_window_is_a_400_naming_the_parameter(
    environment: Environment, key_for: Callable[[str], str], query: str, field: str
) -> None:
    rolled_out_flag(environment, "checkout", default_serve=HALF_AND_HALF)

    response = client_with(key_for("server")).get(f"{url('checkout')}?{query}")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


def test_client_keys_may_not_read_comparisons_and_unknown_flags_are_404(
    environment: Environment, key_for: Callable[[str], str]
) -> None:
    rolled_out_flag(environment, "checkout", default_serve=HALF_AND_HALF)

    assert client_with(key_for("client")).get(url("checkout")).status_code == 403
    missing = client_with(key_for("server")).get(url("nope"))
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]


def test_comparisons_are_rate_limited_per_key(
    environment: Environment, key_for: Callable[[str], str], settings: Any
) -> None:
    settings.FLAGSITE_API_RATES = {**settings.FLAGSITE_API_RATES, "reports": "2/min"}
    rolled_out_flag(environment, "checkout", default_serve=HALF_AND_HALF)
    reader = client_with(key_for("server"))
    statuses = [reader.get(url("checkout")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert client_with(key_for("server")).get(url("checkout")).status_code == 200
