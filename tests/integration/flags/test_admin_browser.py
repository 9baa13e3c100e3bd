# mypy: disallow-untyped-calls=False
"""The targeting widget (flags/static/flags/rules_widget.js) in a real browser: Debian's
chromium, driven by tests/browser/targeting_widget.mjs against a real server process.

bin/browser-deps installs chromium and the node packages; without them these tests fail
(they do not skip), so a missing browser cannot pass unnoticed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flags.models import Environment, FlagState, Ruleset
from tests.factories import PASSWORD, FlagFactory, ProjectFactory, UserFactory, grant
from tests.support.processes import ROOT, ServerProcess

BROWSER_DIR = ROOT / "tests" / "browser"
SCRIPT = BROWSER_DIR / "targeting_widget.mjs"
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """A server started after this test's data exists. The session-wide flagsite_server would
    keep ContentType ids cached from before an earlier test's flush recreated them, and
    guardian's object permissions (looked up by content type) would then all be missing."""
    return server_factory()


def _missing() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        missing.append("tests/browser/node_modules (npm ci --prefix tests/browser)")
    return missing


def run_browser(server: ServerProcess, scenario: str, state: FlagState, user: str) -> Any:
    missing = _missing()
    assert not missing, f"run bin/browser-deps first; missing: {', '.join(missing)}"
    screenshot = SCREENSHOTS / f"targeting-widget-{scenario}.png"
    spec = {
        "baseUrl": server.url, "username": user, "password": PASSWORD, "stateId": state.pk,
        "scenario": scenario, "screenshot": str(screenshot),
    }  # fmt: skip
    done = subprocess.run(
        ["node", str(SCRIPT)],
        cwd=BROWSER_DIR,
        env={**os.environ, "FLAGSITE_BROWSER": json.dumps(spec)},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, f"browser script failed:\n{done.stderr}\n{done.stdout}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["consoleErrors"] == [], result["consoleErrors"]
    assert screenshot.exists()
    return result


@pytest.fixture
def staging_state(transactional_db: None) -> FlagState:
    project = ProjectFactory.create(key="shop")
    flag = FlagFactory.create(project=project, key="new-checkout")
    editor = UserFactory.create(username="browser-editor")
    grant(editor, project, "editor")
    return FlagState.objects.get(flag=flag, environment__key="staging")


EXPECTED_RULES = [
    {
        "id": "free-us-uk",
        "conditions": [
            {"attribute": "plan", "operator": "in", "values": ["free"]},
            {"attribute": "country", "operator": "in", "values": ["US", "UK"]},
        ],
        "serve": {"variant": "on"},
    }
]
EXPECTED_SERVE = {
    "rollout": {
        "bucketBy": "accountId",
        "variants": [{"variant": "on", "weight": 25000}, {"variant": "off", "weight": 75000}],
    }
}


def _rulesets() -> dict[str, tuple[int, dict[str, Any]]]:
    return {r.environment.key: (r.version, r.document) for r in Ruleset.objects.all()}


def test_rules_and_rollout_are_edited_with_the_widget(
    staging_state: FlagState, server: ServerProcess
) -> None:
    before = _rulesets()
    result = run_browser(server, "rule", staging_state, "browser-editor")

    # What the widget wrote into the hidden textareas is exactly what was saved.
    assert result["offPercentShown"] == "75"  # the other variant takes the rest
    assert result["rulesJson"] == EXPECTED_RULES
    assert result["serveJson"] == EXPECTED_SERVE
    assert result["url"].endswith("/admin/flags/flagstate/"), result
    state = FlagState.objects.get(pk=staging_state.pk)
    assert state.enabled
    assert (state.rules, state.default_serve) == (EXPECTED_RULES, EXPECTED_SERVE)
    assert state.version == staging_state.version + 1
    record = state.history.latest("history_id")
    assert record.history_user.username == "browser-editor"
    assert (record.history_source, record.history_change_reason) == (
        "admin", "browser: free plan in US and UK",
    )  # fmt: skip

    after = _rulesets()
    version, document = after["staging"]
    assert version == before["staging"][0] + 1
    flag_doc = document["flags"]["new-checkout"]
    assert flag_doc["enabled"] is True
    assert flag_doc["rules"] == EXPECTED_RULES
    assert flag_doc["defaultServe"] == EXPECTED_SERVE
    old = dict(before["staging"][1]["flags"]["new-checkout"])
    changed = {k for k in flag_doc if flag_doc[k] != old.get(k)}
    assert changed == {"enabled", "rules", "defaultServe", "version"}
    for key in ("development", "production"):  # the other environments did not move
        assert after[key][0] == before[key][0]


def test_a_regex_re2_refuses_is_shown_on_the_field_and_nothing_is_saved(
    staging_state: FlagState, server: ServerProcess
) -> None:
    before = _rulesets()
    result = run_browser(server, "bad-regex", staging_state, "browser-editor")

    assert "/change/" in result["url"]  # the form came back instead of redirecting
    errors = " ".join(result["fieldErrors"])
    assert "rules[0].conditions[0].values[0]" in errors, result
    assert "not a valid RE2 regular expression" in errors, result
    assert result["formErrors"] == [] or all("correct" in e for e in result["formErrors"])
    assert result["redrawnPattern"] == "(a)\\1"  # the user's input is still there to fix
    assert result["invalidRows"] == 1
    assert "matches" not in result["glance"]  # the summary shows what is saved, not the input
    state = FlagState.objects.get(pk=staging_state.pk)
    assert (state.rules, state.version) == ([], staging_state.version)
    assert not state.history.filter(history_change_reason__startswith="browser").exists()
    assert _rulesets() == before
    assert Environment.objects.filter(project__key="shop").count() == 3
