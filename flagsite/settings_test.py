"""Settings for pytest and mypy: the normal settings in test mode."""

import os
import uuid

os.environ.setdefault("FLAGSITE_ENV", "test")
# A Redis namespace of the run's own (bin/test sets one too): a test database starts its ids
# afresh every run, and counters left in Redis by an earlier run must not count again. Child
# processes (servers, workers) get the same prefix from tests.support.processes.
os.environ.setdefault("FLAGSITE_REDIS_PREFIX", f"flagsite-test-{uuid.uuid4().hex[:12]}")
# The test installation has an ops list, as a production one should: a rollout plan that would
# tell no one of a rollback may not start (rollouts.notify), and most tests' plans name no one.
# Tests of that case clear it; child processes inherit it, as they inherit the prefix above.
os.environ.setdefault("OPS_EMAILS", "ops@flagsite.test")

from flagsite.settings import *  # noqa: F403

# No periodic check in the pytest process itself: its tests call flags.healing.check_once()
# when they need it, and a thread querying the test database on its own could race the
# database's teardown. Servers and workers the tests start run it as in production.
FLAGSITE_HEAL_INTERVAL_SECONDS = 0.0
