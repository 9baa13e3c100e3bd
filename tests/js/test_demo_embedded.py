"""/demo/ in the run command's embedded mode (SQLite, no Redis): the page, its bundle and its
client key work without PostgreSQL, Redis or npm."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_embedded_mode import _embedded_env, _manage
from tests.support.processes import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


def json_script(html: str, element_id: str) -> Any:
    found = re.search(f'id="{element_id}" type="application/json">(.*?)</script>', html)
    assert found is not None, element_id
    return json.loads(found.group(1))


def test_demo_page_in_embedded_mode(tmp_path: Path) -> None:
    (tmp_path / "broker").mkdir()
    env = _embedded_env(tmp_path)
    _manage(env, "migrate", "--noinput", "-v0")
    _manage(env, "seed_demo")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "flagsite.asgi:application",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 30, "the embedded web server")
        page = httpx.get(f"{base}/demo/?accountId=acct-1002", timeout=5)
        assert page.status_code == 200, page.text
        bootstrap = json_script(page.text, "flagsite-bootstrap")
        assert len(bootstrap["flags"]) == 5
        assert bootstrap["flags"]["bulk-invoice-api"]["value"] is True
        assert "ruleId" not in bootstrap["flags"]["bulk-invoice-api"]  # client view only
        config = json_script(page.text, "flagsite-demo-config")
        script = re.search(r'<script src="([^"]+demo\.js)"', page.text)
        assert script is not None
        bundle = httpx.get(base + script.group(1), timeout=5)
        assert bundle.status_code == 200
        assert bundle.content == (ROOT / "flagsite" / "static" / "demo" / "demo.js").read_bytes()
        values = httpx.post(
            f"{base}/api/v1/evaluate/all", json={"context": bootstrap["context"]},
            headers={"Authorization": f"Bearer {config['clientKey']}"}, timeout=5,
        )  # fmt: skip
        assert values.status_code == 200, values.text
        assert values.json()["flags"] == bootstrap["flags"]
        missing = httpx.get(f"{base}/demo/?env=nope", timeout=5)
        assert missing.status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
