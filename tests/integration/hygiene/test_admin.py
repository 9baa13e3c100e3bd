"""The flag admin with hygiene: stale filter and badge, status per environment and code
references on the flag page, and archiving a still-referenced flag warns and needs a reason."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from flags.models import Flag
from hygiene import services
from tests.integration.hygiene.world import World, build_world

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
LIST = "/admin/flags/flag/"


@pytest.fixture
def world() -> World:
    w = build_world()
    found = [
        services.Found("old-launch", "app/launch.py", 3, 'if flags.is_enabled("old-launch"):', ""),
        services.Found("old-launch", "web/App.tsx", 9, 'useFeatureFlag("old-launch")', ""),
    ]
    services.upload_references(w.project, repository="web", commit="a1", found=found, user=None)
    services.upload_references(w.project, repository="web", commit="a2", found=found[:1], user=None)
    return w


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("root", "root@example.test", "pw-root-123"))
    return client


def listed(html: str) -> set[str]:
    # The key column links to the change page (the theme may add attributes and spaces).
    return set(re.findall(r'/admin/flags/flag/\d+/change/[^"]*"[^>]*>\s*([a-z0-9-]+)\s*</a>', html))


def test_stale_filter_and_badge(world: World, admin_client: Client) -> None:
    everything = admin_client.get(LIST).content.decode()
    assert {"ghost-flag", "old-launch", "fresh-flag"} <= listed(everything)
    assert "stale</span>" in everything
    stale = admin_client.get(LIST, {"stale": "yes"}).content.decode()
    assert {"ghost-flag", "old-launch"} <= listed(stale)
    assert "fresh-flag" not in listed(stale)
    assert "kill-payments" not in listed(stale)
    fresh = listed(admin_client.get(LIST, {"stale": "no"}).content.decode())
    assert "fresh-flag" in fresh
    assert "ghost-flag" not in fresh
    removal = listed(admin_client.get(LIST, {"stale": "removal"}).content.decode())
    assert "old-launch" in removal  # launched, still referenced in code


def test_flag_page_shows_statuses_and_references(world: World, admin_client: Client) -> None:
    flag = world.flags["old-launch"]
    page = admin_client.get(reverse("admin:flags_flag_change", args=[flag.pk])).content.decode()
    assert 'id="hygiene"' in page
    assert page.count('<td class="hygiene-status">launched</td>') == 3
    assert "ready for code removal" in page
    assert "web: app/launch.py:3" in page
    assert "web/App.tsx:9" in page  # gone in the latest upload: listed as removed
    removed = page[page.index("hygiene-removed") :]
    assert "web/App.tsx:9" in removed


def test_archiving_a_referenced_flag_warns_and_needs_a_reason(
    world: World, admin_client: Client
) -> None:
    flag = world.flags["old-launch"]
    action = {"action": "archive_flags", "_selected_action": [str(flag.pk)]}
    asked = admin_client.post(LIST, action).content.decode()
    assert 'id="still-referenced"' in asked
    assert "web: app/launch.py:3" in asked
    refused = admin_client.post(LIST, {**action, "confirm": "yes", "reason": " "})
    assert "Give a reason." in refused.content.decode()
    assert not Flag.objects.get(pk=flag.pk).archived
    done = admin_client.post(
        LIST, {**action, "confirm": "yes", "reason": "launched for good"}, follow=True
    )
    assert Flag.objects.get(pk=flag.pk).archived
    assert "Code still references old-launch" in done.content.decode()

    unreferenced = world.flags["ghost-flag"]
    asked = admin_client.post(
        LIST, {"action": "archive_flags", "_selected_action": [str(unreferenced.pk)]}
    ).content.decode()
    assert 'id="still-referenced"' not in asked
