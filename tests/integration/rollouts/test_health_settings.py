"""Issue 23's "Silence" and health settings: who is told, what may start, the unit checked
before the start, each health check's action through the API and the admin, and warnings told
once a stage."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics import services as analytics
from rollouts import notify, services
from rollouts.decision import Code, HealthAction, HealthCheck, Reason
from rollouts.models import HEALTH_CHECKS, Notification, RolloutPlan
from tests.integration.rollouts.conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NOBODY = "nobody would be told of a rollback: add a recipient or a webhook"
BODY = {"project": "shop", "flag": "pdf", "environment": "staging", "template": "standard"}
DEFAULT_ACTIONS = {
    "no_traffic": "hold", "no_error_events": "warn", "unit_mismatch": "hold",
    "sample_ratio_mismatch": "hold", "both_variants": "warn",
}  # fmt: skip


def api(world: World) -> APIClient:
    client = APIClient()
    client.force_authenticate(world.manager)
    return client


def staff(world: World) -> None:
    world.manager.is_staff = True
    world.manager.save()


def draft(world: World, **kwargs: Any) -> RolloutPlan:
    return services.create_from_template(
        world.state, template="standard", user=world.manager, **kwargs
    )


def send(world: World, at: datetime, users: int, units: dict[str, str] | None) -> int:
    """Per user an exposure and two latency events of the flag, keyed by the user; each
    carries ``units`` when given. Returns the events sent."""
    events: list[dict[str, Any]] = []
    for n in range(users):
        common: dict[str, Any] = {
            "context_key": f"user-{n}", "timestamp": at.isoformat(),
            "assignments": {"pdf": "off"},
        }  # fmt: skip
        if units is not None:
            common["units"] = units
        events.append({"type": "exposure", "flag": "pdf", "variant": "off", **common})
        events += [{"type": "latency", "value": 90.0, **common} for _ in range(2)]
    analytics.ingest(world.env.pk, {"batch_id": f"t-{uuid.uuid4().hex}", "events": events})
    return len(events)


# --- Nobody left uninformed --------------------------------------------------------------------


def test_a_plan_with_no_one_to_tell_cannot_start_and_one_with_only_ops_emails_can(
    world: World, settings: Any
) -> None:
    settings.OPS_EMAILS = []
    plan = draft(world)
    with pytest.raises(services.RolloutError) as refused:
        services.start(plan, user=world.manager, reason="ship it")
    assert (refused.value.field, refused.value.message) == ("recipients", NOBODY)
    assert refused.value.status == 409  # as the other refusals of a plan's state
    plan.refresh_from_db()
    assert (plan.status, plan.checks.count()) == ("draft", 0)

    # The installation's ops list is enough; the plan keeps no copy of it.
    settings.OPS_EMAILS = ["ops@example.test"]
    started = services.start(plan, user=world.manager, reason="ship it")
    assert started.status == "running"
    assert started.email_recipients == []
    services.rollback(started, user=world.manager, reason="errors")
    told = Notification.objects.filter(plan=plan, event="rolled_back")
    assert [(n.channel, n.target) for n in told] == [("email", "ops@example.test")]


def test_a_webhook_alone_is_someone_to_tell_and_own_addresses_come_before_ops(
    world: World, settings: Any
) -> None:
    settings.OPS_EMAILS = []
    hooked = draft(world, webhooks=[services.WebhookSpec("http://127.0.0.1:9/hook", SECRET)])
    assert services.start(hooked, user=world.manager, reason="go").status == "running"
    services.abort(hooked, user=world.manager, reason="next one")

    settings.OPS_EMAILS = ["ops@example.test"]
    own = draft(world, email_recipients=["team@example.test"])
    assert notify.recipients(own) == ["team@example.test"]


def test_creating_a_plan_no_one_would_hear_of_warns_through_the_api(
    world: World, settings: Any
) -> None:
    settings.OPS_EMAILS = []
    client = api(world)
    created = client.post("/api/v1/rollouts/", BODY, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["warnings"] == [NOBODY]
    refused = client.post(f"/api/v1/rollouts/{created.json()['id']}/start", {"reason": "go"},
                          format="json")  # fmt: skip
    assert refused.status_code == 409
    assert refused.json()["errors"] == [{"path": "recipients", "message": NOBODY}]

    told = client.post("/api/v1/rollouts/", {**BODY, "email_recipients": ["a@example.test"]},
                       format="json")  # fmt: skip
    assert told.status_code == 201
    assert told.json()["warnings"] == []


def test_creating_a_plan_no_one_would_hear_of_warns_in_the_admin(
    world: World, settings: Any, django_app: Any
) -> None:
    settings.OPS_EMAILS = []
    staff(world)
    form = django_app.get("/admin/rollouts/rolloutplan/add/", user=world.manager).forms[
        "rolloutplan_form"
    ]
    form["flag_state"] = str(world.state.pk)
    form["template"] = "standard"
    saved = form.submit("_save", user=world.manager)
    assert saved.status_code == 302
    page = saved.follow(user=world.manager)
    shown = [(m.level_tag, m.message) for m in page.context["messages"]]
    assert ("warning", f"{RolloutPlan.objects.get()}: {NOBODY}") in shown
    assert NOBODY in page.text
    assert RolloutPlan.objects.get().status == "draft"  # made all the same


# --- The unit, verified before the start ------------------------------------------------------


def test_a_plan_bucketing_by_account_over_events_keyed_by_user_refuses_to_start(
    world: World,
) -> None:
    now = timezone.now()
    sent = send(world, now - timedelta(days=2), users=30, units={"userId": "u"})
    sent += send(world, now - timedelta(days=8), users=5, units=None)  # out of the 7 days
    in_window = sent - 5 * 3
    expected = (
        f"events of pdf do not carry the unit accountId: {in_window} of {in_window} events in "
        "the last 7 days have no units.accountId; send it with every exposure and metric event "
        "(SDK context attribute) or bucket by targetingKey"
    )
    client = api(world)
    created = client.post("/api/v1/rollouts/", {**BODY, "bucket_by": "accountId"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["warnings"] == [expected]
    plan = RolloutPlan.objects.get(pk=created.json()["id"])
    with pytest.raises(services.RolloutError) as refused:
        services.start(plan, user=world.manager, reason="go")
    assert (refused.value.field, refused.value.message) == ("bucket_by", expected)
    answer = client.post(f"/api/v1/rollouts/{plan.pk}/start", {"reason": "go"}, format="json")
    assert answer.status_code == 409
    assert answer.json()["errors"] == [{"path": "bucket_by", "message": expected}]

    # The same flag bucketed by its targeting key: every event has one.
    services.abort(plan, user=world.manager, reason="wrong unit")
    by_key = draft(world)
    assert services.start_problems(by_key) == []
    assert services.start(by_key, user=world.manager, reason="go").status == "running"


def test_a_few_events_without_the_unit_are_named_with_their_count(world: World) -> None:
    now = timezone.now()
    send(world, now - timedelta(hours=3), users=10, units={"accountId": "acct-1"})
    send(world, now - timedelta(hours=2), users=1, units=None)
    plan = draft(world, bucket_by="accountId")
    [problem] = services.start_problems(plan)
    assert problem.field == "bucket_by"
    assert "3 of 33 events in the last 7 days have no units.accountId" in problem.message


def test_without_events_yet_or_with_the_unit_on_every_event_the_plan_starts(
    world: World,
) -> None:
    plan = draft(world, bucket_by="accountId")
    assert services.start_problems(plan) == []  # nothing sent yet: the checks verify it later
    send(world, timezone.now() - timedelta(hours=1), users=20, units={"accountId": "acct-1"})
    assert services.start(plan, user=world.manager, reason="go").status == "running"


# --- Health settings -------------------------------------------------------------------------


def test_health_settings_round_trip_through_the_api_and_reach_the_decision(world: World) -> None:
    client = api(world)
    created = client.post(
        "/api/v1/rollouts/",
        {**BODY, "health": {"no_traffic_seconds": 7200,
                            "actions": {"no_traffic": "rollback", "both_variants": "hold"}}},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    wanted = {
        "no_traffic_seconds": 7200,
        "actions": {**DEFAULT_ACTIONS, "no_traffic": "rollback", "both_variants": "hold"},
    }
    assert created.json()["health"] == wanted
    assert client.get(f"/api/v1/rollouts/{created.json()['id']}").json()["health"] == wanted

    plan = RolloutPlan.objects.get(pk=created.json()["id"])
    policy = services.plan_spec(plan, list(plan.stages.order_by("position"))).health
    assert policy.no_traffic_seconds == 7200
    assert policy.action(HealthCheck.NO_TRAFFIC) == HealthAction.ROLLBACK
    assert policy.action(HealthCheck.BOTH_VARIANTS) == HealthAction.HOLD
    assert policy.action(HealthCheck.NO_ERROR_EVENTS) == HealthAction.WARN

    defaults = client.post("/api/v1/rollouts/", BODY, format="json").json()["health"]
    assert defaults == {"no_traffic_seconds": 86400, "actions": DEFAULT_ACTIONS}


@pytest.mark.parametrize(
    ("health", "path"),
    [
        ({"no_traffic_seconds": 599}, "health.no_traffic_seconds"),
        ({"no_traffic_seconds": 30 * 86400 + 1}, "health.no_traffic_seconds"),
        ({"no_traffic_seconds": 2**40}, "health.no_traffic_seconds"),
        ({"actions": {"no_traffic": "ignore"}}, "health.actions.no_traffic"),
        ({"actions": {"no_trafic": "warn"}}, "health.actions.no_trafic"),
        ({"actions": ["warn"]}, "health.actions"),
    ],
)
def test_the_api_bounds_the_health_settings_naming_the_field(
    world: World, health: dict[str, Any], path: str
) -> None:
    answer = api(world).post("/api/v1/rollouts/", {**BODY, "health": health}, format="json")
    assert answer.status_code == 400, answer.content
    assert path in [e["path"] for e in answer.json()["errors"]], answer.json()
    assert not RolloutPlan.objects.exists()


def test_every_health_check_of_the_decision_has_its_setting() -> None:
    assert set(HEALTH_CHECKS) == {str(check) for check in HealthCheck}
    assert set(RolloutPlan.HealthAction.values) == {str(action) for action in HealthAction}


def test_the_admin_takes_the_no_traffic_time_in_hours_and_stores_seconds(
    world: World, django_app: Any
) -> None:
    staff(world)
    form = django_app.get("/admin/rollouts/rolloutplan/add/", user=world.manager).forms[
        "rolloutplan_form"
    ]
    assert form["no_traffic_seconds"].value == "24"
    form["flag_state"] = str(world.state.pk)
    form["template"] = "standard"
    form["no_traffic_seconds"] = "1.5"
    form["health_unit_mismatch"] = "rollback"
    assert form.submit("_save", user=world.manager).status_code == 302
    plan = RolloutPlan.objects.get()
    assert (plan.no_traffic_seconds, plan.health_unit_mismatch) == (5400, "rollback")

    page = django_app.get(f"/admin/rollouts/rolloutplan/{plan.pk}/change/", user=world.manager)
    form = page.forms["rolloutplan_form"]
    assert form["no_traffic_seconds"].value == "1.5"
    form["no_traffic_seconds"] = "0.1"  # 6 minutes: under the 10 minute floor
    form["change_reason"] = "a busy service"
    refused = form.submit("_save", user=world.manager)
    assert refused.status_code == 200
    assert "hours" in refused.html.select_one(".field-no_traffic_seconds").text
    plan.refresh_from_db()
    assert plan.no_traffic_seconds == 5400

    form = refused.forms["rolloutplan_form"]
    form["no_traffic_seconds"] = "36"
    form["health_no_error_events"] = "hold"
    assert form.submit("_save", user=world.manager).status_code == 302
    plan.refresh_from_db()
    assert (plan.no_traffic_seconds, plan.health_no_error_events) == (36 * 3600, "hold")
    # An odd number of seconds (set elsewhere) is shown so that saving it changes nothing.
    RolloutPlan.objects.filter(pk=plan.pk).update(no_traffic_seconds=4321)
    page = django_app.get(f"/admin/rollouts/rolloutplan/{plan.pk}/change/", user=world.manager)
    form = page.forms["rolloutplan_form"]
    form["name"] = "renamed"
    form["change_reason"] = "clearer"
    assert form.submit("_save", user=world.manager).status_code == 302
    plan.refresh_from_db()
    assert (plan.name, plan.no_traffic_seconds) == ("renamed", 4321)


# --- Warnings, told once a stage --------------------------------------------------------------


def finding(check: str, message: str = "look at it") -> Reason:
    return Reason(Code.HEALTH, f"health check {check}: {message}")


def test_a_warning_is_told_once_per_stage_and_check(world: World) -> None:
    plan = services.start(draft(world, email_recipients=["ops@example.test"]),
                          user=world.manager, reason="go")  # fmt: skip
    record = services.check(plan.pk, timezone.now() + timedelta(minutes=10))
    assert record is not None
    plan.refresh_from_db()

    first = notify.queue_warnings(plan, record, [finding("no_error_events", "no errors sent")])
    assert [(n.event, n.target) for n in first] == [("warning", "ops@example.test")]
    assert first[0].payload["summary"] == "health check no_error_events: no errors sent"
    assert first[0].payload["reasons"] == [
        {"code": "health", "message": "health check no_error_events: no errors sent"}
    ]
    # The same finding at the next check of the stage: already told, whatever its numbers.
    again = RolloutPlan.objects.get(pk=plan.pk)
    assert notify.queue_warnings(again, record, [finding("no_error_events", "still")]) == []
    # Another check's finding is news; the one told before is not repeated with it.
    both = [finding("no_error_events"), finding("both_variants", "12 units")]
    told = notify.queue_warnings(again, record, both)
    assert [n.payload["summary"] for n in told] == ["health check both_variants: 12 units"]
    assert RolloutPlan.objects.get(pk=plan.pk).health_warned == {
        "stage": 0, "codes": ["both_variants", "no_error_events"],
    }  # fmt: skip

    # A new stage reads new traffic: its findings are told again.
    services.advance(again, user=world.manager, reason="looks fine")
    moved = RolloutPlan.objects.get(pk=plan.pk)
    assert len(notify.queue_warnings(moved, record, [finding("no_error_events")])) == 1
    assert Notification.objects.filter(plan=plan, event="warning").count() == 3
