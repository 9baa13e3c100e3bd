"""The dashboard's sample-ratio check over the current stage of a rollout (issue 23).

A rollout by account goes 10 % → 25 % → 50 %, and the same accounts are active at every stage:
at each widening some of them move from control to flag-on. Counted since the flag's first
exposure against the current weights (as before), every widening of a healthy rollout looked
like a mismatch; counted over the units exposed since the stage started, a healthy replay is
"ok" at each stage, and a broken split (the app serves flag-on to half the accounts whatever
the stage) is a mismatch. The page says which window it shows.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from flagsite_sdk.engine import compile_ruleset

from analytics import services as analytics
from flags import roles
from flags import services as flag_services
from flags.models import Environment, FlagState, Ruleset
from rollouts import services as rollouts
from rollouts.models import RolloutPlan
from rollouts.plan_templates import StageTemplate

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

FLAG = "pdf-engine"
STAGES = ((10_000, "10%"), (25_000, "25%"), (50_000, "50%"))
ACCOUNTS = 1200
STAGE = timedelta(hours=1)

Assign = Callable[[str, str], str]  # (user, account) -> the variant the app serves


class Replay:
    """A flag rolled out by account through a real plan, and its viewer's dashboard JSON."""

    def __init__(self) -> None:
        owner = User.objects.create_user("stage-owner", is_superuser=True, is_staff=True)
        system = flag_services.Actor.automation("tests")
        project = flag_services.create_project(
            key="b2b", name="B2B", actor=system, source="system", reason="test"
        )
        flag = flag_services.create_flag(
            project, data={"key": FLAG, "name": "PDF"}, actor=system, source="system", reason="t"
        )
        self.environment = Environment.objects.get(project=project, key="development")
        self.state = FlagState.objects.get(flag=flag, environment=self.environment)
        self.owner = owner
        plan = rollouts.create_from_template(
            self.state, template="fast", user=owner, bucket_by="accountId",
            stages=[StageTemplate(name, weight, 0) for weight, name in STAGES],
            email_recipients=["ops@example.com"],
        )  # fmt: skip
        self.plan = plan
        viewer = User.objects.create_user("stage-viewer", password="x-stage-1", is_staff=True)
        roles.grant_role(viewer, project, roles.Role.VIEWER)
        self.client = Client()
        self.client.force_login(viewer)
        env = self.environment
        self.url = f"/admin/dashboards/{project.key}/{FLAG}/{env.key}/data.json"
        self.batches = 0

    def begin_stage(self, number: int, started: datetime) -> None:
        """Stage ``number`` (1-based) started at ``started``: the plan's record of it is moved
        to that moment, so the stage's traffic can be stamped in the past."""
        if number == 1:
            rollouts.start(self.plan, user=self.owner, reason="test", now=started)
        else:
            rollouts.advance(self.plan, user=self.owner, reason="test")
        RolloutPlan.objects.filter(pk=self.plan.pk).update(stage_started_at=started)
        self.plan.refresh_from_db()

    def engine(self) -> Assign:
        """The flag as the ruleset now serves it (what a healthy SDK answers)."""
        ruleset = compile_ruleset(Ruleset.objects.get(environment=self.environment).document)

        def assign(user: str, account: str) -> str:
            details = ruleset.evaluate(FLAG, {"targetingKey": user, "accountId": account})
            assert details.variant is not None
            return details.variant

        return assign

    def traffic(self, started: datetime, assign: Assign) -> None:
        """Every account's two users, an exposure and a request each, within the stage."""
        events: list[dict[str, Any]] = []
        for account_number in range(ACCOUNTS):
            account = f"acct-{account_number}"
            for user_number in range(2):
                user = f"{account}-user-{user_number}"
                variant = assign(user, account)
                seconds = zlib.crc32(user.encode()) % 3000  # spread over 50 minutes
                at = (started + timedelta(minutes=1, seconds=seconds)).isoformat()
                base = {"context_key": user, "timestamp": at, "units": {"accountId": account}}
                events.append(base | {"type": "exposure", "flag": FLAG, "variant": variant,
                                      "assignments": {FLAG: variant}})  # fmt: skip
                events.append(base | {"type": "latency", "value": 120.0,
                                      "assignments": {FLAG: variant}})  # fmt: skip
        self.batches += 1
        analytics.ingest(self.environment.pk, {"batch_id": f"s{self.batches}", "events": events})

    def dashboard(self) -> dict[str, Any]:
        response = self.client.get(self.url)
        assert response.status_code == 200, response.content[:500]
        data: dict[str, Any] = response.json()
        return data


