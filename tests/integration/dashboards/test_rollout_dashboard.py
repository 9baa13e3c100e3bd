"""The dashboards of a simulated pdf-engine rollback (``simulate_rollout --scenario pdf-engine``:
a real plan, SDK, events endpoint and check task): the rollout's status, its guardrail verdict
and timeline in the JSON the page draws from, the index's stage and stale badges, and query
counts that grow neither with the events nor with the checks of a long rollout."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics import services as ingest
from dashboards.rollout import TIMELINE_DECISIONS, TIMELINE_HOLDS
from flags import roles
from flags import services as flag_services
from flags.models import Flag
from rollouts.models import RolloutCheck, RolloutPlan


@pytest.fixture(scope="module")
def rollback(django_db_setup: None, django_db_blocker: Any, tmp_path_factory: Any) -> Any:
    """The simulated rollback, once for the module (removed afterwards), and a viewer."""
    out = Path(tmp_path_factory.mktemp("sim")) / "pdf-engine.json"
    with django_db_blocker.unblock():
        call_command("simulate_rollout", scenario="pdf-engine", json_path=str(out),
                     stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
        result = json.loads(out.read_text())
        plan = RolloutPlan.objects.select_related(
            "flag_state__environment__project", "flag_state__flag"
        ).get(pk=result["plan_id"])
        project = plan.flag_state.environment.project
        viewer = User.objects.create_user("sim-viewer", password="x-sim-viewer-1", is_staff=True)
        roles.grant_role(viewer, project, roles.Role.VIEWER)
        # A flag past its expiry date: hygiene calls it stale.
        old = flag_services.create_flag(
            project, data={"key": "old-banner", "name": "Old banner"},
            actor=flag_services.Actor.automation("tests"), source="system", reason="test",
        )  # fmt: skip
        Flag.objects.filter(pk=old.pk).update(expires_at=timezone.localdate() - timedelta(days=3))
    yield result, plan
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def urls(plan: RolloutPlan) -> tuple[str, str]:
    state = plan.flag_state
    env = state.environment
    page = f"/admin/dashboards/{env.project.key}/{state.flag.key}/{env.key}/"
    return page, page + "data.json"


def viewer() -> Client:
    client = Client()
    client.force_login(User.objects.get(username="sim-viewer"))
    return client


@pytest.mark.django_db
def test_the_json_shows_the_rolled_back_rollout_and_its_evidence(rollback: Any) -> None:
    result, plan = rollback
    assert result["outcome"] == "rolled_back"
    data = viewer().get(urls(plan)[1]).json()
    checks = list(plan.checks.order_by("sequence"))
    rolled = checks[-1]
    assert rolled.verdict == "rollback"
    assert not rolled.manual

    # Status now: the rollout set to 0% (the plan's rollback action), stage 1 of 4 at 5%.
    assert data["status"]["mode"] == "rollout"
    assert data["status"]["percent"] == {"on": 0.0, "off": 100.0}
    rollout = data["rollout"]
    assert (rollout["plan"], rollout["status"]) == (plan.pk, "rolled_back")
    assert (rollout["stage"], rollout["stage_count"], rollout["percent"]) == (1, 4, 5.0)
    assert rollout["label"] == "rolled back at stage 1 (5%)"
    assert rollout["url"] == f"/admin/rollouts/rolloutplan/{plan.pk}/change/"
    assert rollout["next_decision"].startswith("none: the rollout is rolled back")

    # The guardrail verdict is the latest check's, with each metric's value vs control.
    guardrail = data["guardrail"]
    assert guardrail["verdict"] == "red"
    assert guardrail["source"] == f"rollout check #{rolled.sequence} of plan #{plan.pk} (Roll back)"
    assert guardrail["reasons"] == [r["message"] for r in rolled.reasons]
    metrics = {m["guardrail"]: m for m in guardrail["metrics"]}
    relative = metrics["error_rate (relative)"]
    tested = rolled.samples["tests"]["error_rate"]
    assert relative["status"] == "red"
    assert (relative["treatment"], relative["control"]) == (tested["treatment"], tested["control"])
    assert relative["value"] == pytest.approx(tested["treatment"] / tested["control"])
    assert relative["value"] > relative["red"] == 2.0
    assert set(metrics) == {g["guardrail"] for g in rolled.guardrails}

    # The timeline: every decision and the newest holds (TIMELINE_HOLDS of them), the rollback
    # first, with its evidence.
    newest_holds = [c for c in reversed(checks) if c.verdict == "hold"][:TIMELINE_HOLDS]
    expected = [c for c in reversed(checks) if c.verdict != "hold" or c in newest_holds]
    rows = [e for e in data["timeline"] if e["kind"] != "manual"]
    assert data["timeline_checks"] == {"shown": len(expected), "total": len(checks)}
    assert [r["evidence"]["check"] for r in rows] == [c.sequence for c in expected]
    first = rows[0]
    assert first["kind"] == "rollback"
    assert first["title"] == "rolled back at stage 1 (rollout set to 0%)"
    assert first["evidence"]["guardrails"] == rolled.guardrails
    assert first["evidence"]["samples"]["treatment_users"] == rolled.samples["treatment_users"]
    assert "beyond red" in first["detail"]
    assert rows[-1]["kind"] == "stage"
    assert rows[-1]["title"] == "rollout started: stage 1 (5%)"
    assert {r["title"] for r in rows[1:-1]} <= {"hold at stage 1"}
    # The rollout's own writes are in the flag's audit history too.
    manual = [e for e in data["timeline"] if e["kind"] == "manual"]
    assert any(f"rollout #{plan.pk} rollback" in e["detail"] for e in manual)


@pytest.mark.django_db
def test_the_index_shows_the_stage_and_the_stale_badge(rollback: Any) -> None:
    html = viewer().get("/admin/dashboards/").content.decode()
    row = html.split('data-flag="new-engine"')[1].split("</tr>")[0]
    cell = row.split('data-env="development"')[1].split("</div>")[0]
    assert "rolled back at stage 1 (5%)" in cell
    assert "rollout-rolled_back" in cell
    assert '<td class="stale-badge"></td>' in row
    old = html.split('data-flag="old-banner"')[1].split("</tr>")[0]
    badge = old.split('<td class="stale-badge">')[1].split("</td>")[0]
    assert "stale · " in badge
    assert "past its expiry date" in badge


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.django_db
def test_query_counts_grow_neither_with_events_nor_with_checks(rollback: Any) -> None:
    _, plan = rollback
    client = viewer()
    page, data_url = urls(plan)
    pages = (data_url, page, "/admin/dashboards/")
    for url in pages:  # warm the per-process caches (theme, roles) first
        _queries(client, url)
    before = {url: _queries(client, url) for url in pages}

    # A long rollout: hundreds more checks (holds and decisions) and more events.
    last = plan.checks.order_by("-sequence").first()
    assert last is not None
    start = last.checked_at
    RolloutCheck.objects.bulk_create(
        RolloutCheck(
            plan=plan, sequence=last.sequence + i, checked_at=start + timedelta(minutes=i),
            stage=0, verdict="hold" if i % 4 else "pause", reasons=last.reasons,
            guardrails=last.guardrails if i % 4 else [], samples=last.samples,
            actor="automation:rollouts",
        )
        for i in range(1, 401)
    )  # fmt: skip
    now = timezone.now() - timedelta(minutes=30)
    events = [
        {"type": "exposure", "flag": "new-engine", "variant": "off", "context_key": f"more-{i}",
         "timestamp": (now + timedelta(seconds=i)).isoformat(),
         "assignments": {"new-engine": "off"}}
        for i in range(2000)
    ]  # fmt: skip
    ingest.ingest(plan.flag_state.environment_id, {"batch_id": "more", "events": events})
    after = {url: _queries(client, url) for url in pages}
    assert after == before
    assert before[data_url] <= 20

    data = client.get(data_url).json()
    rows = [e for e in data["timeline"] if e["kind"] != "manual"]
    assert len(rows) == TIMELINE_DECISIONS + TIMELINE_HOLDS
    assert data["timeline_checks"] == {"shown": len(rows), "total": plan.checks.count()}
    # Newest first, and every kind is there: the latest holds and the latest decisions.
    assert rows[0]["evidence"]["check"] == last.sequence + 400
    assert sum(r["title"] == "hold at stage 1" for r in rows) == TIMELINE_HOLDS
    # The verdict is the newest check's (a hold here, its guardrails copied from the rollback).
    assert data["guardrail"]["source"].startswith(f"rollout check #{last.sequence + 399} ")
