# mypy: disallow-untyped-calls=False
"""The role matrix through the real admin: role x environment x (changelist, change, kill
action, history revert), with a logged-in Django test client."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from flags.models import ChangeRequest, FlagState
from tests.factories import FlagStateFactory, SegmentFactory, UserFactory, grant
from tests.integration.flags.conftest import ROLES, World

ENVIRONMENTS = ("development", "production")
RULES = [
    {
        "id": "beta",
        "conditions": [{"attribute": "plan", "operator": "in", "values": ["beta"]}],
        "serve": {"variant": "on"},
    }
]


def errors_in(response: object) -> str:
    """The form errors of a re-rendered admin page, for assertion messages."""
    html = response.content.decode()  # type: ignore[attr-defined]
    found = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, re.S)
    return " | ".join(re.sub(r"<[^>]+>", " ", f).strip() for f in found) or html[:500]


def may_edit(role: str, env: str) -> bool:
    return role in ("release_manager", "owner") or (role == "editor" and env != "production")


def client_for(world: World, role: str) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


def state_form(state: FlagState, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "enabled": "on",
        "off_variant": state.off_variant,
        "default_serve": json.dumps({"variant": "on"}),
        "rules": json.dumps(RULES),
        "prerequisites": "[]",
        "reason": "matrix test",
        "expected_version": state.version,
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_the_changelists(world: World, role: str) -> None:
    client = client_for(world, role)
    for name in ("flags_flag_changelist", "flags_flagstate_changelist", "flags_segment_changelist"):
        response = client.get(reverse(f"admin:{name}"))
        assert response.status_code == 200, name
    assert b"new-pdf-engine" in client.get(reverse("admin:flags_flag_changelist")).content


def test_someone_without_a_role_sees_nothing(world: World) -> None:
    client = client_for(world, "outsider")
    assert client.get(reverse("admin:flags_flag_changelist")).status_code == 403
    state = world.state("development")
    response = client.post(
        reverse("admin:flags_flagstate_change", args=[state.pk]), state_form(state)
    )
    assert response.status_code == 403


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("role", ROLES)
def test_change_form(world: World, role: str, env: str) -> None:
    state = world.state(env)
    url = reverse("admin:flags_flagstate_change", args=[state.pk])
    client = client_for(world, role)
    assert client.get(url).status_code == 200  # everyone may look; only some may save
    response = client.post(url, state_form(state))
    state.refresh_from_db()
    if may_edit(role, env):
        assert response.status_code == 302, errors_in(response)
        assert state.enabled
        assert state.rules == RULES
        record = state.history.first()
        assert record is not None
        assert record.history_user == world.users[role]
        assert (record.history_source, record.history_change_reason) == ("admin", "matrix test")
    elif role == "editor":
        # May not release to production, but may propose it: the form makes a change request.
        request = ChangeRequest.objects.get()
        to = reverse("admin:flags_changerequest_change", args=[request.pk])
        assert response["Location"] == to
        assert (request.status, request.author) == ("pending", world.users["editor"])
        assert not state.enabled
        assert state.rules == []
    else:
        assert response.status_code == 403
        assert not state.enabled
        assert state.rules == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("role", ROLES)
def test_kill_switch_action(world: World, role: str, env: str) -> None:
    state = FlagStateFactory.create(flag=world.flag, environment=env, enabled=True)
    client = client_for(world, role)
    url = reverse("admin:flags_flagstate_changelist")
    action = {"action": "kill_switch", "_selected_action": [state.pk]}
    first = client.post(url, action)
    if not may_edit(role, env):
        assert first.status_code == 403
        state.refresh_from_db()
        assert state.enabled
        return
    assert first.status_code == 200
    assert b"reason" in first.content
    state.refresh_from_db()
    assert state.enabled  # nothing happens before the confirmation
    done = client.post(url, {**action, "confirm": "yes", "reason": "error spike"})
    assert done.status_code == 302
    state.refresh_from_db()
    assert not state.enabled
    record = state.history.first()
    assert record is not None
    assert record.history_change_reason.startswith("error spike")


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("role", ROLES)
def test_history_revert(world: World, role: str, env: str) -> None:
    original = world.state(env)
    first_record = original.history.latest("history_id")
    FlagStateFactory.create(flag=world.flag, environment=env, enabled=True, rules=RULES)
    client = client_for(world, role)
    history = client.get(reverse("admin:flags_flag_history", args=[world.flag.pk]))
    assert history.status_code == 200
    assert (b"revert to this" in history.content) == may_edit(role, env) or env == "development"
    url = reverse(
        "admin:flags_flag_revert", args=[world.flag.pk, original.pk, first_record.history_id]
    )
    version = world.state(env).version
    if may_edit(role, env) or role == "editor":
        # The version the page was shown at is required: without it nothing happens.
        missing = client.post(url, {"reason": "back to how it was"})
        assert missing.status_code == 200
        assert b"expected_version" in missing.content
        assert world.state(env).version == version
    response = client.post(url, {"reason": "back to how it was", "expected_version": version})
    state = world.state(env)
    if may_edit(role, env):
        assert response.status_code == 302
        assert (state.enabled, state.rules) == (False, [])
    elif role == "editor":  # production: proposed for approval instead
        assert response.status_code == 302
        assert ChangeRequest.objects.get().status == "pending"
        assert (state.enabled, state.rules) == (True, RULES)
    else:
        assert response.status_code == 403
        assert (state.enabled, state.rules) == (True, RULES)


def test_grant_narrowed_to_an_environment(world: World) -> None:
    narrowed = UserFactory.create(username="staging-rm")
    grant(narrowed, world.project, "release_manager", [world.env("staging")])
    client = Client()
    client.force_login(narrowed)
    for env, allowed in (("staging", True), ("production", False), ("development", False)):
        state = world.state(env)
        url = reverse("admin:flags_flagstate_change", args=[state.pk])
        response = client.post(url, state_form(state))
        state.refresh_from_db()
        assert state.enabled == allowed, env
        if not allowed:  # refused, or not even visible (the admin sends it to its index)
            assert response.status_code == 403 or response["Location"] == "/admin/", env


@pytest.mark.parametrize("role", ROLES)
def test_segment_editing(world: World, role: str) -> None:
    segment = SegmentFactory.create(project=world.project, key="beta-testers")
    client = client_for(world, role)
    url = reverse("admin:flags_segment_change", args=[segment.pk])
    response = client.post(
        url,
        {
            "name": "Beta testers",
            "description": "",
            "key_attribute": "accountId",
            "included": "acc-1\nacc-2",
            "excluded": "",
            "rules": "[]",
            "reason": "more testers",
            "expected_version": segment.version,
        },
    )
    segment.refresh_from_db()
    if role == "viewer":
        assert response.status_code == 403
        assert segment.included == []
    else:
        assert response.status_code == 302, errors_in(response)
        assert segment.included == ["acc-1", "acc-2"]


def test_only_owners_manage_role_grants(world: World) -> None:
    url = reverse("admin:flags_rolegrant_changelist")
    assert client_for(world, "owner").get(url).status_code == 200
    assert client_for(world, "release_manager").get(url).status_code == 403
