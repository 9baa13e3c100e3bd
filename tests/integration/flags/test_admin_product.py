"""The admin as product managers use it: sentences, the dashboard, the debugger (which must
agree with the evaluation API), segments' reach, history in words and the seed data."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys import authentication
from apikeys import services as apikey_services
from apikeys.models import ApiKey
from flags import debugger, evaluation, roles, services
from flags.admin import segment_reach
from flags.models import ChangeRequest, Environment, Flag, FlagState, SavedContext, Segment

SEED_FLAGS = ["new-pdf-engine", "redesigned-dashboard", "ai-chatbot", "bulk-invoice-api",
              "maintenance-mode"]  # fmt: skip


@pytest.fixture
def seeded(db: None) -> Iterator[None]:
    evaluation.clear()
    authentication.forget_key(None)
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    yield
    evaluation.clear()
    authentication.forget_key(None)


def login(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def flag(key: str) -> Flag:
    return Flag.objects.get(key=key)


def text_of(html: bytes) -> str:
    import re
    from html import unescape

    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", html.decode(), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body)))


def test_flag_list_and_page_read_as_sentences(seeded: None) -> None:
    client = login("editor")
    listing = text_of(client.get(reverse("admin:flags_flag_changelist")).content)
    assert "production: ON · accounts in segment free-us-uk → on · everyone else → off" in listing
    assert "5% of accounts (by accountId) → on, 95% → off" in listing
    assert "on 0%" not in listing
    page = text_of(
        client.get(reverse("admin:flags_flag_change", args=[flag("ai-chatbot").pk])).content
    )
    assert "Targeting in every environment" in page
    assert "accounts in segment free-us-uk → on" in page
    assert "Django administration" not in page


def test_a_kill_switch_page_says_what_on_means(seeded: None) -> None:
    client = login("editor")
    url = reverse("admin:flags_flag_change", args=[flag("maintenance-mode").pk])
    page = text_of(client.get(url).content)
    assert "the guarded feature is OFF for everyone" in page
    release = text_of(
        client.get(reverse("admin:flags_flag_change", args=[flag("ai-chatbot").pk])).content
    )
    assert "the guarded feature is OFF" not in release


def test_home_is_a_dashboard_and_slash_leads_there(seeded: None) -> None:
    editor = User.objects.get(username="editor")
    production = Environment.objects.get(key="production")
    state = FlagState.objects.get(flag__key="new-pdf-engine", environment=production)
    ChangeRequest.objects.create(
        flag_state=state, changes={"enabled": False}, base_version=state.version,
        author=editor, reason="pause the rollout",
    )  # fmt: skip
    client = login("editor")
    assert client.get("/").headers["Location"] == reverse("admin:index")
    page = text_of(client.get(reverse("admin:index")).content)
    assert "Flags per environment" in page
    assert "Demo invoicing app · Production" in page
    assert "4 on · 1 off" in page  # maintenance-mode is the one flag off
    assert "pause the rollout" in page
    assert "No rollout is running." in page
    # Recent changes read as words, with who and why.
    assert "turned ON" in page
    assert "demo data" in page
    assert "Event batchs" not in page


def test_sidebar_shows_only_what_the_role_may_open(seeded: None) -> None:
    editor = text_of(login("editor").get(reverse("admin:index")).content)
    assert "Segments" in editor
    assert "API keys" not in editor  # owners only
    owner = text_of(login("owner").get(reverse("admin:index")).content)
    assert "API keys" in owner


def test_debugger_explains_the_matching_rule(seeded: None) -> None:
    client = login("editor")
    target = flag("bulk-invoice-api")
    page = client.get(
        reverse("admin:flags_debugger"),
        {"flag": str(target.pk), "account_id": "acct-1001", "debug": "1"},
    )
    text = text_of(page.content)
    assert text.count("rule enterprise matched") == 3  # development, staging, production
    assert "accounts in segment enterprise-accounts → true" in text
    other = text_of(
        client.get(
            reverse("admin:flags_flag_change", args=[target.pk]),
            {"account_id": "acct-9999", "debug": "1"},
        ).content
    )
    assert "no rule matched: the default serve" in other
    assert "accounts in segment enterprise-accounts → false" in other


def test_debugger_shows_the_bucket_against_the_thresholds(seeded: None) -> None:
    client = login("viewer")
    text = text_of(
        client.get(
            reverse("admin:flags_debugger"),
            {"flag": str(flag("new-pdf-engine").pk), "account_id": "acct-42", "debug": "1"},
        ).content
    )
    assert "accountId = acct-42 → bucket" in text
    assert "on: buckets 0 to 4,999 (5%)" in text
    assert "off: buckets 5,000 to 99,999 (95%)" in text
    assert text.count("◀ here") == 3


def test_debugger_takes_a_saved_context_and_reports_field_errors(seeded: None) -> None:
    client = login("editor")
    saved = SavedContext.objects.get(name="OpenFeature app (targetingKey only)")
    text = text_of(
        client.get(
            reverse("admin:flags_debugger"),
            {"flag": str(flag("redesigned-dashboard").pk), "saved": str(saved.pk), "debug": "1"},
        ).content
    )
    assert "reason SPLIT" in text
    assert "targetingKey = user-4 → bucket" in text
    bad = client.get(
        reverse("admin:flags_debugger"),
        {"flag": str(flag("ai-chatbot").pk), "attributes": "plan free", "debug": "1"},
    )
    assert bad.status_code == 200
    assert "Line 1: write name=value." in text_of(bad.content)


def _contexts(count: int) -> list[dict[str, Any]]:
    rng = random.Random(19)
    accounts = ["acct-1001", "acct-1002", "acct-1003", *(f"acct-{n}" for n in range(2000, 2050))]
    values: dict[str, list[Any]] = {
        "targetingKey": [f"user-{n}" for n in range(200)] + ["", 7],
        "userId": [f"user-{n}" for n in range(50)],
        "accountId": [*accounts, 1001, ""],
        "plan": ["free", "pro", "enterprise", "FREE", 3],
        "country": ["US", "GB", "UK", "FR", "us", None],
    }
    out = []
    for _ in range(count):
        out.append(
            {name: rng.choice(options) for name, options in values.items() if rng.random() < 0.7}
        )
    return out


def test_debugger_equals_the_api_for_the_seed_flags_over_1000_contexts(seeded: None) -> None:
    environments = list(Environment.objects.filter(project__key="demo"))
    keys = {}
    for environment in environments:
        _, keys[environment.pk] = apikey_services.provision(environment, kind="server", name="t")
    viewer = User.objects.get(username="viewer")
    flags = {key: flag(key) for key in SEED_FLAGS}
    api = Client()
    compared = 0
    visible = list(roles.visible_environments(viewer).order_by("sort_order", "key"))
    for context in _contexts(1000):
        # The debugger answers for every environment at once; ask it once per flag.
        shown_by_flag = {
            key: {
                r.environment.pk: r.details
                for r in debugger.debug_flag(obj, context, viewer, visible)
            }
            for key, obj in flags.items()
        }
        for environment in environments:
            response = api.post(
                "/api/v1/evaluate",
                {"flags": SEED_FLAGS, "context": context},
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {keys[environment.pk]}",
            )
            assert response.status_code == 200, response.content
            answers = {d["flagKey"]: d for d in response.json()["flags"]}
            for key in flags:
                shown = shown_by_flag[key][environment.pk]
                assert shown == answers[key], (key, environment.key, context)
                compared += 1
    assert compared == 1000 * len(environments) * len(SEED_FLAGS)


def test_segment_page_shows_reach_member_check_and_size(seeded: None) -> None:
    from analytics.models import EventBatch, RawEvent

    segment = Segment.objects.get(key="enterprise-accounts")
    production = Environment.objects.get(key="production")
    now = timezone.now()
    batch = EventBatch.objects.create(
        environment=production, batch_id="b1", event_count=5, received_at=now
    )
    for key, variant in [("acct-1001", "on"), ("acct-1001", "on"), ("acct-1002", "on"),
                         ("acct-7", "off"), ("acct-8", "off")]:  # fmt: skip
        RawEvent.objects.create(
            environment=production, batch=batch, kind="exposure", name="bulk-invoice-api",
            variant=variant, context_key=key, occurred_at=now, received_at=now,
        )  # fmt: skip
    estimate = segment_reach.estimated_size(segment)
    assert estimate is not None
    assert (estimate.contexts, estimate.flag_key, estimate.environment) == (
        2, "bulk-invoice-api", "production",
    )  # fmt: skip
    client = login("editor")
    url = reverse("admin:flags_segment_change", args=[segment.pk])
    page = text_of(client.get(url).content)
    assert "accounts with accountId acct-1001, acct-1002 or acct-1003" in page
    assert "≈ 2 contexts seen in the last 30 days" in page
    assert page.count("bulk-invoice-api") >= 3  # one row per environment
    yes = text_of(client.get(url, {"member": "1", "account_id": "acct-1001"}).content)
    assert "Yes: " in yes
    no = text_of(client.get(url, {"member": "1", "account_id": "acct-9"}).content)
    assert "No: " in no
    listing = text_of(client.get(reverse("admin:flags_segment_changelist")).content)
    assert "ai-chatbot" in listing


def test_history_reads_as_words_including_segment_changes(seeded: None) -> None:
    owner = User.objects.get(username="owner")
    segment = Segment.objects.get(key="enterprise-accounts")
    # The segment reaches production, which requires approval in the demo: propose, approve.
    edit = services.Edit(
        services.SEGMENT, segment, {"included": [*segment.included, "acct-1004"]},
        segment.version,
    )  # fmt: skip
    proposal = services.submit(
        [edit], actor=owner, source=services.Source.API, reason="new enterprise customer",
        mode=services.Mode.PROPOSE,
    ).change_request  # fmt: skip
    approver = User.objects.get(username="admin")
    services.approve_change(proposal, actor=approver, source=services.Source.API, reason="ok")
    services.apply_change(proposal, actor=owner, source=services.Source.API)
    development = Environment.objects.get(key="development")
    state = FlagState.objects.get(flag__key="new-pdf-engine", environment=development)
    serve = json.loads(json.dumps(state.default_serve))
    serve["rollout"]["variants"] = [
        {"variant": "on", "weight": 25_000}, {"variant": "off", "weight": 75_000},
    ]  # fmt: skip
    services.update_flag_state(
        state, changes={"default_serve": serve}, expected_version=state.version, actor=owner,
        source=services.Source.ADMIN, reason="widen to 25%",
    )  # fmt: skip
    client = login("editor")
    bulk = text_of(
        client.get(reverse("admin:flags_flag_history", args=[flag("bulk-invoice-api").pk])).content
    )
    assert "segment enterprise-accounts" in bulk
    assert "added acct-1004 to included" in bulk
    assert "new enterprise customer" in bulk
    assert "API" in bulk
    pdf = text_of(
        client.get(reverse("admin:flags_flag_history", args=[flag("new-pdf-engine").pk])).content
    )
    assert "default serve (everyone else): rollout on 5% → 25%, off 95% → 75%" in pdf
    assert "widen to 25%" in pdf


def test_revert_preview_says_what_it_restores(seeded: None) -> None:
    owner = User.objects.get(username="owner")
    development = Environment.objects.get(key="development")
    state = FlagState.objects.get(flag__key="ai-chatbot", environment=development)
    first = state.history.order_by("-history_id").first()
    assert first is not None
    services.update_flag_state(
        state, changes={"enabled": False}, expected_version=state.version, actor=owner,
        source=services.Source.ADMIN, reason="pause",
    )  # fmt: skip
    client = login("owner")
    url = reverse("admin:flags_flag_revert", args=[state.flag_id, state.pk, first.history_id])
    page = text_of(client.get(url).content)
    assert "What the revert restores" in page
    assert "turned ON" in page
    assert "After the revert: development: ON · accounts in segment free-us-uk → on" in page


def test_api_docs_are_served_without_a_cdn(seeded: None) -> None:
    client = Client()
    for url in ("/api/docs/", "/api/redoc/"):
        page = client.get(url).content.decode()
        assert "/static/drf_spectacular_sidecar/" in page
        assert "cdn.jsdelivr.net" not in page
        assert "unpkg.com" not in page


def test_seed_matches_the_requirements(seeded: None) -> None:
    segment = Segment.objects.get(key="free-us-uk")
    conditions = segment.rules[0]["conditions"]
    assert {"attribute": "country", "operator": "in", "values": ["US", "GB"]} in conditions
    viewer = User.objects.get(username="viewer")

    def answer(key: str, context: dict[str, Any]) -> Any:
        results = debugger.debug_flag(flag(key), context, viewer)
        return {r.environment.key: r.details["variant"] for r in results}

    everywhere = {"development", "staging", "production"}
    on = answer("ai-chatbot", {"accountId": "a", "plan": "free", "country": "GB"})
    assert set(on) == everywhere
    assert set(on.values()) == {"on"}
    assert set(
        answer("ai-chatbot", {"accountId": "a", "plan": "pro", "country": "GB"}).values()
    ) == {"off"}
    assert set(answer("bulk-invoice-api", {"accountId": "acct-1002"}).values()) == {"on"}
    bulk = FlagState.objects.filter(flag__key="bulk-invoice-api").first()
    assert bulk is not None
    assert bulk.rules[0]["conditions"][0]["operator"] == "in_segment"
    # An OpenFeature app sends only a targetingKey: it gets a real split answer, not an error.
    for n in range(20):
        results = debugger.debug_flag(
            flag("redesigned-dashboard"), {"targetingKey": f"u{n}"}, viewer
        )
        assert all(r.details["reason"] == "SPLIT" for r in results)
    nothing = debugger.debug_flag(flag("redesigned-dashboard"), {}, viewer)
    assert {r.details["variant"] for r in nothing} == {"control"}
    assert ApiKey.objects.filter(name__startswith="demo").count() == 2


def _new_flag(client: Client, **fields: str) -> Any:
    project = Flag.objects.get(key="ai-chatbot").project
    data = {"project": str(project.pk), "key": "x", "name": "X", "kind": "release",
            "value_type": "boolean", "variants": "", "salt": "", "tags": "", "reason": "",
            "expected_version": "", **fields}  # fmt: skip
    return client.post(reverse("admin:flags_flag_add"), data)


def test_a_new_flag_starts_with_its_kinds_variants(seeded: None) -> None:
    client = login("editor")
    response = _new_flag(client, key="pricing-test", kind="experiment", value_type="string")
    assert response.status_code == 302, text_of(response.content)[:2000]
    assert Flag.objects.get(key="pricing-test").variants == {
        "control": "control", "treatment": "treatment",
    }  # fmt: skip
    _new_flag(client, key="ops-switch", kind="ops")
    assert Flag.objects.get(key="ops-switch").variants == {"on": True, "off": False}


def test_variant_values_of_the_wrong_type_are_named_next_to_the_field(seeded: None) -> None:
    client = login("editor")
    response = _new_flag(client, key="typed", variants='{"on": "yes", "off": false}')
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="id_variants_error"' in page  # on the field, where the widget shows it
    assert "Variant &#x27;on&#x27;: the value must be true or false (the flag is boolean)." in page
    assert not Flag.objects.filter(key="typed").exists()


def test_prerequisites_are_edited_as_rows_of_flags(seeded: None) -> None:
    state = FlagState.objects.get(flag__key="new-pdf-engine", environment__key="staging")
    page = login("editor").get(reverse("admin:flags_flagstate_change", args=[state.pk]))
    html = page.content.decode()
    assert 'data-editor="prerequisites"' in html
    assert "maintenance-mode" in html
    assert "flags/list_widgets.js" in html
