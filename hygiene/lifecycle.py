"""Flag lifecycle as pure functions: statuses per environment, stale criteria, stages.

Nothing here reads the database or the clock: callers pass ``now`` and the facts (see
hygiene.selectors), so every rule is tested at its boundaries with any moment they choose.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

DAY = timedelta(days=1)


class Status(enum.StrEnum):
    NEW = "new"
    ACTIVE = "active"
    LAUNCHED = "launched"
    INACTIVE = "inactive"


class Stage(enum.StrEnum):
    IN_USE = "in use"
    READY_FOR_CODE_REMOVAL = "ready for code removal"
    READY_TO_ARCHIVE = "ready to archive"
    KEPT = "kept"  # stale, but another flag or a running rollout depends on it


class Criterion(enum.StrEnum):
    LAUNCHED = "launched"
    UNUSED = "unused"
    EXPIRED = "expired"
    PAST_LIFETIME = "past lifetime"


KILL_SWITCH = "kill_switch"


@dataclass(frozen=True)
class Thresholds:
    """Days per rule; a lifetime of None makes that kind permanent."""

    lifetimes: dict[str, int | None] = field(
        default_factory=lambda: {
            "release": 40,
            "experiment": 40,
            "ops": 7,
            KILL_SWITCH: None,
            "permission": None,
        }
    )
    launched_days: int = 14
    unused_days: int = 30
    new_days: int = 7
    inactive_days: int = 7
    at_full_days: int = 30

    def lifetime(self, kind: str) -> int | None:
        return self.lifetimes.get(kind)

    def is_temporary(self, kind: str) -> bool:
        return self.lifetime(kind) is not None


@dataclass(frozen=True)
class EnvironmentFacts:
    """One environment of a flag. ``single_variant`` is the variant served to everyone (None
    when users may get different variants); ``single_since`` is when that started."""

    environment: str
    single_variant: str | None
    single_since: datetime | None
    last_evaluated: datetime | None
    off_variant: str = "off"


@dataclass(frozen=True)
class FlagFacts:
    key: str
    kind: str  # a Flag.Kind value, or KILL_SWITCH
    created_at: datetime
    expires_at: date | None
    environments: Sequence[EnvironmentFacts]
    references: int | None = None  # None: no code scan uploaded yet
    dependants: Sequence[str] = ()  # flags that list this one as a prerequisite
    in_running_rollout: bool = False


@dataclass(frozen=True)
class Reason:
    criterion: Criterion
    since: datetime  # the moment the flag became stale by this criterion
    message: str


@dataclass(frozen=True)
class Assessment:
    key: str
    statuses: dict[str, Status]
    reasons: list[Reason]
    stage: Stage
    last_evaluated: datetime | None
    kept_because: str = ""

    @property
    def stale(self) -> bool:
        return bool(self.reasons)

    @property
    def stale_since(self) -> datetime | None:
        return min((r.since for r in self.reasons), default=None)


def environment_status(
    env: EnvironmentFacts, created_at: datetime, now: datetime, t: Thresholds
) -> Status:
    if env.last_evaluated is None and now - created_at < t.new_days * DAY:
        return Status.NEW
    if env.single_variant is not None:
        return Status.LAUNCHED
    if env.last_evaluated is not None and now - env.last_evaluated < t.inactive_days * DAY:
        return Status.ACTIVE
    return Status.INACTIVE


def last_evaluated(flag: FlagFacts) -> datetime | None:
    return max((e.last_evaluated for e in flag.environments if e.last_evaluated), default=None)


def launched_since(flag: FlagFacts) -> datetime | None:
    """When the flag started serving one variant to everyone in every environment, or None."""
    if not flag.environments:
        return None
    moments = []
    for env in flag.environments:
        if env.single_variant is None:
            return None
        moments.append(env.single_since or flag.created_at)
    return max(moments)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def stale_reasons(flag: FlagFacts, now: datetime, t: Thresholds) -> list[Reason]:
    """Every criterion the flag meets at ``now``. Each threshold is "over N days": a flag is
    stale once strictly more than N days have passed. Permanent kinds: only when unused."""
    reasons: list[Reason] = []
    temporary = t.is_temporary(flag.kind)
    launched = launched_since(flag)
    if temporary and launched is not None and now - launched > t.launched_days * DAY:
        reasons.append(
            Reason(
                Criterion.LAUNCHED,
                launched + t.launched_days * DAY,
                f"serves one variant to everyone in every environment for over "
                f"{t.launched_days} days (since {launched:%Y-%m-%d})",
            )
        )
    seen = last_evaluated(flag)
    basis = seen or flag.created_at
    if now - basis > t.unused_days * DAY:
        what = f"last evaluated {seen:%Y-%m-%d}" if seen else "never evaluated"
        reasons.append(
            Reason(
                Criterion.UNUSED,
                basis + t.unused_days * DAY,
                f"not evaluated for over {t.unused_days} days ({what})",
            )
        )
    if not temporary:
        return reasons
    if flag.expires_at is not None and now >= _midnight(flag.expires_at) + DAY:
        reasons.append(
            Reason(
                Criterion.EXPIRED,
                _midnight(flag.expires_at) + DAY,
                f"past its expiry date {flag.expires_at:%Y-%m-%d}",
            )
        )
    lifetime = t.lifetime(flag.kind)
    if lifetime is not None and now - flag.created_at > lifetime * DAY:
        reasons.append(
            Reason(
                Criterion.PAST_LIFETIME,
                flag.created_at + lifetime * DAY,
                f"older than the {lifetime}-day expected lifetime of a {flag.kind} flag",
            )
        )
    return reasons


def assess(flag: FlagFacts, now: datetime, t: Thresholds) -> Assessment:
    statuses = {
        e.environment: environment_status(e, flag.created_at, now, t) for e in flag.environments
    }
    reasons = stale_reasons(flag, now, t)
    done = {Criterion.LAUNCHED, Criterion.UNUSED}
    removable = t.is_temporary(flag.kind) and any(r.criterion in done for r in reasons)
    kept = ""
    if flag.dependants:
        kept = f"prerequisite of {', '.join(sorted(flag.dependants))}"
    elif flag.in_running_rollout:
        kept = "part of a running rollout"
    if not removable:
        stage = Stage.IN_USE
    elif kept:
        stage = Stage.KEPT
    elif flag.references == 0:
        stage = Stage.READY_TO_ARCHIVE
    else:
        stage = Stage.READY_FOR_CODE_REMOVAL
    return Assessment(flag.key, statuses, reasons, stage, last_evaluated(flag), kept)


def single_variant_since(
    history: Sequence[tuple[datetime, str | None]],
) -> datetime | None:
    """Given a state's serve over time (oldest first: when, the single variant or None), the
    start of the current run of serving that same single variant; None if it serves a mix."""
    if not history or history[-1][1] is None:
        return None
    current = history[-1][1]
    since = history[-1][0]
    for moment, variant in reversed(history):
        if variant != current:
            break
        since = moment
    return since


def at_full_rollout_for(flag: FlagFacts, now: datetime, days: int) -> bool:
    """Serves one non-off variant to everyone everywhere for over ``days`` days (seed 004's
    "at 100%")."""
    since = launched_since(flag)
    if since is None or now - since <= days * DAY:
        return False
    return all(e.single_variant != e.off_variant for e in flag.environments)


def served_single_variant(
    enabled: bool,
    off_variant: str,
    rules: Sequence[dict[str, object]],
    default_serve: dict[str, object],
    prerequisites: Sequence[object],
) -> str | None:
    """The variant a flag state serves to everyone, or None when users may differ."""
    if not enabled:
        return off_variant
    if prerequisites:
        return None  # users failing a prerequisite get the off variant
    fallthrough = _fixed_variant(default_serve)
    if fallthrough is None:
        return None
    for rule in rules:
        serve = rule.get("serve")
        if not isinstance(serve, dict) or _fixed_variant(serve) != fallthrough:
            return None
    return fallthrough


def _fixed_variant(serve: dict[str, object]) -> str | None:
    variant = serve.get("variant")
    if isinstance(variant, str):
        return variant
    rollout = serve.get("rollout")
    if not isinstance(rollout, dict):
        return None
    weighted = {
        str(part.get("variant"))
        for part in rollout.get("variants", [])
        if isinstance(part, dict) and part.get("weight")
    }
    return weighted.pop() if len(weighted) == 1 else None
