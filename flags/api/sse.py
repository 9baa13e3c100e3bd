"""``GET /api/v1/sdk/stream``: Server-Sent Events of ruleset versions.

Server keys receive each new ruleset document (``event: ruleset``). Client keys (browsers) must
never see rules or segment contents, so they receive only ``event: version`` with
``{"version": n}`` and fetch their evaluated values again (``POST /api/v1/evaluate/all``).

An async view over an async generator: under the ASGI server each open stream is a suspended
coroutine waiting on an asyncio.Event, not a thread. flags.evaluation's listener wakes it when
a new version is installed; the frame was serialized once for every subscriber. Django cancels
the generator when the client disconnects, and ``finally`` unsubscribes it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from flags import evaluation
from flags.api.keys import KEY_PREFIX, aresolve_key, raw_key
from flags.evaluation import Snapshot, Subscription

RETRY_FRAME = b"retry: 1000\n\n"
HEARTBEAT_FRAME = b": heartbeat\n\n"
# Open streams per API key in this process. A leaked key (or a client that reconnects without
# closing) is capped here instead of tying up the worker's memory and file descriptors.
_open_streams: Counter[int] = Counter()


def _refusal(status: int, detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="flagsite"'
    return response


def version_frame(snap: Snapshot) -> bytes:
    """The frame a client key gets: the version only, nothing of the rules."""
    return f'id: {snap.version}\nevent: version\ndata: {{"version": {snap.version}}}\n\n'.encode()


def ruleset_frame(snap: Snapshot) -> bytes:
    return snap.event


async def _events(
    sub: Subscription,
    first: Snapshot,
    last_event_id: str | None,
    key_id: int,
    frame: Callable[[Snapshot], bytes],
) -> AsyncIterator[bytes]:
    heartbeat = float(settings.FLAGSITE_SSE_HEARTBEAT_SECONDS)
    try:
        yield RETRY_FRAME
        sent = first.version
        if last_event_id != str(first.version):
            yield frame(first)
        while True:
            try:
                async with asyncio.timeout(heartbeat):
                    await sub.changed.wait()
            except TimeoutError:
                yield HEARTBEAT_FRAME
                continue
            sub.changed.clear()
            snap = evaluation.cached(sub.environment_id)
            if snap is not None and snap.version > sent:
                sent = snap.version
                yield frame(snap)
    finally:
        evaluation.unsubscribe(sub)
        _release(key_id)


def _release(key_id: int) -> None:
    _open_streams[key_id] -= 1
    if _open_streams[key_id] <= 0:
        del _open_streams[key_id]


@require_GET
async def sdk_stream(request: HttpRequest) -> HttpResponseBase:
    raw = raw_key(request.headers)
    if raw is None:
        return _refusal(401, "Authentication credentials were not provided.")
    key = await aresolve_key(raw) if raw.startswith(KEY_PREFIX) else None
    if key is None:
        return _refusal(401, "Unknown or revoked API key.")
    if key.kind not in ("server", "client"):
        needs = "this endpoint needs a server or client key."
        return _refusal(403, f"A {key.kind} key cannot be used here: {needs}")
    frame = ruleset_frame if key.kind == "server" else version_frame
    limit = int(settings.FLAGSITE_SSE_MAX_STREAMS_PER_KEY)
    if _open_streams[key.id] >= limit:
        refused = _refusal(
            429, f"This key already has {limit} open streams on this server process; close some."
        )
        refused["Retry-After"] = "30"
        return refused
    last_event_id = request.headers.get("Last-Event-ID") or request.GET.get("lastEventId")
    # Subscribe before reading the current version, so a change in between is not missed.
    sub = evaluation.subscribe(key.environment_id)
    _open_streams[key.id] += 1  # released by _events' finally, or below if we never get there
    try:
        first = await evaluation.aget_snapshot(key.environment_id)
    except BaseException:
        evaluation.unsubscribe(sub)
        _release(key.id)
        raise
    response = StreamingHttpResponse(
        _events(sub, first, last_event_id, key.id, frame), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
