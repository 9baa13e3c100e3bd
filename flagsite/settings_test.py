"""Settings for pytest and mypy: the normal settings in test mode."""

import os
import uuid

os.environ.setdefault("FLAGSITE_ENV", "test")
# A Redis namespace of the run's own (bin/test sets one too): a test database starts its ids
# afresh every run, and counters left in Redis by an earlier run must not count again. Child
# processes (servers, workers) get the same prefix from tests.support.processes.
os.environ.setdefault("FLAGSITE_REDIS_PREFIX", f"flagsite-test-{uuid.uuid4().hex[:12]}")

from flagsite.settings import *  # noqa: F403

# No periodic check in the pytest process itself: its tests call flags.healing.check_once()
# when they need it, and a thread querying the test database on its own could race the
# database's teardown. Servers and workers the tests start run it as in production.
FLAGSITE_HEAL_INTERVAL_SECONDS = 0.0
