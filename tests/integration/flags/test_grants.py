"""Role grants go through flags.grants: owners only, a reason, an audit record, and the guardian
permissions always match the grants (nobody keeps access a grant no longer explains)."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.urls import reverse

from flags import grants, roles
from flags.errors import ChangeRejected
from flags.models import Environment, Project, RoleGrant
from tests.factories import ProjectFactory, UserFactory
from tests.integration.flags.conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def permissions_match_grants(user: User, project: Project) -> bool:
    """What the guardian tables hold for ``user`` in ``project`` is what their grant gives."""
    grant = RoleGrant.objects.filter(user=user, project=project).first()
    return roles.held_permissions(user, project) == roles.granted_permissions(grant)


def fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)  # no cached permission checker


def test_granting_changing_and_revoking_are_audited_with_who_where_and_why(world: World) -> None:
    owner, newcomer = world.users["owner"], UserFactory.create(username="newcomer")
    staging = world.env("staging")

    grant = grants.grant(
        newcomer, world.project, "editor", [staging], actor=owner, reason="joins checkout"
    )
    assert roles.can(fresh(newcomer), "edit_state", staging)
    assert not roles.can(fresh(newcomer), "edit_state", world.env("development"))
    grants.change(
        grant, role="release_manager", environments=[], actor=owner, reason="on call", source="api"
    )
    assert roles.can(fresh(newcomer), "edit_state", world.env("production"))
    grants.revoke(grant, actor=owner, reason="left the team")

    assert not RoleGrant.objects.filter(user=newcomer).exists()
    assert not roles.can(fresh(newcomer), "view", world.project)
    assert permissions_match_grants(newcomer, world.project)
    history = RoleGrant.history.filter(user=newcomer).order_by("history_date")
    rows = [
        (h.history_type, h.role, h.history_user, h.history_source, h.history_change_reason)
        for h in history
    ]
    assert rows == [
        ("+", "editor", owner, "admin", "joins checkout (environments: staging)"),
        ("~", "release_manager", owner, "api", "on call (environments: every environment)"),
        ("-", "release_manager", owner, "admin", "left the team"),
    ]


@pytest.mark.parametrize("role", ["viewer", "editor", "release_manager", "outsider"])
def test_only_owners_grant_change_or_revoke(world: World, role: str) -> None:
    actor, viewer = world.users[role], world.users["viewer"]
    existing = RoleGrant.objects.get(user=viewer, project=world.project)
    outsider = UserFactory.create(username="someone")
    with pytest.raises(PermissionDenied):
        grants.grant(outsider, world.project, "owner", actor=actor, reason="please")
    with pytest.raises(PermissionDenied):
        grants.change(existing, role="owner", actor=actor, reason="please")
    with pytest.raises(PermissionDenied):
        grants.revoke(existing, actor=actor, reason="please")
    existing.refresh_from_db()
    assert existing.role == "viewer"
    assert not RoleGrant.objects.filter(user=outsider).exists()


def test_bad_input_names_the_field_and_writes_nothing(world: World) -> None:
    owner, newcomer = world.users["owner"], UserFactory.create(username="newcomer")
    elsewhere = ProjectFactory.create(key="other")
    foreign = Environment.objects.get(project=elsewhere, key="production")
    with pytest.raises(ChangeRejected) as rejected:
        grants.grant(newcomer, world.project, "admin", [foreign], actor=owner, reason=" ")
    assert {e.field for e in rejected.value.errors} == {"role", "environments", "reason"}
    assert not RoleGrant.objects.filter(user=newcomer).exists()
    assert roles.held_permissions(newcomer, world.project) == set()


def test_the_last_owner_can_be_neither_demoted_nor_revoked(world: World) -> None:
    owner = world.users["owner"]
    mine = RoleGrant.objects.get(user=owner, project=world.project)
    with pytest.raises(ChangeRejected, match="without an owner"):
        grants.change(mine, role="viewer", actor=owner, reason="stepping back")
    with pytest.raises(ChangeRejected, match="without an owner"):
        grants.revoke(mine, actor=owner, reason="leaving")
    second = grants.grant(
        world.users["editor"], world.project, "owner", actor=owner, reason="co-owner"
    )
    grants.revoke(mine, actor=fresh(second.user), reason="handed over")
    assert not roles.can(fresh(owner), "manage", world.project)


def test_the_service_refuses_to_move_a_grant_to_another_user(world: World) -> None:
    viewer, outsider = world.users["viewer"], world.users["outsider"]
    grant = RoleGrant.objects.get(user=viewer, project=world.project)
    grant.user = outsider  # what a form bound to the grant would do
    with pytest.raises(ChangeRejected) as rejected:
        grants.change(grant, role="viewer", actor=world.users["owner"], reason="reassign")
    assert [e.field for e in rejected.value.errors] == ["user"]
    assert RoleGrant.objects.get(pk=grant.pk).user == viewer
    assert roles.held_permissions(outsider, world.project) == set()
    assert permissions_match_grants(viewer, world.project)


def test_reassigning_in_the_admin_leaves_nobody_with_access_a_grant_does_not_explain(
    world: World,
) -> None:
    viewer, outsider = world.users["viewer"], world.users["outsider"]
    grant = RoleGrant.objects.get(user=viewer, project=world.project)
    client = Client()
    client.force_login(world.users["owner"])
    url = reverse("admin:flags_rolegrant_change", args=[grant.pk])
    page = client.get(url).content.decode()
    assert 'name="user"' not in page
    assert 'name="project"' not in page

    # A hand-made POST with a user and project is ignored: only the role changes.
    other = ProjectFactory.create(key="other")
    posted = {"user": outsider.pk, "project": other.pk, "role": "editor", "reason": "moving"}
    assert client.post(url, posted).status_code == 302
    grant.refresh_from_db()
    assert (grant.user, grant.project, grant.role) == (viewer, world.project, "editor")
    for user in (viewer, outsider):
        for project in (world.project, other):
            assert permissions_match_grants(user, project)
    assert not roles.can(fresh(outsider), "view", world.project)


def test_revoking_in_the_admin_asks_for_a_reason_and_removes_every_permission(
    world: World,
) -> None:
    editor = world.users["editor"]
    grant = RoleGrant.objects.get(user=editor, project=world.project)
    client = Client()
    client.force_login(world.users["owner"])
    url = reverse("admin:flags_rolegrant_delete", args=[grant.pk])
    no_reason = client.post(url, {"post": "yes", "reason": ""})
    assert no_reason.status_code == 200
    assert b"Give a reason" in no_reason.content
    assert RoleGrant.objects.filter(pk=grant.pk).exists()

    done = client.post(url, {"post": "yes", "reason": "moved to another team"})
    assert done.status_code == 302
    assert not RoleGrant.objects.filter(pk=grant.pk).exists()
    assert roles.held_permissions(editor, world.project) == set()
    (revoked,) = RoleGrant.history.filter(user=editor, history_type="-")
    assert (revoked.history_user, revoked.history_change_reason) == (
        world.users["owner"],
        "moved to another team",
    )
    changelist = client.get(reverse("admin:flags_rolegrant_changelist")).content.decode()
    assert "delete_selected" not in changelist  # no bulk delete around the reason


def test_a_non_owner_cannot_open_the_revoke_page(world: World) -> None:
    grant = RoleGrant.objects.get(user=world.users["viewer"], project=world.project)
    client = Client()
    client.force_login(world.users["release_manager"])
    url = reverse("admin:flags_rolegrant_delete", args=[grant.pk])
    assert client.post(url, {"post": "yes", "reason": "x"}).status_code == 403
    assert RoleGrant.objects.filter(pk=grant.pk).exists()


def race_demotions(project: Project, pairs: list[tuple[User, User]]) -> list[str]:
    """Each (actor, target) pair demotes target to viewer on its own thread and connection,
    all released at once; returns what happened to each."""
    barrier = threading.Barrier(len(pairs))
    outcomes: list[str] = []

    def demote(actor: User, target: User) -> None:
        try:
            barrier.wait(timeout=10)
            grant = RoleGrant.objects.get(user=target, project=project)
            grants.change(grant, role="viewer", actor=fresh(actor), reason="race")
            outcomes.append("demoted")
        except (ChangeRejected, PermissionDenied) as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=demote, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner(world: World) -> None:
    """Two real connections race; the project lock makes the second see the first's result,
    so the project never ends up without an owner."""
    owner = world.users["owner"]
    for round_ in range(4):
        other = UserFactory.create(username=f"co-owner-{round_}")
        grants.grant(other, world.project, "owner", actor=owner, reason="co-owner")
        outcomes = race_demotions(world.project, [(owner, other), (other, owner)])
        assert outcomes.count("demoted") == 1, outcomes
        assert len(outcomes) == 2, outcomes
        owners = RoleGrant.objects.filter(project=world.project, role="owner")
        assert owners.count() == 1
        for user in (owner, other):
            assert permissions_match_grants(user, world.project)
        owner = owners.get().user
