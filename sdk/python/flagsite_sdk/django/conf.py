"""The process-wide FlagsiteClient, built on first use from ``settings.FLAGSITE``."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings

from flagsite_sdk.client import FlagsiteClient

_client: FlagsiteClient | None = None
_lock = threading.Lock()


def flagsite_settings() -> dict[str, Any]:
    configured: dict[str, Any] = getattr(settings, "FLAGSITE", {})
    return configured


def get_client() -> FlagsiteClient:
    global _client
    client = _client
    if client is not None:
        return client
    with _lock:
        if _client is None:
            conf = flagsite_settings()
            options: dict[str, Any] = dict(conf.get("OPTIONS", {}))
            url = conf.get("URL")
            _client = FlagsiteClient(
                url,
                conf.get("SERVER_KEY"),
                offline=url is None or options.pop("offline", False),
                **options,
            )
        return _client


def set_client(client: FlagsiteClient | None) -> None:
    """Uses ``client`` from now on (tests, or a client built by the application itself)."""
    global _client
    with _lock:
        _client = client
