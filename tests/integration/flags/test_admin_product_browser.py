# mypy: disallow-untyped-calls=False
"""The admin as an editor uses it, in Debian's chromium (tests/browser/admin_product.mjs):
targeting in sentences, a rollout percentage edited with the widget, the debugger for
acct-1001 on bulk-invoice-api, and the API docs with the internet blocked. Each run saves a
screenshot under var/screenshots/. Missing browser dependencies fail these tests (no skip)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command

from flags.models import Flag, FlagState
from tests.integration.flags.test_admin_browser import BROWSER_DIR, SCREENSHOTS, _missing
from tests.support.processes import ServerProcess

SCRIPT = BROWSER_DIR / "admin_product.mjs"
PASSWORD = "flagsite-demo"  # seed_demo's

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def server(transactional_db: None, server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    with open(os.devnull, "w") as quiet:
        call_command("seed_demo", stdout=quiet)
    return server_factory()  # started after the data exists (see test_admin_browser.server)


def run(server: ServerProcess, scenario: str, **ids: int) -> Any:
    missing = _missing()
    assert not missing, f"run bin/browser-deps first; missing: {', '.join(missing)}"
    screenshot = SCREENSHOTS / f"admin-{scenario}.png"
    screenshot.unlink(missing_ok=True)
    spec = {
        "baseUrl": server.url, "username": "editor", "password": PASSWORD, "scenario": scenario,
        "screenshot": str(screenshot), **ids,
    }  # fmt: skip
    done = subprocess.run(
        ["node", str(SCRIPT)], cwd=BROWSER_DIR, capture_output=True, text=True, timeout=120,
        env={**os.environ, "FLAGSITE_BROWSER": json.dumps(spec)}, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"browser script failed:\n{done.stderr}\n{done.stdout}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["consoleErrors"] == [], result["consoleErrors"]
    assert screenshot.exists()
    return result


def test_an_editor_reads_targeting_in_sentences(server: ServerProcess) -> None:
    chatbot = Flag.objects.get(key="ai-chatbot")
    result = run(server, "sentences", flagId=chatbot.pk)
    expected = "production: ON · accounts in segment free-us-uk → on · everyone else → off"
    assert expected in result["list"]
    assert any("5% of accounts (by accountId) → on, 95% → off" in t for t in result["list"])
    assert any("accounts in segment free-us-uk → on" in t for t in result["page"])
    assert "Django administration" not in result["header"]


def test_an_editor_widens_a_rollout_with_the_widget(server: ServerProcess) -> None:
    state = FlagState.objects.get(flag__key="new-pdf-engine", environment__key="staging")
    result = run(server, "rollout", stateId=state.pk)
    assert result["offShown"] == "75"  # the other variant takes the rest
    assert result["fallbackShown"] == "off"  # the saved fallback is kept
    assert "must add up to 100%" in result["totalWarning"]
    assert result["totalAfterFix"] == "total 100%"
    assert result["url"].endswith("/admin/flags/flagstate/"), result
    saved = FlagState.objects.get(pk=state.pk)
    assert saved.default_serve == result["serveJson"]
    assert saved.default_serve["rollout"] == {
        "bucketBy": "accountId",
        "fallbackVariant": "off",
        "variants": [{"variant": "on", "weight": 25_000}, {"variant": "off", "weight": 75_000}],
    }
    record = saved.history.latest("history_id")
    assert record.history_user.username == "editor"
    assert record.history_change_reason == "browser: widen to 25%"


def test_an_editor_asks_the_debugger_about_acct_1001(server: ServerProcess) -> None:
    bulk = Flag.objects.get(key="bulk-invoice-api")
    result = run(server, "debugger", debugFlagId=bulk.pk)
    environments = result["environments"]
    assert [e["environment"] for e in environments] == ["development", "staging", "production"]
    for row in environments:
        assert (row["variant"], row["reason"], row["rule"]) == (
            "on",
            "TARGETING_MATCH",
            "enterprise",
        )
        assert len(row["matched"]) == 1
        assert "accounts in segment enterprise-accounts" in row["matched"][0]


def test_the_api_docs_open_offline(server: ServerProcess) -> None:
    result = run(server, "docs")
    assert result["title"].startswith("Flagsite API")
    assert result["operations"] > 5
    assert result["blocked"] == []  # nothing was even asked of another host
