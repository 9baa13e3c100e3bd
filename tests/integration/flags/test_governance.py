"""Governance by effect: every change that alters evaluation is authorized per environment it
alters, whatever object it edits; the permission matrix, the two walk-arounds, a real race,
atomic bulk actions and the change-request API round trip."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection, transaction
from django.test import Client, RequestFactory
from django.urls import reverse

from apikeys import services as apikey_services
from apikeys.models import ApiKey
from flags import services
from flags.models import ChangeRequest, Environment, Flag, FlagState, RoleGrant, Ruleset, Segment
from flags.services.effects import changed_flags
from tests.factories import FlagFactory, FlagStateFactory, ProjectFactory, UserFactory, grant
from tests.integration.flags.conftest import ROLES, World

API = services.Source.API
FREE_US_UK = [
    {
        "id": "free-us-uk",
        "conditions": [
            {"attribute": "plan", "operator": "in", "values": ["free"]},
            {"attribute": "country", "operator": "in", "values": ["US", "GB"]},
        ],
    }
]
ROLLOUT_25 = {"rollout": {"variants": [{"variant": "on", "weight": 25000},
                                       {"variant": "off", "weight": 75000}]}}  # fmt: skip


def ruleset(env: str) -> dict[str, Any]:
    doc: dict[str, Any] = Ruleset.objects.get(environment__key=env).document
    return doc


def require_approval(world: World, env: str = "production") -> Environment:
    environment = world.env(env)
    environment.requires_approval = True
    environment.save()
    return environment


@pytest.fixture
def chatbot(world: World) -> tuple[Segment, FlagState]:
    """Seed 004's ai-chatbot: on in production for accounts in segment free-us-uk."""
    segment = Segment.objects.create(
        project=world.project, key="free-us-uk", name="Free US/UK", rules=FREE_US_UK
    )
    flag = FlagFactory.create(project=world.project, key="ai-chatbot")
    rules = [{"id": "free", "conditions": [{"operator": "in_segment", "values": ["free-us-uk"]}],
              "serve": {"variant": "on"}}]  # fmt: skip
    state = FlagStateFactory.create(flag=flag, environment="production", enabled=True, rules=rules)
    return segment, state


# --- The two walk-arounds of the issue, as regressions ------------------------------------


def test_a_segment_edit_that_reaches_production_needs_the_production_approval(
    world: World, chatbot: tuple[Segment, FlagState]
) -> None:
    segment, state = chatbot
    require_approval(world)
    before = ruleset("production")
    editor = world.users["editor"]
    de = [{"id": "free-us-uk", "conditions": [FREE_US_UK[0]["conditions"][0],
           {"attribute": "country", "operator": "in", "values": ["US", "GB", "DE"]}]}]  # fmt: skip
    with pytest.raises(services.ApprovalRequired):
        services.update_segment(
            segment, changes={"rules": de}, expected_version=segment.version, actor=editor,
            source=API, reason="add Germany",
        )  # fmt: skip
    outcome = services.submit(
        [services.Edit(services.SEGMENT, segment, {"rules": de}, segment.version)],
        actor=editor, source=API, reason="add Germany", mode=services.Mode.AUTO,
    )  # fmt: skip
    assert ruleset("production") == before  # nothing applied
    request = outcome.change_request
    assert request.status == ChangeRequest.Status.PENDING
    assert [e["environment"] for e in request.preview] == ["production"]
    assert [f["flag"] for f in request.preview[0]["flags"]] == ["ai-chatbot"]
    services.approve_change(request, actor=world.users["owner"], source=API, reason="ok")
    services.apply_change(request, actor=editor, source=API)
    assert ruleset("production")["segments"]["free-us-uk"]["rules"] == de
    latest = FlagState.history.filter(id=state.pk).latest("history_id")
    assert latest.history_change_reason.startswith("changed by segment free-us-uk edit")


