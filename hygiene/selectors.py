"""Reads that gather the facts hygiene.lifecycle judges: flag states and their history,
last evaluations from the exposure rollups, and the latest uploaded code references."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max

from analytics.models import EventKind, Rollup
from flags.models import Environment, Flag, FlagState, Project
from hygiene.lifecycle import (
    KILL_SWITCH,
    EnvironmentFacts,
    FlagFacts,
    Thresholds,
    served_single_variant,
    single_variant_since,
)
from hygiene.models import CodeReference, HygieneSettings, ReferenceUpload

log = logging.getLogger(__name__)


def thresholds(project: Project) -> tuple[Thresholds, str]:
    """The project's thresholds and kill-switch tag (defaults without a settings row)."""
    row = HygieneSettings.objects.filter(project=project).first() or HygieneSettings()
    lifetimes: dict[str, int | None] = {
        "release": row.release_lifetime_days,
        "experiment": row.experiment_lifetime_days,
        "ops": row.ops_lifetime_days,
        KILL_SWITCH: None,
        "permission": None,
    }
    t = Thresholds(
        lifetimes=lifetimes,
        launched_days=row.launched_days,
        unused_days=row.unused_days,
        new_days=row.new_days,
        inactive_days=row.inactive_days,
    )
    return t, row.kill_switch_tag


def hygiene_kind(flag: Flag, kill_switch_tag: str) -> str:
    if flag.kind == Flag.Kind.OPS and kill_switch_tag in (flag.tags or []):
        return KILL_SWITCH
    return str(flag.kind)


def flags_in_running_rollouts(project: Project) -> set[str]:
    """Keys of the project's flags that an active (running or paused) staged rollout drives."""
    from rollouts.models import RolloutPlan

    active = RolloutPlan.objects.filter(
        flag_state__flag__project=project, status__in=RolloutPlan.ACTIVE
    )
    return set(active.values_list("flag_state__flag__key", flat=True))


def last_evaluations(environments: Iterable[Environment]) -> dict[tuple[int, str], datetime]:
    """(environment id, flag key) -> start of the last minute with an exposure."""
    rows = (
        Rollup.objects.filter(environment__in=list(environments), metric=EventKind.EXPOSURE)
        .values("environment_id", "flag_key")
        .annotate(last=Max("bucket_start"))
    )
    return {(r["environment_id"], r["flag_key"]): r["last"] for r in rows}


@dataclass(frozen=True)
class Reference:
    repository: str
    commit: str
    path: str
    line: int
    context: str


def latest_uploads(project: Project) -> list[ReferenceUpload]:
    """The newest upload of each repository of the project."""
    latest: dict[str, ReferenceUpload] = {}
    for upload in ReferenceUpload.objects.filter(project=project).order_by("-uploaded_at", "-pk"):
        latest.setdefault(upload.repository, upload)
    return list(latest.values())


def references_by_flag(project: Project) -> dict[str, list[Reference]] | None:
    """Flag key -> references in the latest upload of each repository; None if never scanned."""
    uploads = latest_uploads(project)
    if not uploads:
        return None
    by_upload = {u.pk: u for u in uploads}
    found: dict[str, list[Reference]] = defaultdict(list)
    for ref in CodeReference.objects.filter(upload__in=uploads):
        upload = by_upload[ref.upload_id]
        found[ref.flag_key].append(
            Reference(upload.repository, upload.commit, ref.path, ref.line, ref.context)
        )
    return dict(found)


def removed_references(upload: ReferenceUpload) -> list[CodeReference]:
    """References the previous upload of the same repository had and this one does not."""
    previous = (
        ReferenceUpload.objects.filter(
            project_id=upload.project_id, repository=upload.repository, pk__lt=upload.pk
        )
        .order_by("-pk")
        .first()
    )
    if previous is None:
        return []
    now = {(r.flag_key, r.path, r.context.strip()) for r in upload.references.all()}
    return [
        r for r in previous.references.all() if (r.flag_key, r.path, r.context.strip()) not in now
    ]


def _serve_history(states: list[FlagState]) -> dict[int, list[tuple[datetime, str | None]]]:
    historical = FlagState.history.model.objects.filter(id__in=[s.pk for s in states]).order_by(
        "history_date", "history_id"
    )
    history: dict[int, list[tuple[datetime, str | None]]] = defaultdict(list)
    for h in historical:
        variant = served_single_variant(
            h.enabled, h.off_variant, h.rules or [], h.default_serve or {}, h.prerequisites or []
        )
        history[h.id].append((h.history_date, variant))
    return history


def flag_facts(project: Project, flags: list[Flag] | None = None) -> list[FlagFacts]:
    """Facts of the project's live flags (or of ``flags``), in a handful of queries."""
    _, kill_tag = thresholds(project)
    if flags is None:
        flags = list(Flag.objects.filter(project=project, archived=False).order_by("key"))
    environments = list(Environment.objects.filter(project=project))
    env_keys = {e.pk: e.key for e in environments}
    states = list(FlagState.objects.filter(flag__project=project))
    history = _serve_history(states)
    seen = last_evaluations(environments)
    refs = references_by_flag(project)
    running = flags_in_running_rollouts(project)
    live = {f.pk for f in Flag.objects.filter(project=project, archived=False)}
    dependants: dict[str, set[str]] = defaultdict(set)
    flag_keys = dict(Flag.objects.filter(project=project).values_list("pk", "key"))
    per_flag: dict[int, list[EnvironmentFacts]] = defaultdict(list)
    for s in states:
        if s.flag_id in live:
            for p in s.prerequisites or []:
                dependants[str(p.get("flag"))].add(flag_keys[s.flag_id])
        key = flag_keys[s.flag_id]
        per_flag[s.flag_id].append(
            EnvironmentFacts(
                environment=env_keys[s.environment_id],
                single_variant=served_single_variant(
                    s.enabled,
                    s.off_variant,
                    s.rules or [],
                    s.default_serve or {},
                    s.prerequisites or [],
                ),
                single_since=single_variant_since(history.get(s.pk, [])),
                last_evaluated=seen.get((s.environment_id, key)),
                off_variant=s.off_variant,
            )
        )
    return [
        FlagFacts(
            key=f.key,
            kind=hygiene_kind(f, kill_tag),
            created_at=f.created_at,
            expires_at=f.expires_at,
            environments=sorted(per_flag.get(f.pk, []), key=lambda e: e.environment),
            references=None if refs is None else len(refs.get(f.key, [])),
            dependants=sorted(dependants.get(f.key, set()) - {f.key}),
            in_running_rollout=f.key in running,
        )
        for f in flags
    ]
