"""Rollouts for the fault and propagation tests, built through the real services.

Used in the test process (PostgreSQL) and, as ``python -m tests.integration.rollouts.scenario
<command> ...``, inside the embedded mode's own environment (SQLite), where the test process
cannot reach the database. Every command prints one JSON line.

Traffic goes through the analytics core's real ingest (``analytics.services.ingest``), in the
SDK's event format: exposures, then per request a latency event and, for some, an error or a
custom event, each carrying the flag assignment in force.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

FLAG = "pdf"
STAGES = ((10_000, "10%"), (50_000, "50%"), (100_000, "100%"))


@dataclass(frozen=True)
class Rollout:
    project: str
    environment_id: int
    state_id: int
    plan_id: int
    server_key: str


def make_rollout(
    project_key: str,
    *,
    started_ago: timedelta = timedelta(hours=1),
    template: str = "standard",
    guardrails: bool = True,
    min_sample: int = 200,
) -> Rollout:
    """A project with one boolean flag and a server key in development, and a running plan
    started ``started_ago`` (so traffic can be stamped inside the rollout's window).

    ``template="fast"``: 10 % → 50 % → 100 % with no bake time (for tests of the machinery,
    not of the statistics). ``guardrails=False`` removes the default guardrails, so such a plan
    progresses on exposures alone.
    """
    from django.contrib.auth.models import User
    from django.utils import timezone

    from apikeys import services as apikey_services
    from flags import services as flag_services
    from flags.models import Environment, FlagState
    from rollouts import services
    from rollouts.plan_templates import StageTemplate

    owner, _ = User.objects.get_or_create(username="rollout-owner", defaults={"is_superuser": True})
    system = flag_services.Actor.automation("tests")
    project = flag_services.create_project(
        key=project_key, name=project_key, actor=system, source="system", reason="test"
    )
    flag = flag_services.create_flag(
        project, data={"key": FLAG, "name": "PDF"}, actor=system, source="system", reason="t"
    )
    env = Environment.objects.get(project=project, key="development")
    state = FlagState.objects.get(flag=flag, environment=env)
    _, server_key = apikey_services.provision(env, kind="server", name="sdk", created_by=owner)
    stages = (
        [StageTemplate(name, weight, 0) for weight, name in STAGES] if template == "fast" else None
    )
    plan = services.create_from_template(
        state, template=template, user=owner, stages=stages, min_sample=min_sample
    )
    if not guardrails:
        plan.guardrails.all().delete()
    services.start(plan, user=owner, reason="test", now=timezone.now() - started_ago)
    return Rollout(project.key, env.pk, state.pk, plan.pk, server_key)


def send_traffic(
    environment_id: int,
    at: datetime,
    *,
    on_users: int,
    off_users: int,
    requests_per_user: int = 5,
    on_error_rate: float = 0.01,
    off_error_rate: float = 0.01,
    custom: str = "",
    on_custom_rate: float = 0.0,
    off_custom_rate: float = 0.0,
) -> int:
    """One batch of exposures and request events, all stamped ``at``; returns the events sent.

    Errors and custom events are spread evenly (every k-th request), so a cohort's rate is
    exactly the one asked for and a test's outcome does not depend on a random draw.
    """
    from analytics import services as analytics

    stamp = at.isoformat()
    tag = uuid.uuid4().hex[:8]
    events: list[dict[str, Any]] = []
    for variant, users, error_rate, custom_rate in (
        ("on", on_users, on_error_rate, on_custom_rate),
        ("off", off_users, off_error_rate, off_custom_rate),
    ):
        requests = users * requests_per_user
        errors = _spread(requests, error_rate)
        customs = _spread(requests, custom_rate)
        for user in range(users):
            key = f"{variant}-{tag}-{user}"
            common = {"context_key": key, "timestamp": stamp, "assignments": {FLAG: variant}}
            events.append({"type": "exposure", "flag": FLAG, "variant": variant, **common})
            for r in range(requests_per_user):
                index = user * requests_per_user + r
                events.append({"type": "latency", "value": 80.0 + index % 40, **common})
                if index in errors:
                    events.append({"type": "error", **common})
                if custom and index in customs:
                    events.append({"type": "custom", "name": custom, "value": 1, **common})
    analytics.ingest(environment_id, {"batch_id": f"test-{tag}", "events": events})
    return len(events)


def _spread(total: int, rate: float) -> set[int]:
    count = round(total * rate)
    return {int(i * total / count) for i in range(count)} if count else set()


def send_red_traffic(environment_id: int, at: datetime) -> int:
    """Stage 1 of the standard template: a 5 % split (no sample-ratio mismatch) where flag-on
    fails 40 % of requests against control's 1 %, far past every error guardrail's red line."""
    return send_traffic(
        environment_id, at, on_users=20, off_users=380, on_error_rate=0.4, off_error_rate=0.01
    )


def rollback_written_at(plan_id: int) -> float:
    """When the rollback's write to the flag was recorded (its history row, written inside the
    transaction, so no later than the commit: a delay measured from it is an upper bound)."""
    from flags.models import FlagState
    from rollouts.models import RolloutPlan

    plan = RolloutPlan.objects.get(pk=plan_id)
    state = FlagState.objects.get(pk=plan.flag_state_id)
    record = state.history.filter(
        history_change_reason__startswith=f"rollout #{plan_id} rollback"
    ).get()
    return float(record.history_date.timestamp())


def plan_status(plan_id: int) -> dict[str, Any]:
    from rollouts.models import RolloutPlan

    plan = RolloutPlan.objects.get(pk=plan_id)
    checks = list(plan.checks.order_by("sequence").values_list("verdict", flat=True))
    return {"status": plan.status, "stage": plan.current_stage, "checks": checks}


def _main(argv: Sequence[str]) -> None:
    """Commands for a process of the embedded mode (each start of Django costs seconds, so
    each command does all it can in one process)."""
    import time

    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    command, *args = argv
    if command == "migrate-and-red-rollout":
        call_command("migrate", interactive=False, verbosity=0)
        rollout = make_rollout(args[0])
        send_red_traffic(rollout.environment_id, timezone.now() - timedelta(minutes=30))
        print(json.dumps(asdict(rollout)))
    elif command == "beat-pass-until-rolled-back":
        # One beat pass through the file-system broker; prints when the rollback was written.
        from rollouts.models import RolloutPlan
        from rollouts.tasks import check_rollouts

        plan_id = int(args[0])
        check_rollouts.delay()
        deadline = time.monotonic() + 60
        while RolloutPlan.objects.get(pk=plan_id).status != RolloutPlan.Status.ROLLED_BACK:
            if time.monotonic() > deadline:
                raise SystemExit(f"not rolled back: {plan_status(plan_id)}")
            time.sleep(0.05)
        print(json.dumps({"written_at": rollback_written_at(plan_id), **plan_status(plan_id)}))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    _main(sys.argv[1:])