def test_a_salt_that_rebuckets_production_needs_the_production_permission(world: World) -> None:
    state = FlagStateFactory.create(
        flag=world.flag, environment="production", enabled=True, default_serve=ROLLOUT_25
    )
    before = ruleset("production")
    flag = Flag.objects.get(pk=world.flag.pk)
    outcome = services.submit(
        [services.Edit(services.FLAG, flag, {"salt": "rebucket"}, flag.version)],
        actor=world.users["editor"], source=API, reason="tidy", mode=services.Mode.AUTO,
    )  # fmt: skip
    assert outcome.change_request is not None
    assert not outcome.applied
    assert ruleset("production") == before
    assert FlagState.objects.get(pk=state.pk).version == state.version


def test_a_key_scoped_to_development_cannot_alter_production(
    world: World, chatbot: tuple[Segment, FlagState]
) -> None:
    segment, _ = chatbot
    dev = world.env("development")
    _, raw = apikey_services.provision(
        dev, kind="management", name="m", created_by=world.users["owner"]
    )
    before = ruleset("production")
    response = Client().patch(
        f"/api/v1/projects/shop/segments/{segment.key}",
        {"included": ["acct-1"], "version": segment.version, "reason": "x"},
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}",
    )  # fmt: skip
    assert response.status_code == 403, response.content
    assert "production" in response.json()["detail"]
    assert ruleset("production") == before


# --- The permission matrix ------------------------------------------------------------------

KINDS = ("definition", "state", "segment", "archive", "revert", "kill", "serve", "grant", "key")
# What each role gets in production (requires approval) and in development (does not).
EXPECTED = {
    "production": {
        "viewer": dict.fromkeys(KINDS, "refused"),
        "editor": {"definition": "request", "state": "request", "segment": "request",
                   "archive": "refused", "revert": "request", "kill": "refused",
                   "serve": "refused", "grant": "refused", "key": "refused"},
        "release_manager": {"definition": "request", "state": "request", "segment": "request",
                            "archive": "request", "revert": "request", "kill": "changed",
                            "serve": "changed", "grant": "refused", "key": "refused"},
        "owner": {"definition": "request", "state": "request", "segment": "request",
                  "archive": "request", "revert": "request", "kill": "changed",
                  "serve": "changed", "grant": "allowed", "key": "allowed"},
    },
    "development": {
        "viewer": dict.fromkeys(KINDS, "refused"),
        "editor": {"definition": "changed", "state": "changed", "segment": "changed",
                   "archive": "refused", "revert": "changed", "kill": "changed",
                   "serve": "changed", "grant": "refused", "key": "refused"},
        # An archived flag is served off for a grace period, so archiving one that is off in
        # production changes nothing there.
        "release_manager": {**dict.fromkeys(KINDS, "changed"), "grant": "refused",
                            "key": "refused"},
        "owner": {**dict.fromkeys(KINDS, "changed"), "grant": "allowed", "key": "allowed"},
    },
}  # fmt: skip


def _matrix_world(world: World, env_key: str) -> tuple[Flag, Segment, FlagState, FlagState]:
    """A release flag using a segment and an ops flag, both on only in ``env_key``, so every
    evaluation change lands in that one environment."""
    segment = Segment.objects.create(project=world.project, key="beta", name="Beta",
                                     included=["acct-1"])  # fmt: skip
    rules = [{"id": "beta", "conditions": [{"operator": "in_segment", "values": ["beta"]}],
              "serve": {"variant": "on"}}]  # fmt: skip
    state = FlagStateFactory.create(flag=world.flag, environment=env_key, enabled=True,
                                    rules=rules, default_serve=ROLLOUT_25)  # fmt: skip
    ops = FlagFactory.create(project=world.project, key="maintenance-mode", kind="ops")
    ops_state = FlagStateFactory.create(flag=ops, environment=env_key, enabled=False)
    return (
        Flag.objects.get(pk=world.flag.pk),
        segment,
        FlagState.objects.get(pk=state.pk),
        ops_state,
    )


