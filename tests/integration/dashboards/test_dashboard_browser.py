# mypy: disallow-untyped-calls=False
"""A flag dashboard in a real browser (Debian's chromium via playwright-core, driven by
tests/browser/flag_dashboard.mjs) against a real server: the new PDF engine's rollout as the
rollout engine's own simulation plays it (``simulate_rollout --scenario pdf-engine``: a real
plan, the SDK, the events endpoint and the check task), caught in its 5% stage and rolled back
by the guardrails, with the evidence on the timeline.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from flags import roles
from rollouts.models import RolloutPlan
from tests.integration.flags.test_admin_browser import BROWSER_DIR, SCREENSHOTS, _missing
from tests.support.processes import ServerProcess

SCRIPT = BROWSER_DIR / "flag_dashboard.mjs"
PASSWORD = "x-dashboard-viewer-1"

pytestmark = pytest.mark.usefixtures("transactional_db")


def simulated_pdf_engine_rollback(tmp_path: Path) -> RolloutPlan:
    """Runs the pdf-engine scenario; a viewer of its project may sign in with PASSWORD."""
    out = tmp_path / "pdf-engine.json"
    call_command("simulate_rollout", scenario="pdf-engine", json_path=str(out),
                 stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
    result = json.loads(out.read_text())
    assert result["outcome"] == "rolled_back"
    plan = RolloutPlan.objects.select_related(
        "flag_state__environment__project", "flag_state__flag"
    ).get(pk=result["plan_id"])
    viewer = User.objects.create_user("dashboard-viewer", password=PASSWORD, is_staff=True)
    roles.grant_role(viewer, plan.flag_state.environment.project, roles.Role.VIEWER)
    return plan


def test_the_dashboard_of_a_simulated_rollback_draws_its_charts_and_timeline(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    missing = _missing()
    assert not missing, f"run bin/browser-deps first; missing: {', '.join(missing)}"
    plan = simulated_pdf_engine_rollback(tmp_path)
    state = plan.flag_state
    rolled = plan.checks.order_by("-sequence").first()
    assert rolled is not None
    assert rolled.verdict == "rollback"
    server = server_factory(extra_env={"FLAGSITE_DASHBOARD_POLL_SECONDS": "1"})
    screenshot = SCREENSHOTS / "dashboard-new-pdf-engine-rollback.png"
    screenshot.unlink(missing_ok=True)
    env = state.environment
    path = f"/admin/dashboards/{env.project.key}/{state.flag.key}/{env.key}/"
    spec = {
        "baseUrl": server.url, "username": "dashboard-viewer", "password": PASSWORD,
        "path": path, "screenshot": str(screenshot), "updates": 2,
    }  # fmt: skip
    done = subprocess.run(
        ["node", str(SCRIPT)],
        cwd=BROWSER_DIR,
        env={**os.environ, "FLAGSITE_BROWSER": json.dumps(spec)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"browser script failed:\n{done.stderr}\n{done.stdout}"
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["consoleErrors"] == []
    assert result["fetchErrors"] == []
    assert result["updates"] >= 2  # it polled and redrew
    assert result["lastUpdate"].startswith("last update ")
    charts = {"chart-exposures", "chart-error_rate", "chart-conversion_rate",
              "chart-p95_latency_ms", "chart-differences"}  # fmt: skip
    assert charts <= set(result["painted"])
    for name in charts:
        canvas = result["painted"][name]
        assert min(canvas["width"], canvas["height"]) > 0, name
        assert canvas["inked"] > 500, (name, canvas)
    # Status: the rollout to 0% now, and where the plan stopped.
    assert "rollout: on 0.00% · off 100.00%" in result["status"]
    assert "rolled back at stage 1 (5%)" in result["status"]
    # The verdict is the rollback check's, metric by metric.
    assert f"rollout check #{rolled.sequence} of plan #{plan.pk}" in result["guardrail"]
    assert "red error_rate (relative)" in result["guardrail"]
    assert [row[0] for row in result["variantRows"]] == ["off (control)", "on"]
    error_bars = result["chartData"]["chart-error_rate"][1]  # the point estimates, in %
    assert error_bars[1] > 4 * error_bars[0]
    # The timeline: the start, the holds and the rollback with its evidence.
    kinds = [row["kind"] for row in result["timeline"]]
    rollback = next(r for r in result["timeline"] if r["kind"] == "timeline-rollback")
    assert rollback["cells"][1] == "rolled back at stage 1 (rollout set to 0%)"
    assert "beyond red" in rollback["cells"][3]
    assert f"plan #{plan.pk} check #{rolled.sequence}" in rollback["cells"][3]
    assert "error_rate (relative) red" in rollback["cells"][3]
    assert "timeline-stage" in kinds
    assert "timeline-decision" in kinds
    assert screenshot.stat().st_size > 0
