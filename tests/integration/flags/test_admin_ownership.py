# mypy: disallow-untyped-calls=False
"""The owner's admin pages (projects, environments, role grants) and the segment delete path,
role by role through the real admin: owners change, others with a role look, no role is 403."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from flags import services
from flags.models import Environment, FlagState, Project, RoleGrant, Ruleset, Segment
from tests.factories import FlagStateFactory, SegmentFactory
from tests.integration.flags.conftest import ROLES, World

EVERYONE = (*ROLES, "outsider")


def _client(world: World, role: str) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


def _expected(role: str, owner_status: int, viewer_status: int) -> int:
    if role == "outsider":
        return 403
    return owner_status if role == "owner" else viewer_status


@pytest.mark.parametrize("role", EVERYONE)
def test_project_admin(world: World, role: str) -> None:
    client = _client(world, role)
    change = reverse("admin:flags_project_change", args=[world.project.pk])
    assert client.get(reverse("admin:flags_project_changelist")).status_code == (
        403 if role == "outsider" else 200
    )
    assert client.get(change).status_code == _expected(role, 200, 200)
    response = client.post(
        change, {"name": "Shop 2", "reason": "rename", "expected_version": world.project.version}
    )
    assert response.status_code == _expected(role, 302, 403)
    project = Project.objects.get(pk=world.project.pk)
    assert project.name == ("Shop 2" if role == "owner" else "Shop")
    delete = reverse("admin:flags_project_delete", args=[world.project.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403  # nobody deletes projects
    assert Project.objects.filter(pk=world.project.pk).exists()


@pytest.mark.parametrize("role", EVERYONE)
def test_environment_admin(world: World, role: str) -> None:
    client = _client(world, role)
    env = world.env("production")
    change = reverse("admin:flags_environment_change", args=[env.pk])
    assert client.get(change).status_code == _expected(role, 200, 200)
    form = {
        "name": "Prod", "sort_order": 2, "is_production": "on", "requires_approval": "on",
        "reason": "four eyes", "expected_version": env.version,
    }  # fmt: skip
    assert client.post(change, form).status_code == _expected(role, 302, 403)
    env.refresh_from_db()
    assert (env.name, env.requires_approval) == (
        ("Prod", True) if role == "owner" else ("Production", False)
    )
    add = reverse("admin:flags_environment_add")
    new = {"project": world.project.pk, "key": "qa", "name": "QA", "sort_order": 5}
    assert client.post(add, new).status_code == _expected(role, 302, 403)
    assert Environment.objects.filter(key="qa").exists() == (role == "owner")


def test_production_environment_changes_need_a_reason_shown_on_the_form(world: World) -> None:
    env = world.env("production")
    change = reverse("admin:flags_environment_change", args=[env.pk])
    form = {"name": "Prod", "sort_order": 2, "is_production": "on", "expected_version": env.version}
    response = _client(world, "owner").post(change, form)
    assert response.status_code == 200
    assert b"Give a reason" in response.content
    env.refresh_from_db()
    assert env.name == "Production"


@pytest.mark.parametrize("role", EVERYONE)
def test_role_grant_admin(world: World, role: str) -> None:
    client = _client(world, role)
    existing = RoleGrant.objects.get(user=world.users["viewer"], project=world.project)
    owner_only = 200 if role == "owner" else 403
    assert client.get(reverse("admin:flags_rolegrant_changelist")).status_code == owner_only
    change = reverse("admin:flags_rolegrant_change", args=[existing.pk])
    assert client.get(change).status_code == owner_only
    add = reverse("admin:flags_rolegrant_add")
    form = {"user": world.users["outsider"].pk, "project": world.project.pk, "role": "viewer"}
    if role == "owner":
        no_reason = client.post(add, form)
        assert no_reason.status_code == 200
        assert b"Give a reason" in no_reason.content
    form["reason"] = "joins the team"
    assert client.post(add, form).status_code == (302 if role == "owner" else 403)
    granted = RoleGrant.objects.filter(user=world.users["outsider"]).exists()
    assert granted == (role == "owner")
    promote = {"role": "owner", "reason": "takes over the project"}
    assert client.post(change, promote).status_code == (302 if role == "owner" else 403)
    existing.refresh_from_db()
    assert existing.role == ("owner" if role == "owner" else "viewer")


def _segment_in_use(world: World) -> Segment:
    segment = SegmentFactory.create(project=world.project, key="beta")
    rules = [
        {
            "id": "beta-users",
            "conditions": [{"operator": "in_segment", "values": ["beta"]}],
            "serve": {"variant": "on"},
        }
    ]
    FlagStateFactory.create(flag=world.flag, environment="production", enabled=True, rules=rules)
    return segment


@pytest.mark.parametrize("role", EVERYONE)
def test_segment_delete(world: World, role: str) -> None:
    segment = SegmentFactory.create(project=world.project, key="unused")
    client = _client(world, role)
    url = reverse("admin:flags_segment_delete", args=[segment.pk])
    page = client.get(url)
    response = client.post(url, {"post": "yes", "reason": "cleanup"})
    exists = Segment.objects.filter(pk=segment.pk).exists()
    if role in ("viewer", "outsider"):
        assert (page.status_code, response.status_code, exists) == (403, 403, True)
        return
    assert page.status_code == 200
    assert b"Yes, delete it" in page.content
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not exists
    deletion = Segment.history.filter(id=segment.pk).latest("history_id")
    assert (deletion.history_type, deletion.history_change_reason) == ("-", "cleanup")
    assert deletion.history_user == world.users[role]
    document = Ruleset.objects.get(environment__key="production").document
    assert "unused" not in document["segments"]


def test_a_segment_in_use_is_not_deleted_and_the_page_says_why(world: World) -> None:
    segment = _segment_in_use(world)
    before = Ruleset.objects.get(environment__key="production").version
    client = _client(world, "editor")
    url = reverse("admin:flags_segment_delete", args=[segment.pk])
    page = client.get(url).content.decode()
    assert "new-pdf-engine@production (beta-users)" in page
    assert "Yes, delete it" not in page
    response = client.post(url, {"post": "yes", "reason": "cleanup"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Not deleted:" in html
    assert "unknown segment" in html
    assert Segment.objects.filter(pk=segment.pk).exists()
    assert Ruleset.objects.get(environment__key="production").version == before
    state = FlagState.objects.get(flag=world.flag, environment__key="production")
    assert state.rules[0]["conditions"][0]["values"] == ["beta"]


def test_the_bulk_delete_action_is_not_offered_for_segments(world: World) -> None:
    segment = SegmentFactory.create(project=world.project, key="unused")
    client = _client(world, "owner")
    listing = client.get(reverse("admin:flags_segment_changelist")).content
    assert b"delete_selected" not in listing
    client.post(
        reverse("admin:flags_segment_changelist"),
        {"action": "delete_selected", "_selected_action": [segment.pk], "post": "yes"},
    )
    assert Segment.objects.filter(pk=segment.pk).exists()
    with pytest.raises(services.ChangeRejected):  # the service refuses the same way
        services.delete_segment(
            _segment_in_use(world), actor=world.users["owner"], source="api", reason="x"
        )


def test_a_stale_environment_edit_is_refused_and_keeps_the_input(world: World) -> None:
    env = world.env("staging")
    change = reverse("admin:flags_environment_change", args=[env.pk])
    owner = _client(world, "owner")
    first = {"name": "Staging A", "sort_order": 1, "expected_version": env.version}
    assert owner.post(change, first).status_code == 302
    stale = {"name": "Staging B", "sort_order": 1, "requires_approval": "on",
             "expected_version": env.version}  # fmt: skip
    response = owner.post(change, stale)
    assert response.status_code == 200
    assert b"Someone else saved this while you were editing it" in response.content
    assert b"Staging B" in response.content  # the second person's input is still there
    env.refresh_from_db()
    assert (env.name, env.requires_approval, env.version) == ("Staging A", False, 2)