def _api(client: Client, method: str, url: str, body: dict[str, Any]) -> Any:
    return getattr(client, method)(f"/api/v1/projects/shop{url}", body,
                                   content_type="application/json")  # fmt: skip


@dataclass(frozen=True)
class Cell:
    """One kind of change, read fresh from the database for each attempt."""

    world: World
    env_key: str
    user: User

    @property
    def flag(self) -> Flag:
        return Flag.objects.get(pk=self.world.flag.pk)

    @property
    def state(self) -> FlagState:
        return FlagState.objects.get(flag=self.world.flag, environment__key=self.env_key)

    @property
    def ops_state(self) -> FlagState:
        return FlagState.objects.get(flag__key="maintenance-mode", environment__key=self.env_key)

    @property
    def segment(self) -> Segment:
        return Segment.objects.get(project=self.world.project, key="beta")

    def first_version(self) -> int:
        return int(FlagState.history.filter(id=self.state.pk).earliest("history_id").history_id)


def _proposal(kind: str, cell: Cell) -> dict[str, Any]:
    """The change-request body for a direct API write that answered "approval required"."""
    flag, state, env = cell.flag, cell.state, cell.env_key
    on_state = {"kind": "state", "flag": flag.key, "environment": env}
    return {
        "definition": {"target": {"kind": "flag", "flag": flag.key},
                       "changes": {"salt": "new-salt"}, "version": flag.version},
        "state": {"target": on_state, "changes": {"defaultServe": {"variant": "off"}},
                  "version": state.version},
        "segment": {"target": {"kind": "segment", "segment": "beta"},
                    "changes": {"included": ["acct-2"]}, "version": cell.segment.version},
        "archive": {"target": {"kind": "archive", "flag": flag.key}, "version": flag.version},
        "revert": {"target": on_state, "historyId": cell.first_version(),
                   "version": state.version},
    }[kind] | {"reason": "r"}  # fmt: skip


def _through_api(kind: str, cell: Cell, client: Client) -> Any:
    flag, state, env = cell.flag, cell.state, cell.env_key
    s = f"/flags/{flag.key}/environments/{env}"
    if kind == "definition":
        return _api(client, "patch", f"/flags/{flag.key}",
                    {"salt": "new-salt", "version": flag.version, "reason": "r"})  # fmt: skip
    if kind == "state":
        return _api(client, "patch", s, {"defaultServe": {"variant": "off"},
                                         "version": state.version, "reason": "r"})  # fmt: skip
    if kind == "segment":
        body = {"included": ["acct-2"], "version": cell.segment.version, "reason": "r"}
        return _api(client, "patch", "/segments/beta", body)
    if kind == "archive":
        return client.delete(
            f"/api/v1/projects/shop/flags/{flag.key}?version={flag.version}&reason=r"
        )
    if kind == "revert":
        body = {"historyId": cell.first_version(), "version": state.version, "reason": "r"}
        return _api(client, "post", f"{s}/revert", body)
    if kind == "kill":
        return _api(client, "post", f"{s}/kill", {"reason": "incident"})
    if kind == "serve":
        return _api(client, "post", f"/flags/maintenance-mode/environments/{env}/serve",
                    {"variant": "on", "reason": "maintenance window"})  # fmt: skip
    if kind == "grant":
        return _api(client, "post", "/role-grants",
                    {"user": "newcomer", "role": "viewer", "reason": "joins"})  # fmt: skip
    return _api(client, "post", f"/environments/{env}/api-keys",
                {"kind": "server", "name": "svc", "reason": "new service"})  # fmt: skip


