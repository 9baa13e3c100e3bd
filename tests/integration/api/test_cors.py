"""CORS on the browser endpoints, over a real server: origins are allowed per environment
(Environment.cors_origins), a preflight succeeds, ETag is exposed, other origins get nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from flags import services
from flags.models import Environment
from tests.integration.api.conftest import World, build_world
from tests.support.processes import ServerProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

APP = "https://app.example.com"
OTHER = "https://evil.example.net"


def allow(world: World, env: Environment, origins: list[str]) -> None:
    env.refresh_from_db()
    services.update_environment(
        env,
        changes={"cors_origins": origins},
        expected_version=env.version,
        actor=world.owner,
        source=services.Source.API,
        reason="browser app",
    )


def preflight(server: ServerProcess, path: str, origin: str) -> httpx.Response:
    return httpx.options(
        f"{server.url}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


@pytest.fixture
def cors(server_factory: Callable[..., ServerProcess]) -> tuple[World, ServerProcess]:
    world = build_world()
    allow(world, world.dev, [APP])
    return world, server_factory(workers=1)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/evaluate", "/api/v1/evaluate/all", "/ofrep/v1/evaluate/flags", "/api/v1/events"],
)
def test_a_preflight_from_an_allowed_origin_succeeds(
    cors: tuple[World, ServerProcess], path: str
) -> None:
    _, server = cors

    response = preflight(server, path, APP)

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP
    allowed = {h.strip() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "if-none-match"} <= allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_a_request_with_a_client_key_from_its_origin_can_read_the_answer_and_etag(
    cors: tuple[World, ServerProcess],
) -> None:
    world, server = cors
    headers = {**world.headers("client"), "Origin": APP}

    answer = httpx.post(f"{server.url}/api/v1/evaluate/all", json={"context": {}}, headers=headers)
    ofrep = httpx.post(
        f"{server.url}/ofrep/v1/evaluate/flags", json={"context": {}}, headers=headers
    )

    for response in (answer, ofrep):
        assert response.status_code == 200, response.text
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert "ETag" in response.headers["Access-Control-Expose-Headers"].split(", ")
        assert "origin" in response.headers["Vary"].lower()
    assert ofrep.headers["ETag"]


def test_a_disallowed_origin_gets_no_cors_headers(cors: tuple[World, ServerProcess]) -> None:
    world, server = cors
    refused_preflight = preflight(server, "/api/v1/evaluate", OTHER)
    answer = httpx.post(
        f"{server.url}/api/v1/evaluate",
        json={"flag": "banner"},
        headers={**world.headers("client"), "Origin": OTHER},
    )

    assert "Access-Control-Allow-Origin" not in refused_preflight.headers
    assert answer.status_code == 200  # the server answers; the browser will not let it be read
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_an_origin_allowed_for_another_environment_is_not_allowed_for_this_key(
    cors: tuple[World, ServerProcess],
) -> None:
    world, server = cors
    answer = httpx.post(
        f"{server.url}/api/v1/evaluate",
        json={"flag": "banner"},
        headers={**world.headers("prod-server"), "Origin": APP},
    )

    assert answer.status_code == 200
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_management_endpoints_get_no_cors_headers(cors: tuple[World, ServerProcess]) -> None:
    world, server = cors
    response = httpx.get(
        f"{server.url}/api/v1/projects", headers={**world.headers("management"), "Origin": APP}
    )

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in preflight(server, "/api/v1/projects", APP).headers


def test_a_newly_allowed_origin_applies_within_2s(cors: tuple[World, ServerProcess]) -> None:
    world, server = cors
    assert "Access-Control-Allow-Origin" not in preflight(server, "/api/v1/evaluate", OTHER).headers

    allow(world, world.dev, [APP, OTHER])
    changed = time.monotonic()

    wait_until(
        lambda: (
            preflight(server, "/api/v1/evaluate", OTHER).headers.get("Access-Control-Allow-Origin")
            == OTHER
        ),
        5,
        "the new origin to be allowed",
    )
    assert time.monotonic() - changed < 2.0


def test_origins_are_validated() -> None:
    from django.core.exceptions import ValidationError

    from flags.models import validate_origins

    validate_origins(["https://app.example.com", "http://localhost:3000", "*"])
    for bad in (["https://app.example.com/path"], ["app.example.com"], "https://x.com", [3]):
        with pytest.raises(ValidationError):
            validate_origins(bad)
