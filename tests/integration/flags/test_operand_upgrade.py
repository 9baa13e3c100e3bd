"""Migration 0010: operands stored before the operand grammar are rewritten into it, so one old
rule does not block every later save (a kill switch included) in its environment."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import pytest
from django.apps import apps
from flagsite_sdk.engine import validate_ruleset

from flags import services
from flags.models import FlagState, Ruleset, Segment
from flags.operand_upgrade import upgrade_date, upgrade_rules, upgrade_version
from flags.rulesets import build_ruleset_document
from tests.integration.api.conftest import SOURCE, World, build_world

pytestmark = pytest.mark.integration
migration = importlib.import_module("flags.migrations.0010_operand_grammar")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("20250101", "2025-01-01T00:00:00Z"),
        ("2025-W01-1", "2024-12-30"),
        ("2025-01-01T1000", "2025-01-01T10:00:00Z"),
        ("2025-01-01T10:00", "2025-01-01T10:00:00Z"),
        ("2025-01-01T10:00:00.123456+02:00", "2025-01-01T10:00:00.123456+02:00"),
        ("2025-01-01T10:00:00.123456+0200", "2025-01-01T08:00:00.123Z"),
        ("2025-01-01", "2025-01-01"),
        ("not a date", None),
    ],
)
def test_dates_keep_their_instant(old: str, new: str | None) -> None:
    assert upgrade_date(old) == new


VERSIONS = [("1\u0661.0.0", "11.0.0"), ("1.0.0-01", "1.0.0-1"), ("v01.2.3", "v1.2.3"),
            ("1.2.3", "1.2.3"), ("1.2", None)]  # fmt: skip


@pytest.mark.parametrize(("old", "new"), VERSIONS)
def test_versions_become_the_ascii_version_their_digits_spell(old: str, new: str | None) -> None:
    assert upgrade_version(old) == new


def legacy_rules(*conditions: dict[str, Any], serve: str = "sale") -> list[dict[str, Any]]:
    return [{"id": "old", "conditions": list(conditions), "serve": {"variant": serve}}]


def test_the_migration_rewrites_states_segments_and_stored_documents(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    world: World = build_world()
    # written as the server once accepted them, bypassing today's validation
    FlagState.objects.filter(flag__key="banner", environment=world.dev).update(
        rules=legacy_rules(
            {"attribute": "d", "operator": "before", "values": ["20250101"]},
            {"attribute": "v", "operator": "semver_gt", "values": ["1\u0661.0.0"]},
        )
    )
    after = {"attribute": "d", "operator": "after", "values": ["2025-01-01T10:00"]}
    Segment.objects.filter(key="staff").update(rules=[{"id": "s", "conditions": [after]}])
    FlagState.objects.filter(flag__key="internal-tool", environment=world.dev).update(
        rules=legacy_rules({"attribute": "n", "operator": "gt", "values": [2**53]}, serve="on")
    )
    row = Ruleset.objects.get(environment=world.dev)
    row.document = build_ruleset_document(world.dev, version=row.version)
    row.save(update_fields=["document"])

    with caplog.at_level(logging.WARNING):
        migration.upgrade(apps, None)

    banner = FlagState.objects.get(flag__key="banner", environment=world.dev)
    assert [c["values"] for c in banner.rules[0]["conditions"]] == [
        ["2025-01-01T00:00:00Z"],
        ["11.0.0"],
    ]
    staff = Segment.objects.get(key="staff")
    assert staff.rules[0]["conditions"][0]["values"] == ["2025-01-01T10:00:00Z"]
    stored = Ruleset.objects.get(environment=world.dev).document
    assert stored["flags"]["banner"]["rules"] == banner.rules
    assert stored["segments"]["staff"]["rules"] == staff.rules
    # the one without a faithful rewrite is left as it was, and named
    assert "values[0]" in caplog.text
    assert "9007199254740992" in caplog.text
    errors = validate_ruleset(build_ruleset_document(world.dev))
    assert [e.path for e in errors] == ["flags.internal-tool.rules[0].conditions[0].values[0]"]


def test_after_the_migration_the_kill_switch_can_be_flipped(db: None) -> None:
    world = build_world()
    FlagState.objects.filter(flag__key="banner", environment=world.dev).update(
        rules=legacy_rules({"attribute": "d", "operator": "before", "values": ["2025-W01-1"]})
    )
    migration.upgrade(apps, None)
    state = world.state("new-checkout")

    services.update_flag_state(
        state,
        changes={"enabled": False},
        expected_version=state.version,
        actor=world.owner,
        source=SOURCE,
        reason="kill",
    )

    assert world.state("new-checkout").enabled is False
    _, changes = upgrade_rules(world.state("banner").rules, "banner")
    assert changes == []
