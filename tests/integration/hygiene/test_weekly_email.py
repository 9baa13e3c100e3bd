"""The weekly stale-flag email through a real SMTP server, once per week; stale_flags."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from hygiene import services
from hygiene.models import HygieneSettings, WeeklyReport
from hygiene.report import build_report
from tests.integration.hygiene.conftest import SmtpServer
from tests.integration.hygiene.world import World, build_world

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
STALE = {"old-checkout", "old-launch", "new-stale", "ghost-flag", "perm-admin"}


@pytest.fixture
def world() -> World:
    return build_world()


def test_the_report_finds_exactly_the_stale_flags(world: World) -> None:
    report = build_report(world.now)
    by_key = {e.key: e for e in report.entries}
    assert set(by_key) == STALE
    assert [r["criterion"] for r in by_key["old-checkout"].reasons] == ["launched"]
    assert by_key["old-checkout"].stale_since == world.ago(6).isoformat()
    assert {r["criterion"] for r in by_key["ghost-flag"].reasons} == {"unused", "past lifetime"}
    assert [r["criterion"] for r in by_key["perm-admin"].reasons] == ["unused"]
    assert by_key["old-checkout"].environments == {
        "development": "launched", "production": "launched", "staging": "launched"
    }  # fmt: skip
    assert by_key["ghost-flag"].last_evaluated is None
    assert report.trend.added == ["shop/fresh-flag"]
    assert report.trend.removed == ["shop/retired"]
    assert report.trend.newly_stale == ["shop/new-stale"]
    assert report.trend.at_full_over_30_days == 1  # old-launch (kill-payments is permanent)


def test_weekly_email_goes_to_ops_and_owners_once_per_week(
    world: World, smtp_settings: SmtpServer
) -> None:
    checkout = services.Found("old-checkout", "app/checkout.py", 12, "if flags.is_enabled(", "")
    gone = services.Found("old-checkout", "web/Cart.tsx", 4, "useFeatureFlag(", "")
    for commit, found in (("abc122", [checkout, gone]), ("abc123", [checkout])):
        services.upload_references(
            world.project, repository="shop-web", commit=commit, user=None, found=found
        )
    first = services.send_weekly_report(world.now)
    assert first.sent
    assert first.recipients == sorted(
        ["ops@example.test", "oncall@example.test", "alice@example.test", "bob@example.test"]
    )
    ops = smtp_settings.to("ops@example.test")
    assert len(ops) == 1
    assert ops[0].recipients == ["ops@example.test", "oncall@example.test"]
    text, html = ops[0].part("text/plain"), ops[0].part("text/html")
    for key in STALE:
        assert f"shop/{key}" in text
        assert f"shop/{key}" in html
    for fresh in ("fresh-flag", "kill-payments", "retired"):
        assert f"shop/{fresh} " not in text
    flag = world.flags["old-checkout"]
    link = f"https://flags.example.test/admin/flags/flag/{flag.pk}/change/"
    assert link in text
    assert f'href="{link}"' in html
    assert "shop-web: app/checkout.py:12" in text
    removed = text[text.index("Removed since the last scan:") :]
    assert "shop-web: web/Cart.tsx:4" in removed
    assert "web/Cart.tsx:4" in html
    assert "app/checkout.py:12" in html
    assert "Stale since" in text
    assert "1 added, 1 removed, 1 newly stale; 1 flag(s) at 100% for over 30 days" in text
    assert "never" in text  # ghost-flag's last evaluation

    alice = smtp_settings.to("alice@example.test")
    assert len(alice) == 1
    alice_text = alice[0].part("text/plain")
    assert {"shop/old-checkout", "shop/old-launch", "shop/new-stale"} <= set(
        line.split(" ")[1] for line in alice_text.splitlines() if line.startswith("* ")
    )
    assert "ghost-flag" not in alice_text
    bob_text = smtp_settings.to("bob@example.test")[0].part("text/plain")
    assert "shop/ghost-flag" in bob_text
    assert "old-checkout" not in bob_text
    sent = len(smtp_settings.received)
    assert sent == 3

    # A retried or duplicated task in the same week sends nothing.
    again = services.send_weekly_report(world.now)
    assert not again.sent
    assert len(smtp_settings.received) == sent
    claim = WeeklyReport.objects.get()
    assert claim.sent_at is not None
    assert claim.summary["stale"] == len(STALE)


def test_a_failed_send_releases_the_claim(world: World, settings, smtp_server) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = 1  # nothing listens there
    settings.OPS_EMAILS = ["ops@example.test"]
    with pytest.raises(ConnectionRefusedError):
        services.send_weekly_report(world.now)
    assert not WeeklyReport.objects.exists()


def test_stale_flags_command_text_and_json(world: World) -> None:
    out = StringIO()
    call_command("stale_flags", "--json", "--at", world.now.isoformat(), stdout=out)
    data = json.loads(out.getvalue())
    assert {e["key"] for e in data["entries"]} == STALE
    assert data["trend"]["added"] == ["shop/fresh-flag"]
    text = StringIO()
    call_command("stale_flags", "--project", "shop", "--at", world.now.isoformat(), stdout=text)
    assert "shop/ghost-flag (release)" in text.getvalue()
    assert "not evaluated for over 30 days (never evaluated)" in text.getvalue()


def test_project_thresholds_apply(world: World) -> None:
    HygieneSettings.objects.create(project=world.project, launched_days=30, unused_days=60)
    keys = {e.key for e in build_report(world.now).entries}
    assert "old-checkout" not in keys  # launched 20 days ago: under the project's 30
    assert "old-launch" in keys  # launched 40 days ago
    assert "perm-admin" not in keys  # unused for 40 days: under the project's 60
