"""Rulesets that heal: the periodic check under pub/sub.

Pub/sub is the fast path, but a message can be lost (a Redis restart, a listener reconnecting)
and some writers send none this process can hear (the embedded mode has no Redis; a shell or
a Celery worker there only reaches its own process). So every process that serves rulesets or
has cached API keys runs one daemon thread that, about once a second:

- reads the stored version of every environment it serves, in ONE query, and reloads those
  that moved (flags.evaluation.heal), which also wakes their SSE subscribers;
- runs the checks other apps registered (``register_check``): apikeys re-reads the cached API
  keys in one query and forgets those no longer active;
- re-reads the allowed CORS origins of the environments (flags.cors), one small query.

Requests never wait for it: the evaluation path stays query-free. Its cost is measured in
bench/api.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection

from flags import cors

log = logging.getLogger(__name__)
# Checks of other apps (flags imports none of them): each returns how many things it dropped.
_CHECKS: list[Callable[[], int]] = []


def register_check(check: Callable[[], int]) -> None:
    """Adds a check to every round (call from AppConfig.ready)."""
    if check not in _CHECKS:
        _CHECKS.append(check)


def check_once() -> tuple[int, int]:
    """One round: (environments reloaded, things the registered checks dropped, e.g. revoked
    keys). Uses and closes its own connection."""
    from flags import evaluation  # evaluation starts this thread; import it lazily

    close_old_connections()
    try:
        reloaded = evaluation.heal()
        forgotten = sum(check() for check in _CHECKS)
        cors.refresh()
        return reloaded, forgotten
    finally:
        connection.close()


class _Checker(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(name="flagsite-ruleset-healer", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()
        self.rounds = 0

    def run(self) -> None:
        failing = False
        while not self.stopped.wait(self.interval):
            try:
                check_once()
            except Exception:
                if not failing:  # once per outage, not once a second
                    log.warning("the periodic ruleset and key check failed", exc_info=True)
                failing = True
            else:
                if failing:
                    log.info("the periodic ruleset and key check works again")
                failing = False
            self.rounds += 1


_checker: _Checker | None = None
_lock = threading.Lock()


def ensure_started() -> None:
    """Starts this process's checker once (a no-op when the interval is 0)."""
    global _checker
    if _checker is not None:
        return
    interval = float(settings.FLAGSITE_HEAL_INTERVAL_SECONDS)
    if interval <= 0:
        return
    with _lock:
        if _checker is None:
            checker = _Checker(interval)
            checker.start()
            _checker = checker


def rounds() -> int:
    """Completed rounds in this process (0 when not running); for /readyz and tests."""
    return _checker.rounds if _checker is not None else 0
