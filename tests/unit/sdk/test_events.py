"""The exposure recorder's hot path: dedup, bounds and drop counting (no sending)."""

from __future__ import annotations

from flagsite_sdk import FlagsiteClient
from flagsite_sdk.events import EventOptions, ExposureRecorder, build_payload

from tests.unit.sdk.rulesets import boolean_flag, ruleset


def recorder(**options: float) -> ExposureRecorder:
    return ExposureRecorder(None, EventOptions(**options))  # type: ignore[arg-type]


def test_one_event_per_context_flag_and_variant() -> None:
    rec = recorder()
    for _ in range(3):
        rec.record("a", "on", {"targetingKey": "user-1"})
    rec.record("a", "off", {"targetingKey": "user-1"})
    rec.record("a", "on", {"targetingKey": "user-2"})
    rec.record("b", "on", {"targetingKey": "user-1"})
    rec.record("b", "on", {"targetingKey": "user-1"})
    assert [(f, v, k) for f, v, k, _ in rec._queue] == [
        ("a", "on", "user-1"),
        ("a", "off", "user-1"),
        ("a", "on", "user-2"),
        ("b", "on", "user-1"),
    ]


def test_a_context_switching_variants_is_exposed_again() -> None:
    rec = recorder()
    for variant in ("on", "off", "off", "on"):
        rec.record("a", variant, {"targetingKey": "user-1"})
    assert [v for _, v, _, _ in rec._queue] == ["on", "off", "on"]


def test_the_queue_is_bounded_and_drops_are_counted() -> None:
    rec = recorder(max_queue=10)
    for i in range(25):
        rec.record("a", "on", {"targetingKey": f"user-{i}"})
    stats = rec.stats()
    assert (stats.queued, stats.dropped) == (10, 15)


def test_the_dedup_table_is_bounded() -> None:
    rec = recorder(max_dedup_keys=100, max_queue=10_000)
    for i in range(1000):
        rec.record("a", "on", {"targetingKey": f"user-{i}"})
        rec.record("b", "off", {"targetingKey": f"user-{i}"})
    assert len(rec.seen) == 2
    assert all(len(table) <= 100 for table in rec.seen.values())
    rec.record("a", "on", {"targetingKey": "user-999"})  # recent keys are still deduplicated
    assert rec.stats().queued == 2000


def test_dedup_resets_after_its_interval() -> None:
    rec = recorder(dedup_interval=0)
    rec.record("a", "on", {"targetingKey": "user-1"})
    rec._maybe_reset_dedup()
    rec.record("a", "on", {"targetingKey": "user-1"})
    assert rec.stats().queued == 2


def test_payload_shape() -> None:
    payload = build_payload("b1", [("a", "on", "user-1", 0.0)])
    assert payload["batch_id"] == "b1"
    assert payload["events"] == [
        {
            "type": "exposure",
            "flag": "a",
            "variant": "on",
            "context_key": "user-1",
            "timestamp": "1970-01-01T00:00:00+00:00",
            "assignments": {"a": "on"},
        }
    ]


def test_client_records_exposures_for_served_variants_only() -> None:
    client = FlagsiteClient(offline=True, bootstrap=ruleset(1, boolean_flag("a")))
    client._use_recorder(recorder())
    client.is_enabled("a", {"targetingKey": "u1"})
    client.is_enabled("a", {"userId": "u2"})
    client.is_enabled("a", {"plan": "anonymous"})
    client.is_enabled("a", {"targetingKey": 42})
    client.details("a", {"targetingKey": "u3"})
    client.is_enabled("missing", {"targetingKey": "u1"})
    client.details("a", {"targetingKey": "u1"}, default="wrong type")
    assert client._recorder is not None
    assert [k for _, _, k, _ in client._recorder._queue] == ["u1", "u2", "42", "u3"]
