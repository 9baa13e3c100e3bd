"""Records when each key was last used: at most once a minute per key, never on the request path.

A request only notes the key id in memory; a daemon thread writes the timestamps in one UPDATE
per key, with its own connection that it closes after each batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import UTC, datetime

from django.db import close_old_connections, connection

log = logging.getLogger(__name__)

TOUCH_INTERVAL_S = 60.0

_last_touch: dict[int, float] = {}
_pending: queue.SimpleQueue[tuple[int, datetime]] = queue.SimpleQueue()
_writer: threading.Thread | None = None
_writer_lock = threading.Lock()


def touch(key_id: int) -> None:
    now = time.monotonic()
    last = _last_touch.get(key_id)
    if last is not None and now - last < TOUCH_INTERVAL_S:
        return
    _last_touch[key_id] = now
    _pending.put((key_id, datetime.now(UTC)))
    _ensure_writer()


def _ensure_writer() -> None:
    global _writer
    if _writer is not None:
        return
    with _writer_lock:
        if _writer is None:
            _writer = threading.Thread(target=_write_forever, name="apikey-usage", daemon=True)
            _writer.start()


def _write_forever() -> None:
    while True:
        batch = [_pending.get()]
        while not _pending.empty():
            batch.append(_pending.get())
        try:
            flush(batch)
        except Exception:
            log.warning("could not record API key usage", exc_info=True)


def flush(batch: list[tuple[int, datetime]]) -> None:
    from apikeys.models import ApiKey

    latest: dict[int, datetime] = {}
    for key_id, at in batch:
        latest[key_id] = max(at, latest.get(key_id, at))
    close_old_connections()
    try:
        for key_id, at in latest.items():
            ApiKey.objects.filter(pk=key_id).update(last_used_at=at)
    finally:
        connection.close()
