"""The per-process cache of compiled rulesets that evaluation and SDK endpoints serve from.

First use of an environment loads its Ruleset row once and compiles it; after that, requests
read an immutable Snapshot from a dict and never touch the database. One listener per process
keeps the cache fresh: it receives ruleset changes (Redis pub/sub, or the in-process hook in
embedded mode), reloads that environment once, and wakes every SSE subscriber of the process.
It also applies API-key revocations. Under it, flags.healing re-reads the stored versions about
once a second (``heal``: one query for every environment served here), so a lost message or a
write from another process without Redis still arrives within two seconds.
Other apps add channels of their own to the same connection (``add_channel``): apikeys uses one
for revocations, so flags need not know about keys.

The listener is a daemon thread, not an asyncio task: sync DRF views and tests run outside any
event loop yet still need invalidation, so the listener must not depend on one loop being
alive. SSE streams (coroutines on the server's loop) are woken with ``call_soon_threadsafe``,
one call per loop per change, so 500 streams cost one cross-thread hop, not 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db import close_old_connections, connection
from flagsite_sdk.engine import CompiledRuleset, compile_ruleset
from flagsite_sdk.engine.types import RULESET_SCHEMA_VERSION

from flags import healing
from flags.api import realtime_bridge as _realtime
from flags.models import Environment, Ruleset
from flagsite.db import run_in_db_thread

log = logging.getLogger(__name__)

_RECONNECT_MAX_S = 1.0


@dataclass(frozen=True, slots=True)
class Channel:
    """A pub/sub channel another app listens to on this process's connection.

    ``name`` is called when the listener connects (the name depends on settings);
    ``apply`` gets each message's data; ``set_live`` is told whether messages can reach this
    process right now (False while disconnected), so caches that rely on the channel can stop
    trusting themselves.
    """

    name: Callable[[], str]
    apply: Callable[[bytes], None]
    set_live: Callable[[bool], None]


_channels: list[Channel] = []


def add_channel(channel: Channel) -> None:
    """Registers a channel (from an AppConfig.ready, before the first request)."""
    if channel not in _channels:
        _channels.append(channel)


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """One environment's ruleset at one version, ready to serve; never mutated."""

    environment_id: int
    version: int
    document: dict[str, Any]
    compiled: CompiledRuleset
    body: bytes  # the document as JSON, serialized once for every GET of the ruleset
    event: bytes  # the SSE frame announcing this version, built once for every subscriber
    client_keys: frozenset[str]
    client_order: tuple[str, ...]

    def is_client_visible(self, flag_key: str) -> bool:
        return flag_key in self.client_keys


def _frame(version: int, document: dict[str, Any]) -> bytes:
    data = json.dumps({"version": version, "ruleset": document}, separators=(",", ":"))
    return f"id: {version}\nevent: ruleset\ndata: {data}\n\n".encode()


def build_snapshot(environment_id: int, version: int, document: dict[str, Any]) -> Snapshot:
    # Saves validate strictly; serving is lenient, so a document stored under an earlier
    # operand grammar keeps every other flag serving while its one flag answers PARSE_ERROR.
    compiled = compile_ruleset(document, lenient=True)
    if compiled.problems:
        log.warning(
            "ruleset of environment %s version %s: flags %s cannot be compiled and answer "
            "PARSE_ERROR until they are saved again: %s",
            environment_id,
            version,
            ", ".join(sorted(compiled.broken_flags)),
            "; ".join(f"{e.path}: {e.message}" for e in compiled.problems[:5]),
        )
    flags: dict[str, Any] = document.get("flags", {})
    visible = tuple(sorted(k for k, f in flags.items() if f.get("clientVisible")))
    return Snapshot(
        environment_id=environment_id,
        version=version,
        document=document,
        compiled=compiled,
        body=json.dumps(document, separators=(",", ":")).encode(),
        event=_frame(version, document),
        client_keys=frozenset(visible),
        client_order=visible,
    )


