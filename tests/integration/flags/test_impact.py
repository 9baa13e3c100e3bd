"""Impact estimates in previews, from exposures ingested the way SDKs send them: exact where the
rules read only the targeting key, compared with what was last served where only the candidate
does, "unavailable" (naming the attributes) otherwise, and a labelled sample beyond the cap."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from flagsite_sdk.engine import bucket

from analytics import impact
from analytics import services as analytics_services
from apikeys import services as apikey_services
from flags import services
from flags.models import Environment, Segment
from flags.preview import describe_effect
from tests.factories import FlagFactory, FlagStateFactory
from tests.integration.flags.conftest import World

API = services.Source.API
ROLLOUT_25 = {"rollout": {"variants": [{"variant": "on", "weight": 25000},
                                       {"variant": "off", "weight": 75000}]}}  # fmt: skip
PRO = {"attribute": "plan", "operator": "in", "values": ["pro"]}
PRO_RULES = [{"id": "pro", "conditions": [PRO], "serve": {"variant": "on"}}]
ROLLOUT_50 = {"rollout": {"variants": [{"variant": "on", "weight": 50000},
                                       {"variant": "off", "weight": 50000}]}}  # fmt: skip


def exposure(flag: str, key: str, variant: str, ago: timedelta = timedelta(minutes=5)) -> Any:
    at = (timezone.now() - ago).isoformat()
    return {"type": "exposure", "flag": flag, "variant": variant, "context_key": key,
            "timestamp": at, "assignments": {}}  # fmt: skip


def ingest(world: World, env: str, events: list[dict[str, Any]], batch: str = "b1") -> None:
    analytics_services.ingest(world.env(env).pk, {"batch_id": batch, "events": events})


def dry_run(client: Client, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.patch(f"/api/v1/projects/shop{url}?dryRun=true", body,
                            content_type="application/json")  # fmt: skip
    assert response.status_code == 200, response.content
    preview: dict[str, Any] = response.json()
    return preview


@pytest.fixture
def rm(world: World) -> Client:
    client = Client()
    client.force_login(world.users["release_manager"])
    return client


def test_a_rollout_change_counts_exactly_the_contexts_it_rebuckets(
    world: World, rm: Client
) -> None:
    state = FlagStateFactory.create(flag=world.flag, environment="production", enabled=True,
                                    default_serve=ROLLOUT_25)  # fmt: skip
    keys = [f"user-{i}" for i in range(300)]
    served = {k: "on" if bucket("new-pdf-engine", k) < 25000 else "off" for k in keys}
    # Sent as an SDK sends them: a server key, the events endpoint.
    _, raw = apikey_services.provision(world.env("production"), kind="server", name="sdk")
    events = [exposure("new-pdf-engine", k, v) for k, v in served.items()]
    events += [exposure("new-pdf-engine", "user-0", served["user-0"], timedelta(minutes=1))]
    events += [exposure("new-pdf-engine", "yesterday", "on", timedelta(hours=30))]
    response = Client().post("/api/v1/events", {"batch_id": "sdk-1", "events": events},
                             content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {raw}")  # fmt: skip
    assert response.status_code == 202, response.content
    ingest(world, "development", [exposure("new-pdf-engine", "dev-only", "on")])
    moved = sum(1 for k in keys if 25000 <= bucket("new-pdf-engine", k) < 50000)
    assert 0 < moved < 300

    body = {"defaultServe": ROLLOUT_50, "version": state.version, "reason": "50%"}
    preview = dry_run(rm, "/flags/new-pdf-engine/environments/production", body)

    (estimate,) = preview["impact"]
    assert (estimate["environment"], estimate["flag"]) == ("production", "new-pdf-engine")
    assert (estimate["changed"], estimate["of"], estimate["sampled"]) == (moved, 300, False)
    assert estimate["note"] == ""  # exact: both rulesets evaluated
    assert (
        f"production for new-pdf-engine: {moved} of the last day's 300 evaluated contexts "
        "would change" in preview["summary"]
    )


def test_rules_on_attributes_that_exposures_lack_give_no_number(world: World, rm: Client) -> None:
    segment = Segment.objects.create(
        project=world.project, key="free-us-uk", name="Free US/UK",
        rules=[{"id": "r", "conditions": [
            {"attribute": "plan", "operator": "in", "values": ["free"]},
            {"attribute": "country", "operator": "in", "values": ["US", "GB"]}]}],
    )  # fmt: skip
    chatbot = FlagFactory.create(project=world.project, key="ai-chatbot")
    rules = [{"id": "free", "conditions": [{"operator": "in_segment", "values": ["free-us-uk"]}],
              "serve": {"variant": "on"}}]  # fmt: skip
    FlagStateFactory.create(flag=chatbot, environment="production", enabled=True, rules=rules)
    ingest(world, "production", [exposure("ai-chatbot", f"acct-{i}", "on") for i in range(5)])
    de = [{"id": "r", "conditions": [{"attribute": "country", "operator": "in",
                                      "values": ["US", "GB", "DE"]}]}]  # fmt: skip

    preview = dry_run(rm, "/segments/free-us-uk",
                      {"rules": de, "version": segment.version, "reason": "Germany"})  # fmt: skip

    (estimate,) = preview["impact"]
    assert estimate["changed"] is None
    assert "country" in estimate["note"]
    assert "estimate unavailable" in preview["summary"]
    assert "production for ai-chatbot" in preview["summary"]  # the list stays


def test_a_kill_is_compared_with_what_each_context_was_last_served(world: World) -> None:
    chatbot = FlagFactory.create(project=world.project, key="ai-chatbot")
    rules = PRO_RULES
    state = FlagStateFactory.create(flag=chatbot, environment="production", enabled=True,
                                    rules=rules)  # fmt: skip
    events = [exposure("ai-chatbot", f"pro-{i}", "on") for i in range(30)]
    events += [exposure("ai-chatbot", f"free-{i}", "off") for i in range(10)]
    # An earlier "off" for pro-0 is superseded by its later "on".
    events += [exposure("ai-chatbot", "pro-0", "off", timedelta(hours=2))]
    ingest(world, "production", events)
    kill = services.emergency_edit(state, "off")
    assert kill is not None
    outcome = services.submit(
        [kill], actor=world.users["owner"], source=API,
        reason="incident", mode=services.Mode.DRY_RUN, authority=services.Authority.EMERGENCY,
    )  # fmt: skip
    (env,) = [describe_effect(e) for e in outcome.effects]
    estimate = env["flags"][0]["estimate"]
    assert (estimate["changed"], estimate["of"]) == (30, 40)
    assert estimate["note"] == "compared with the variant each was last served"


def test_beyond_the_cap_the_most_recent_contexts_are_a_labelled_sample(
    world: World, rm: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(impact, "MAX_CONTEXTS", 50)
    rules = PRO_RULES
    state = FlagStateFactory.create(flag=world.flag, environment="production", enabled=True,
                                    rules=rules)  # fmt: skip
    # 120 contexts: the 50 most recent were served "on", the 70 before them "off".
    events = [exposure("new-pdf-engine", f"user-{i}", "on" if i < 50 else "off",
                       timedelta(seconds=10 + i)) for i in range(120)]  # fmt: skip
    ingest(world, "production", events)
    preview = dry_run(rm, "/flags/new-pdf-engine/environments/production",
                      {"enabled": False, "version": state.version, "reason": "off"})  # fmt: skip
    (estimate,) = preview["impact"]
    assert (estimate["changed"], estimate["of"], estimate["sampled"]) == (50, 50, True)
    assert "most recently evaluated" in estimate["text"]


def test_the_admin_preview_and_the_change_request_show_the_estimate(world: World) -> None:
    Environment.objects.filter(pk=world.env("production").pk).update(requires_approval=True)
    segment = Segment.objects.create(project=world.project, key="beta", name="Beta",
                                     included=["acct-1"])  # fmt: skip
    rules = [{"id": "beta", "conditions": [{"operator": "in_segment", "values": ["beta"]}],
              "serve": {"variant": "on"}}]  # fmt: skip
    FlagStateFactory.create(flag=world.flag, environment="production", enabled=True, rules=rules,
                            default_serve={"variant": "off"})  # fmt: skip
    ingest(world, "production", [exposure("new-pdf-engine", "acct-1", "on"),
                                 exposure("new-pdf-engine", "acct-2", "off"),
                                 exposure("new-pdf-engine", "acct-3", "off")])  # fmt: skip
    client = Client()
    client.force_login(world.users["editor"])
    form = {"name": "Beta", "description": "", "key_attribute": "targetingKey",
            "included": "acct-1\nacct-2", "excluded": "", "rules": "[]", "reason": "r",
            "expected_version": segment.version}  # fmt: skip
    url = reverse("admin:flags_segment_change", args=[segment.pk])

    page = client.post(url, {**form, "_preview": "1"})

    assert page.status_code == 200
    assert b"1 of the last day&#x27;s 3 evaluated contexts would change" in page.content
    saved = client.post(url, form)
    assert saved.status_code == 302  # to the change request: production needs approval
    request = world.project.change_requests.get()
    estimate = request.preview[0]["flags"][0]["estimate"]
    assert (estimate["changed"], estimate["of"]) == (1, 3)
