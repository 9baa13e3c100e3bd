"""The stale-flag report: what the weekly email, `manage.py stale_flags` and the admin show."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse

from flags.models import Flag, Project
from hygiene import lifecycle, selectors
from hygiene.lifecycle import Assessment, FlagFacts

WEEK = timedelta(days=7)


def week_start(now: datetime) -> date:
    """The Monday of ``now``'s ISO week (UTC)."""
    day = now.date()
    return day - timedelta(days=day.weekday())


def admin_url(flag_id: int) -> str:
    base = str(getattr(settings, "FLAGSITE_BASE_URL", "http://localhost:8000")).rstrip("/")
    return base + reverse("admin:flags_flag_change", args=[flag_id])


@dataclass(frozen=True)
class StaleEntry:
    project: str
    key: str
    name: str
    kind: str
    owner_email: str
    reasons: list[dict[str, str]]  # criterion, since (ISO), message
    stale_since: str
    stage: str
    kept_because: str
    environments: dict[str, str]  # environment -> status
    last_evaluated: str | None
    references: list[str]  # "repository: path:line  context"
    admin_url: str
    removed_references: list[str] = field(default_factory=list)  # gone since the last scan


@dataclass
class Trend:
    week_start: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    newly_stale: list[str] = field(default_factory=list)
    at_full_over_30_days: int = 0


@dataclass
class Report:
    generated_at: str
    entries: list[StaleEntry]
    trend: Trend

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def for_owner(self, email: str) -> list[StaleEntry]:
        return [e for e in self.entries if e.owner_email and e.owner_email == email]


def _entry(
    project: Project, flag: Flag, a: Assessment, refs: list[str], removed: list[str]
) -> StaleEntry:
    return StaleEntry(
        project=project.key,
        key=flag.key,
        name=flag.name,
        kind=flag.kind,
        owner_email=flag.owner.email if flag.owner is not None else "",
        reasons=[
            {"criterion": str(r.criterion), "since": r.since.isoformat(), "message": r.message}
            for r in a.reasons
        ],
        stale_since=a.stale_since.isoformat() if a.stale_since else "",
        stage=str(a.stage),
        kept_because=a.kept_because,
        environments={env: str(status) for env, status in a.statuses.items()},
        last_evaluated=a.last_evaluated.isoformat() if a.last_evaluated else None,
        references=refs,
        admin_url=admin_url(flag.pk),
        removed_references=removed,
    )


def assess_project(
    project: Project, now: datetime, flags: list[Flag] | None = None
) -> list[tuple[Flag, FlagFacts, Assessment]]:
    t, _ = selectors.thresholds(project)
    if flags is None:
        live = Flag.objects.filter(project=project, archived=False)
        flags = list(live.select_related("owner").order_by("key"))
    facts = selectors.flag_facts(project, flags)
    return [(f, fact, lifecycle.assess(fact, now, t)) for f, fact in zip(flags, facts, strict=True)]


def build_report(now: datetime, projects: list[Project] | None = None) -> Report:
    start = week_start(now)
    begin = datetime.combine(start, datetime.min.time(), tzinfo=now.tzinfo)
    trend = Trend(week_start=start.isoformat())
    entries: list[StaleEntry] = []
    for project in projects if projects is not None else Project.objects.order_by("key"):
        t, _ = selectors.thresholds(project)
        refs = selectors.references_by_flag(project) or {}
        removed: dict[str, list[str]] = {}
        for upload in selectors.latest_uploads(project):
            for gone in selectors.removed_references(upload):
                line = f"{upload.repository}: {gone.path}:{gone.line}  {gone.context}"
                removed.setdefault(gone.flag_key, []).append(line)
        for flag, facts, a in assess_project(project, now):
            # Permanent kinds (kill switches, permissions) are meant to stay at 100%.
            temporary = t.is_temporary(facts.kind)
            if temporary and lifecycle.at_full_rollout_for(facts, now, t.at_full_days):
                trend.at_full_over_30_days += 1
            if not a.stale:
                continue
            lines = [
                f"{r.repository}: {r.path}:{r.line}  {r.context}" for r in refs.get(flag.key, ())
            ]
            entries.append(_entry(project, flag, a, lines, removed.get(flag.key, [])))
            if a.stale_since is not None and begin <= a.stale_since <= now:
                trend.newly_stale.append(f"{project.key}/{flag.key}")
        in_week = {"project": project, "created_at__gte": begin, "created_at__lte": now}
        trend.added += [f"{project.key}/{k}" for k in _keys(Flag.objects.filter(**in_week))]
        archived = {"project": project, "archived": True, "archived_at__gte": begin}
        trend.removed += [f"{project.key}/{k}" for k in _keys(Flag.objects.filter(**archived))]
    entries.sort(key=lambda e: (e.stale_since, e.project, e.key))
    return Report(generated_at=now.isoformat(), entries=entries, trend=trend)


def _keys(flags: Any) -> list[str]:
    return list(flags.order_by("key").values_list("key", flat=True))