def _empty_document(environment_id: int) -> dict[str, Any]:
    env = Environment.objects.select_related("project").get(pk=environment_id)
    return {
        "schemaVersion": RULESET_SCHEMA_VERSION,
        "project": env.project.key,
        "environment": env.key,
        "version": 0,
        "flags": {},
        "segments": {},
    }


def _load_from_database(environment_id: int) -> Snapshot:
    row = (
        Ruleset.objects.filter(environment_id=environment_id)
        .values_list("version", "document")
        .first()
    )
    if row is None or not row[1]:
        return build_snapshot(environment_id, 0, _empty_document(environment_id))
    return build_snapshot(environment_id, int(row[0]), row[1])


# --- The cache -------------------------------------------------------------------------------

_snapshots: dict[int, Snapshot] = {}
_install_lock = threading.Lock()
_load_locks: dict[int, threading.Lock] = {}


def cached(environment_id: int) -> Snapshot | None:
    """The snapshot if this process already has it; never queries."""
    return _snapshots.get(environment_id)


def get_snapshot(environment_id: int) -> Snapshot:
    """The environment's current snapshot; loads it (one query) the first time only."""
    snap = _snapshots.get(environment_id)
    if snap is not None:
        return snap
    ensure_listener()
    with _install_lock:
        lock = _load_locks.setdefault(environment_id, threading.Lock())
    with lock:
        snap = _snapshots.get(environment_id)
        if snap is None:
            snap = _install(_load_from_database(environment_id))
    return snap


async def aget_snapshot(environment_id: int) -> Snapshot:
    """``get_snapshot`` for the event loop: a cached snapshot is returned in place."""
    snap = _snapshots.get(environment_id)
    if snap is not None:
        return snap
    return await run_in_db_thread(get_snapshot, environment_id)


def _install(snap: Snapshot) -> Snapshot:
    """Keeps the newest version; wakes subscribers when the version moved forward."""
    with _install_lock:
        current = _snapshots.get(snap.environment_id)
        if current is not None and current.version >= snap.version:
            return current
        _snapshots[snap.environment_id] = snap
    if current is not None:
        _hub.notify(snap.environment_id)
    return snap


def reload(environment_id: int, *, own_connection: bool = False) -> Snapshot:
    """Reloads from the database now. The listener thread passes ``own_connection`` so its
    connection is closed after each load instead of idling (or blocking a test database drop).
    """
    if own_connection:
        close_old_connections()
    try:
        return _install(_load_from_database(environment_id))
    finally:
        if own_connection:
            connection.close()


def clear() -> None:
    """Forgets every snapshot (tests; and after a pub/sub reconnect, see the listener)."""
    with _install_lock:
        _snapshots.clear()


# --- SSE fan-out -----------------------------------------------------------------------------


@dataclass(eq=False)
class Subscription:
    """One SSE stream: woken on every new version of its environment."""

    environment_id: int
    loop: asyncio.AbstractEventLoop
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self.changed.set()


