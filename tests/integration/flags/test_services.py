"""Writes through flags.services: revert, optimistic concurrency, approvals, and the ruleset
version bump + publish that happen on commit only."""

from __future__ import annotations

import json
import time

import pytest
import redis
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.test import Client
from django.urls import reverse

from flags import realtime, services
from flags.models import ChangeRequest, Ruleset
from tests.factories import FlagFactory, FlagStateFactory, ProjectFactory
from tests.integration.flags.conftest import World

SOURCE = services.Source.API
RULES_A = [
    {
        "id": "us-uk-free",
        "conditions": [
            {"attribute": "country", "operator": "in", "values": ["US", "UK"]},
            {"attribute": "plan", "operator": "equals", "values": ["free"]},
        ],
        "serve": {"variant": "on"},
    }
]
RULES_B = [{"id": "all", "conditions": [], "serve": {"variant": "off"}}]


def edit(world: World, role: str, env: str, changes: dict[str, object], reason: str = "x"):
    state = world.state(env)
    return services.update_flag_state(
        state, changes=changes, expected_version=state.version, actor=world.users[role],
        source=SOURCE, reason=reason,
    )  # fmt: skip


def test_revert_restores_exactly_the_earlier_rules(world: World) -> None:
    a = edit(world, "editor", "staging", {"enabled": True, "rules": RULES_A})
    record_a = a.history.latest("history_id")
    edit(world, "editor", "staging", {"rules": RULES_B, "default_serve": {"variant": "on"}})
    current = world.state("staging")
    reverted = services.revert_flag_state(
        a, record_a.history_id, actor=world.users["editor"], source=SOURCE, reason="oops",
        expected_version=current.version,
    )  # fmt: skip
    assert reverted.rules == RULES_A
    assert services.state_snapshot(reverted) == services.state_snapshot(record_a)
    latest = reverted.history.latest("history_id")
    assert latest.history_change_reason == f"oops (revert to version {record_a.version})"
    assert latest.history_source == "api"
    assert latest.history_user == world.users["editor"]
    document = Ruleset.objects.get(environment=world.env("staging")).document
    assert document["flags"]["new-pdf-engine"]["rules"] == RULES_A


def test_a_concurrent_edit_is_refused_and_nothing_is_lost(world: World) -> None:
    state = world.state("development")
    read_by_both = state.version
    services.update_flag_state(
        state, changes={"rules": RULES_A}, expected_version=read_by_both,
        actor=world.users["editor"], source=SOURCE,
    )  # fmt: skip
    with pytest.raises(services.VersionConflict) as refused:
        services.update_flag_state(
            state, changes={"rules": RULES_B}, expected_version=read_by_both,
            actor=world.users["owner"], source=SOURCE,
        )  # fmt: skip
    assert refused.value.current_version == read_by_both + 1
    assert world.state("development").rules == RULES_A


def test_a_concurrent_edit_in_the_admin_keeps_the_second_persons_input(world: World) -> None:
    state = world.state("development")
    url = reverse("admin:flags_flagstate_change", args=[state.pk])
    first, second = Client(), Client()
    first.force_login(world.users["editor"])
    second.force_login(world.users["owner"])
    form = {"off_variant": "off", "default_serve": '{"variant": "off"}', "prerequisites": "[]",
            "expected_version": state.version, "reason": ""}  # fmt: skip
    assert first.post(url, {**form, "rules": json.dumps(RULES_A)}).status_code == 302
    response = second.post(url, {**form, "rules": json.dumps(RULES_B)})
    assert response.status_code == 200
    assert b"Someone else saved this" in response.content
    assert b'"id": "all"' in response.content or b"&quot;all&quot;" in response.content
    assert world.state("development").rules == RULES_A


def test_engine_validation_errors_land_on_the_field(world: World) -> None:
    bad = [
        {
            "id": "r",
            "conditions": [{"attribute": "a", "operator": "bogus"}],
            "serve": {"variant": "on"},
        }
    ]
    with pytest.raises(services.ChangeRejected) as rejected:
        edit(world, "editor", "development", {"rules": bad})
    assert [(e.path, e.field) for e in rejected.value.errors] == [
        ("rules[0].conditions[0].operator", "rules")
    ]


def test_production_needs_a_reason(world: World) -> None:
    with pytest.raises(services.ChangeRejected) as rejected:
        edit(world, "release_manager", "production", {"enabled": True}, reason="")
    assert rejected.value.errors[0].field == "reason"


def test_kill_is_idempotent(world: World) -> None:
    state = FlagStateFactory.create(flag=world.flag, environment="production", enabled=True)
    rm = world.users["release_manager"]
    killed = services.kill_flag(state, actor=rm, source=SOURCE, reason="incident")
    again = services.kill_flag(world.flag, world.env("production"), actor=rm, source=SOURCE,
                               reason="incident")  # fmt: skip
    assert not killed.enabled
    assert again.version == killed.version
    with pytest.raises(PermissionDenied):
        services.kill_flag(state, actor=world.users["editor"], source=SOURCE, reason="x")


