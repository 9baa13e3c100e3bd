# mypy: disallow-untyped-calls=False
"""A flag dashboard in a real browser (Debian's chromium via playwright-core, driven by
tests/browser/flag_dashboard.mjs) against a real server: the new PDF engine's 5% rollout whose
"on" cohort errs eight times as often, rolled back. (The rollout engine's own simulation,
``simulate_rollout``, is not merged here yet: the same history is seeded and the rollback
made as the rollout engine makes it, with flags.services.kill_flag.)
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Callable

import pytest
from django.core.management import call_command

from dashboards import demo
from flags import services
from flags.models import Environment, FlagState
from tests.integration.flags.test_admin_browser import BROWSER_DIR, SCREENSHOTS, _missing
from tests.support.processes import ServerProcess

SCRIPT = BROWSER_DIR / "flag_dashboard.mjs"
PATH = "/admin/dashboards/demo/new-pdf-engine/production/"

pytestmark = pytest.mark.usefixtures("transactional_db")


def rolled_back_pdf_engine() -> None:
    call_command("seed_demo", stdout=io.StringIO())
    production = Environment.objects.get(project__key="demo", key="production")
    demo.seed_history(production.pk, demo.PDF_ENGINE_REGRESSION)
    state = FlagState.objects.get(environment=production, flag__key="new-pdf-engine")
    services.kill_flag(
        state,
        actor=services.Actor.automation("rollouts"),
        source=services.Source.SYSTEM,
        reason="rollback: error rate of 'on' significantly above 'off'",
    )


def test_the_dashboard_of_a_rolled_back_rollout_draws_its_charts(
    server_factory: Callable[..., ServerProcess],
) -> None:
    missing = _missing()
    assert not missing, f"run bin/browser-deps first; missing: {', '.join(missing)}"
    rolled_back_pdf_engine()
    server = server_factory(extra_env={"FLAGSITE_DASHBOARD_POLL_SECONDS": "1"})
    screenshot = SCREENSHOTS / "dashboard-new-pdf-engine-rollback.png"
    spec = {
        "baseUrl": server.url, "username": "viewer", "password": "flagsite-demo",
        "path": PATH, "screenshot": str(screenshot), "updates": 2,
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
    assert "red" in result["guardrail"]
    assert "on: error_rate significantly higher" in result["guardrail"]
    assert "not checked" in result["srm"]  # the flag is off now: one variant is served
    assert [row[0] for row in result["variantRows"]] == ["off (control)", "on"]
    assert result["timelineRows"] >= 2
    error_bars = result["chartData"]["chart-error_rate"][1]  # the point estimates, in %
    assert error_bars[1] > 4 * error_bars[0]
    assert screenshot.exists()
