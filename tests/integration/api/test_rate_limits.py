"""Rate limits per key: the evaluation limit (counted in Redis, batched per process), the
management limit, and one key's limit leaving every other key alone."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apikeys.models import ApiKey
from tests.integration.api.conftest import World

pytestmark = pytest.mark.integration

BODY = {"flag": "new-checkout", "context": {"targetingKey": "alice"}}


def rates(settings: Any, **limits: str) -> None:
    settings.FLAGSITE_API_RATES = {**settings.FLAGSITE_API_RATES, **limits}


def evaluate(client: Client, raw_key: str) -> Any:
    return client.post(
        "/api/v1/evaluate", BODY, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw_key}",
    )  # fmt: skip


def test_a_key_over_its_evaluation_limit_gets_429_and_others_do_not(
    client: Client, world: World, settings: Any
) -> None:
    rates(settings, evaluation="20/min")
    statuses = [evaluate(client, world.keys["server"]).status_code for _ in range(25)]
    assert statuses == [200] * 20 + [429] * 5
    refused = evaluate(client, world.keys["server"])
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"]
    _, other = ApiKey.issue(environment=world.dev, kind="server", name="another service")
    assert evaluate(client, other).status_code == 200


def test_the_evaluation_count_is_shared_through_redis(
    client: Client, world: World, settings: Any
) -> None:
    # Far from its limit a process sends its count at least every SYNC_INTERVAL; near the
    # limit, at every request. Either way the counter in Redis ends up with every request.
    import redis

    rates(settings, evaluation="1000/min")
    for _ in range(30):
        assert evaluate(client, world.keys["server"]).status_code == 200
    key_id = ApiKey.objects.get(name="server").pk
    server = redis.Redis.from_url(settings.REDIS_URL)
    names = server.keys(f"{settings.REDIS_PREFIX}:throttle:evaluation:key:{key_id}:*")
    assert len(names) == 1
    shared = int(server.get(names[0]) or 0)
    assert 1 <= shared <= 30  # what is not yet sent stays bounded by one sync interval


def test_management_calls_are_limited_per_key(client: Client, world: World, settings: Any) -> None:
    rates(settings, management="3/min")
    url = "/api/v1/projects/shop/flags"
    statuses = [client.get(url, **world.auth("management")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
