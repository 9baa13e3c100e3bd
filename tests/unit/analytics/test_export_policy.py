"""Pure parts of the exports: retry delays and the payloads of a stored exposure."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from analytics.exports.delivery import RetryPolicy
from analytics.exports.payloads import (
    Exposure,
    amplitude_event,
    experiment_properties,
    mixpanel_messages,
)

policies = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 10),
    base_seconds=st.floats(0.001, 10),
    cap_seconds=st.floats(0.01, 600),
)


@given(
    policies,
    st.integers(1, 40),
    st.none() | st.floats(0, 10_000),
    st.integers(0, 2**32),
)
def test_a_delay_is_jittered_within_the_exponential_step_and_respects_retry_after(
    policy: RetryPolicy, retry: int, retry_after: float | None, seed: int
) -> None:
    step = min(policy.cap_seconds, policy.base_seconds * 2 ** (retry - 1))
    delay = policy.delay(retry, retry_after, random.Random(seed))
    floor = min(policy.cap_seconds, retry_after or 0.0)
    assert delay >= step / 2
    assert delay >= floor
    assert delay <= max(step, floor) <= policy.cap_seconds


def test_jitter_spreads_concurrent_retries() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=60.0)
    delays = {round(policy.delay(3, None, random.Random(seed)), 6) for seed in range(50)}
    assert len(delays) > 40  # not in lockstep
    assert all(2.0 <= d <= 4.0 for d in delays)


exposures = st.builds(
    Exposure,
    raw_id=st.integers(1, 2**62),
    environment_id=st.integers(1, 10**6),
    flag_key=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    variant=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    context_key=st.text(min_size=1, max_size=40),
    occurred_at=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    assignments=st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.just("on")),
)


@given(exposures)
def test_the_same_stored_event_always_gives_the_same_payloads(exposure: Exposure) -> None:
    assert mixpanel_messages("t", exposure) == mixpanel_messages("t", exposure)
    assert amplitude_event(exposure).get_event_body() == amplitude_event(exposure).get_event_body()
    event, profile = mixpanel_messages("t", exposure)
    assert event["properties"]["$insert_id"] == exposure.insert_id
    assert len(exposure.insert_id) <= 36  # Mixpanel's limit
    assert amplitude_event(exposure).get_event_body()["insert_id"] == exposure.insert_id
    # The exposed variant wins over a stale assignment of the same flag.
    assert experiment_properties(exposure)[f"[Experiment] {exposure.flag_key}"] == exposure.variant
    assert profile["$set"] == experiment_properties(exposure)


@given(exposures, exposures)
def test_different_stored_events_get_different_dedup_ids(a: Exposure, b: Exposure) -> None:
    if (a.environment_id, a.raw_id) != (b.environment_id, b.raw_id):
        assert a.insert_id != b.insert_id
