# mypy: disallow-untyped-calls=False
"""The /demo/ page (@flagsite/react on @flagsite/web) in Debian's chromium against a real server:
bootstrapped flags on the first paint, a kill switch and maintenance mode live within a second,
and an outage that leaves the page working. Driven by tests/browser/demo_page.mjs."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.js.world import demo_world
from tests.support.processes import ROOT, ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BROWSER_DIR = ROOT / "tests" / "browser"
SCREENSHOT = ROOT / "var" / "screenshots" / "demo-page.png"
CHROMIUM = Path("/usr/bin/chromium")


def read_phase(proc: subprocess.Popen[str], phase: str) -> dict[str, Any]:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            message: dict[str, Any] = json.loads(line)
            assert message["phase"] == phase, message
            return message
    raise AssertionError(f"the browser script ended before {phase!r}: {proc.wait()}")


def test_demo_page_live_and_offline(server_factory: Callable[..., ServerProcess]) -> None:
    assert CHROMIUM.exists(), "run bin/browser-deps first"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), "run bin/browser-deps"
    world = demo_world()
    server = server_factory(extra_env={"FLAGSITE_SSE_HEARTBEAT_SECONDS": "1"})
    spec = {
        "baseUrl": server.url, "managementKey": world.management_key,
        "killPath": world.kill_path("bulk-invoice-api"),
        "maintenancePath": world.state_path("maintenance-mode"), "screenshot": str(SCREENSHOT),
    }  # fmt: skip
    SCREENSHOT.unlink(missing_ok=True)
    proc = subprocess.Popen(
        ["node", "demo_page.mjs"], cwd=BROWSER_DIR, text=True, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, env={**os.environ, "FLAGSITE_BROWSER": json.dumps(spec)},
    )  # fmt: skip
    try:
        loaded = read_phase(proc, "loaded")
        # first paint already shows the served values, and nothing changes up to load
        assert loaded["firstFrame"]["bulk-invoice-api"] == "true"
        assert loaded["firstFrame"]["maintenance-mode"] == "false"
        assert loaded["firstFrame"] == loaded["atLoad"]
        assert len(loaded["history"]) == 5, loaded["history"]  # each row got one value, once
        # ...and got it before the first contentful paint: no frame ever showed another value
        assert all(h["at"] <= loaded["firstContentfulPaint"] for h in loaded["history"]), loaded
        assert loaded["bulkPanel"] == 1
        assert loaded["errors"] == []

        changed = read_phase(proc, "changed")
        print(f"kill reached the page in {changed['killMs']} ms, maintenance in "
              f"{changed['maintenanceMs']} ms")  # fmt: skip
        assert changed["killMs"] < 1000, changed
        assert changed["maintenanceMs"] < 1000, changed
        assert changed["reloads"] == 1
        assert SCREENSHOT.exists()

        server.stop()
        assert proc.stdin is not None
        proc.stdin.write("stopped\n")
        proc.stdin.close()
        offline = read_phase(proc, "offline")
        assert offline["failedRequests"] >= 2, offline
        assert offline["banner"] is True  # the last values stay
        assert offline["rows"] == 5
        assert offline["errors"] == [], offline
        assert offline["pageErrors"] == [], offline
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
