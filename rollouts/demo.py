"""The demo rollout of ``./bin/run``: a plan on the demo project's ``new-pdf-engine`` flag in
development, with synthetic healthy traffic so it visibly advances on accelerated time
(FLAGSITE_ROLLOUT_TIME_SCALE, 720 in the demo: a 24 h bake takes 2 minutes)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.utils import timezone
from flagsite_sdk.engine import compile_ruleset

from analytics import services as analytics
from flags.models import FlagState, Ruleset
from rollouts import services
from rollouts.models import RolloutPlan
from rollouts.plan_templates import DEFAULT_GUARDRAILS

DEMO_NAME = "Demo: new PDF engine, 5% → 25% → 50% → 100%"
FLAG = "new-pdf-engine"
ACCOUNTS = 5000


def ensure_demo_rollout() -> RolloutPlan | None:
    """Creates and starts the demo plan once (idempotent); None if the demo flag is missing."""
    existing = RolloutPlan.objects.filter(name=DEMO_NAME).first()
    if existing is not None:
        return existing
    state = (
        FlagState.objects.select_related("flag", "environment__project")
        .filter(flag__key=FLAG, flag__project__key="demo", environment__key="development")
        .first()
    )
    owner = (
        User.objects.filter(is_superuser=True).first()
        or User.objects.filter(username="owner").first()
    )
    if state is None or owner is None:
        return None
    if RolloutPlan.objects.filter(flag_state=state, status__in=RolloutPlan.ACTIVE).exists():
        return None
    plan = services.create_from_template(
        state, template="standard", user=owner, name=DEMO_NAME, bucket_by="accountId",
        min_sample=30,
        # A plan that would tell no one of a rollback may not start; the demo's email goes to
        # the console (the worker's log), whatever OPS_EMAILS says.
        email_recipients=["ops@localhost"],
        # The demo's synthetic traffic is a few thousand requests at 1 % errors: too few for
        # any interval to bound a ratio to control, so its plan keeps the lines such traffic
        # can clear (a difference of error rates, the p95), and progresses on them.
        guardrails=[g for g in DEFAULT_GUARDRAILS if g.mode == "absolute"],
    )  # fmt: skip
    return services.start(plan, user=owner, reason="the demo rollout")


def send_demo_traffic(requests: int = 3000, seed: int | None = None) -> int:
    """One burst of healthy synthetic traffic for the running demo plan, evaluated by the
    engine from the served ruleset and stored through the analytics ingestion service."""
    plan = RolloutPlan.objects.filter(name=DEMO_NAME, status=RolloutPlan.Status.RUNNING).first()
    if plan is None:
        return 0
    env_id = plan.flag_state.environment_id
    ruleset = compile_ruleset(Ruleset.objects.get(environment_id=env_id).document)
    rng = np.random.default_rng(seed)
    now = timezone.now()
    # Spread over the last 10 s, but never before the stage began: a check compares only what
    # happened within the current stage.
    spread = min(10.0, max((now - (plan.stage_started_at or now)).total_seconds(), 0.0))
    events: list[dict[str, Any]] = []
    for account in rng.integers(0, ACCOUNTS, requests).tolist():
        context = {"targetingKey": f"acct-{account}", "accountId": f"acct-{account}"}
        variant = ruleset.evaluate(FLAG, context, False).variant or "off"
        at = (now - timedelta(seconds=float(rng.random()) * spread)).isoformat()
        common = {
            "context_key": f"acct-{account}", "timestamp": at, "assignments": {FLAG: variant},
            "units": {"accountId": f"acct-{account}"},  # the unit the plan buckets by
        }  # fmt: skip
        events.append({"type": "exposure", "flag": FLAG, "variant": variant, **common})
        events.append(
            {"type": "latency", "value": float(100 * np.exp(rng.normal(0, 0.5))), **common}
        )
        if rng.random() < 0.01:
            events.append({"type": "error", **common})
        if rng.random() < 0.05:
            events.append({"type": "conversion", **common})
    analytics.ingest(env_id, {"batch_id": f"demo-{uuid.uuid4().hex}", "events": events})
    return len(events)