def _form_data(obj: Any, owner: User) -> dict[str, Any]:
    """What the admin's change form for ``obj`` posts back unchanged (built as its owner)."""
    request = RequestFactory().get("/")
    request.user = owner
    form = admin.site._registry[type(obj)].get_form(request, obj, change=True)(instance=obj)
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field.widget, forms.CheckboxInput):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(v) for v in value]
        elif value is not None:
            data[name] = value if isinstance(value, str) else field.widget.format_value(value)
    return data


def _through_admin(kind: str, cell: Cell, client: Client) -> Any:
    owner, flag, state, env = cell.world.users["owner"], cell.flag, cell.state, cell.env_key
    change = "admin:flags_{}_change"
    if kind == "definition":
        data = {**_form_data(flag, owner), "salt": "new-salt", "reason": "r"}
        return client.post(reverse(change.format("flag"), args=[flag.pk]), data)
    if kind == "state":
        data = {**_form_data(state, owner), "default_serve": '{"variant": "off"}', "reason": "r"}
        return client.post(reverse(change.format("flagstate"), args=[state.pk]), data)
    if kind == "segment":
        segment = cell.segment
        data = {**_form_data(segment, owner), "included": "acct-2", "reason": "r"}
        return client.post(reverse(change.format("segment"), args=[segment.pk]), data)
    if kind == "archive":
        return client.post(reverse("admin:flags_flag_changelist"),
                           {"action": "archive_flags", "_selected_action": [flag.pk],
                            "confirm": "yes", "reason": "r"})  # fmt: skip
    if kind == "revert":
        url = reverse("admin:flags_flag_revert", args=[flag.pk, state.pk, cell.first_version()])
        return client.post(url, {"reason": "r", "expected_version": state.version})
    if kind == "kill":
        return client.post(reverse("admin:flags_flagstate_kill", args=[state.pk]),
                           {"confirm": "yes", "reason": "incident"})  # fmt: skip
    if kind == "serve":
        return client.post(reverse("admin:flags_flagstate_serve", args=[cell.ops_state.pk]),
                           {"confirm": "yes", "variant": "on", "reason": "go"})  # fmt: skip
    if kind == "grant":
        newcomer = User.objects.get(username="newcomer")
        return client.post(reverse("admin:flags_rolegrant_add"),
                           {"user": newcomer.pk, "project": cell.world.project.pk,
                            "role": "viewer", "reason": "joins"})  # fmt: skip
    return client.post(reverse("admin:apikeys_apikey_add"),
                       {"environment": cell.world.env(env).pk, "kind": "server", "name": "svc",
                        "reason": "new service"})  # fmt: skip


def _outcome(kind: str, channel: str, cell: Cell, client: Client) -> str:
    """Makes one change through one channel; says what happened to the environment's ruleset
    (changed / change request created / refused), or for roles and keys allowed / refused."""
    env_key = cell.env_key
    other = "development" if env_key == "production" else "production"
    before, untouched = ruleset(env_key), ruleset(other)
    requests = ChangeRequest.objects.count()
    attempt = _through_api if channel == "api" else _through_admin
    response = attempt(kind, cell, client)
    assert response.status_code < 500, response.content
    if channel == "api" and response.status_code == 409 and response.json()["approvalRequired"]:
        # The answer says where to propose it; the same change goes there.
        proposed = _api(client, "post", "/change-requests", _proposal(kind, cell))
        assert proposed.status_code == 201, proposed.content
    elif channel == "api" and response.status_code >= 400:
        assert response.status_code == 403, response.content
    # The effect never leaks into the other environment's evaluation.
    assert changed_flags(untouched, ruleset(other)) == []
    changed = bool(changed_flags(before, ruleset(env_key)))
    created = ChangeRequest.objects.count() - requests
    if kind in ("grant", "key"):
        assert not changed
        assert not created
        model = RoleGrant if kind == "grant" else ApiKey
        lookup = {"user__username": "newcomer"} if kind == "grant" else {"name": "svc"}
        return "allowed" if model.objects.filter(**lookup).exists() else "refused"
    assert not (changed and created)
    return "changed" if changed else "request" if created == 1 else "refused"


