"""Database access from the event loop, outside Django's request signals.

Django closes or recycles a thread's connection when a request starts and ends (the
``request_started``/``request_finished`` signals). The lean ASGI path in flagsite.asgi sends
neither, so code it reaches that queries on a cache miss goes through ``run_in_db_thread``,
which does the same hygiene around the query itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection

P = ParamSpec("P")
R = TypeVar("R")


def _tidy() -> None:
    # Never inside a transaction: that connection belongs to whoever opened it (a test case's
    # transaction, for instance, which Django's test client also leaves alone).
    if not connection.in_atomic_block:
        close_old_connections()


async def run_in_db_thread(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    def call() -> R:
        _tidy()  # drop a broken or expired connection before using it
        try:
            return fn(*args, **kwargs)
        finally:
            _tidy()  # hand a pooled connection back, as a request end would

    return await sync_to_async(call)()
