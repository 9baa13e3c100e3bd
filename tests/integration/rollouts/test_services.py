"""Plans through the services: start, the scheduled check, hand edits, approvals, races."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from flags import services as flag_services
from flags.models import ChangeRequest, FlagState
from rollouts import approval, services
from rollouts.definition import approval_covers
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


def approval_environment(world: World) -> None:
    world.env.requires_approval = True
    world.env.save()
    world.state.refresh_from_db()


def review(change_request: ChangeRequest, reviewer: User, author: User) -> None:
    """The change-request flow: approved by the reviewer, applied by the author."""
    flag_services.approve_change(change_request, actor=reviewer, source="admin", reason="reviewed")
    change_request.refresh_from_db()
    if change_request.status == ChangeRequest.Status.APPROVED:  # no apply-on-approval
        flag_services.apply_change(change_request, actor=author, source="admin")


@pytest.mark.django_db
def test_an_approval_environment_needs_the_plan_approved_through_a_change_request(
    world: World,
) -> None:
    approval_environment(world)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    with pytest.raises(services.RolloutError, match="requires approval"):
        services.start(plan, user=world.manager, reason="go")
    with pytest.raises(PermissionDenied):
        approval.request_approval(plan, user=world.viewer, reason="please")
    request = approval.request_approval(plan, user=world.manager, reason="ready for review")
    # One review flow for everything: the request is a change request of the environment.
    assert request.status == ChangeRequest.Status.PENDING
    assert request.environment_ids == [world.env.pk]
    assert request.summary.startswith(f"approval of rollout plan #{plan.pk}")
    assert "5% 24 h" in request.summary
    assert approval.request_approval(plan, user=world.manager, reason="again").pk == request.pk
    with pytest.raises(PermissionDenied, match="your own"):
        flag_services.approve_change(request, actor=world.manager, source="admin", reason="me")
    plan.refresh_from_db()
    assert plan.approved_by is None  # proposing it approved nothing

    review(request, world.other_manager, world.manager)
    plan.refresh_from_db()
    assert plan.approved_by == world.other_manager
    assert approval_covers(plan)
    verdicts = list(plan.checks.order_by("sequence").values_list("verdict", "actor"))
    assert verdicts == [("approval_requested", "rm1"), ("approve", "rm2")]

    services.start(plan, user=world.manager, reason="go")
    assert weight(world.state) == 5000
    # The plan's approval is the stage's authority in the pipeline: no second request.
    assert world.state.change_requests.count() == 0
    latest = world.state.history.latest("history_id")
    assert (latest.history_source, latest.history_user) == ("automation", None)
    # A rollback applies at once (it only reduces exposure: the emergency authority).
    services.rollback(plan, user=world.manager, reason="bad")
    assert weight(world.state) == 0


@pytest.mark.django_db
def test_a_plan_changed_after_its_approval_request_or_its_approval_needs_it_again(
    world: World,
) -> None:
    approval_environment(world)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    first = approval.request_approval(plan, user=world.manager, reason="ready")
    plan.stages.filter(position=0).update(weight=50_000)  # edited before the review: 50 %
    flag_services.approve_change(first, actor=world.other_manager, source="admin", reason="ok")
    with pytest.raises(flag_services.VersionConflict):
        flag_services.apply_change(first, actor=world.manager, source="admin")
    first.refresh_from_db()
    assert first.status == ChangeRequest.Status.STALE
    plan.refresh_from_db()
    assert plan.approved_by is None

    # Asked for by someone else, the plan's author still cannot be its approver.
    asked_by_other = approval.request_approval(plan, user=world.other_manager, reason="mine?")
    flag_services.approve_change(asked_by_other, actor=world.manager, source="admin", reason="me")
    with pytest.raises(PermissionDenied, match="author"):
        flag_services.apply_change(asked_by_other, actor=world.manager, source="admin")
    flag_services.reject_change(asked_by_other, actor=world.manager, source="admin", reason="no")
    review(approval.request_approval(plan, user=world.manager, reason="as it is now"),
           world.other_manager, world.manager)  # fmt: skip
    plan.refresh_from_db()
    assert approval_covers(plan)
    # Edited after its approval (the admin's stage inline, a shell: whatever the path).
    plan.guardrails.update(red=9.0)
    plan.refresh_from_db()
    assert plan.approved_by == world.other_manager
    assert not approval_covers(plan)
    with pytest.raises(services.RolloutError, match="requires approval"):
        services.start(plan, user=world.manager, reason="go")
    world.state.refresh_from_db()
    assert "rollout" not in world.state.default_serve  # nothing reached the flag


@pytest.mark.django_db
def test_a_running_plan_edited_after_its_approval_holds_at_the_next_stage(world: World) -> None:
    approval_environment(world)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    review(approval.request_approval(plan, user=world.manager, reason="ready"),
           world.other_manager, world.manager)  # fmt: skip
    plan = services.start(plan, user=world.manager, reason="go")
    plan.stages.filter(position=1).update(weight=90_000)  # the next stage, now 90 %
    plan.refresh_from_db()
    spec = services.plan_spec(plan, list(plan.stages.order_by("position")))
    assert spec.environment_requires_approval
    assert not spec.plan_approved
    assert weight(world.state) == 5000


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
    huge = {"project": "shop", "flag": "pdf", "environment": "staging", "template": "standard",
            "min_sample": 2**40, "check_interval_seconds": 2**40}  # fmt: skip
    too_big = api.post("/api/v1/rollouts/", huge, format="json")
    assert too_big.status_code == 400  # not a database overflow (a 500)
    assert {e["path"] for e in too_big.json()["errors"]} == {"min_sample", "check_interval_seconds"}
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
    form = form_class({**data, "name": "renamed", "change_reason": "clearer"}, instance=opened)
    assert form.is_valid(), form.errors
    model_admin.save_model(request, form.save(commit=False), form, True)  # ... then the save

    fresh = RolloutPlan.objects.get(pk=plan.pk)
    assert fresh.name == "renamed"
    assert (fresh.status, fresh.status_reason) == ("paused", "meanwhile")
    assert fresh.last_sequence == plan.checks.count() == 2  # start, pause
    services.resume(fresh, user=world.manager, reason="go on")  # the next record numbers on
    assert list(plan.checks.values_list("sequence", flat=True).order_by("sequence")) == [1, 2, 3]


@pytest.mark.django_db
def test_api_plan_approval_goes_through_the_change_request_endpoints(world: World) -> None:
    approval_environment(world)
    author, reviewer = APIClient(), APIClient()
    author.force_authenticate(world.manager)
    reviewer.force_authenticate(world.other_manager)
    body = {"project": "shop", "flag": "pdf", "environment": "staging", "template": "standard"}
    pk = author.post("/api/v1/rollouts/", body, format="json").json()["id"]
    refused = author.post(f"/api/v1/rollouts/{pk}/start", {"reason": "go"}, format="json")
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["path"] == "approval"
    asked = author.post(f"/api/v1/rollouts/{pk}/request-approval", {"reason": "ready"},
                        format="json")  # fmt: skip
    assert asked.status_code == 202, asked.content
    assert asked.json()["approval_current"] is False
    cr = f"/api/v1/projects/shop/change-requests/{asked.json()['change_request']}"
    pending = reviewer.get(cr).json()
    assert pending["status"] == "pending"
    assert pending["environments"] == ["staging"]
    assert author.post(f"{cr}/approve", {"reason": "me"}, format="json").status_code == 403
    approved = reviewer.post(f"{cr}/approve", {"reason": "looks right"}, format="json")
    assert approved.json()["status"] == "approved", approved.content
    applied = author.post(f"{cr}/apply", {}, format="json")
    assert applied.json()["status"] == "applied", applied.content
    plan = author.get(f"/api/v1/rollouts/{pk}").json()
    assert (plan["approved_by"], plan["approval_current"]) == ("rm2", True)
    started_ = author.post(f"/api/v1/rollouts/{pk}/start", {"reason": "go"}, format="json")
    assert started_.json()["status"] == "running"
    unknown = author.post(f"/api/v1/rollouts/{pk}/approve", {"reason": "x"}, format="json")
    assert unknown.status_code == 404  # approving is the change request's, not the plan's


@pytest.mark.django_db
def test_admin_requests_a_plans_approval(world: World, client: Any) -> None:
    approval_environment(world)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    world.manager.is_staff = True  # the admin is for staff; the role decides the rest
    world.manager.save()
    client.force_login(world.manager)
    client.post(
        "/admin/rollouts/rolloutplan/",
        {"action": "request_approval", "_selected_action": [plan.pk], "reason": "please review"},
    )
    request = ChangeRequest.objects.get(project=world.project)
    assert request.reason == "please review"
    assert request.author == world.manager
    page = client.get(f"/admin/rollouts/rolloutplan/{plan.pk}/change/").content.decode()
    assert "not approved" in page
    # The reviewer decides it where every change request is decided.
    world.other_manager.is_staff = True
    world.other_manager.save()
    reviewer = Client()
    reviewer.force_login(world.other_manager)
    shown = reviewer.get(reverse("admin:flags_changerequest_change", args=[request.pk]))
    assert shown.status_code == 200
    assert f"approval of rollout plan #{plan.pk}" in shown.content.decode()
    decide = reverse("admin:flags_changerequest_decide", args=[request.pk])
    assert client.post(decide, {"decision": "approve"}).status_code == 403  # the author
    assert reviewer.post(decide, {"decision": "approve"}).status_code == 302
    assert reviewer.post(decide, {"decision": "apply"}).status_code == 302
    page = client.get(f"/admin/rollouts/rolloutplan/{plan.pk}/change/").content.decode()
    assert "approved by rm2" in page


@pytest.mark.django_db
def test_a_plan_edited_in_the_admin_needs_a_reason_and_shows_on_its_timeline(
    world: World, django_app: Any
) -> None:
    approval_environment(world)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    review(approval.request_approval(plan, user=world.manager, reason="ready"),
           world.other_manager, world.manager)  # fmt: skip
    world.manager.is_staff = True
    world.manager.save()
    plan = services.start(plan, user=world.manager, reason="go")
    url = f"/admin/rollouts/rolloutplan/{plan.pk}/change/"
    form = django_app.get(url, user=world.manager).forms["rolloutplan_form"]
    # What decides who is in which cohort, and the approval itself, are not the form's.
    assert {"approved_by", "flag_state", "bucket_by", "on_variant"}.isdisjoint(form.fields)
    form["min_sample"] = "400"
    refused = form.submit("_save")
    assert refused.status_code == 200  # the form again, with the reason asked for
    assert "This field is required" in refused.html.select_one(".field-change_reason").text
    plan.refresh_from_db()
    assert plan.min_sample == 200
    form = refused.forms["rolloutplan_form"]
    form["change_reason"] = "200 users give too little signal"
    form.submit("_save").follow()

    plan.refresh_from_db()
    assert plan.min_sample == 400
    assert plan.status == "running"
    edit = plan.checks.order_by("-sequence").first()
    assert edit is not None
    assert (edit.verdict, edit.actor, edit.manual) == ("edit", "rm1", True)
    message = edit.reasons[0]["message"]
    assert message.startswith("changed min_sample: 200 users give too little signal")
    assert message.endswith("the approval no longer covers the plan: request it again")
    assert not approval_covers(plan)