@pytest.mark.parametrize("channel", ["api", "admin"])
@pytest.mark.parametrize("env_key", ["production", "development"])
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(world: World, channel: str, role: str, env_key: str) -> None:
    """One row of the matrix: every kind of change, each in a savepoint rolled back after it,
    so the whole row shares one set-up and a failure shows every cell that differs."""
    require_approval(world)
    _matrix_world(world, env_key)
    User.objects.create(username="newcomer")
    client = Client()
    client.force_login(world.users[role])
    cell = Cell(world, env_key, world.users[role])
    got = {}
    for kind in KINDS:
        savepoint = transaction.savepoint()
        try:
            got[kind] = _outcome(kind, channel, cell, client)
        finally:
            transaction.savepoint_rollback(savepoint)
    assert got == EXPECTED[env_key][role]


def test_a_direct_api_write_that_needs_approval_says_where_to_propose_it(world: World) -> None:
    require_approval(world)
    state = world.state("production")
    client = Client()
    client.force_login(world.users["release_manager"])
    response = _api(client, "patch", "/flags/new-pdf-engine/environments/production",
                    {"enabled": True, "version": state.version, "reason": "launch"})  # fmt: skip
    assert response.status_code == 409
    assert response.json()["approvalRequired"] is True
    assert response.json()["changeRequests"] == "/api/v1/projects/shop/change-requests"


# --- Previews -------------------------------------------------------------------------------


def test_dry_run_previews_without_writing(world: World, chatbot: tuple[Segment, FlagState]) -> None:
    segment, _ = chatbot
    client = Client()
    client.force_login(world.users["release_manager"])
    before = ruleset("production")
    body = {"included": ["acct-9"], "version": segment.version, "reason": "r"}
    response = _api(client, "patch", f"/segments/{segment.key}?dryRun=true", body)
    assert response.status_code == 200, response.content
    preview = response.json()
    assert preview["dryRun"] is True
    assert preview["summary"].startswith("This change alters production for ai-chatbot")
    assert [e["environment"] for e in preview["environments"]] == ["production"]
    assert ruleset("production") == before
    assert Segment.objects.get(pk=segment.pk).version == segment.version


def test_the_admin_previews_a_change_before_saving(
    world: World, chatbot: tuple[Segment, FlagState]
) -> None:
    segment, _ = chatbot
    client = Client()
    client.force_login(world.users["release_manager"])
    page = client.post(
        reverse("admin:flags_segment_change", args=[segment.pk]),
        {"name": segment.name, "description": "", "key_attribute": "targetingKey",
         "included": "acct-9", "excluded": "", "rules": "[]", "reason": "r",
         "expected_version": segment.version, "_preview": "1"},
    )  # fmt: skip
    assert page.status_code == 200
    assert b"Preview only, nothing was saved" in page.content
    assert b"alters production for ai-chatbot" in page.content
    assert Segment.objects.get(pk=segment.pk).version == segment.version


# --- Emergency actions ----------------------------------------------------------------------


