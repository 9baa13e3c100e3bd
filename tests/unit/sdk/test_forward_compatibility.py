"""A ruleset from a newer server, through the real Python client: one flag uses an operator
this SDK does not know. The client still becomes ready, every other flag applies, and a later
version (the kill switch turned on) arrives. A small stand-in speaks the SDK endpoints."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flagsite_sdk import FlagsiteClient
from flagsite_sdk.engine import ErrorCode

from tests.unit.sdk.rulesets import boolean_flag, ruleset


def newer_ruleset(version: int, *, maintenance: bool) -> dict[str, Any]:
    geo = boolean_flag("geo-pricing", serve="off")
    geo["rules"] = [
        {
            "id": "near",
            "conditions": [
                {"attribute": "location", "operator": "within_radius", "values": ["52.5,13.4"]}
            ],
            "serve": {"variant": "on"},
        }
    ]
    checkout = boolean_flag("checkout")
    checkout["prerequisites"] = [{"flag": "maintenance-mode", "variants": ["off"]}]
    doc = ruleset(
        version,
        boolean_flag("maintenance-mode", serve="on" if maintenance else "off"),
        geo,
        checkout,
    )
    doc["generatedBy"] = "a newer server"  # an unknown optional field: ignored
    return doc


class StandIn:
    """GET /api/v1/sdk/ruleset answers `document`; the stream is refused, so the client polls."""

    def __init__(self) -> None:
        self.document = newer_ruleset(1, maintenance=False)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server API names it
                if self.path.startswith("/api/v1/sdk/ruleset"):
                    body = json.dumps(outer.document).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("ETag", f'"{outer.document["version"]}"')
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    yield server
    server.close()


def test_the_client_is_ready_serves_the_others_and_receives_the_kill_switch(
    stand_in: StandIn,
) -> None:
    client = FlagsiteClient(
        stand_in.url,
        "fs_srv_test",
        streaming=False,
        poll_interval=0.05,
        record_exposures=False,
        init_timeout=5,
    )
    try:
        assert client.ready
        assert client.version == 1
        assert client.is_enabled("maintenance-mode", default=True) is False
        assert client.is_enabled("checkout") is True
        broken = client.details("geo-pricing", {"location": "52.5,13.4"}, default=True)
        assert (broken.value, broken.error_code) == (True, ErrorCode.PARSE_ERROR)

        stand_in.document = newer_ruleset(2, maintenance=True)
        deadline = time.monotonic() + 5
        while client.version != 2 and time.monotonic() < deadline:
            time.sleep(0.02)

        assert client.version == 2
        assert client.is_enabled("maintenance-mode") is True
        assert client.is_enabled("checkout", default=True) is False
        assert client.details("geo-pricing").error_code is ErrorCode.PARSE_ERROR
    finally:
        client.close()
