"""API keys in the admin: owners only, the secret shown once, revocation asks why, and every
issue and revocation is in the key's audit trail."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apikeys.authentication import forget_key
from apikeys.models import ApiKey, hash_key
from tests.integration.flags.conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CHANGELIST = "/admin/apikeys/apikey/"


def logged_in(world: World, role: str) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


def issue_in_admin(client: Client, world: World, name: str = "checkout service") -> str:
    response = client.post(
        f"{CHANGELIST}add/",
        {
            "environment": world.env("production").pk,
            "kind": "server",
            "name": name,
            "reason": "issued in the admin",
        },
    )
    assert response.status_code == 200
    shown = re.findall(r"fs_srv_[A-Za-z0-9_\-]{40,}", response.content.decode())
    assert len(set(shown)) == 1, "the raw key is on the page that answers the issuing POST"
    return str(shown[0])


def test_an_owner_issues_a_key_shown_once_and_stored_hashed(world: World) -> None:
    owner = logged_in(world, "owner")
    raw = issue_in_admin(owner, world)
    key = ApiKey.objects.get()
    assert key.digest == hash_key(raw)
    assert raw not in {key.digest, key.prefix}
    assert raw.startswith(key.prefix)
    page = owner.get(f"{CHANGELIST}{key.pk}/change/").content.decode()
    assert raw not in page
    (issued,) = key.history.all()
    assert (issued.history_user, issued.history_source, issued.history_type) == (
        world.users["owner"],
        "admin",
        "+",
    )
    assert "issued in the admin" in page  # the audit trail on the key's page


def test_revoking_asks_for_a_reason_and_records_who_and_why(world: World) -> None:
    owner = logged_in(world, "owner")
    raw = issue_in_admin(owner, world)
    key = ApiKey.objects.get()
    action = {"action": "revoke_selected", "_selected_action": [key.pk]}

    confirm = owner.post(CHANGELIST, action)
    assert b"Reason (required" in confirm.content
    no_reason = owner.post(CHANGELIST, {**action, "confirm": "yes", "reason": " "})
    assert b"Say why the key is revoked" in no_reason.content
    key.refresh_from_db()
    assert key.revoked_at is None

    done = owner.post(CHANGELIST, {**action, "confirm": "yes", "reason": "leaked in a log"})
    assert done.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key.revoked_by == world.users["owner"]
    latest = key.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (
        world.users["owner"],
        "leaked in a log",
    )
    forget_key()
    refused = Client().post(
        "/api/v1/evaluate",
        {"flag": "new-pdf-engine"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert refused.status_code == 401


@pytest.mark.parametrize("role", ["viewer", "editor", "release_manager", "outsider"])
def test_only_owners_see_issue_or_revoke_keys(world: World, role: str) -> None:
    issue_in_admin(logged_in(world, "owner"), world)
    key = ApiKey.objects.get()
    other = logged_in(world, role)
    assert other.get(CHANGELIST).status_code == 403
    assert other.get(f"{CHANGELIST}add/").status_code == 403
    revoke = {"action": "revoke_selected", "_selected_action": [key.pk], "confirm": "yes",
              "reason": "trying"}  # fmt: skip
    assert other.post(CHANGELIST, revoke).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None
