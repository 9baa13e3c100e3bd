"""The product manager's pages: the flag overview, filters, history, and the demo data."""

from __future__ import annotations

from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from flags.models import Flag, FlagState, Ruleset, Segment
from tests.factories import FlagStateFactory
from tests.integration.flags.conftest import World

ROLLOUT = {
    "rollout": {
        "bucketBy": "accountId",
        "variants": [{"variant": "on", "weight": 5000}, {"variant": "off", "weight": 95000}],
    }
}


def test_flag_page_shows_every_environment_at_a_glance(world: World) -> None:
    FlagStateFactory.create(
        flag=world.flag, environment="staging", enabled=True, default_serve=ROLLOUT
    )
    client = Client()
    client.force_login(world.users["viewer"])
    page = client.get(reverse("admin:flags_flag_change", args=[world.flag.pk])).content.decode()
    assert "Targeting in every environment" in page
    assert "5% of accounts (by accountId) → on, 95% → off" in page
    listing = client.get(reverse("admin:flags_flag_changelist"), {"state": "staging:on"})
    assert b"new-pdf-engine" in listing.content
    listing = client.get(reverse("admin:flags_flag_changelist"), {"state": "production:on"})
    assert b"new-pdf-engine" not in listing.content


def test_history_shows_a_field_diff_across_environments(world: World) -> None:
    FlagStateFactory.create(flag=world.flag, environment="staging", enabled=True)
    client = Client()
    client.force_login(world.users["editor"])
    page = client.get(reverse("admin:flags_flag_history", args=[world.flag.pk])).content.decode()
    assert "staging" in page
    assert "<code>enabled</code>" in page
    assert "factory" in page


def test_seed_demo_is_idempotent(db: None) -> None:
    call_command("seed_demo")
    counts = (Flag.objects.count(), Segment.objects.count(), FlagState.objects.count())
    versions = list(Ruleset.objects.order_by("pk").values_list("version", flat=True))
    call_command("seed_demo")
    assert counts == (5, 2, 15)
    assert (Flag.objects.count(), Segment.objects.count(), FlagState.objects.count()) == counts
    assert list(Ruleset.objects.order_by("pk").values_list("version", flat=True)) == versions
    chatbot = FlagState.objects.get(flag__key="ai-chatbot", environment__key="production")
    assert chatbot.enabled
    assert chatbot.rules[0]["conditions"][0]["values"] == ["free-us-uk"]