def test_emergency_serve_turns_an_ops_flag_on_for_everyone_and_tells_the_approvers(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    require_approval(world)
    world.users["owner"].email = "owner@example.com"
    world.users["owner"].save()
    ops = FlagFactory.create(project=world.project, key="maintenance-mode", kind="ops")
    state = FlagStateFactory.create(flag=ops, environment="production", enabled=False)
    with pytest.raises(services.ChangeRejected) as no_reason:
        services.serve_now(state, variant="on", actor=world.users["release_manager"],
                           source=API, reason="")  # fmt: skip
    assert no_reason.value.errors[0].path == "reason"
    with django_capture_on_commit_callbacks(execute=True):
        served = services.serve_now(state, variant="on", actor=world.users["release_manager"],
                                    source=API, reason="database migration")  # fmt: skip
    doc = ruleset("production")["flags"]["maintenance-mode"]
    assert (doc["enabled"], doc["rules"], doc["defaultServe"]) == (True, [], {"variant": "on"})
    again = services.serve_now(state, variant="on", actor=world.users["release_manager"],
                               source=API, reason="database migration")  # fmt: skip
    assert again.version == served.version  # idempotent
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]
    assert "maintenance-mode" in mail.outbox[0].subject
    back = services.serve_now(state, variant="off", actor=world.users["release_manager"],
                              source=API, reason="done")  # fmt: skip
    assert not back.enabled
    with pytest.raises(services.ChangeRejected):  # a release flag is only ever killed this way
        services.serve_now(world.state("production"), variant="on",
                           actor=world.users["owner"], source=API, reason="x")  # fmt: skip


def test_a_ten_thousand_character_reason_never_breaks_the_kill_switch(world: World) -> None:
    state = FlagStateFactory.create(flag=world.flag, environment="production", enabled=True)
    with pytest.raises(services.ChangeRejected) as too_long:
        services.kill_flag(state, actor=world.users["owner"], source=API, reason="x" * 10_000)
    assert too_long.value.errors[0].path == "reason"
    killed = services.kill_flag(state, actor=world.users["owner"], source=API, reason="x" * 1000)
    assert not killed.enabled


# --- Atomic bulk actions --------------------------------------------------------------------


def test_bulk_archive_with_one_blocked_flag_changes_nothing(world: World) -> None:
    lonely = FlagFactory.create(project=world.project, key="lonely")
    elsewhere = ProjectFactory.create(key="elsewhere")
    foreign = FlagFactory.create(project=elsewhere, key="foreign-flag")
    grant(world.users["release_manager"], elsewhere, "viewer")  # sees it, may not archive it
    client = Client()
    client.force_login(world.users["release_manager"])
    response = client.post(
        reverse("admin:flags_flag_changelist"),
        {"action": "archive_flags", "_selected_action": [lonely.pk, foreign.pk],
         "confirm": "yes", "reason": "cleanup"},
        follow=True,
    )  # fmt: skip
    assert b"Nothing was archived" in response.content
    assert b"foreign-flag" in response.content  # names what blocked it
    assert not Flag.objects.filter(pk__in=[lonely.pk, foreign.pk], archived=True).exists()


def test_bulk_kill_with_one_refused_state_kills_nothing(world: World) -> None:
    dev = FlagStateFactory.create(flag=world.flag, environment="development", enabled=True)
    prod = FlagStateFactory.create(flag=world.flag, environment="production", enabled=True)
    client = Client()
    client.force_login(world.users["editor"])  # may kill in development, not in production
    response = client.post(
        reverse("admin:flags_flagstate_changelist"),
        {"action": "kill_switch", "_selected_action": [dev.pk, prod.pk],
         "confirm": "yes", "reason": "incident"},
    )  # fmt: skip
    assert b"Nothing will be turned off" in response.content
    assert FlagState.objects.get(pk=dev.pk).enabled
    assert FlagState.objects.get(pk=prod.pk).enabled


# --- A real race ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_connections_race_for_one_state_and_exactly_one_wins() -> None:
    project = ProjectFactory.create(key="race")
    flag = FlagFactory.create(project=project, key="raced")
    owner = UserFactory.create(username="racer")
    grant(owner, project, "owner")
    state = FlagState.objects.get(flag=flag, environment__key="development")
    barrier = threading.Barrier(2)
    results: list[str] = []

    def edit(variant: str) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait(timeout=10)
                services.update_flag_state(
                    state, changes={"enabled": True, "default_serve": {"variant": variant}},
                    expected_version=state.version, actor=owner, source=API, reason="race",
                )  # fmt: skip
                results.append("won")
            except services.VersionConflict:
                results.append("409")
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=edit(v)) for v in ("on", "off")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == ["409", "won"]
    saved = FlagState.objects.get(pk=state.pk)
    assert saved.version == state.version + 1


