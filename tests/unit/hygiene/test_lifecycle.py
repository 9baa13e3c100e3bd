"""The lifecycle rules as pure functions, each at its boundaries (13 and 15 days against a
14-day threshold, 29/31 against 30, ...), with the clock passed in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hygiene.lifecycle import (
    KILL_SWITCH,
    Criterion,
    EnvironmentFacts,
    FlagFacts,
    Stage,
    Status,
    Thresholds,
    assess,
    at_full_rollout_for,
    environment_status,
    served_single_variant,
    single_variant_since,
    stale_reasons,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
T = Thresholds()


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def env(
    name: str = "production",
    single: str | None = None,
    since: float | None = None,
    seen: float | None = 1,
) -> EnvironmentFacts:
    return EnvironmentFacts(
        name,
        single,
        days_ago(since) if since is not None else None,
        days_ago(seen) if seen is not None else None,
    )


def flag(
    *envs: EnvironmentFacts,
    kind: str = "release",
    created: float = 20,
    expires: date | None = None,
    references: int | None = 2,
    dependants: tuple[str, ...] = (),
    rollout: bool = False,
) -> FlagFacts:
    return FlagFacts(
        "checkout", kind, days_ago(created), expires, envs or (env(),), references, dependants,
        rollout,
    )  # fmt: skip


def criteria(f: FlagFacts, t: Thresholds = T) -> set[Criterion]:
    return {r.criterion for r in stale_reasons(f, NOW, t)}


# --- Criterion: one variant to everyone everywhere for over 14 days -------------------------


@pytest.mark.parametrize(("days", "stale"), [(13, False), (14, False), (15, True)])
def test_launched_everywhere_boundary(days: int, stale: bool) -> None:
    f = flag(env("staging", "on", days), env("production", "on", days), created=20)
    assert (Criterion.LAUNCHED in criteria(f)) is stale


def test_launched_counts_from_the_last_environment_to_launch() -> None:
    f = flag(env("staging", "on", 30), env("production", "on", 13))
    assert Criterion.LAUNCHED not in criteria(f)
    reason = stale_reasons(flag(env("staging", "on", 30), env("production", "on", 15)), NOW, T)
    assert reason[0].since == days_ago(15) + timedelta(days=14)


def test_a_mixed_environment_is_not_launched() -> None:
    f = flag(env("staging", "on", 60), env("production", None, None))
    assert Criterion.LAUNCHED not in criteria(f)


def test_the_launched_threshold_is_configurable() -> None:
    f = flag(env(single="on", since=8))
    assert Criterion.LAUNCHED in criteria(f, Thresholds(launched_days=7))
    assert Criterion.LAUNCHED not in criteria(f, Thresholds(launched_days=8))


# --- Criterion: not evaluated for over 30 days ----------------------------------------------


@pytest.mark.parametrize(("days", "stale"), [(29, False), (30, False), (31, True)])
def test_unused_boundary(days: int, stale: bool) -> None:
    f = flag(env("staging", seen=days + 5), env("production", seen=days), created=100)
    assert (Criterion.UNUSED in criteria(f)) is stale


@pytest.mark.parametrize(("days", "stale"), [(13, False), (15, True)])
def test_unused_boundary_with_a_14_day_threshold(days: int, stale: bool) -> None:
    f = flag(env(seen=days), created=100)
    assert (Criterion.UNUSED in criteria(f, Thresholds(unused_days=14))) is stale


def test_a_never_evaluated_flag_counts_from_its_creation() -> None:
    assert Criterion.UNUSED not in criteria(flag(env(seen=None), created=29))
    reasons = stale_reasons(flag(env(seen=None), created=31), NOW, T)
    unused = next(r for r in reasons if r.criterion == Criterion.UNUSED)
    assert unused.since == days_ago(1)
    assert "never evaluated" in unused.message


# --- Criterion: past expiry, past the kind's lifetime ---------------------------------------


@pytest.mark.parametrize(("expired_days_ago", "stale"), [(-1, False), (0, False), (1, True)])
def test_expiry_boundary(expired_days_ago: int, stale: bool) -> None:
    expires = (NOW - timedelta(days=expired_days_ago)).date()
    assert (Criterion.EXPIRED in criteria(flag(created=5, expires=expires))) is stale


@pytest.mark.parametrize(
    ("kind", "created", "stale"),
    [("release", 39, False), ("release", 41, True), ("experiment", 41, True),
     ("ops", 6, False), ("ops", 8, True)],
)  # fmt: skip
def test_lifetime_per_kind(kind: str, created: int, stale: bool) -> None:
    assert (Criterion.PAST_LIFETIME in criteria(flag(kind=kind, created=created))) is stale


@pytest.mark.parametrize(("created", "stale"), [(13, False), (15, True)])
def test_lifetime_is_configurable(created: int, stale: bool) -> None:
    t = Thresholds(lifetimes={"release": 14})
    assert (Criterion.PAST_LIFETIME in criteria(flag(created=created), t)) is stale


@pytest.mark.parametrize("kind", [KILL_SWITCH, "permission"])
def test_permanent_kinds_are_reported_only_when_unused(kind: str) -> None:
    old = flag(
        env(single="on", since=400, seen=1), kind=kind, created=500, expires=date(2020, 1, 1)
    )
    assert criteria(old) == set()
    assert criteria(flag(env(seen=31), kind=kind, created=500)) == {Criterion.UNUSED}


# --- Statuses per environment ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "created", "status"),
    [
        (env(seen=None), 6, Status.NEW),
        (env(seen=None), 8, Status.INACTIVE),
        (env(seen=1), 3, Status.ACTIVE),
        (env(seen=6), 30, Status.ACTIVE),
        (env(seen=8), 30, Status.INACTIVE),
        (env(single="on", since=3, seen=1), 30, Status.LAUNCHED),
        (env(single="off", since=3, seen=None), 30, Status.LAUNCHED),
    ],
)
def test_environment_status(facts: EnvironmentFacts, created: int, status: Status) -> None:
    assert environment_status(facts, days_ago(created), NOW, T) is status


# --- Stages ---------------------------------------------------------------------------------


def test_stages() -> None:
    launched = (env("staging", "on", 20), env("production", "on", 20))
    assert assess(flag(*launched, references=3), NOW, T).stage is Stage.READY_FOR_CODE_REMOVAL
    assert assess(flag(*launched, references=0), NOW, T).stage is Stage.READY_TO_ARCHIVE
    assert assess(flag(env(seen=1), references=0), NOW, T).stage is Stage.IN_USE
    inactive = flag(env(seen=40), created=100, references=0)
    assert assess(inactive, NOW, T).stage is Stage.READY_TO_ARCHIVE
    # Permanent flags are never suggested for removal.
    assert assess(flag(env(seen=40), kind="permission", created=100), NOW, T).stage is (
        Stage.IN_USE
    )


def test_prerequisites_and_running_rollouts_are_never_suggested_for_removal() -> None:
    launched = (env("production", "on", 20),)
    kept = assess(flag(*launched, references=0, dependants=("b", "a")), NOW, T)
    assert kept.stage is Stage.KEPT
    assert kept.kept_because == "prerequisite of a, b"
    assert assess(flag(*launched, rollout=True), NOW, T).stage is Stage.KEPT


def test_stale_since_is_the_earliest_reason() -> None:
    a = assess(flag(env(single="on", since=20, seen=1), created=50), NOW, T)
    assert {r.criterion for r in a.reasons} == {Criterion.LAUNCHED, Criterion.PAST_LIFETIME}
    assert a.stale_since == days_ago(10)


# --- Serving one variant, and since when ----------------------------------------------------


def rollout(*weights: tuple[str, int]) -> dict[str, object]:
    return {"rollout": {"variants": [{"variant": v, "weight": w} for v, w in weights]}}


@pytest.mark.parametrize(
    ("enabled", "rules", "serve", "prereqs", "single"),
    [
        (False, [], rollout(("on", 50_000), ("off", 50_000)), [], "off"),
        (True, [], {"variant": "on"}, [], "on"),
        (True, [], rollout(("on", 100_000), ("off", 0)), [], "on"),
        (True, [], rollout(("on", 99_999), ("off", 1)), [], None),
        (True, [{"serve": {"variant": "on"}}], {"variant": "on"}, [], "on"),
        (True, [{"serve": {"variant": "off"}}], {"variant": "on"}, [], None),
        (True, [], {"variant": "on"}, [{"flag": "x", "variants": ["on"]}], None),
    ],
)
def test_served_single_variant(
    enabled: bool,
    rules: list[dict[str, object]],
    serve: dict[str, object],
    prereqs: list[object],
    single: str | None,
) -> None:
    assert served_single_variant(enabled, "off", rules, serve, prereqs) == single


def test_single_variant_since_is_the_start_of_the_current_run() -> None:
    h = [(days_ago(30), "on"), (days_ago(20), None), (days_ago(10), "on"), (days_ago(5), "on")]
    assert single_variant_since(h) == days_ago(10)
    assert single_variant_since([*h, (days_ago(1), None)]) is None
    assert single_variant_since([]) is None


@pytest.mark.parametrize(("days", "counted"), [(29, False), (31, True)])
def test_at_full_rollout_boundary(days: int, counted: bool) -> None:
    assert at_full_rollout_for(flag(env(single="on", since=days)), NOW, 30) is counted
    assert not at_full_rollout_for(flag(env(single="off", since=days + 10)), NOW, 30)


# --- Properties -----------------------------------------------------------------------------


@given(
    since=st.floats(min_value=0, max_value=400),
    seen=st.one_of(st.none(), st.floats(min_value=0, max_value=400)),
    created_extra=st.floats(min_value=0, max_value=400),
    kind=st.sampled_from(["release", "experiment", "ops", KILL_SWITCH, "permission"]),
    single=st.sampled_from([None, "on", "off"]),
    refs=st.one_of(st.none(), st.integers(min_value=0, max_value=5)),
)
def test_properties(
    since: float, seen: float | None, created_extra: float, kind: str, single: str | None,
    refs: int | None,
) -> None:  # fmt: skip
    created = max(since, seen or 0) + created_extra
    f = flag(
        env(single=single, since=since, seen=seen), kind=kind, created=created, references=refs
    )
    a = assess(f, NOW, T)
    # Every reason became true no later than now, and "since" is the earliest of them.
    assert all(r.since <= NOW for r in a.reasons)
    assert a.stale_since == min((r.since for r in a.reasons), default=None)
    # Removal is only ever suggested for stale temporary flags.
    if a.stage in (Stage.READY_FOR_CODE_REMOVAL, Stage.READY_TO_ARCHIVE):
        assert a.stale
        assert T.is_temporary(kind)
    # Permanent kinds are reported only when unused.
    if not T.is_temporary(kind):
        assert {r.criterion for r in a.reasons} <= {Criterion.UNUSED}
    # Moving the clock forward never makes a stale flag fresh again.
    later = assess(f, NOW + timedelta(days=3), T)
    assert {r.criterion for r in a.reasons} <= {r.criterion for r in later.reasons}
