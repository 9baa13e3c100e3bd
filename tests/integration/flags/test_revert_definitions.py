# mypy: disallow-untyped-calls=False
"""Reverting a flag's definition and a segment: through the services (exact restore, the same
validation, version check and audit) and through the admin's history pages (roles, 403)."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from django.urls import reverse

from flags import services
from flags.errors import ChangeRejected, VersionConflict
from flags.models import Flag, Ruleset, Segment
from tests.factories import FlagStateFactory, SegmentFactory
from tests.integration.flags.conftest import ROLES, World

API = services.Source.API
SEGMENT_RULES = [
    {"id": "paying", "conditions": [{"attribute": "plan", "operator": "in", "values": ["pro"]}]}
]


def _edit_flag(world: World, role: str, reason: str = "edit", **changes: object) -> Flag:
    flag = Flag.objects.get(pk=world.flag.pk)
    return services.update_flag(
        flag, changes=changes, expected_version=flag.version, actor=world.users[role],
        source=API, reason=reason,
    )  # fmt: skip


def _edit_segment(world: World, segment: Segment, **changes: object) -> Segment:
    segment.refresh_from_db()
    return services.update_segment(
        segment, changes=changes, expected_version=segment.version,
        actor=world.users["editor"], source=API, reason="edit",
    )  # fmt: skip


def _flag_doc(env: str) -> dict[str, object]:
    document = Ruleset.objects.get(environment__key=env).document
    flag_doc: dict[str, object] = document["flags"]["new-pdf-engine"]
    return flag_doc


def test_revert_flag_restores_the_definition_exactly(world: World) -> None:
    v2 = _edit_flag(
        world, "release_manager", name="PDF engine v2", description="Faster PDFs",
        kind="experiment", tags=["pdf", "q3"], expires_at=datetime.date(2031, 1, 31),
        client_visible=True, variants={"on": True, "off": False},
    )  # fmt: skip
    record = v2.history.latest("history_id")
    _edit_flag(
        world, "release_manager", name="Renamed", description="", kind="ops", tags=[],
        expires_at=None, client_visible=False, owner=world.users["owner"],
    )  # fmt: skip

    reverted = services.revert_flag(
        world.flag, record.history_id, actor=world.users["release_manager"], source=API,
        reason="undo",
        expected_version=Flag.objects.get(pk=world.flag.pk).version,
    )  # fmt: skip
    assert services.flag_snapshot(reverted) == services.flag_snapshot(record)
    assert reverted.version == record.version + 2
    latest = reverted.history.latest("history_id")
    assert latest.history_change_reason == f"undo (revert to version {record.version})"
    assert (latest.history_source, latest.history_user) == ("api", world.users["release_manager"])
    doc = _flag_doc("production")
    assert (doc["description"], doc["clientVisible"]) == ("Faster PDFs", True)


def test_revert_flag_goes_through_the_same_checks(world: World) -> None:
    first = Flag.history.filter(id=world.flag.pk).earliest("history_id")
    # On in production, so the salt decides who gets it there (a switched-off flag's salt
    # changes no answer, and would need no reason).
    FlagStateFactory.create(flag=world.flag, environment="production", enabled=True)
    _edit_flag(world, "release_manager", description="changed", salt="other-salt")
    flag = Flag.objects.get(pk=world.flag.pk)
    with pytest.raises(ChangeRejected) as rejected:  # production changes need a reason
        services.revert_flag(
            flag, first.history_id, actor=world.users["release_manager"], source=API,
            expected_version=flag.version,
        )  # fmt: skip
    assert [e.path for e in rejected.value.errors] == ["reason"]
    with pytest.raises(VersionConflict):
        services.revert_flag(
            flag, first.history_id, actor=world.users["release_manager"], source=API,
            reason="r", expected_version=flag.version - 1,
        )  # fmt: skip
    with pytest.raises(services.PermissionDenied):
        services.revert_flag(
            flag, first.history_id, actor=world.users["viewer"], source=API,
            expected_version=flag.version,
        )  # fmt: skip
    assert Flag.objects.get(pk=flag.pk).description == "changed"


def test_revert_segment_restores_exactly(world: World) -> None:
    segment = SegmentFactory.create(project=world.project, key="beta")
    v2 = _edit_segment(
        world, segment, included=["acc-1", "acc-2"], rules=SEGMENT_RULES, key_attribute="accountId"
    )
    record = v2.history.latest("history_id")
    _edit_segment(world, segment, included=[], excluded=["acc-9"], rules=[], name="Beta!")

    reverted = services.revert_segment(
        segment, record.history_id, actor=world.users["editor"], source=API, reason="undo",
        expected_version=Segment.objects.get(pk=segment.pk).version,
    )  # fmt: skip
    assert services.segment_snapshot(reverted) == services.segment_snapshot(record)
    latest = reverted.history.latest("history_id")
    assert latest.history_change_reason == f"undo (revert to version {record.version})"
    seg_doc = Ruleset.objects.get(environment__key="production").document["segments"]["beta"]
    assert (seg_doc["included"], seg_doc["rules"]) == (["acc-1", "acc-2"], SEGMENT_RULES)
    with pytest.raises(services.PermissionDenied):
        services.revert_segment(
            segment, record.history_id, actor=world.users["viewer"], source=API, reason="x",
            expected_version=segment.version,
        )  # fmt: skip


def _client(world: World, role: str) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


@pytest.mark.parametrize("role", [*ROLES, "outsider"])
def test_flag_definition_revert_in_the_admin(world: World, role: str) -> None:
    first = Flag.history.filter(id=world.flag.pk).earliest("history_id")
    _edit_flag(world, "owner", description="changed")
    client = _client(world, role)
    history = client.get(reverse("admin:flags_flag_history", args=[world.flag.pk]))
    url = reverse("admin:flags_flag_revert_definition", args=[world.flag.pk, first.history_id])
    page = client.get(url)
    response = client.post(url, {"reason": "back", "expected_version": 2})
    flag = Flag.objects.get(pk=world.flag.pk)
    if role in ("viewer", "outsider"):
        assert (page.status_code, response.status_code) == (403, 403)
        assert flag.description == "changed"
        if role == "viewer":
            assert history.status_code == 200
            assert b"<code>description</code>" in history.content
            assert b"revert-definition" not in history.content
        return
    assert b"revert-definition" in history.content
    assert page.status_code == 200
    assert b"<code>description</code>" in page.content
    assert response.status_code == 302
    assert (flag.description, flag.version) == ("", 3)
    assert flag.history.latest("history_id").history_source == "admin"


@pytest.mark.parametrize("role", [*ROLES, "outsider"])
def test_segment_history_and_revert_in_the_admin(world: World, role: str) -> None:
    segment = SegmentFactory.create(project=world.project, key="beta")
    first = segment.history.latest("history_id")
    _edit_segment(world, segment, included=["acc-1"])
    client = _client(world, role)
    history = client.get(reverse("admin:flags_segment_history", args=[segment.pk]))
    url = reverse("admin:flags_segment_revert", args=[segment.pk, first.history_id])
    page = client.get(url)
    response = client.post(url, {"reason": "back", "expected_version": 2})
    segment.refresh_from_db()
    if role in ("viewer", "outsider"):
        assert (page.status_code, response.status_code) == (403, 403)
        assert history.status_code == (200 if role == "viewer" else 403)
        assert segment.included == ["acc-1"]
        return
    assert history.status_code == 200
    assert b"<code>included</code>" in history.content
    assert b"revert to this" in history.content
    assert page.status_code == 200
    assert response.status_code == 302
    assert (segment.included, segment.version) == ([], 3)


def test_a_stale_revert_page_is_refused_and_shown_again(world: World) -> None:
    segment = SegmentFactory.create(project=world.project, key="beta")
    first = segment.history.latest("history_id")
    _edit_segment(world, segment, included=["acc-1"])
    url = reverse("admin:flags_segment_revert", args=[segment.pk, first.history_id])
    response = _client(world, "editor").post(url, {"reason": "back", "expected_version": 1})
    assert response.status_code == 200
    assert b"changed meanwhile" in response.content
    segment.refresh_from_db()
    assert segment.included == ["acc-1"]
