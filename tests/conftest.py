"""Shared fixtures: real server and worker processes, and a clean Redis namespace."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.db import connection

from tests.support.processes import ServerProcess, WorkerProcess


def _test_database_name() -> str:
    name: str = connection.settings_dict["NAME"]
    return name


@pytest.fixture
def flagsite_server(django_db_setup: None) -> Iterator[ServerProcess]:
    """A real ASGI server for one test. Tests that use it need ``transactional_db``.

    Per test, not per session: the flush between transactional tests recreates content types
    and permissions with new ids, and a long-lived server would keep the stale ones cached.
    """
    server = ServerProcess(_test_database_name())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server_factory(django_db_setup: None) -> Iterator[Callable[..., ServerProcess]]:
    """Starts extra servers a test may stop and restart (outage tests); all stopped at the end."""
    started: list[ServerProcess] = []

    def make(**kwargs: object) -> ServerProcess:
        server = ServerProcess(_test_database_name(), **kwargs)  # type: ignore[arg-type]
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: None) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(_test_database_name())
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def redis_url() -> str:
    assert settings.REDIS_URL, "the integration suite needs REDIS_URL"
    return settings.REDIS_URL
