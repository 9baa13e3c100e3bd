"""A flag's per-look totals for a check that runs again and again over a growing window.

A rollout is checked every few minutes over the same window, from its start to now, and most
of what a check read (a day of latency histograms: about 105,000 counts per rollout) is what
the check before it read. So each check keeps, in the ``rollup_looks`` cache, what the
comparison needs of the looks that have ended: per variant, each look's sample count and log
moments and the cumulative histogram at the last of them. The next check reads the users and
events of every row as before (cheap, and the proof below) and the histograms of the newer
looks only, in the same single query.

The kept looks are used only while the rows behind them are unchanged: the cache holds each
latency row's bucket, events and value sum, and the check compares them with the rows it just
read. Rollups only ever add, and any event added to a histogram adds to its row's events, so a
late event, a deleted row or another database's rows of the same flag all show, and the check
then reads every histogram again (a second query). The results are those of the full read,
bit for bit: the kept values were computed from the same integer histograms
(tests/integration/analytics/test_look_cache.py). A cache that is empty, unreachable or
stopped only makes a check read everything (and after a failure the cache is not asked again for
RETRY_AFTER_SECONDS, so a stalled server costs one timeout, not one per check).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.core.cache import caches
from django.db import connections, router

from analytics.look_totals import IntArray, LookTotals, RowPrints, look_totals
from analytics.models import Rollup
from analytics.selectors import Window
from analytics.stats.histogram import N_BUCKETS, LatencyLooks

logger = logging.getLogger(__name__)

CACHE_ALIAS = "rollup_looks"
# A look is kept once it ended this long ago: events of the last minutes may still arrive.
SETTLE = timedelta(minutes=5)
KEEP_SECONDS = 6 * 3600  # a key dies with its window's look interval, which then changes
# The kept looks are written again once this many more have ended: a check then reads the
# histograms of a few more looks (a few rows each), and most checks write nothing.
KEEP_EVERY = 6
_FORMAT = 1  # bump when _Kept changes: older entries are then never read


@dataclass(frozen=True)
class _KeptVariant:
    rows: RowPrints  # the latency rows of the kept looks
    looks: LatencyLooks  # per kept look; ``last`` is the histogram at the last kept look


@dataclass(frozen=True)
class _Kept:
    looks: int  # looks [0, looks) of the window
    variants: dict[str, _KeptVariant]


def totals_with_latency(
    environment_id: int, flag_key: str, window: Window, metrics: Sequence[str], now: datetime
) -> tuple[LookTotals, dict[str, LatencyLooks]]:
    """The flag's per-look totals (``look_totals``) and, per variant with latency rows, its
    latency looks; one query when the kept looks still hold, two when they do not."""
    key = _key(environment_id, flag_key, window, metrics)
    kept = _usable(_get(key), window)
    totals = look_totals(environment_id, flag_key, window, metrics, kept.looks if kept else 0)
    if kept is not None and not _rows_unchanged(kept, totals, window):
        kept = None
        totals = look_totals(environment_id, flag_key, window, metrics)
    latency = {variant: _latency_looks(totals, variant, kept) for variant in totals.latency_rows}
    settled = _settled_looks(window, now)
    if settled and (kept is None or settled >= kept.looks + KEEP_EVERY):
        _set(key, _keep(totals, latency, window, settled))
    return totals, latency


def _latency_looks(totals: LookTotals, variant: str, kept: _Kept | None) -> LatencyLooks:
    per_look = totals.latency.get(variant)
    if per_look is None:
        per_look = np.zeros((totals.looks, N_BUCKETS), np.int64)
    if kept is None:
        return LatencyLooks.of(np.cumsum(per_look, axis=0))
    earlier = kept.variants.get(variant)
    if earlier is None:  # no latency rows in the kept looks: they are all zero
        base = LatencyLooks.of(np.zeros((kept.looks, N_BUCKETS), np.int64))
    else:
        base = earlier.looks
    newer: IntArray = base.last + np.cumsum(per_look[kept.looks :], axis=0)
    return base.extended(newer)


def _settled_looks(window: Window, now: datetime) -> int:
    """How many of the window's first looks ended at least SETTLE ago (never its last)."""
    ended = int((now - SETTLE - window.start) / window.look_interval)
    return max(0, min(window.looks - 1, ended))


def _keep(
    totals: LookTotals, latency: dict[str, LatencyLooks], window: Window, looks: int
) -> _Kept:
    boundary = looks * window.look_interval // timedelta(microseconds=1)
    variants = {}
    for variant, rows in totals.latency_rows.items():
        full = latency[variant]
        # The histogram at look ``looks - 1``: the last one less what the later looks added.
        per_look = totals.latency.get(variant)
        later = per_look[looks:].sum(axis=0) if per_look is not None else 0
        kept = LatencyLooks(
            full.counts[:looks].copy(),
            full.log_means[:looks].copy(),
            full.log_variances[:looks].copy(),
            full.last - later,
        )
        variants[variant] = _KeptVariant(rows.before(boundary), kept)
    return _Kept(looks, variants)


def _usable(kept: _Kept | None, window: Window) -> _Kept | None:
    if kept is None or not 0 < kept.looks <= window.looks:
        return None  # e.g. kept at a later time than this check's (a simulation's clock)
    return kept


def _rows_unchanged(kept: _Kept, totals: LookTotals, window: Window) -> bool:
    boundary = kept.looks * window.look_interval // timedelta(microseconds=1)
    for variant in set(kept.variants) | set(totals.latency_rows):
        rows = totals.latency_rows.get(variant, _NO_ROWS).before(boundary)
        earlier = kept.variants[variant].rows if variant in kept.variants else _NO_ROWS
        if not rows.same_as(earlier):
            return False
    return True


_NO_ROWS = RowPrints(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))


def _key(environment_id: int, flag_key: str, window: Window, metrics: Sequence[str]) -> str:
    database = connections[router.db_for_read(Rollup)].settings_dict.get("NAME")
    identity = (
        _FORMAT, str(database), environment_id, flag_key, tuple(sorted(metrics)),
        window.start.isoformat(), window.look_interval.total_seconds(),
    )  # fmt: skip
    return "looks:" + hashlib.blake2b(repr(identity).encode(), digest_size=16).hexdigest()


# After a failure the cache is left alone for a while: a stalled server would otherwise cost
# every check of the pass its socket timeouts.
RETRY_AFTER_SECONDS = 30.0
_unavailable_until = 0.0


def _get(key: str) -> _Kept | None:
    if time.monotonic() < _unavailable_until:
        return None
    try:
        kept = caches[CACHE_ALIAS].get(key)
    except Exception:  # unreachable, or an entry that no longer unpickles: read everything
        _failed()
        return None
    return kept if isinstance(kept, _Kept) else None


def _set(key: str, kept: _Kept) -> None:
    if time.monotonic() < _unavailable_until:
        return
    try:
        caches[CACHE_ALIAS].set(key, kept, KEEP_SECONDS)
    except Exception:
        _failed()


def _failed() -> None:
    global _unavailable_until
    logger.warning(
        "rollup looks cache unavailable: checks read every look for %.0f s",
        RETRY_AFTER_SECONDS, exc_info=True,
    )  # fmt: skip
    _unavailable_until = time.monotonic() + RETRY_AFTER_SECONDS
