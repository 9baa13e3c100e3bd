"""The OpenFeature provider through the OpenFeature API, on a bootstrapped client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flagsite_sdk import FlagsiteClient
from flagsite_sdk.openfeature import FlagsiteProvider
from flagsite_sdk.store import Source
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, Reason
from openfeature.hook import Hook, HookContext, HookHints

from tests.support.processes import wait_until
from tests.unit.sdk.rulesets import boolean_flag, number_flag, ruleset, string_flag

DOC = ruleset(
    9,
    boolean_flag("new-ui"),
    string_flag("color"),
    number_flag("limit", 3.0),
    number_flag("ratio", 0.25),
)


class Recorder(Hook):
    def __init__(self) -> None:
        self.seen: list[FlagEvaluationDetails[Any]] = []

    def after(
        self, hook_context: HookContext, details: FlagEvaluationDetails[Any], hints: HookHints
    ) -> None:
        self.seen.append(details)


@pytest.fixture
def client() -> Iterator[FlagsiteClient]:
    client = FlagsiteClient(offline=True, bootstrap=DOC)
    api.set_provider_and_wait(FlagsiteProvider(client))
    yield client
    api.shutdown()
    api.clear_hooks()


def test_values_variants_reasons_and_metadata_reach_hooks(client: FlagsiteClient) -> None:
    hook = Recorder()
    api.add_hooks([hook])
    of = api.get_client()
    ctx = EvaluationContext(targeting_key="u1", attributes={"plan": "beta"})
    assert of.get_boolean_value("new-ui", False, ctx) is True
    details = of.get_string_details("color", "x", ctx)
    assert (details.value, details.variant, details.reason) == (
        "none",
        "control",
        "TARGETING_MATCH",
    )
    assert details.flag_metadata == {"rulesetVersion": 9, "flagVersion": 1, "ruleId": "beta"}
    assert of.get_integer_value("limit", 0) == 3
    assert of.get_float_value("ratio", 1.0) == 0.25
    assert [d.flag_key for d in hook.seen] == ["new-ui", "color", "limit", "ratio"]
    assert hook.seen[0].reason == Reason.STATIC or hook.seen[0].reason == "STATIC"


def test_errors_come_back_as_defaults_with_openfeature_codes(client: FlagsiteClient) -> None:
    of = api.get_client()
    missing = of.get_boolean_details("nope", True)
    assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
    mismatch = of.get_string_details("new-ui", "d")
    assert (mismatch.value, mismatch.error_code) == ("d", ErrorCode.TYPE_MISMATCH)
    not_int = of.get_integer_details("ratio", 5)
    assert (not_int.value, not_int.error_code) == (5, ErrorCode.TYPE_MISMATCH)


def test_a_new_ruleset_emits_configuration_changed_with_the_changed_flags(
    client: FlagsiteClient,
) -> None:
    events: list[EventDetails] = []
    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, events.append)
    client._store.apply(
        ruleset(
            10, boolean_flag("new-ui", version=2), string_flag("color"), number_flag("limit", 3.0)
        ),
        Source.SERVER,
    )
    wait_until(lambda: len(events) == 1, 5, "the configuration-changed event")
    assert events[0].flags_changed == ["new-ui", "ratio"]
    api.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, events.append)


def test_a_provider_without_a_ruleset_is_not_ready_until_one_arrives() -> None:
    client = FlagsiteClient(offline=True)
    ready: list[EventDetails] = []
    errors: list[EventDetails] = []
    api.add_handler(ProviderEvent.PROVIDER_ERROR, errors.append)
    api.add_handler(ProviderEvent.PROVIDER_READY, ready.append)
    api.set_provider(FlagsiteProvider(client))
    try:
        wait_until(lambda: bool(errors), 5, "the provider's not-ready error")
        ready.clear()  # a READY may have come from the provider this one replaced
        of = api.get_client()
        assert of.get_boolean_details("new-ui", True).value is True
        client._store.apply(DOC, Source.SERVER)
        wait_until(lambda: bool(ready), 5, "the provider's ready event")
        assert of.get_boolean_value("new-ui", False) is True
    finally:
        api.remove_handler(ProviderEvent.PROVIDER_READY, ready.append)
        api.remove_handler(ProviderEvent.PROVIDER_ERROR, errors.append)
        api.shutdown()
