"""Rate limits per key: the evaluation limit (counted in Redis, batched per process), the
management limit, and one key's limit leaving every other key alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.test import Client

from apikeys.models import ApiKey
from apikeys.services import provision
from tests.integration.api.conftest import World, build_world
from tests.support.processes import ServerProcess, wait_until

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
    # Per hour, so that the 26 requests almost surely fall in one window.
    rates(settings, evaluation="20/hour")
    statuses = [evaluate(client, world.keys["server"]).status_code for _ in range(25)]
    assert statuses == [200] * 20 + [429] * 5
    refused = evaluate(client, world.keys["server"])
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "throttled" in refused.json()["detail"]
    _, other = provision(environment=world.dev, kind="server", name="another service")
    assert evaluate(client, other).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_evaluation_count_is_shared_through_redis(
    server_factory: Callable[..., ServerProcess], settings: Any
) -> None:
    # Far from its limit a server process sends its running total in the background at most
    # every SYNC_INTERVAL; Redis then holds the requests, up to the last interval's.
    import redis

    world = build_world()
    server = server_factory(extra_env={"FLAGSITE_RATE_EVALUATION": "1000/min"})
    with httpx.Client(base_url=server.url, headers=world.headers("server")) as http:
        for _ in range(30):
            assert http.post("/api/v1/evaluate", json=BODY).status_code == 200
    key_id = ApiKey.objects.get(name="server").pk
    store = redis.Redis.from_url(settings.REDIS_URL)
    pattern = f"{settings.REDIS_PREFIX}:throttle:evaluation:key:{key_id}:*"

    def shared() -> int:  # one field per server process: its running total
        return sum(int(v) for name in store.keys(pattern) for v in store.hvals(name))

    wait_until(lambda: shared() >= 1, 5, "the count to reach Redis")
    assert shared() <= 30


def test_management_calls_are_limited_per_key(client: Client, world: World, settings: Any) -> None:
    rates(settings, management="3/min")
    url = "/api/v1/projects/shop/flags"
    statuses = [client.get(url, **world.auth("management")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
