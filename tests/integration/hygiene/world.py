"""A project whose flags cover every hygiene case, with history and exposures backdated
relative to a chosen ``now`` (a Wednesday noon in the future, so real timestamps are past)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from analytics.models import Rollup
from flags import services
from flags.models import Environment, Flag, FlagState, Project
from hygiene.report import week_start

ACTOR = services.Actor.automation("test")
SYSTEM = services.Source.SYSTEM
ON = {"variant": "on"}
HALF = {
    "rollout": {
        "variants": [{"variant": "on", "weight": 50_000}, {"variant": "off", "weight": 50_000}]
    }
}


def future_wednesday() -> datetime:
    now = timezone.now()
    ahead = (2 - now.weekday()) % 7 or 7
    return (now + timedelta(days=ahead)).replace(hour=12, minute=0, second=0, microsecond=0)


@dataclass
class World:
    now: datetime
    project: Project
    alice: User
    bob: User
    flags: dict[str, Flag]

    def ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)


def _flag(project: Project, key: str, **data: Any) -> Flag:
    return services.create_flag(
        project, data={"key": key, "name": key.title(), **data}, actor=ACTOR, source=SYSTEM,
        reason="test",
    )  # fmt: skip


def _serve_everywhere(flag: Flag, serve: dict[str, Any], since: datetime) -> None:
    for state in FlagState.objects.filter(flag=flag):
        services.update_flag_state(
            state, changes={"enabled": True, "default_serve": serve},
            expected_version=state.version, actor=ACTOR, source=SYSTEM, reason="test",
        )  # fmt: skip
        FlagState.history.filter(id=state.pk).update(history_date=since)


def _evaluated(flag: Flag, env: Environment, when: datetime) -> None:
    Rollup.objects.create(
        environment=env, flag_key=flag.key, variant="on", metric="exposure",
        bucket_start=when.replace(second=0, microsecond=0), events=3, users=2,
    )  # fmt: skip


def build_world() -> World:
    now = future_wednesday()
    alice = User.objects.create_user("alice", "alice@example.test", "pw-alice-123")
    bob = User.objects.create_user("bob", "bob@example.test", "pw-bob-123")
    project = services.create_project(key="shop", name="Shop", actor=ACTOR, source=SYSTEM)
    prod = Environment.objects.get(project=project, key="production")
    w = World(now, project, alice, bob, {})

    def make(key: str, created_days: float, owner: User | None = None, **data: Any) -> Flag:
        flag = _flag(project, key, **data)
        Flag.objects.filter(pk=flag.pk).update(created_at=w.ago(created_days), owner=owner)
        flag.refresh_from_db()
        w.flags[key] = flag
        return flag

    # Launched everywhere 20 days ago, still evaluated: stale (launched), owned by alice.
    f = make("old-checkout", 25, alice)
    _serve_everywhere(f, ON, w.ago(20))
    _evaluated(f, prod, w.ago(1))
    # At 100% for 40 days: stale, and counted in the "over 30 days at 100%" trend.
    f = make("old-launch", 45, alice)
    _serve_everywhere(f, ON, w.ago(40))
    _evaluated(f, prod, w.ago(1))
    # Became stale this week: launched exactly 14 days before this Monday, plus an hour.
    f = make("new-stale", 30, alice)
    launched = datetime.combine(week_start(now), datetime.min.time(), tzinfo=now.tzinfo)
    _serve_everywhere(f, ON, launched - timedelta(days=14) + timedelta(hours=1))
    _evaluated(f, prod, w.ago(1))
    # A 50/50 split never evaluated, 45 days old: stale (unused, past lifetime), bob's.
    f = make("ghost-flag", 45, bob)
    _serve_everywhere(f, HALF, w.ago(44))
    # Created this week, split, evaluated: fresh.
    f = make("fresh-flag", 2, bob)
    _serve_everywhere(f, HALF, w.ago(2))
    _evaluated(f, prod, w.ago(0.5))
    # A kill switch on for a year and evaluated: permanent, not stale.
    f = make("kill-payments", 400, None, kind="ops", tags=["kill-switch"])
    _serve_everywhere(f, ON, w.ago(399))
    _evaluated(f, prod, w.ago(1))
    # A permission flag nobody evaluated for 40 days: stale (unused), not newly.
    f = make("perm-admin", 200, None, kind="permission")
    _serve_everywhere(f, HALF, w.ago(199))
    _evaluated(f, prod, w.ago(40))
    # Archived this week.
    f = make("retired", 60)
    services.archive_flag(f, actor=ACTOR, source=SYSTEM, reason="done")
    Flag.objects.filter(pk=f.pk).update(archived_at=w.ago(1))
    return w
