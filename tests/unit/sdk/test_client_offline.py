"""The client with no server: bootstrap, on-disk cache, defaults, typed getters."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
from flagsite_sdk import FlagsiteClient
from flagsite_sdk.engine import ErrorCode, Reason
from flagsite_sdk.store import RulesetStore, Source

from tests.unit.sdk.rulesets import boolean_flag, number_flag, ruleset, string_flag

DOC = ruleset(
    3,
    boolean_flag("new-ui"),
    boolean_flag("killed", enabled=False),
    string_flag("color"),
    number_flag("limit", 2.5),
)


def test_bootstrap_from_dict_evaluates_locally() -> None:
    client = FlagsiteClient(offline=True, bootstrap=DOC)
    assert client.is_enabled("new-ui") is True
    assert client.is_enabled("killed", default=True) is False
    assert client.variant("color", {"plan": "beta"}) == "control"
    assert client.get_string("color", {"plan": "free"}) == "blue"
    assert client.get_number("limit") == 2.5
    assert client.version == 3


def test_bootstrap_from_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(DOC))
    client = FlagsiteClient(offline=True, bootstrap=str(path))
    assert client.is_enabled("new-ui") is True


def test_no_ruleset_serves_defaults_with_an_error_code() -> None:
    client = FlagsiteClient(offline=True)
    assert client.is_enabled("new-ui", default=True) is True
    details = client.details("new-ui", default=False)
    assert details.value is False
    assert details.reason is Reason.ERROR
    assert details.error_code is ErrorCode.GENERAL
    assert client.variant("color", default="fallback") == "fallback"


def test_unreadable_bootstrap_does_not_raise(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    client = FlagsiteClient(offline=True, bootstrap=path)
    assert client.ready is False
    assert client.is_enabled("new-ui", default=True) is True


def test_typed_getters_fall_back_on_type_mismatch() -> None:
    client = FlagsiteClient(offline=True, bootstrap=DOC)
    assert client.get_string("new-ui", default="x") == "x"
    assert client.get_number("new-ui", default=7) == 7
    assert client.get_boolean("color", default=True) is True
    assert client.is_enabled("color", default=True) is True
    assert client.details("new-ui", default="x").error_code is ErrorCode.TYPE_MISMATCH


def test_unknown_flag_reports_flag_not_found() -> None:
    client = FlagsiteClient(offline=True, bootstrap=DOC)
    details = client.details("nope", default=1)
    assert (details.value, details.error_code) == (1, ErrorCode.FLAG_NOT_FOUND)


def test_an_unusable_document_is_rejected_and_the_last_good_one_stays() -> None:
    store = RulesetStore()
    assert store.apply(DOC, Source.SERVER)
    unusable = ruleset(4, boolean_flag("new-ui"))
    unusable["schemaVersion"] = 2
    assert store.apply(unusable, Source.SERVER) is False
    assert store.apply({**ruleset(5), "flags": []}, Source.SERVER) is False
    assert store.rejected == 2
    assert store.current is not None
    assert store.current.version == 3


def test_a_flag_that_cannot_compile_answers_parse_error_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RulesetStore()
    assert store.apply(DOC, Source.SERVER)
    newer = ruleset(4, boolean_flag("new-ui"), boolean_flag("maintenance-mode"))
    newer["flags"]["new-ui"]["offVariant"] = "missing"
    with caplog.at_level(logging.WARNING, logger="flagsite_sdk"):
        assert store.apply(newer, Source.SERVER)
    assert store.current is not None
    assert store.current.version == 4
    assert store.rejected == 0
    compiled = store.current.ruleset
    assert compiled.is_enabled("maintenance-mode", {}) is True
    details = compiled.evaluate("new-ui", {}, "default")
    assert (details.value, details.error_code) == ("default", ErrorCode.PARSE_ERROR)
    assert "flags.new-ui.offVariant" in caplog.text


def test_only_newer_server_versions_replace_the_current_one() -> None:
    store = RulesetStore()
    assert store.apply(ruleset(5, boolean_flag("a")), Source.SERVER)
    assert store.apply(ruleset(5, boolean_flag("a", enabled=False)), Source.SERVER) is False
    assert store.apply(ruleset(4, boolean_flag("a", enabled=False)), Source.SERVER) is False
    assert store.apply(ruleset(6, boolean_flag("a", enabled=False)), Source.SERVER)


def test_server_ruleset_replaces_a_cache_whatever_its_version() -> None:
    store = RulesetStore()
    assert store.apply(ruleset(50, boolean_flag("a")), Source.CACHE)
    assert store.apply(ruleset(2, boolean_flag("a")), Source.SERVER)
    assert store.apply(ruleset(90, boolean_flag("a")), Source.BOOTSTRAP) is False
    assert store.current is not None
    assert store.current.source is Source.SERVER


def test_server_rulesets_are_written_to_the_cache_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "ruleset.json"
    writer = RulesetStore(path)
    writer.apply(DOC, Source.SERVER)
    assert json.loads(path.read_text())["version"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["ruleset.json"]  # no temp file left
    reader = RulesetStore(path)
    assert reader.load_cache()
    assert reader.current is not None
    assert reader.current.source is Source.CACHE


def test_a_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "ruleset.json"
    path.write_text('{"version": ')
    assert RulesetStore(path).load_cache() is False
    assert RulesetStore(tmp_path / "absent.json").load_cache() is False


def test_listeners_see_each_new_ruleset_and_their_errors_are_contained() -> None:
    client = FlagsiteClient(offline=True)
    seen: list[int] = []

    def boom(_: object) -> None:
        raise RuntimeError("listener bug")

    client.on_change(boom)
    client.on_change(lambda snapshot: seen.append(snapshot.version))
    client._store.apply(ruleset(1, boolean_flag("a")), Source.SERVER)
    client._store.apply(ruleset(2, boolean_flag("a")), Source.SERVER)
    assert seen == [1, 2]


def test_readers_never_see_a_torn_ruleset_while_writers_swap() -> None:
    store = RulesetStore()
    store.apply(ruleset(0, boolean_flag("a", serve="off")), Source.SERVER)
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            snapshot = store.current
            assert snapshot is not None
            expected = snapshot.version % 2 == 1
            if snapshot.booleans["a"]({}).value is not expected:
                errors.append(f"v{snapshot.version}")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for version in range(1, 200):
        store.apply(
            ruleset(version, boolean_flag("a", serve="on" if version % 2 else "off")), Source.SERVER
        )
    stop.set()
    for reader in readers:
        reader.join()
    assert errors == []
