"""Settings for pytest and mypy: the normal settings in test mode."""

import os

os.environ.setdefault("FLAGSITE_ENV", "test")

from flagsite.settings import *  # noqa: F403
