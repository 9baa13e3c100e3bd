"""FlagsiteClient: evaluates flags locally against a ruleset kept current in the background.

Every public method is safe to call from any thread and never raises into the caller: a
problem becomes the caller's default, with an error code in ``details``. No evaluation waits on
the network; only the constructor waits, at most ``init_timeout`` seconds, for the first ruleset.
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from flagsite_sdk.engine import ErrorCode, EvaluationDetails, Reason
from flagsite_sdk.engine.serve import Resolver
from flagsite_sdk.events import (
    EventOptions,
    EventStats,
    ExposureRecorder,
    Units,
    bucket_attributes,
    units_of,
)
from flagsite_sdk.store import RulesetStore, Snapshot, Source, read_document
from flagsite_sdk.sync import Synchronizer, SyncOptions
from flagsite_sdk.transport import Transport

log = logging.getLogger("flagsite_sdk")

Context = Mapping[str, Any]
_EMPTY: Context = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ClientStats:
    ruleset_version: int | None
    ruleset_source: str | None
    stream_connected: bool
    stream_failures: int
    poll_failures: int
    rejected_rulesets: int
    events: EventStats | None


class FlagsiteClient:
    def __init__(
        self,
        url: str | None = None,
        server_key: str | None = None,
        *,
        init_timeout: float = 5.0,
        bootstrap: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        offline: bool = False,
        streaming: bool = True,
        poll_interval: float = 30.0,
        stream_read_timeout: float = 45.0,
        request_timeout: float = 5.0,
        stream_url: str | None = None,
        record_exposures: bool = True,
        events: EventOptions | None = None,
    ) -> None:
        """``url`` and ``server_key`` may be omitted only with ``offline=True`` (then
        ``bootstrap`` is the whole ruleset). ``stream_url`` overrides where the stream is
        read from, e.g. a sidecar proxy."""
        self.offline = offline or url is None
        self._url = url
        self._server_key = server_key
        self._request_timeout = request_timeout
        self._stream_url = stream_url
        self._store = RulesetStore(cache_path)
        self._sync: Synchronizer | None = None
        self._transport: Transport | None = None
        self._recorder: ExposureRecorder | None = None
        self._closed = False
        # Hot-path shortcuts, replaced together with each new ruleset or recorder.
        # Each boolean flag's resolver with its exposure dedup table (None: not recording).
        self._booleans: Mapping[str, tuple[Resolver, dict[Hashable, str] | None]] = {}
        self._record_unseen: Callable[[Hashable, str, str | None, Context], None] = _ignore
        # Flag -> the attributes its rollouts bucket by (beside the targeting key).
        self._unit_attributes: Mapping[str, tuple[str, ...]] = {}
        self._store.add_listener(self._install)
        if bootstrap is not None:
            self._bootstrap(bootstrap)
        if not self.offline:
            if not server_key:
                raise ValueError("server_key is required unless offline=True")
            assert url is not None
            self._store.load_cache()
            self._sync_options = SyncOptions(
                streaming=streaming,
                poll_interval=poll_interval,
                stream_read_timeout=stream_read_timeout,
            )
            self._start_background(events or EventOptions() if record_exposures else None)
            if init_timeout > 0 and not self._store.wait_for_server(init_timeout):
                log.warning(
                    "flagsite: no ruleset from %s within %ss; serving %s",
                    url,
                    init_timeout,
                    self._store.current.source if self._store.current else "caller defaults",
                )
        self._atexit = _close_at_exit(self)
        _LIVE_CLIENTS.add(self)

    def _start_background(self, events: EventOptions | None) -> None:
        assert self._url is not None
        assert self._server_key is not None
        self._transport = Transport(
            self._url, self._server_key, timeout=self._request_timeout, stream_url=self._stream_url
        )
        if events is not None:
            recorder = ExposureRecorder(self._transport, events)
            recorder.start()
            self._use_recorder(recorder)
        self._sync = Synchronizer(self._store, self._transport, self._sync_options)
        self._sync.start()

    def _restart_after_fork(self) -> None:
        """In a forked child (gunicorn, Celery, multiprocessing): the parent's threads did not
        come along and its connections must not be shared, so start our own. The last ruleset
        stays, so evaluations never stop; exposures queued before the fork are the parent's."""
        if self._closed or self.offline or self._transport is None:
            return
        self._store.reset_after_fork()
        events = self._recorder.options if self._recorder is not None else None
        self._start_background(events)

    def _use_recorder(self, recorder: ExposureRecorder) -> None:
        self._recorder = recorder
        self._record_unseen = recorder.record_unseen
        if self._store.current is not None:
            self._install(self._store.current)

    def _install(self, snapshot: Snapshot) -> None:
        recorder = self._recorder
        flags = snapshot.ruleset.source.get("flags")
        self._unit_attributes = {
            key: attributes
            for key, flag in (flags.items() if isinstance(flags, Mapping) else ())
            if isinstance(flag, Mapping) and (attributes := bucket_attributes(flag))
        }
        if recorder is not None:
            recorder.unit_attributes = self._unit_attributes
        self._booleans = {
            key: (resolve, recorder.table(key) if recorder is not None else None)
            for key, resolve in snapshot.booleans.items()
        }

    def _bootstrap(self, bootstrap: Mapping[str, Any] | str | os.PathLike[str]) -> None:
        try:
            document = bootstrap if isinstance(bootstrap, Mapping) else read_document(bootstrap)
        except (OSError, ValueError):
            log.exception("flagsite: unreadable bootstrap %s", bootstrap)
            return
        self._store.apply(document, Source.BOOTSTRAP)

    # --- evaluation ----------------------------------------------------------------------------

    def is_enabled(self, key: str, context: Context | None = None, default: bool = False) -> bool:
        """True when a boolean flag serves true; ``default`` for unknown, non-boolean or
        failing flags, and before any ruleset has arrived."""
        entry = self._booleans.get(key)
        if entry is None:
            return default
        resolve, seen = entry
        ctx = context if context is not None else _EMPTY
        try:
            details = resolve(ctx)
        except Exception:
            return default
        if details.error_code is not None:
            return default
        if seen is not None:
            # ExposureRecorder.record, inlined: this is the hottest path of the SDK.
            context_key = ctx.get("targetingKey") or ctx.get("userId")
            if context_key and seen.get(context_key) != details.variant:
                self._record_unseen(context_key, key, details.variant, ctx)
        value: bool = details.value
        return value

    def details(
        self, key: str, context: Context | None = None, default: Any = None
    ) -> EvaluationDetails:
        """The full outcome: value, variant, reason, error code, rule and flag version."""
        snapshot = self._store.current
        if snapshot is None:
            return _not_ready(key, default)
        ctx = context if context is not None else _EMPTY
        try:
            details = snapshot.ruleset.evaluate(key, ctx, default)
        except Exception as exc:  # the engine promises not to raise; the client promises too
            return _failed(key, default, exc)
        recorder = self._recorder
        if recorder is not None and details.variant is not None and details.error_code is None:
            recorder.record(key, details.variant, ctx)
        return details

    def variant(
        self, key: str, context: Context | None = None, default: str | None = None
    ) -> str | None:
        details = self.details(key, context)
        return details.variant if details.error_code is None else default

    def get_boolean(self, key: str, context: Context | None = None, default: bool = False) -> bool:
        value: bool = self._typed(key, context, default, (bool,))
        return value

    def get_string(self, key: str, context: Context | None = None, default: str = "") -> str:
        value: str = self._typed(key, context, default, (str,))
        return value

    def get_number(self, key: str, context: Context | None = None, default: float = 0) -> float:
        value: float = self._typed(key, context, default, (int, float))
        return value

    def get_json(self, key: str, context: Context | None = None, default: Any = None) -> Any:
        return self.details(key, context, default).value

    def _typed(
        self, key: str, context: Context | None, default: Any, types: tuple[type, ...]
    ) -> Any:
        value = self.details(key, context, default).value
        # bool is an int subclass; a boolean flag must not read as the number 1.
        if type(value) in types:
            return value
        return default

    def evaluate_all(self, context: Context | None = None) -> dict[str, EvaluationDetails]:
        """Every flag for one context, e.g. to hand to a front end. Records no exposures:
        nothing says the caller will show them all."""
        snapshot = self._store.current
        if snapshot is None:
            return {}
        try:
            return snapshot.ruleset.evaluate_all(context if context is not None else _EMPTY)
        except Exception:
            log.exception("flagsite: evaluate_all failed")
            return {}

    def units(self, context: Context, flags: Iterable[str] | None = None) -> Units:
        """The randomization units of ``context`` for these flags (every flag when None): the
        values of the attributes their rollouts bucket by, other than the targeting key, e.g.
        ``{"accountId": "acct-7"}``. Send them as the ``units`` of the error, latency,
        conversion and custom events you post, so a rollout that buckets by an account can
        count those events per account; the SDK's own exposures carry them already."""
        attributes = self._unit_attributes
        keys = attributes if flags is None else flags
        wanted = dict.fromkeys(a for key in keys for a in attributes.get(key, ()))
        return units_of(context, wanted)

    # --- state ---------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """A ruleset is being served (from the server, the on-disk copy or a bootstrap)."""
        return self._store.current is not None

    @property
    def snapshot(self) -> Snapshot | None:
        """The ruleset being served now, with where it came from."""
        return self._store.current

    @property
    def version(self) -> int | None:
        snapshot = self._store.current
        return snapshot.version if snapshot is not None else None

    def wait_until_ready(self, timeout: float) -> bool:
        """Waits for a ruleset from the server (not a cache); False on timeout."""
        return self._store.wait_for_server(timeout)

    def on_change(self, listener: Callable[[Snapshot], None]) -> None:
        """Calls ``listener`` from a background thread after each new ruleset is installed."""
        self._store.add_listener(listener)

    def refresh(self) -> bool:
        """Polls the server once now; True when it answered."""
        return self._sync.poll_once() if self._sync is not None else False

    def flush(self) -> None:
        """Sends the queued exposure events now (blocking)."""
        if self._recorder is not None:
            self._recorder.flush()

    def stats(self) -> ClientStats:
        snapshot = self._store.current
        sync = self._sync
        return ClientStats(
            ruleset_version=snapshot.version if snapshot else None,
            ruleset_source=str(snapshot.source) if snapshot else None,
            stream_connected=bool(sync and sync.stream_connected.is_set()),
            stream_failures=sync.stream_failures if sync else 0,
            poll_failures=sync.poll_failures if sync else 0,
            rejected_rulesets=self._store.rejected,
            events=self._recorder.stats() if self._recorder else None,
        )

    def close(self, timeout: float = 5.0) -> None:
        """Stops the background threads and flushes exposure events (within ``timeout``)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit)
        if self._sync is not None:
            self._sync.stop()
        if self._recorder is not None:
            self._recorder.close(timeout)
        if self._transport is not None:
            self._transport.close()

    def __enter__(self) -> FlagsiteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_at_exit(client: FlagsiteClient) -> Callable[[], None]:
    # A weak reference, so registering for exit does not keep an abandoned client alive.
    ref = weakref.ref(client)

    def close() -> None:
        target = ref()
        if target is not None:
            target.close()

    atexit.register(close)
    return close


# Clients to restart in a forked child; weak, so an abandoned client is still collected.
_LIVE_CLIENTS: weakref.WeakSet[FlagsiteClient] = weakref.WeakSet()


def _restart_clients_in_child() -> None:
    for client in list(_LIVE_CLIENTS):
        try:
            client._restart_after_fork()
        except Exception:  # never break the host's fork
            log.exception("flagsite: could not restart the client after fork")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_clients_in_child)


def _ignore(context_key: Hashable, flag: str, variant: str | None, context: Context) -> None:
    pass


def _not_ready(key: str, default: Any) -> EvaluationDetails:
    return EvaluationDetails(
        flag_key=key,
        value=default,
        variant=None,
        reason=Reason.ERROR,
        error_code=ErrorCode.GENERAL,
        error_message="no ruleset yet (server unreachable and no cache or bootstrap)",
    )


def _failed(key: str, default: Any, exc: Exception) -> EvaluationDetails:
    return EvaluationDetails(
        flag_key=key,
        value=default,
        variant=None,
        reason=Reason.ERROR,
        error_code=ErrorCode.GENERAL,
        error_message=repr(exc),
    )