class _Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_env: dict[int, set[Subscription]] = {}

    def subscribe(self, environment_id: int) -> Subscription:
        sub = Subscription(environment_id, asyncio.get_running_loop())
        with self._lock:
            self._by_env.setdefault(environment_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._by_env.get(sub.environment_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_env[sub.environment_id]

    def environments(self) -> set[int]:
        with self._lock:
            return set(self._by_env)

    def count(self, environment_id: int | None = None) -> int:
        with self._lock:
            if environment_id is not None:
                return len(self._by_env.get(environment_id, ()))
            return sum(len(s) for s in self._by_env.values())

    def notify(self, environment_id: int) -> None:
        with self._lock:
            subs = list(self._by_env.get(environment_id, ()))
        by_loop: dict[asyncio.AbstractEventLoop, list[Subscription]] = {}
        for sub in subs:
            by_loop.setdefault(sub.loop, []).append(sub)
        for loop, group in by_loop.items():
            try:
                loop.call_soon_threadsafe(_wake_all, group)
            except RuntimeError:  # that loop is closed; its streams are gone
                continue


def _wake_all(group: Iterable[Subscription]) -> None:
    for sub in group:
        sub.wake()


_hub = _Hub()
subscribe = _hub.subscribe
unsubscribe = _hub.unsubscribe
subscriber_count = _hub.count


# --- The listener ----------------------------------------------------------------------------


def on_ruleset_changed(
    environment_id: int, version: int | None = None, *, own_connection: bool = False
) -> None:
    """Applies one change message: reload if this process serves that environment."""
    current = _snapshots.get(environment_id)
    if current is None and _hub.count(environment_id) == 0:
        return
    if current is not None and version is not None and current.version >= version:
        return
    try:
        reload(environment_id, own_connection=own_connection)
    except Exception:
        log.exception("reloading the ruleset of environment %s failed", environment_id)


def heal() -> int:
    """The periodic check (flags.healing): ONE query for the stored version of every
    environment this process serves or streams, then a reload of each one that moved.
    Returns how many were reloaded. Never called on a request."""
    served = set(_snapshots) | _hub.environments()
    if not served:
        return 0
    stored = Ruleset.objects.filter(environment_id__in=served).values_list(
        "environment_id", "version"
    )
    reloaded = 0
    for environment_id, version in stored:
        current = _snapshots.get(environment_id)
        if current is None or int(version) > current.version:
            on_ruleset_changed(environment_id, int(version))
            reloaded += 1
    return reloaded


class _Listener(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(name="flagsite-ruleset-listener", daemon=True)
        self.url = url
        self.ready = threading.Event()
        self.channels = list(_channels)
        self.handlers: dict[bytes, Callable[[bytes], None]] = {
            c.name().encode(): c.apply for c in self.channels
        }

    def _set_live(self, live: bool) -> None:
        for channel in self.channels:
            channel.set_live(live)

    def run(self) -> None:
        delay = 0.05
        connected_before = False
        while True:
            try:
                client = redis.Redis.from_url(self.url, socket_keepalive=True)
                pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.psubscribe(_realtime.ruleset_channel_pattern())
                if self.handlers:
                    pubsub.subscribe(*self.handlers)
                pubsub.get_message(timeout=1.0)  # the first confirmation: we are listening
                if connected_before:
                    # Messages may have been lost while disconnected: refresh every ruleset.
                    for env_id in list(_snapshots):
                        on_ruleset_changed(env_id, own_connection=True)
                connected_before = True
                delay = 0.05
                self._set_live(True)
                self.ready.set()
                for message in pubsub.listen():
                    self._dispatch(message)
            except Exception:
                self._set_live(False)
                log.warning("ruleset listener lost Redis; reconnecting", exc_info=True)
                time.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "pmessage":
            parsed = _realtime.parse_ruleset_message(message["data"])
            if parsed is not None:
                on_ruleset_changed(*parsed, own_connection=True)
        elif kind == "message":
            handler = self.handlers.get(message["channel"])
            if handler is not None:
                handler(message["data"])


_listening = False
_listener_lock = threading.Lock()


def ensure_listener() -> None:
    """Starts this process's listener once; waits briefly so the first load misses nothing."""
    global _listening
    if _listening:
        return
    with _listener_lock:
        if _listening:
            return
        healing.ensure_started()
        if settings.REDIS_URL and settings.FLAGSITE_REALTIME_PUBSUB:
            listener = _Listener(settings.REDIS_URL)
            listener.start()
            listener.ready.wait(timeout=2.0)
        else:
            # No pub/sub here: writes made in this process arrive at once, the rest through
            # the periodic check.
            _realtime.register_local_listener(on_ruleset_changed)
        _listening = True
