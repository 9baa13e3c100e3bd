"""The flag's admin page shows each running rollout: its stage, the guardrails of the latest
check against control and when the next decision is due (through the admin test client, with
a real plan, real traffic in the rollups and a real check)."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from analytics import services as analytics
from flags import admin_panels
from rollouts import services
from rollouts.admin_panel import describe, duration
from rollouts.models import RolloutPlan
from rollouts.status import metric_statuses
from tests.integration.rollouts.conftest import World

pytestmark = [pytest.mark.integration]


def traffic(world: World, start: Any) -> None:
    """Traffic in the stage's 5% split: 3,800 control users and 200 flag-on users, with the
    same errors and conversions; flag-on is slower."""
    events: list[dict[str, Any]] = []
    seen = {"on": 0, "off": 0}
    for i in range(4000):
        variant = "on" if i % 20 == 0 else "off"
        k = seen[variant] = seen[variant] + 1
        at = (start + timedelta(seconds=0.75 * i)).isoformat()
        common = {"context_key": f"acct-{i}", "timestamp": at, "assignments": {"pdf": variant}}
        events.append({"type": "exposure", "flag": "pdf", "variant": variant, **common})
        slower = 250.0 if variant == "on" else 0.0  # p95 in the yellow band (300-500 ms)
        events.append({"type": "latency", "value": 90.0 + slower + k % 40, **common})
        if k % 200 == 3:
            events.append({"type": "error", **common})
        if k % 20 == 1:
            events.append({"type": "conversion", **common})
    analytics.ingest(world.env.pk, {"batch_id": "panel-traffic", "events": events})


def page(world: World) -> str:
    world.viewer.is_staff = True
    world.viewer.save()
    client = Client()
    client.force_login(world.viewer)
    response = client.get(f"/admin/flags/flag/{world.state.flag_id}/change/")
    assert response.status_code == 200
    return response.content.decode()


def panel_row(text: str, env: str) -> str:
    panel = text.split('id="rollouts-panel"')[1].split("</table>")[0]
    return panel.split(f'data-environment="{env}"')[1].split("</tr>")[0]


@pytest.mark.django_db
def test_the_flag_page_shows_stage_guardrails_and_next_decision(world: World) -> None:
    now = timezone.now().replace(microsecond=0)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    services.start(plan, user=world.manager, reason="ship it", now=now - timedelta(hours=1))
    traffic(world, now - timedelta(minutes=55))
    record = services.check(plan.pk, now)
    assert record is not None
    assert record.verdict == "hold", record.reasons
    assert [r["code"] for r in record.reasons] == ["yellow"]
    plan.refresh_from_db()

    row = html.unescape(panel_row(page(world), "staging"))
    assert f'data-plan="{plan.pk}"' in row
    assert "stage 1 of 4 · <strong>5%</strong>" in row
    assert f"since {(now - timedelta(hours=1)):%Y-%m-%d %H:%M} UTC" in row
    assert "bake time left 23 h 0 min" in row or "bake time left 22 h 59 min" in row
    # Every guardrail of the check, coloured, with its value and flag-on vs control.
    metrics = metric_statuses(record)
    assert [m.guardrail for m in metrics] == [g["guardrail"] for g in record.guardrails]
    assert {m.guardrail: m.status for m in metrics} == {
        # An hour of traffic bounds the differences, not yet the ratios to control.
        "error_rate (relative)": "inconclusive", "error_rate (absolute)": "green",
        "latency_p95 (absolute)": "yellow", "conversion_rate (relative)": "inconclusive",
    }  # fmt: skip
    assert "background:#fcf4dc" in row  # yellow
    for m in metrics:
        assert f'data-guardrail="{m.guardrail}" data-status="{m.status}"' in row
        assert f"{m.guardrail}: {describe(m)}" in row
    error = next(m for m in metrics if m.guardrail == "error_rate (relative)")
    tested = record.samples["tests"]["error_rate"]
    assert (error.treatment, error.control) == (tested["treatment"], tested["control"])
    assert f"vs control {100 * tested['control']:.2f}%" in describe(error)
    assert f"check #{record.sequence} at {now:%Y-%m-%d %H:%M} UTC: Hold" in row
    # When the next decision is due: the next check, and the end of the bake time.
    assert plan.next_check_at is not None
    assert f"next check {plan.next_check_at:%Y-%m-%d %H:%M:%S} UTC" in row
    bake_end = now - timedelta(hours=1) + timedelta(days=1)
    assert f"it may progress from {bake_end:%Y-%m-%d %H:%M:%S} UTC" in row
    assert f'href="/admin/rollouts/rolloutplan/{plan.pk}/change/"' in row
    assert 'href="/admin/dashboards/shop/pdf/staging/"' in row
    # Environments without a running rollout have no row.
    assert 'data-environment="production"' not in page(world).split('id="rollouts-panel"')[1]


@pytest.mark.django_db
def test_a_paused_rollout_says_no_decision_is_due_and_finished_ones_leave(world: World) -> None:
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    services.start(plan, user=world.manager, reason="ship it")
    services.pause(plan, user=world.manager, reason="checking a ticket")
    row = html.unescape(panel_row(page(world), "staging"))
    assert "<strong>paused</strong>" in row
    assert "checking a ticket" in row
    assert "none while paused: resume the rollout to go on" in row
    assert "no check has judged the guardrails yet" in row

    services.abort(RolloutPlan.objects.get(pk=plan.pk), user=world.manager, reason="not now")
    text = page(world)
    assert "No running or paused rollout of this flag." in text
    assert 'href="/admin/rollouts/rolloutplan/add/"' in text


@pytest.mark.django_db
def test_a_failing_panel_leaves_the_flag_page_usable(world: World) -> None:
    def broken(flag: Any, request: Any) -> str:
        raise RuntimeError("boom")

    admin_panels.register_flag_panel("broken", broken)
    try:
        text = page(world)
    finally:
        admin_panels._PANELS.pop("broken")
    assert "The broken panel failed to load." in text
    assert 'id="rollouts-panel"' in text
    assert 'id="targeting-sentences"' in text


def test_durations_read_naturally() -> None:
    assert duration(2 * 86_400 + 3 * 3600 + 59) == "2 d 3 h"
    assert duration(5 * 3600 + 12 * 60) == "5 h 12 min"
    assert duration(40 * 60 + 30) == "40 min"
    assert duration(30) == "under a minute"
