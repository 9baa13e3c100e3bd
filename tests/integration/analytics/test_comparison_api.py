"""GET /api/v1/analytics/flags/<key>/comparison: the flag's configured split feeds the SRM check."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics import services
from flags.models import Environment
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


def rolled_out_flag(environment: Environment, key: str, **state: Any) -> None:
    flag = FlagFactory.create(project=environment.project, key=key)
    FlagStateFactory.create(flag=flag, environment=environment, enabled=True, **state)


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


def test_a_planted_55_45_split_on_a_declared_50_50_flag_is_a_mismatch(
    environment: Environment, key_for: Callable[[str], str]
) -> None:
    rolled_out_flag(environment, "checkout", default_serve=HALF_AND_HALF)
    ingest_cohorts(environment, "checkout", {"on": 1100, "off": 900}, {"on": 0.02, "off": 0.02})

    response = client_with(key_for("server")).get(url("checkout"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["control"] == "off"
    srm = body["sample_ratio"]
    assert srm["observed"] == {"off": 900, "on": 1100}
    assert srm["expected"] == {"off": 1000.0, "on": 1000.0}
    assert srm["mismatch"] is True
    assert srm["p_value"] < 1e-4


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
