"""The exposure recorder's hot path: dedup, bounds and drop counting (no sending)."""

from __future__ import annotations

from typing import Any

from flagsite_sdk import FlagsiteClient
from flagsite_sdk.events import EventOptions, ExposureRecorder, bucket_attributes, build_payload

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
    assert [(f, v, k) for f, v, k, _, _ in rec._queue] == [
        ("a", "on", "user-1"),
        ("a", "off", "user-1"),
        ("a", "on", "user-2"),
        ("b", "on", "user-1"),
    ]


def test_a_context_switching_variants_is_exposed_again() -> None:
    rec = recorder()
    for variant in ("on", "off", "off", "on"):
        rec.record("a", variant, {"targetingKey": "user-1"})
    assert [v for _, v, _, _, _ in rec._queue] == ["on", "off", "on"]


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
    payload = build_payload("b1", [("a", "on", "user-1", 0.0, None)])
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
    assert [k for _, _, k, _, _ in client._recorder._queue] == ["u1", "u2", "42", "u3"]


def by_account(key: str, attribute: str = "accountId") -> dict[str, Any]:
    """A boolean flag rolled out 50/50 by ``attribute``, and a rule that rolls out by plan."""
    flag = boolean_flag(key)
    split = [{"variant": "on", "weight": 50_000}, {"variant": "off", "weight": 50_000}]
    flag["defaultServe"] = {
        "rollout": {"bucketBy": attribute, "fallbackVariant": "off", "variants": split}
    }
    flag["rules"] = [
        {
            "id": "beta",
            "conditions": [{"attribute": "beta", "operator": "equals", "values": [True]}],
            "serve": {"rollout": {"bucketBy": "orgId", "variants": split}},
        }
    ]
    return flag


def test_the_bucketing_attributes_of_a_flag_are_its_rollouts_but_the_targeting_key() -> None:
    assert bucket_attributes(by_account("a")) == ("accountId", "orgId")
    assert bucket_attributes(by_account("a", "targetingKey")) == ("orgId",)
    assert bucket_attributes(boolean_flag("a")) == ()


def test_exposures_carry_the_units_the_flag_buckets_by() -> None:
    client = FlagsiteClient(
        offline=True, bootstrap=ruleset(1, by_account("split"), boolean_flag("plain"))
    )
    client._use_recorder(recorder())
    client.is_enabled("split", {"targetingKey": "u1", "accountId": "acct-7", "orgId": 12})
    client.details("split", {"targetingKey": "u2", "accountId": "acct-8", "orgId": True})
    client.is_enabled("plain", {"targetingKey": "u1", "accountId": "acct-7"})
    client.is_enabled("split", {"targetingKey": "u3"})  # no account: the fallback, no units
    client.is_enabled("split", {"targetingKey": "u4", "accountId": "x" * 257})
    assert client._recorder is not None
    queued = list(client._recorder._queue)
    assert [(flag, key, units) for flag, _, key, _, units in queued] == [
        ("split", "u1", {"accountId": "acct-7", "orgId": "12"}),  # an integer id as its digits
        ("split", "u2", {"accountId": "acct-8"}),  # a boolean is no unit id
        ("plain", "u1", None),  # buckets by nothing: no units to send
        ("split", "u3", None),
        ("split", "u4", None),  # longer than the server accepts: left out, not refused
    ]
    events = build_payload("b", queued)["events"]
    assert events[0]["units"] == {"accountId": "acct-7", "orgId": "12"}
    assert "units" not in events[2]


def test_the_client_gives_the_units_for_metric_events() -> None:
    client = FlagsiteClient(
        offline=True, bootstrap=ruleset(1, by_account("split"), boolean_flag("plain"))
    )
    context = {"targetingKey": "u1", "accountId": "acct-7", "orgId": "org-1"}
    assert client.units(context) == {"accountId": "acct-7", "orgId": "org-1"}
    assert client.units(context, ["plain"]) == {}
    assert client.units(context, ["split", "unknown"]) == {"accountId": "acct-7", "orgId": "org-1"}