def test_approval_is_required_and_the_author_cannot_approve(world: World) -> None:
    production = world.env("production")
    production.requires_approval = True
    production.save()
    state = world.state("production")
    rm, owner = world.users["release_manager"], world.users["owner"]
    with pytest.raises(services.ApprovalRequired):
        edit(world, "release_manager", "production", {"enabled": True}, reason="launch")
    request = services.request_change(
        state, changes={"enabled": True}, expected_version=state.version, actor=rm,
        source=SOURCE, reason="launch",
    )  # fmt: skip
    assert not world.state("production").enabled
    with pytest.raises(PermissionDenied):
        services.approve_change(request, actor=rm, source=SOURCE)
    with pytest.raises(PermissionDenied):
        services.approve_change(request, actor=world.users["editor"], source=SOURCE)
    services.approve_change(request, actor=owner, source=SOURCE, reason="looks right")
    services.apply_change(request, actor=rm, source=SOURCE)
    applied = world.state("production")
    assert applied.enabled
    request.refresh_from_db()
    assert (request.status, request.reviewer) == (ChangeRequest.Status.APPLIED, owner)
    assert "approved by owner" in applied.history.latest("history_id").history_change_reason


def test_apply_revalidates_against_the_current_version(world: World) -> None:
    staging = world.env("staging")
    staging.requires_approval = True
    staging.save()
    state = world.state("staging")
    editor, owner = world.users["editor"], world.users["owner"]
    request = services.request_change(
        state, changes={"rules": RULES_A}, expected_version=state.version, actor=editor,
        source=SOURCE, reason="target free tier",
    )  # fmt: skip
    services.approve_change(request, actor=owner, source=SOURCE)
    services.kill_flag(state, actor=owner, source=SOURCE, reason="meanwhile")  # no-op: off
    FlagStateFactory.create(
        flag=world.flag, environment="staging", enabled=True
    )  # someone moved on
    with pytest.raises(services.VersionConflict):
        services.apply_change(request, actor=owner, source=SOURCE)
    request.refresh_from_db()
    assert request.status == ChangeRequest.Status.STALE
    assert world.state("staging").rules == []


def test_the_admin_turns_an_edit_into_a_change_request(world: World) -> None:
    production = world.env("production")
    production.requires_approval = True
    production.save()
    state = world.state("production")
    client = Client()
    client.force_login(world.users["release_manager"])
    response = client.post(
        reverse("admin:flags_flagstate_change", args=[state.pk]),
        {"enabled": "on", "off_variant": "off", "default_serve": '{"variant": "on"}',
         "rules": "[]", "prerequisites": "[]", "reason": "launch",
         "expected_version": state.version},
    )  # fmt: skip
    request = ChangeRequest.objects.get()
    assert response["Location"] == reverse("admin:flags_changerequest_change", args=[request.pk])
    assert not world.state("production").enabled
    decide = reverse("admin:flags_changerequest_decide", args=[request.pk])
    assert client.post(decide, {"decision": "approve"}).status_code == 403  # the author
    other = Client()
    other.force_login(world.users["owner"])
    page = other.get(response["Location"])
    assert b"Approve" in page.content
    assert other.post(decide, {"decision": "approve"}).status_code == 302
    assert other.post(decide, {"decision": "apply"}).status_code == 302
    assert world.state("production").enabled


def _messages(pubsub: redis.client.PubSub, wait: float, until: int = 0) -> list[dict[str, int]]:
    """The messages that arrive within ``wait`` seconds (stops early once ``until`` came)."""
    found: list[dict[str, int]] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not (until and len(found) >= until):
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message is not None:
            found.append(json.loads(message["data"]))
    return found


@pytest.mark.django_db(transaction=True)
def test_ruleset_version_bumps_and_publishes_on_commit_only(redis_url: str) -> None:
    project = ProjectFactory.create()
    flag = FlagFactory.create(project=project)
    env = project.environments.get(key="development")
    state = services.get_state(flag, env)
    before = Ruleset.objects.get(environment=env).version
    heard: list[tuple[int, int]] = []
    unregister = realtime.register_listener(lambda e, v: heard.append((e, v)))
    pubsub = redis.Redis.from_url(redis_url).pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(realtime.ruleset_channel(env.pk))
    pubsub.get_message(timeout=1)  # the subscription confirmation
    try:

        def change_then_fail() -> None:
            with transaction.atomic():
                services.update_flag_state(
                    state, changes={"enabled": True}, expected_version=state.version,
                    actor=services.Actor.automation("test"), source=services.Source.AUTOMATION,
                )  # fmt: skip
                raise RuntimeError("the caller fails after the service returned")

        with pytest.raises(RuntimeError):
            change_then_fail()
        assert Ruleset.objects.get(environment=env).version == before
        assert _messages(pubsub, 0.3) == []
        assert heard == []

        services.update_flag_state(
            state, changes={"enabled": True}, expected_version=state.version,
            actor=services.Actor.automation("test"), source=services.Source.AUTOMATION,
        )  # fmt: skip
        assert Ruleset.objects.get(environment=env).version == before + 1
        assert _messages(pubsub, 5.0, until=1) == [{"environment": env.pk, "version": before + 1}]
        assert heard == [(env.pk, before + 1)]
    finally:
        unregister()
        pubsub.close()
