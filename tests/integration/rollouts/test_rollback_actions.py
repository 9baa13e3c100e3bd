"""What a rollback does to evaluation, per rollback action; and the segment-first launch plan.

Each test reads the answers from the environment's served ruleset (the engine every client
uses), not from the plan's own bookkeeping.
"""

from __future__ import annotations

import pytest

from flags import evaluation
from flags import services as flag_services
from flags.models import FlagState
from rollouts import services
from rollouts.models import RolloutPlan
from tests.integration.rollouts.conftest import SYSTEM, World

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

KEYS = [f"acct-{i}" for i in range(4000)]


def served(state: FlagState, keys: list[str]) -> dict[str, str]:
    snapshot = evaluation.reload(state.environment_id)
    return {k: str(snapshot.compiled.evaluate(state.flag.key, {"targetingKey": k}).variant)
            for k in keys}  # fmt: skip


def on_share(answers: dict[str, str]) -> float:
    return sum(v == "on" for v in answers.values()) / len(answers)


def test_the_kill_switch_action_serves_off_to_everyone_and_says_so(world: World) -> None:
    plan = services.create_from_template(
        world.state, template="standard", user=world.manager, rollback_action="kill"
    )
    services.start(plan, user=world.manager, reason="ship it")
    services.advance(plan, user=world.manager, reason="fine so far")
    before = served(world.state, KEYS)
    assert 0.22 < on_share(before) < 0.28  # the 25 % stage, seen by the engine

    services.rollback(plan, user=world.manager, reason="invoices fail to render")

    after = served(world.state, KEYS)
    assert set(after.values()) == {world.state.off_variant}
    plan.refresh_from_db()
    assert plan.status == RolloutPlan.Status.ROLLED_BACK
    last = plan.checks.order_by("sequence").last()
    assert last is not None
    assert last.verdict == "rollback"
    world.state.refresh_from_db()
    record = world.state.history.latest("history_id")
    assert "invoices fail to render" in record.history_change_reason


def test_the_zero_action_keeps_the_flag_switched_on_at_zero_percent(world: World) -> None:
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    services.start(plan, user=world.manager, reason="ship it")
    world.state.refresh_from_db()
    enabled_before = world.state.enabled

    services.rollback(plan, user=world.manager, reason="errors")

    world.state.refresh_from_db()
    assert world.state.enabled == enabled_before
    assert set(served(world.state, KEYS).values()) == {world.state.off_variant}


def test_the_launch_plan_serves_the_internal_segment_first_and_keeps_it(world: World) -> None:
    internal = ["staff-1", "staff-2", "staff-3"]
    segment = flag_services.create_segment(
        world.project,
        data={"key": "internal", "name": "Internal users", "included": internal},
        actor=SYSTEM,
        source="system",
        reason="test",
    )
    plan = services.create_from_template(
        world.state, template="launch-phases", user=world.manager, segment=segment
    )
    services.start(plan, user=world.manager, reason="dogfood first")
    first = served(world.state, internal + KEYS)
    assert all(first[k] == "on" for k in internal)
    assert on_share({k: first[k] for k in KEYS}) == 0.0

    services.advance(plan, user=world.manager, reason="staff are happy")
    second = served(world.state, internal + KEYS)
    everyone_before = {k for k, v in first.items() if v == "on"}
    assert everyone_before <= {k for k, v in second.items() if v == "on"}
    assert 0.08 < on_share({k: second[k] for k in KEYS}) < 0.12  # the 10 % stage
