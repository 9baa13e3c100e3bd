"""An Express service using @flagsite/node against a real Flagsite server: it serves the variant
the Python engine gives, and follows a kill switch within a second."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flagsite_sdk.engine import compile_ruleset

from flags.rulesets import build_ruleset_document
from tests.js.world import DemoWorld, demo_world
from tests.support.processes import ServerProcess, free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world() -> DemoWorld:
    return demo_world()


@dataclass
class Service:
    express: str
    flagsite: str


@pytest.fixture
def service(
    js_sdk: Path, world: DemoWorld, server_factory: Callable[..., ServerProcess]
) -> Iterator[Service]:
    server = server_factory(extra_env={"FLAGSITE_SSE_HEARTBEAT_SECONDS": "1"})
    port = free_port()
    env = {**os.environ, "FLAGSITE_URL": server.url, "FLAGSITE_SERVER_KEY": world.server_key,
           "PORT": str(port)}  # fmt: skip
    proc = subprocess.Popen(
        ["node", str(js_sdk / "tools" / "express-app.mjs")], cwd=js_sdk, env=env,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["ready"] is True, started
        yield Service(f"http://127.0.0.1:{port}", server.url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(url: str) -> Any:
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def test_express_serves_the_python_engines_variants_and_follows_a_kill(
    service: Service, world: DemoWorld
) -> None:
    """One server and one Express process for both halves: starting them is most of the time."""
    compiled = compile_ruleset(build_ruleset_document(world.environment, version=1))
    engines = set()
    for n in range(1000, 1060):
        account = f"acct-{n}"
        ctx = {"targetingKey": f"user-{account}", "userId": f"user-{account}", "accountId": account,
               "plan": "free", "country": "US"}  # fmt: skip
        answer = get(f"{service.express}/accounts/{account}/flags?plan=free&country=US")["flags"]
        expected = {key: compiled.evaluate(key, ctx).variant for key in compiled.flag_keys()}
        assert answer == expected, account
        engine = get(f"{service.express}/accounts/{account}/invoices/pdf")["engine"]
        assert engine == ("new" if expected["new-pdf-engine"] == "on" else "classic")
        engines.add(engine)
    assert engines == {"new", "classic"}, "the 5% rollout reached some of 60 accounts"
    assert get(f"{service.express}/accounts/acct-1001/flags")["flags"]["bulk-invoice-api"] == "on"
    assert get(f"{service.express}/accounts/acct-1050/flags")["flags"]["bulk-invoice-api"] == "off"

    # a kill switch through the management API reaches the Express process within a second
    url = f"{service.express}/accounts/acct-1001/flags"
    before = get(url)
    assert before["flags"]["bulk-invoice-api"] == "on"
    killed_at = time.monotonic()
    response = httpx.post(
        service.flagsite + world.kill_path("bulk-invoice-api"),
        json={"reason": "js sdk test: kill switch"},
        headers={"Authorization": f"Bearer {world.management_key}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    wait_until(lambda: get(url)["flags"]["bulk-invoice-api"] == "off", 1.0, "the kill in Express")
    assert time.monotonic() - killed_at < 1.0
    assert get(url)["version"] > before["version"]