# --- The change-request API round trip ----------------------------------------------------------


def test_change_request_api_round_trip(world: World) -> None:
    require_approval(world)
    state = world.state("production")
    rm, owner = Client(), Client()
    rm.force_login(world.users["release_manager"])
    owner.force_login(world.users["owner"])
    proposal = {
        "target": {"kind": "state", "flag": "new-pdf-engine", "environment": "production"},
        "changes": {"enabled": True, "defaultServe": ROLLOUT_25},
        "version": state.version, "reason": "5% first, then 25%",
    }  # fmt: skip
    created = _api(rm, "post", "/change-requests", proposal)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "pending"
    assert body["environments"] == ["production"]
    after = body["preview"][0]["flags"][0]["after"]
    assert "25%" in after
    assert "25000" not in after
    listed = _api(rm, "get", "/change-requests?status=pending", {}).json()
    assert [r["reason"] for r in listed["results"]] == ["5% first, then 25%"]
    cr = f"/change-requests/{body['id']}"
    assert _api(rm, "post", f"{cr}/approve", {}).status_code == 403  # not your own
    assert _api(owner, "post", f"{cr}/approve", {"reason": "go"}).json()["status"] == "approved"
    assert not world.state("production").enabled
    applied = _api(rm, "post", f"{cr}/apply", {})
    assert applied.json()["status"] == "applied", applied.content
    assert ruleset("production")["flags"]["new-pdf-engine"]["enabled"] is True
    stale = _api(rm, "post", "/change-requests", {**proposal, "version": state.version})
    assert stale.status_code == 409  # its base moved on


def test_approving_applies_at_once_when_the_project_says_so(world: World) -> None:
    require_approval(world)
    world.project.apply_on_approval = True
    world.project.save()
    state = world.state("production")
    request = services.request_change(
        state, changes={"enabled": True}, expected_version=state.version,
        actor=world.users["release_manager"], source=API, reason="launch",
    )  # fmt: skip
    services.approve_change(request, actor=world.users["owner"], source=API, reason="ok")
    request.refresh_from_db()
    assert request.status == ChangeRequest.Status.APPLIED
    assert world.state("production").enabled


def test_a_request_whose_base_moved_on_becomes_stale(world: World) -> None:
    require_approval(world, "staging")
    state = world.state("staging")
    request = services.request_change(
        state, changes={"enabled": True}, expected_version=state.version,
        actor=world.users["editor"], source=API, reason="x",
    )  # fmt: skip
    FlagStateFactory.create(flag=world.flag, environment="staging", rules=[])  # moves it on
    request.refresh_from_db()
    assert request.status == ChangeRequest.Status.STALE
    with pytest.raises(services.VersionConflict):
        services.apply_change(request, actor=world.users["editor"], source=API)


def test_the_admin_offers_serve_to_everyone_for_ops_flags_only(world: World) -> None:
    ops = FlagFactory.create(project=world.project, key="maintenance-mode", kind="ops")
    state = FlagState.objects.get(flag=ops, environment__key="production")
    client = Client()
    client.force_login(world.users["release_manager"])
    page = client.get(reverse("admin:flags_flag_change", args=[ops.pk]))
    serve = reverse("admin:flags_flagstate_serve", args=[state.pk])
    assert serve.encode() in page.content
    release = client.get(reverse("admin:flags_flag_change", args=[world.flag.pk]))
    assert b"serve to everyone now" not in release.content
    confirm = client.get(serve)
    assert confirm.status_code == 200
    assert b'<option value="on"' in confirm.content
    refused = client.post(serve, {"confirm": "yes", "variant": "on", "reason": ""})
    assert b"reason" in refused.content
    assert not FlagState.objects.get(pk=state.pk).enabled
