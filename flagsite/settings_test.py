"""Settings for pytest and mypy: the normal settings in test mode."""

import os
import uuid

os.environ.setdefault("FLAGSITE_ENV", "test")
# A Redis namespace of the run's own (bin/test sets one too): a test database starts its ids
# afresh every run, and counters left in Redis by an earlier run must not count again. Child
# processes (servers, workers) get the same prefix from tests.support.processes.
os.environ.setdefault("FLAGSITE_REDIS_PREFIX", f"flagsite-test-{uuid.uuid4().hex[:12]}")

from flagsite.settings import *  # noqa: F403
