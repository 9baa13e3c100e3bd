"""Exposure events reach the real events endpoint (batched, deduplicated, bounded, retried
across an outage), and the OpenFeature provider works through the OpenFeature API."""

from __future__ import annotations

import pytest
from flagsite_sdk.events import EventOptions
from flagsite_sdk.openfeature import FlagsiteProvider
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent

from analytics.models import EventBatch, RawEvent
from tests.integration.sdk.conftest import FLAG, SdkWorld
from tests.support.processes import ServerProcess, wait_until

pytestmark = pytest.mark.integration


def exposures() -> list[tuple[str, str, str]]:
    rows = RawEvent.objects.filter(kind="exposure").order_by("context_key")
    return [(r.name, r.variant, r.context_key) for r in rows]


def test_exposures_are_deduplicated_batched_and_flushed_on_close(
    sdk_world: SdkWorld, flagsite_server: ServerProcess
) -> None:
    sdk_world.set_enabled(flagsite_server.url, True)
    client = sdk_world.client(
        flagsite_server.url, events=EventOptions(flush_interval=3600, batch_size=2)
    )
    wait_until(lambda: client.is_enabled(FLAG), 5, "the flag to turn on")
    for _ in range(50):
        for user in ("u1", "u2", "u3"):
            client.is_enabled(FLAG, {"targetingKey": user})
    client.is_enabled(FLAG, {"plan": "no key"})
    client.close()

    assert exposures() == [(FLAG, "on", "u1"), (FLAG, "on", "u2"), (FLAG, "on", "u3")]
    assert EventBatch.objects.count() == 2  # batches of at most two
    stats = client.stats().events
    assert stats is not None
    assert (stats.sent, stats.dropped, stats.failed, stats.queued) == (3, 0, 0, 0)


def test_a_full_queue_drops_and_counts_instead_of_growing(
    sdk_world: SdkWorld, flagsite_server: ServerProcess
) -> None:
    client = sdk_world.client(
        flagsite_server.url, events=EventOptions(flush_interval=3600, max_queue=5)
    )
    for i in range(20):
        client.is_enabled(FLAG, {"targetingKey": f"user-{i}"})
    stats = client.stats().events
    assert stats is not None
    assert (stats.queued, stats.dropped) == (5, 15)
    client.close()
    assert len(exposures()) == 5
    # The drops reach the server with the batch, so ops see them without the service's logs.
    assert sum(EventBatch.objects.values_list("client_dropped", flat=True)) == 15


def test_a_batch_is_retried_across_an_outage_without_duplicates(
    sdk_world: SdkWorld, fast_server: ServerProcess
) -> None:
    client = sdk_world.client(
        fast_server.url,
        events=EventOptions(flush_interval=0.1, retry_initial=0.2, retry_max=0.5, max_attempts=200),
    )
    fast_server.stop()
    for user in ("u1", "u2"):
        client.is_enabled(FLAG, {"targetingKey": user})
    wait_until(lambda: client.stats().events.queued == 0, 5, "the sender to take the batch")  # type: ignore[union-attr]
    fast_server.start()
    wait_until(lambda: len(exposures()) == 2, 20, "the retried batch to land")
    # The server commits before the client reads its 202: wait for the client to count it.
    wait_until(lambda: client.stats().events.sent == 2, 5, "the client to see the 202")  # type: ignore[union-attr]
    stats = client.stats().events
    assert stats is not None
    assert (stats.sent, stats.failed) == (2, 0)
    assert EventBatch.objects.count() == 1


def test_the_openfeature_provider_through_the_openfeature_api(
    sdk_world: SdkWorld, flagsite_server: ServerProcess
) -> None:
    sdk_world.set_enabled(flagsite_server.url, True)
    changed: list[EventDetails] = []
    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changed.append)
    provider = FlagsiteProvider(
        url=flagsite_server.url, server_key=sdk_world.server_key, stream_read_timeout=3.0
    )
    try:
        api.set_provider_and_wait(provider)
        client = api.get_client()
        ctx = EvaluationContext(targeting_key="u1")
        wait_until(lambda: client.get_boolean_value(FLAG, False, ctx), 5, "the flag to be on")
        details = client.get_boolean_details(FLAG, False, ctx)
        assert (details.value, details.variant, details.reason) == (True, "on", "STATIC")
        assert details.flag_metadata["rulesetVersion"] == provider.client.version
        assert "flagVersion" in details.flag_metadata
        missing = client.get_string_details("no-such-flag", "fallback", ctx)
        assert (missing.value, missing.reason) == ("fallback", "ERROR")

        sdk_world.set_enabled(flagsite_server.url, False)
        wait_until(lambda: not client.get_boolean_value(FLAG, True, ctx), 5, "the kill")
        wait_until(lambda: any(FLAG in (e.flags_changed or []) for e in changed), 5, "the event")
        assert client.get_boolean_details(FLAG, True, ctx).reason == "DISABLED"
    finally:
        api.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changed.append)
        api.shutdown()
    wait_until(lambda: len(exposures()) >= 1, 10, "the provider's exposures on shutdown")
