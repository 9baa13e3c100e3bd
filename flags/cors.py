"""CORS for the browser endpoints, with the allowed origins set per environment.

django-cors-headers answers preflights and writes the headers; this module decides, through
its ``check_request_enabled`` signal, whether an origin may read a response:

- a real request: the origin must be one of ``Environment.cors_origins`` of the environment
  of the API key it presents ("*" allows every origin);
- a preflight carries no key (browsers never send credentials with it), so it succeeds when
  some environment allows the origin; the request that follows is checked against its key.

The origins of every environment are held in memory and re-read by the periodic check
(flags.healing), so a request never queries and a change applies within about a second.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from django.http import HttpRequest

from flags.api import keys

BROWSER_PATHS = re.compile(
    r"^/(api/v1/(evaluate|evaluate/all|events|sdk/ruleset|sdk/stream)|ofrep/v1/.+)$"
)
ANY_ORIGIN = "*"

_by_environment: dict[int, frozenset[str]] = {}
_anywhere: frozenset[str] = frozenset()
_loaded = threading.Event()
_load_lock = threading.Lock()


def refresh() -> None:
    """One query: the allowed origins of every environment that has some."""
    global _by_environment, _anywhere
    from flags.models import Environment

    rows = Environment.objects.exclude(cors_origins=[]).values_list("pk", "cors_origins")
    by_environment = {pk: frozenset(origins or ()) for pk, origins in rows}
    _by_environment = by_environment
    _anywhere = frozenset().union(*by_environment.values())
    _loaded.set()


def _ensure_loaded() -> None:
    """The first request of a process loads the origins on a thread of its own (it may be on
    the event loop, where Django refuses queries); after that the periodic check keeps them."""
    if _loaded.is_set():
        return
    from flags import healing

    healing.ensure_started()
    with _load_lock:
        if _loaded.is_set():
            return
        failed: list[BaseException] = []

        def load() -> None:
            from django.db import connection

            try:
                refresh()
            except Exception as exc:
                failed.append(exc)
            finally:
                connection.close()

        loader = threading.Thread(target=load, name="flagsite-cors-origins")
        loader.start()
        loader.join(timeout=5)


def _allowed(origin: str, origins: frozenset[str]) -> bool:
    return origin in origins or ANY_ORIGIN in origins


def origin_allowed(request: HttpRequest, **_: Any) -> bool:
    """The ``check_request_enabled`` receiver (see the module docstring)."""
    if not BROWSER_PATHS.match(request.path_info):
        return False
    origin = request.headers.get("Origin")
    if not origin:
        return False
    _ensure_loaded()
    if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
        return _allowed(origin, _anywhere)
    raw = keys.raw_key(request.headers)
    key = keys.peek_key(raw) if raw else None
    if key is None:
        return False
    return _allowed(origin, _by_environment.get(key.environment_id, frozenset()))


def connect() -> None:
    from corsheaders.signals import check_request_enabled

    check_request_enabled.connect(origin_allowed, dispatch_uid="flagsite-cors-origins")
