"""Plans through the services: start, the scheduled check, hand edits, approvals, races."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from flags import services as flag_services
from flags.models import FlagState
from rollouts import services
from rollouts.models import RolloutCheck, RolloutPlan
from tests.integration.rollouts.conftest import World

pytestmark = [pytest.mark.integration]


def weight(state: FlagState) -> int:
    state.refresh_from_db()
    w: int = state.default_serve["rollout"]["variants"][0]["weight"]
    return w


def started(world: World, **kwargs: object) -> RolloutPlan:
    plan = services.create_from_template(
        world.state,
        template="standard",
        user=world.manager,
        **kwargs,  # type: ignore[arg-type]
    )
    return services.start(plan, user=world.manager, reason="ship it")


@pytest.mark.django_db
def test_start_serves_stage_one_as_automation_with_the_plan_in_the_reason(world: World) -> None:
    plan = started(world)
    assert weight(world.state) == 5000
    record = world.state.history.order_by("-history_id").first()
    assert record is not None
    assert record.history_source == "automation"
    assert f"rollout plan #{plan.pk}" in record.history_change_reason
    assert plan.applied_state_version == world.state.version


@pytest.mark.django_db
def test_a_check_without_traffic_holds_and_is_on_the_timeline(world: World) -> None:
    plan = started(world)
    record = services.check(plan.pk, timezone.now() + timedelta(minutes=10))
    assert record is not None
    assert record.verdict == "hold"
    assert record.reasons[0]["code"] == "no_traffic"
    # Not due again until the interval has passed: a second pass does nothing.
    assert services.check(plan.pk, record.checked_at + timedelta(seconds=1)) is None


@pytest.mark.django_db
def test_a_hand_edit_pauses_the_rollout_and_says_why(world: World) -> None:
    plan = started(world)
    world.state.refresh_from_db()
    flag_services.update_flag_state(
        world.state, changes={"default_serve": {"variant": "on"}},
        expected_version=world.state.version, actor=world.manager, source="api", reason="hand",
    )  # fmt: skip
    record = services.check(plan.pk, timezone.now() + timedelta(minutes=10))
    assert record is not None
    assert record.verdict == "pause"
    assert record.reasons[0]["code"] == "manual_edit"
    plan.refresh_from_db()
    assert plan.status == "paused"
    assert "edited outside the rollout" in plan.status_reason
    resumed = services.resume(plan, user=world.manager, reason="accepted the edit")
    assert resumed.status == "running"


@pytest.mark.django_db
def test_advance_keeps_everyone_and_rollback_takes_everyone_out(world: World) -> None:
    plan = started(world)
    services.advance(plan, user=world.manager, reason="looks fine")
    assert weight(world.state) == 25_000
    services.rollback(plan, user=world.manager, reason="support tickets")
    assert weight(world.state) == 0
    plan.refresh_from_db()
    assert plan.status == "rolled_back"
    verdicts = list(plan.checks.order_by("sequence").values_list("verdict", flat=True))
    assert verdicts == ["start", "progress", "rollback"]


@pytest.mark.django_db
def test_every_action_needs_a_reason_and_the_role(world: World) -> None:
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    with pytest.raises(services.RolloutError, match="reason"):
        services.start(plan, user=world.manager, reason=" ")
    with pytest.raises(PermissionDenied, match="may not"):
        services.start(plan, user=world.viewer, reason="x")


@pytest.mark.django_db
def test_an_approval_environment_needs_the_plan_approved_by_someone_else(world: World) -> None:
    world.env.requires_approval = True
    world.env.save()
    world.state.refresh_from_db()
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    with pytest.raises(services.RolloutError, match="approve the plan"):
        services.start(plan, user=world.manager, reason="go")
    with pytest.raises(Exception, match="your own plan"):
        services.approve_plan(plan, user=world.manager, reason="me")
    services.approve_plan(plan, user=world.other_manager, reason="reviewed")
    services.start(plan, user=world.manager, reason="go")
    assert weight(world.state) == 5000
    # The plan's approval is the stage's authority in the pipeline: no second request.
    assert not world.state.change_requests.exists()
    latest = world.state.history.latest("history_id")
    assert (latest.history_source, latest.history_user) == ("automation", None)
    # A rollback applies at once (it only reduces exposure: the emergency authority).
    services.rollback(plan, user=world.manager, reason="bad")
    assert weight(world.state) == 0


@pytest.mark.django_db(transaction=True)
def test_two_workers_checking_at_once_record_one_decision(world: World) -> None:
    plan = started(world)
    now = timezone.now() + timedelta(minutes=10)
    results: list[RolloutCheck | None] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(services.check(plan.pk, now))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert plan.checks.filter(manual=False).count() == 1


@pytest.mark.django_db
def test_api_start_steer_and_timeline(world: World) -> None:
    api = APIClient()
    api.force_authenticate(world.manager)
    bad = api.post("/api/v1/rollouts/", {"project": "shop", "flag": "pdf"}, format="json")
    assert bad.status_code == 400
    assert {e["path"] for e in bad.json()["errors"]} >= {"environment", "template"}
    created = api.post(
        "/api/v1/rollouts/",
        {"project": "shop", "flag": "pdf", "environment": "staging", "template": "standard"},
        format="json",
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert [s["percent"] for s in created.json()["stages"]] == [5, 25, 50, 100]
    no_reason = api.post(f"/api/v1/rollouts/{pk}/start", {}, format="json")
    assert no_reason.status_code == 400
    assert no_reason.json()["errors"][0]["path"] == "reason"
    assert (
        api.post(f"/api/v1/rollouts/{pk}/start", {"reason": "go"}, format="json").status_code == 200
    )
    again = api.post(f"/api/v1/rollouts/{pk}/start", {"reason": "go"}, format="json")
    assert again.status_code == 409
    assert (
        api.post(f"/api/v1/rollouts/{pk}/pause", {"reason": "wait"}, format="json").json()["status"]
        == "paused"
    )
    timeline = api.get(f"/api/v1/rollouts/{pk}/timeline").json()["results"]
    assert [c["verdict"] for c in timeline] == ["start", "pause"]
    viewer = APIClient()
    viewer.force_authenticate(world.viewer)
    assert viewer.get(f"/api/v1/rollouts/{pk}").status_code == 200
    assert (
        viewer.post(f"/api/v1/rollouts/{pk}/abort", {"reason": "x"}, format="json").status_code
        == 403
    )


@pytest.mark.django_db
def test_admin_lists_a_plan_and_steers_it_with_a_reason(world: World, client: Any) -> None:
    plan = started(world)
    admin_user = User.objects.create_superuser("boss", password="x-unused-x")
    client.force_login(admin_user)
    listing = client.get("/admin/rollouts/rolloutplan/")
    assert listing.status_code == 200
    assert plan.name in listing.content.decode()
    page = client.get(f"/admin/rollouts/rolloutplan/{plan.pk}/change/")
    assert page.status_code == 200
    client.post(
        "/admin/rollouts/rolloutplan/",
        {"action": "pause", "_selected_action": [plan.pk], "reason": "checking a ticket"},
    )
    plan.refresh_from_db()
    assert plan.status == "paused"
    assert plan.status_reason == "checking a ticket"
    assert client.get("/admin/rollouts/notification/").status_code == 200


def test_an_admin_edit_of_a_plan_keeps_what_the_checks_wrote_meanwhile(
    world: World, rf: Any
) -> None:
    from django.contrib import admin

    plan = started(world)
    request = rf.post("/")
    request.user = User.objects.create_superuser("boss", password="x-unused-x")
    model_admin = admin.site._registry[RolloutPlan]
    opened = RolloutPlan.objects.get(pk=plan.pk)  # the page is opened ...
    services.pause(plan, user=world.manager, reason="meanwhile")  # ... a pause lands ...
    form_class = model_admin.get_form(request, opened, change=True)
    shown = form_class(instance=opened)  # what the page's fields hold, as the browser sends it
    data = {bf.name: bf.field.prepare_value(bf.initial) for bf in shown if bf.initial is not None}
    form = form_class({**data, "name": "renamed"}, instance=opened)
    assert form.is_valid(), form.errors
    model_admin.save_model(request, form.save(commit=False), form, True)  # ... then the save

    fresh = RolloutPlan.objects.get(pk=plan.pk)
    assert fresh.name == "renamed"
    assert (fresh.status, fresh.status_reason) == ("paused", "meanwhile")
    assert fresh.last_sequence == plan.checks.count() == 2  # start, pause
    services.resume(fresh, user=world.manager, reason="go on")  # the next record numbers on
    assert list(plan.checks.values_list("sequence", flat=True).order_by("sequence")) == [1, 2, 3]
