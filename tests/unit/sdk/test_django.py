"""The Django integration: context from request.user, request.flags, template tags and the view
decorators, on an offline client bootstrapped with a ruleset."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.http import Http404, HttpRequest, HttpResponse
from django.template import Context, Engine
from django.test import RequestFactory
from flagsite_sdk import FlagsiteClient
from flagsite_sdk.django.conf import set_client
from flagsite_sdk.django.context import build_context
from flagsite_sdk.django.decorators import flag_required, kill_switch
from flagsite_sdk.django.middleware import FlagsiteMiddleware
from flagsite_sdk.store import Source

from tests.unit.sdk.rulesets import boolean_flag, ruleset, string_flag

STAFF_ONLY = boolean_flag("staff-tools", serve="off")
STAFF_ONLY["rules"] = [
    {
        "id": "staff",
        "conditions": [{"attribute": "isStaff", "operator": "equals", "values": [True]}],
        "serve": {"variant": "on"},
    }
]
DOC = ruleset(1, STAFF_ONLY, boolean_flag("checkout"), string_flag("color"))


@pytest.fixture
def client() -> Iterator[FlagsiteClient]:
    client = FlagsiteClient(offline=True, bootstrap=DOC)
    set_client(client)
    yield client
    set_client(None)


def request_for(user: object) -> HttpRequest:
    request = RequestFactory().get("/")
    request.user = user  # type: ignore[assignment]
    return request


def staff() -> User:
    return User(pk=7, username="ada", email="ada@example.com", is_staff=True)


def test_the_context_comes_from_the_user_and_settings(settings: object) -> None:
    assert build_context(request_for(staff())) == {
        "targetingKey": "7",
        "email": "ada@example.com",
        "isStaff": True,
    }
    assert build_context(request_for(AnonymousUser())) == {"anonymous": True}
    settings.FLAGSITE = {  # type: ignore[attr-defined]
        "USER_ATTRIBUTES": {"name": "username"},
        "CONTEXT_PROCESSOR": lambda request, context: {**context, "path": request.path},
    }
    assert build_context(request_for(staff())) == {"targetingKey": "7", "name": "ada", "path": "/"}


def test_middleware_attaches_request_flags(client: FlagsiteClient) -> None:
    seen: dict[str, object] = {}

    def view(request: HttpRequest) -> HttpResponse:
        flags = request.flags  # type: ignore[attr-defined]
        seen["staff-tools"] = flags.is_enabled("staff-tools")
        seen["color"] = flags.value("color", "none")
        return HttpResponse()

    FlagsiteMiddleware(view)(request_for(staff()))
    assert seen == {"staff-tools": True, "color": "blue"}
    FlagsiteMiddleware(view)(request_for(AnonymousUser()))
    assert seen["staff-tools"] is False


def test_template_tags(client: FlagsiteClient) -> None:
    engine = Engine(libraries={"flagsite": "flagsite_sdk.django.templatetags.flagsite"})
    template = engine.from_string(
        "{% load flagsite %}{% flag_enabled 'staff-tools' as tools %}"
        "{% if tools %}tools{% else %}none{% endif %}|{% flag_variant 'color' %}"
        "|{% flag_value 'color' %}|{% flag_enabled 'missing' True as m %}{{ m }}"
    )
    assert template.render(Context({"request": request_for(staff())})) == "tools|a|blue|True"
    assert template.render(Context({"request": request_for(AnonymousUser())})) == "none|a|blue|True"
    assert template.render(Context({})) == "none||None|True"


def test_kill_switch_turns_a_killed_flag_into_a_maintenance_response(
    client: FlagsiteClient,
) -> None:
    @kill_switch("checkout", retry_after=60)
    def checkout(request: HttpRequest) -> HttpResponse:
        return HttpResponse("paid")

    assert checkout(request_for(AnonymousUser())).content == b"paid"
    client._store.apply(ruleset(2, boolean_flag("checkout", enabled=False)), Source.SERVER)
    down = checkout(request_for(AnonymousUser()))
    assert down.status_code == 503
    assert down["Retry-After"] == "60"

    @kill_switch("checkout", response=lambda request: HttpResponse("be right back", status=200))
    def custom(request: HttpRequest) -> HttpResponse:
        return HttpResponse("paid")

    assert custom(request_for(AnonymousUser())).content == b"be right back"


def test_an_unknown_kill_switch_keeps_serving(client: FlagsiteClient) -> None:
    @kill_switch("never-created")
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    assert view(request_for(AnonymousUser())).status_code == 200


def test_flag_required_hides_a_view(client: FlagsiteClient) -> None:
    @flag_required("staff-tools")
    def tools(request: HttpRequest) -> HttpResponse:
        return HttpResponse("tools")

    assert tools(request_for(staff())).content == b"tools"
    with pytest.raises(Http404):
        tools(request_for(AnonymousUser()))


def test_async_views_build_the_context_from_auser(client: FlagsiteClient) -> None:
    user = staff()

    async def auser() -> User:
        return user

    @flag_required("staff-tools")
    async def tools(request: HttpRequest) -> HttpResponse:
        return HttpResponse("tools")

    request = RequestFactory().get("/")
    request.auser = auser
    response = asyncio.run(tools(request))
    assert response.content == b"tools"