def stage_starts() -> list[datetime]:
    now = timezone.now()
    return [now - (len(STAGES) + 1 - i) * STAGE for i in range(len(STAGES))]


def broken(user: str, account: str) -> str:
    """An app that serves flag-on to half the accounts, whatever the stage says."""
    return "on" if zlib.crc32(account.encode()) % 2 else "off"


def test_a_healthy_replay_is_ok_at_every_stage() -> None:
    replay = Replay()
    for number, started in enumerate(stage_starts(), start=1):
        replay.begin_stage(number, started)
        replay.traffic(started, replay.engine())
        data = replay.dashboard()

        srm = data["sample_ratio"]
        weight, name = STAGES[number - 1]
        assert srm["status"] == "ok", (name, srm, data["sample_ratio_note"])
        assert srm["mismatch"] is False, (name, srm)
        # Only the accounts active in this stage, each once, at this stage's split.
        assert sum(srm["observed"].values()) == ACCOUNTS
        assert srm["expected"]["on"] == pytest.approx(ACCOUNTS * weight / 100_000)
        window = data["sample_ratio_window"]
        assert window["since"] == f"stage {number} ({name}) started"
        assert window["start"] == started.isoformat()
        assert window["unit"] == "accountId"
        assert (window["missing_unit"], window["both_variants"]) == (0, 0)
        moment = f"{started.day} {started:%b %H:%M} UTC"
        assert window["label"] == (
            f"units (accountId) exposed since stage {number} ({name}) started, {moment}"
        )
    # What the old check counted: users first exposed since the flag's first exposure, against
    # today's 50 %, which the accounts moved by each widening made a mismatch.
    exposed = {v["variant"]: v["exposed_users"] for v in data["variants"]}
    assert exposed["off"] > exposed["on"] * 1.5


def test_a_broken_split_is_a_mismatch() -> None:
    replay = Replay()
    first, second, _ = stage_starts()
    replay.begin_stage(1, first)
    replay.traffic(first, replay.engine())
    assert replay.dashboard()["sample_ratio"]["mismatch"] is False
    replay.begin_stage(2, second)
    replay.traffic(second, broken)  # 25 % is served, the app shows flag-on to half

    srm = replay.dashboard()["sample_ratio"]

    assert srm["status"] == "ok"
    assert srm["mismatch"] is True
    assert srm["sequential_p_value"] < 0.001
    assert srm["observed"]["on"] > srm["expected"]["on"] * 1.5


def test_a_hand_edit_during_the_stage_restarts_the_window() -> None:
    replay = Replay()
    first = stage_starts()[0]
    replay.begin_stage(1, first)
    replay.traffic(first, replay.engine())
    # Someone edits the targeting by hand (the rollout pauses on its next check): the split
    # served since then is that edit's, not the stage's.
    state = FlagState.objects.get(pk=replay.state.pk)
    serve = state.default_serve
    serve["rollout"]["variants"] = [
        {"variant": "on", "weight": 30_000},
        {"variant": "off", "weight": 70_000},
    ]
    flag_services.update_flag_state(
        state, changes={"default_serve": serve}, expected_version=state.version,
        actor=flag_services.Actor.automation("tests"), source="system", reason="by hand",
    )  # fmt: skip

    data = replay.dashboard()

    window = data["sample_ratio_window"]
    edited = FlagState.objects.get(pk=replay.state.pk)
    assert window["since"] == f"the targeting last changed (version {edited.version})"
    assert window["start"] == edited.updated_at.isoformat()
    # No unit was exposed since, at 30 %: nothing to check yet.
    assert data["sample_ratio"]["status"] == "insufficient_data"
    assert data["sample_ratio"]["expected"] == {"on": 0.0, "off": 0.0}
