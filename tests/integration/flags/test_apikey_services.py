"""API keys through apikeys.services: the raw key is shown once on a page of its own (never in
a cookie, the session or a message), issue and revoke are audited, and a bulk revocation
revokes every selected key or none, naming the one that stopped it."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from apikeys import services
from apikeys.models import ApiKey, hash_key
from tests.factories import ProjectFactory, UserFactory, grant
from tests.integration.flags.conftest import World
from tests.integration.flags.test_apikey_admin import CHANGELIST, issue_in_admin, logged_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_the_raw_key_page_is_not_cached_and_the_key_is_nowhere_else(world: World) -> None:
    owner = logged_in(world, "owner")
    response = owner.post(
        f"{CHANGELIST}add/",
        {
            "environment": world.env("production").pk,
            "kind": "server",
            "name": "checkout",
            "reason": "checkout service goes live",
        },
    )
    assert response.status_code == 200
    key = ApiKey.objects.get()
    raw = response.context["raw_key"]
    assert hash_key(raw) == key.digest
    assert raw in response.content.decode()
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-store", "no-cache", "private"} <= cache_control
    assert response["Pragma"] == "no-cache"
    # Not in any cookie set by the response (the messages cookie is the classic leak), not in
    # the session, not queued as a message, and no later page shows it.
    assert all(raw not in morsel.value for morsel in response.cookies.values())
    assert all(raw not in str(value) for value in owner.session.values())
    assert list(get_messages(response.wsgi_request)) == []
    for url in (CHANGELIST, f"{CHANGELIST}{key.pk}/change/", f"{CHANGELIST}add/"):
        later = owner.get(url)
        assert later.status_code == 200
        assert raw not in later.content.decode()
        assert all(raw not in m.value for m in later.cookies.values())
    (issued,) = key.history.all()
    assert (issued.history_user, issued.history_source, issued.history_change_reason) == (
        world.users["owner"],
        "admin",
        "checkout service goes live",
    )


def test_issuing_without_a_reason_is_a_form_error_and_issues_nothing(world: World) -> None:
    owner = logged_in(world, "owner")
    response = owner.post(
        f"{CHANGELIST}add/",
        {"environment": world.env("production").pk, "kind": "server", "name": "x", "reason": ""},
    )
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not ApiKey.objects.exists()
    assert "fs_srv_" not in response.content.decode()


def test_the_service_checks_the_role_and_the_input(world: World) -> None:
    env = world.env("production")
    with pytest.raises(PermissionDenied):
        services.issue(env, kind="server", name="x", actor=world.users["release_manager"],
                       reason="wants one")  # fmt: skip
    with pytest.raises(ValidationError) as invalid:
        services.issue(env, kind="root", name=" ", actor=world.users["owner"], reason="")
    assert set(invalid.value.message_dict) == {"kind", "name", "reason"}
    assert not ApiKey.objects.exists()


def test_revoke_is_audited_and_revoking_twice_records_once(world: World) -> None:
    owner = world.users["owner"]
    key, _ = services.issue(world.env("staging"), kind="client", name="web", actor=owner,
                            reason="web app")  # fmt: skip
    services.revoke(key, actor=owner, reason="rotated", source="api")
    services.revoke(key, actor=owner, reason="again")
    key.refresh_from_db()
    assert key.revoked_by == owner
    rows = [(h.history_type, h.history_source, h.history_change_reason)
            for h in key.history.order_by("history_date")]  # fmt: skip
    assert rows == [("+", "admin", "web app"), ("~", "api", "rotated")]


def _keys(world: World, count: int) -> list[ApiKey]:
    return [
        services.provision(world.env("production"), kind="server", name=f"svc-{i}")[0]
        for i in range(count)
    ]


def test_bulk_revoke_with_a_key_the_user_may_not_revoke_changes_nothing(world: World) -> None:
    """The blocked key comes last, after keys that would each be revocable on their own."""
    mine = _keys(world, 3)
    other_project = ProjectFactory.create(key="other")
    theirs, _ = services.provision(
        other_project.environments.get(key="production"), kind="server", name="not-yours"
    )
    with pytest.raises(PermissionDenied, match=r"Nothing was revoked.*not-yours"):
        services.revoke_many([*mine, theirs], actor=world.users["owner"], reason="cleanup")
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 0
    assert all(k.history.count() == 1 for k in ApiKey.objects.all())

    owner = logged_in(world, "owner")
    selected = [k.pk for k in mine] + [theirs.pk]
    page = owner.post(
        CHANGELIST,
        {"action": "revoke_selected", "_selected_action": selected, "confirm": "yes",
         "reason": "cleanup"},
    )  # fmt: skip
    assert page.status_code == 200
    assert f"Nothing was revoked: key #{theirs.pk}" in page.content.decode()
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 0


def test_bulk_revoke_by_an_owner_of_both_projects_revokes_all(world: World) -> None:
    mine = _keys(world, 2)
    other_project = ProjectFactory.create(key="other")
    grant(world.users["owner"], other_project, "owner")
    theirs, _ = services.provision(
        other_project.environments.get(key="staging"), kind="client", name="other-web"
    )
    owner = logged_in(world, "owner")
    done = owner.post(
        CHANGELIST,
        {"action": "revoke_selected", "_selected_action": [k.pk for k in [*mine, theirs]],
         "confirm": "yes", "reason": "incident 42"},
    )  # fmt: skip
    assert done.status_code == 302
    revoked = ApiKey.objects.filter(revoked_at__isnull=False)
    assert revoked.count() == 3
    assert {k.history.latest().history_change_reason for k in revoked} == {"incident 42"}


def test_a_bulk_revoke_without_a_reason_names_the_field(world: World) -> None:
    keys = _keys(world, 2)
    with pytest.raises(ValidationError) as invalid:
        services.revoke_many(keys, actor=world.users["owner"], reason="  ")
    assert set(invalid.value.message_dict) == {"reason"}
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 0


def test_a_superuser_sees_the_key_once_too(world: World) -> None:
    admin = UserFactory.create(username="root", is_superuser=True)
    client = Client()
    client.force_login(admin)
    raw = issue_in_admin(client, world, name="ops")
    key = ApiKey.objects.get(name="ops")
    assert key.created_by == admin
    assert hash_key(raw) == key.digest
