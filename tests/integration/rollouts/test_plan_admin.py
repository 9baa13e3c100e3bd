"""Editing a plan in the admin as people do: pages opened side by side, roles on the inlines,
webhook secrets and recipients typed by hand. And the management API's limits on the same."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from flags import roles
from flags import services as flag_services
from flags.models import FlagState
from rollouts import services
from rollouts.definition import edit_token, fingerprint
from rollouts.models import Notification, RolloutCheck, RolloutPlan
from tests.integration.rollouts.conftest import SYSTEM, World

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

SECRET = "whsec_" + base64.b64encode(b"a secret of 32 bytes, not short!").decode()


def staff(*users: User) -> None:
    for user in users:  # the admin is for staff; the role decides the rest
        user.is_staff = True
        user.save()


def plan_page(django_app: Any, plan: RolloutPlan, user: User) -> Any:
    page = django_app.get(f"/admin/rollouts/rolloutplan/{plan.pk}/change/", user=user)
    return page.forms["rolloutplan_form"]


def edits(plan: RolloutPlan) -> list[RolloutCheck]:
    return list(plan.checks.filter(verdict=RolloutCheck.Verdict.EDIT).order_by("sequence"))


def test_a_save_from_a_page_another_edit_overtook_is_refused(world: World, django_app: Any) -> None:
    staff(world.manager, world.other_manager)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    mine = plan_page(django_app, plan, world.manager)
    theirs = plan_page(django_app, plan, world.other_manager)

    mine["min_sample"] = "400"
    mine["change_reason"] = "more signal"
    assert mine.submit("_save", user=world.manager).status_code == 302
    theirs["min_sample"] = "300"
    theirs["change_reason"] = "a little more signal"
    refused = theirs.submit("_save", user=world.other_manager)

    assert refused.status_code == 200
    assert "Someone changed this plan after you opened this page" in refused.text
    plan.refresh_from_db()
    assert plan.min_sample == 400  # the first edit stands, nothing of the second was written
    assert [e.actor for e in edits(plan)] == ["rm1"]
    # Reloaded, the same change goes through.
    again = plan_page(django_app, plan, world.other_manager)
    again["min_sample"] = "300"
    again["change_reason"] = "a little more signal"
    assert again.submit("_save", user=world.other_manager).status_code == 302
    plan.refresh_from_db()
    assert plan.min_sample == 300


def test_the_checks_writing_meanwhile_do_not_make_a_page_stale(
    world: World, django_app: Any
) -> None:
    staff(world.manager)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    plan = services.start(plan, user=world.manager, reason="go")
    form = plan_page(django_app, plan, world.manager)
    record = services.check(plan.pk, timezone.now() + timedelta(minutes=10))  # a hold, no traffic
    assert record is not None
    form["name"] = "PDF engine, staged"
    form["change_reason"] = "a clearer name"
    assert form.submit("_save", user=world.manager).status_code == 302
    plan.refresh_from_db()
    assert plan.name == "PDF engine, staged"
    assert plan.last_checked_at == record.checked_at  # what the check wrote is still there


def test_a_release_manager_edits_stages_and_a_viewer_only_reads_them(
    world: World, django_app: Any
) -> None:
    staff(world.manager, world.viewer)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    form = plan_page(django_app, plan, world.manager)
    form["stages-0-bake_seconds"] = "3600"
    form["guardrails-0-red"] = "3"
    form["change_reason"] = "an hour is enough at 5 %"
    assert form.submit("_save", user=world.manager).status_code == 302
    first = plan.stages.get(position=0)
    assert first.bake_seconds == 3600
    assert plan.guardrails.order_by("pk").first().red == 3  # type: ignore[union-attr]
    message = edits(plan)[0].reasons[0]["message"]
    assert message.startswith("changed rollout stages, guardrails: an hour is enough at 5 %")

    page = django_app.get(f"/admin/rollouts/rolloutplan/{plan.pk}/change/", user=world.viewer)
    assert page.status_code == 200
    shown = set(page.forms["rolloutplan_form"].fields)
    # read only: the page shows the values, with no box to change them
    assert {"name", "min_sample", "stages-0-bake_seconds", "guardrails-0-red"}.isdisjoint(shown)
    assert "3600" in page.text
    crafted = {"stages-TOTAL_FORMS": "1", "stages-INITIAL_FORMS": "1", "stages-0-id": first.pk,
               "stages-0-bake_seconds": "60", "change_reason": "sneaky"}  # fmt: skip
    refused = django_app.post(
        f"/admin/rollouts/rolloutplan/{plan.pk}/change/", crafted, user=world.viewer,
        expect_errors=True,
    )  # fmt: skip
    assert refused.status_code == 403
    first.refresh_from_db()
    assert first.bake_seconds == 3600


def test_a_webhook_secret_is_never_shown_again_and_a_blank_box_keeps_it(
    world: World, django_app: Any
) -> None:
    staff(world.manager)
    hook = services.WebhookSpec(url="http://127.0.0.1:9/hook", secret=SECRET)
    plan = services.create_from_template(
        world.state, template="standard", user=world.manager, webhooks=[hook]
    )
    page = django_app.get(f"/admin/rollouts/rolloutplan/{plan.pk}/change/", user=world.manager)
    assert SECRET not in page.text
    form = page.forms["rolloutplan_form"]
    assert form["webhooks-0-secret"].value == ""
    form["webhooks-0-url"] = "http://127.0.0.1:9/alerts"
    form["change_reason"] = "the new receiver"
    assert form.submit("_save", user=world.manager).status_code == 302
    saved = plan.webhooks.get()
    assert (saved.url, saved.secret) == ("http://127.0.0.1:9/alerts", SECRET)

    form = plan_page(django_app, plan, world.manager)
    form["webhooks-0-secret"] = "whsec_AAAAA"  # not base64, and too short a key
    form["change_reason"] = "rotate"
    refused = form.submit("_save", user=world.manager)
    assert refused.status_code == 200
    cell = refused.html.select_one("td.field-secret.errors")  # the error, in the secret's cell
    assert cell is not None
    assert "A Standard Webhooks secret: whsec_ then" in cell.text
    assert "whsec_AAAAA" not in refused.text  # not even the rejected one is shown back
    assert plan.webhooks.get().secret == SECRET


def test_recipients_are_typed_one_a_line_and_each_is_checked(world: World, django_app: Any) -> None:
    staff(world.manager)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    form = plan_page(django_app, plan, world.manager)
    form["email_recipients"] = "ops@example.com\nnot an address"
    form["change_reason"] = "tell ops"
    refused = form.submit("_save", user=world.manager)
    assert refused.status_code == 200
    field = refused.html.select_one(".field-email_recipients")
    assert "'not an address' is not an email address." in field.text
    plan.refresh_from_db()
    assert plan.email_recipients == []

    form = refused.forms["rolloutplan_form"]
    form["email_recipients"] = "ops@example.com\n  oncall@example.com  \n"
    assert form.submit("_save", user=world.manager).status_code == 302
    plan.refresh_from_db()
    assert plan.email_recipients == ["ops@example.com", "oncall@example.com"]
    shown = plan_page(django_app, plan, world.manager)
    assert shown["email_recipients"].value == "ops@example.com\noncall@example.com"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"name": "n" * 201}, "name"),
        ({"on_variant": "v" * 101}, "on_variant"),
        ({"flag": 12}, "flag"),
        ({"webhooks": [{"url": "http://127.0.0.1:9/h", "secret": "whsec_AAAAA"}]},
         "webhooks[0].secret"),
        ({"webhooks": [{"url": "http://127.0.0.1:9/" + "h" * 500, "secret": SECRET}]},
         "webhooks[0].url"),
        ({"webhooks": [{"url": "http://127.0.0.1:9/h", "secret": SECRET}] * 21}, "webhooks"),
        ({"email_recipients": ["ops@example.com", "nope"]}, "email_recipients[1]"),
    ],
)  # fmt: skip
def test_the_api_refuses_what_the_columns_cannot_hold_naming_the_field(
    world: World, change: dict[str, Any], path: str
) -> None:
    client = APIClient()
    client.force_authenticate(world.manager)
    body = {"project": "shop", "flag": "pdf", "environment": "staging", "template": "standard"}
    response = client.post("/api/v1/rollouts/", {**body, **change}, format="json")
    assert response.status_code == 400, response.content
    assert path in [e["path"] for e in response.json()["errors"]]
    assert not RolloutPlan.objects.exists()


def test_a_steering_action_needs_a_reason_of_bounded_length(world: World) -> None:
    client = APIClient()
    client.force_authenticate(world.manager)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    for reason in ("", "   ", "r" * 1001, 12):
        response = client.post(
            f"/api/v1/rollouts/{plan.pk}/start", {"reason": reason}, format="json"
        )
        assert response.status_code == 400, (reason, response.content)
        assert [e["path"] for e in response.json()["errors"]] == ["reason"]
    plan.refresh_from_db()
    assert plan.status == "draft"


def test_the_timeline_comes_in_pages_oldest_first(world: World) -> None:
    client = APIClient()
    client.force_authenticate(world.manager)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    plan = services.start(plan, user=world.manager, reason="go")
    for n in range(4):
        plan = services.pause(plan, user=world.manager, reason=f"wait {n}")
        plan = services.resume(plan, user=world.manager, reason=f"go {n}")
    url = f"/api/v1/rollouts/{plan.pk}/timeline"
    everything = client.get(url).json()
    assert everything["count"] == 9
    assert everything["next"] is None
    seen, page = [], client.get(url, {"limit": 4}).json()
    while True:
        seen += [c["sequence"] for c in page["results"]]
        if page["next"] is None:
            break
        page = client.get(page["next"]).json()
    assert seen == [c["sequence"] for c in everything["results"]] == list(range(1, 10))
    for bad in ("0", "1001", "-1", "x"):
        refused = client.get(url, {"limit": bad})
        assert refused.status_code == 400
        assert [e["path"] for e in refused.json()["errors"]] == ["limit"]


def other_project(world: World) -> tuple[FlagState, User]:
    """A second project with its own flag and release manager (who has no role in "shop")."""
    project = flag_services.create_project(
        key="books", name="Books", actor=SYSTEM, source="system", reason="test"
    )
    flag = flag_services.create_flag(
        project, data={"key": "ledger", "name": "Ledger"}, actor=SYSTEM, source="system",
        reason="t",
    )  # fmt: skip
    outsider = User.objects.create_user("bk", password="x-unused-x", is_staff=True)
    roles.grant_role(outsider, project, "release_manager")
    return FlagState.objects.get(flag=flag, environment__key="staging"), outsider


def test_a_plan_is_added_from_a_template_with_problems_on_their_fields(
    world: World, django_app: Any
) -> None:
    staff(world.manager)
    theirs, _ = other_project(world)
    flag_services.create_flag(
        world.project, data={"key": "banner", "name": "Banner", "value_type": "string",
                             "variants": {"off": "", "sale": "50% off"}},
        actor=SYSTEM, source="system", reason="t",
    )  # fmt: skip
    banner = FlagState.objects.get(flag__key="banner", environment=world.env)
    page = django_app.get("/admin/rollouts/rolloutplan/add/", user=world.manager)
    form = page.forms["rolloutplan_form"]
    offered = {value for value, _, _ in form["flag_state"].options if value}
    assert {str(world.state.pk), str(banner.pk)} <= offered
    assert str(theirs.pk) not in offered  # another project's flag is not even listed

    form["flag_state"] = str(banner.pk)
    form["template"] = "standard"
    refused = form.submit("_save", user=world.manager)
    assert refused.status_code == 200
    assert "The flag has no variant 'on'" in refused.html.select_one(".field-on_variant").text
    form = refused.forms["rolloutplan_form"]
    form["on_variant"] = "sale"
    form["template"] = "launch-phases"  # starts with a segment
    refused = form.submit("_save", user=world.manager)
    assert "This template starts with a segment" in refused.html.select_one(".field-segment").text
    assert not RolloutPlan.objects.exists()

    form = refused.forms["rolloutplan_form"]
    form["template"] = "standard"
    form["email_recipients"] = "ops@example.com"
    assert form.submit("_save", user=world.manager).status_code == 302
    plan = RolloutPlan.objects.get()
    assert (plan.flag_state, plan.on_variant, plan.email_recipients) == (
        banner, "sale", ["ops@example.com"],
    )  # fmt: skip


def test_the_plan_and_delivery_lists_show_only_what_the_role_lets_one_view(
    world: World, django_app: Any
) -> None:
    staff(world.manager)
    _, outsider = other_project(world)
    hook = services.WebhookSpec(url="http://127.0.0.1:9/hook", secret=SECRET)
    plan = services.create_from_template(
        world.state, template="standard", user=world.manager, webhooks=[hook],
        name="shop's secret launch",
    )  # fmt: skip
    Notification.objects.create(
        plan=plan, event="rollback", channel="webhook", target=hook.url, message_id="msg-1"
    )
    plans, deliveries = "/admin/rollouts/rolloutplan/", "/admin/rollouts/notification/"
    assert "shop&#x27;s secret launch" in django_app.get(plans, user=world.manager).text
    assert hook.url in django_app.get(deliveries, user=world.manager).text
    for url in (plans, deliveries, f"{plans}?q=secret"):
        seen = django_app.get(url, user=outsider)
        assert seen.status_code == 200
        assert "secret launch" not in seen.text
        assert hook.url not in seen.text
    denied = django_app.get(
        f"/admin/rollouts/rolloutplan/{plan.pk}/change/", user=outsider, expect_errors=True
    )
    assert denied.status_code in (302, 403, 404)
    assert "secret launch" not in denied.text


def test_stage_edits_keep_exposure_growing_and_the_stages_that_ran_as_they_ran(
    world: World, django_app: Any
) -> None:
    staff(world.manager)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    form = plan_page(django_app, plan, world.manager)
    assert [form[f"stages-{n}-weight"].value for n in range(4)] == ["5", "25", "50", "100"]
    form["stages-2-weight"] = "1"  # 1 % after 25 %: would take exposure from people
    form["change_reason"] = "smaller third stage"
    refused = form.submit("_save", user=world.manager)
    assert refused.status_code == 200
    assert "Stage weights never decrease" in refused.text
    form = refused.forms["rolloutplan_form"]
    form["stages-2-weight"] = "50"
    for n in range(4):
        form[f"stages-{n}-DELETE"] = True
    refused = form.submit("_save", user=world.manager)
    assert "A plan needs at least one stage." in refused.text
    assert [s.weight for s in plan.stages.order_by("position")] == [5000, 25000, 50000, 100000]

    plan = services.start(plan, user=world.manager, reason="go")
    form = plan_page(django_app, plan, world.manager)
    form["stages-0-bake_seconds"] = "60"
    form["change_reason"] = "shorter"
    refused = form.submit("_save", user=world.manager)
    assert "Stage 0 has run already: it stays as it ran." in refused.text
    form = refused.forms["rolloutplan_form"]
    form["stages-0-bake_seconds"] = str(24 * 3600)
    form["stages-1-bake_seconds"] = "7200"
    form["stages-2-weight"] = "37.5"  # in percent; stored in the engine's units
    assert form.submit("_save", user=world.manager).status_code == 302
    assert [s.weight for s in plan.stages.order_by("position")] == [5000, 25000, 37500, 100000]
    assert [s.bake_seconds for s in plan.stages.order_by("position")] == [
        24 * 3600, 7200, 24 * 3600, 24 * 3600,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("check_interval_seconds", "0", "greater than or equal to 10"),
        ("false_positive_rate", "0", "greater than or equal to 0.0001"),
        ("false_positive_rate", "0.9", "less than or equal to 0.5"),
        ("false_positive_rate", "nan", "Enter a number"),
        ("design_sample", "0", "greater than or equal to 1"),
        ("guardrails-0-red", "1.2", "The red line must lie beyond the yellow line."),
        ("guardrails-3-red", "0.99", "The red line must lie beyond the yellow line."),
        ("guardrails-1-yellow", "-0.01", "A number, not below 0."),
        ("guardrails-2-red", "inf", "Enter a number"),
    ],
)
def test_plan_settings_that_would_break_its_checks_are_form_errors(
    world: World, django_app: Any, field: str, value: str, message: str
) -> None:
    staff(world.manager)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    before = (edit_token(plan), plan.check_interval_seconds, plan.false_positive_rate)
    form = plan_page(django_app, plan, world.manager)
    form[field] = value
    form["change_reason"] = "tuning"
    refused = form.submit("_save", user=world.manager)
    assert refused.status_code == 200
    cell = refused.html.select_one(f".field-{field.rsplit('-', 1)[-1]}.errors, "
                                   f".field-{field.rsplit('-', 1)[-1]} .errorlist")  # fmt: skip
    assert message in (cell.text if cell is not None else refused.text)
    plan.refresh_from_db()
    assert (edit_token(plan), plan.check_interval_seconds, plan.false_positive_rate) == before


def test_a_plan_just_created_and_read_back_have_one_fingerprint(world: World) -> None:
    # rollback_action is an enum member in memory and a string once read: the same definition.
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    assert fingerprint(plan) == fingerprint(RolloutPlan.objects.get(pk=plan.pk))
    assert edit_token(plan) == edit_token(RolloutPlan.objects.get(pk=plan.pk))
