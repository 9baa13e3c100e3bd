"""Replays a rollout on simulated time (``manage.py simulate_rollout``).

The full path goes through the real pieces: a plan from rollouts.services, the Python SDK
evaluating the flag for every request from the ruleset the server compiled (rebuilt whenever
the rollout changes it), exposures in the SDK's own payload format and metric events posted to
the real events endpoint (in-process, through Django's URL routing and the view), and the real
beat task ``rollouts.tasks.check_rollouts`` called with the simulated time. Simulated time runs
in the recent past (events must be within the raw-event retention and not in the future).

The light path (``run_light``) serves the repeated runs of the false-rollback figure: the same
traffic model aggregated in memory into the analytics series, then the same
``evidence_from_series`` and ``decide`` as the check service, with one look per check.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from flagsite_sdk.engine import bucket as engine_bucket

from analytics.selectors import Window
from analytics.stats import VariantSeries
from analytics.stats.histogram import N_BUCKETS, bucket_index
from rollouts.decision import Action, Clock, GuardrailSpec, PlanSpec, StageSpec, decide
from rollouts.evidence import EvidenceRequest, evidence_from_series
from rollouts.plan_templates import DEFAULT_GUARDRAILS

FULL = 100_000


@dataclass
class Scenario:
    accounts: int = 12_000
    fail_share: float = 0.0  # share of accounts for which the new code fails
    fail_rate: float = 0.5  # chance a request of such an account fails with the new code
    base_error_rate: float = 0.01  # per request, both cohorts
    latency_factor: float = 1.0  # flag-on latency multiplier
    base_latency_ms: float = 100.0  # median; lognormal with sigma 0.5 (p95 about 2.3x median)
    conversion_change: float = 0.0  # relative change of the flag-on conversion chance
    base_conversion: float = 0.05  # per request
    traffic_per_hour: int = 3000
    stages: list[float] = field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])  # percent
    bake_hours: float = 24.0
    check_minutes: float = 15.0
    min_sample: int = 200
    false_positive_rate: float = 0.05
    seed: int = 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown scenario fields: {', '.join(unknown)}")
        return cls(**data)


SCENARIOS: dict[str, dict[str, Any]] = {
    # Seed 004: the new PDF engine fails for the 3 % of accounts with large invoices.
    "pdf-engine": {"fail_share": 0.03, "fail_rate": 0.9, "base_error_rate": 0.002},
    "healthy": {"traffic_per_hour": 1000, "check_minutes": 60.0},
    "latency": {"latency_factor": 2.5},
    "conversion": {"conversion_change": -0.5, "traffic_per_hour": 6000},
}


def scenario(name: str, **overrides: Any) -> Scenario:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {sorted(SCENARIOS)}")
    return Scenario.from_dict({**SCENARIOS[name], **overrides})


@dataclass
class StageReport:
    stage: int
    percent: float
    accounts_exposed: int = 0
    requests: dict[str, int] = field(default_factory=lambda: {"on": 0, "off": 0})
    errors: dict[str, int] = field(default_factory=lambda: {"on": 0, "off": 0})
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)


@dataclass
class Traffic:
    """One step of simulated requests: who, which variant, and what happened."""

    at: npt.NDArray[np.float64]  # epoch seconds
    account: npt.NDArray[np.int64]
    on: npt.NDArray[np.bool_]
    error: npt.NDArray[np.bool_]
    latency: npt.NDArray[np.float64]
    conversion: npt.NDArray[np.bool_]


class Model:
    """The traffic model shared by both paths."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = np.random.default_rng(sc.seed)
        self.failing = self.rng.random(sc.accounts) < sc.fail_share

    def step(
        self,
        start: float,
        seconds: float,
        on_of: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.bool_]],
    ) -> Traffic:
        sc, rng = self.sc, self.rng
        n = int(rng.poisson(sc.traffic_per_hour * seconds / 3600))
        account = rng.integers(0, sc.accounts, n)
        on = on_of(account)
        error = rng.random(n) < sc.base_error_rate
        error |= on & self.failing[account] & (rng.random(n) < sc.fail_rate)
        latency = sc.base_latency_ms * np.exp(rng.normal(0, 0.5, n))
        latency = np.where(on, latency * sc.latency_factor, latency)
        chance = np.where(on, sc.base_conversion * (1 + sc.conversion_change), sc.base_conversion)
        conversion = rng.random(n) < chance
        at = np.sort(start + rng.random(n) * seconds)
        return Traffic(at, account, on, error, latency, conversion)


def guardrail_specs() -> tuple[GuardrailSpec, ...]:
    return tuple(
        GuardrailSpec(g.metric, g.mode, g.yellow, g.red, g.higher_is_worse)
        for g in DEFAULT_GUARDRAILS
    )


# --- The light path ----------------------------------------------------------------------------


def run_light(sc: Scenario) -> dict[str, Any]:
    """The same traffic and decision, aggregated in memory: for many repetitions."""
    model = Model(sc)
    step = sc.check_minutes * 60
    weights = [round(p * 1000) for p in sc.stages]
    buckets = np.array([engine_bucket("sim", f"acct-{i}") for i in range(sc.accounts)])
    stages = tuple(
        StageSpec(i, w, sc.bake_hours * 3600, sc.min_sample) for i, w in enumerate(weights)
    )
    specs = guardrail_specs()
    plan = PlanSpec(stages, specs, sc.bake_hours * 3600)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    horizon = int((sum(s.bake_seconds for s in stages) * 2) // step) + 1
    seen = {
        v: {m: np.zeros(sc.accounts, bool) for m in ("exposure", "error", "conversion")}
        for v in ("on", "off")
    }
    looks: dict[str, dict[str, list[Any]]] = {
        v: {
            m: []
            for m in (
                "exposure",
                "error",
                "conversion",
                "latency",
                "requests",
                "error_events",
                "conversion_events",
            )
        }
        for v in ("on", "off")
    }
    stage, stage_start, ever_on = 0, start, np.zeros(sc.accounts, bool)
    for k in range(horizon):
        t0 = start + timedelta(seconds=k * step)
        traffic = model.step(t0.timestamp(), step, partial(_below, buckets, weights[stage]))
        ever_on[traffic.account[traffic.on]] = True
        for variant, mask in (("on", traffic.on), ("off", ~traffic.on)):
            accounts = traffic.account[mask]
            for metric, flags in (
                ("exposure", np.ones(len(accounts), bool)),
                ("error", traffic.error[mask]),
                ("conversion", traffic.conversion[mask]),
            ):
                ids = np.unique(accounts[flags])
                fresh = ids[~seen[variant][metric][ids]]
                seen[variant][metric][fresh] = True
                looks[variant][metric].append(len(fresh))
            looks[variant]["latency"].append(
                np.bincount(bucket_index(traffic.latency[mask]), minlength=N_BUCKETS)
            )
            looks[variant]["requests"].append(int(mask.sum()))
            looks[variant]["error_events"].append(int((traffic.error & mask).sum()))
            looks[variant]["conversion_events"].append(int((traffic.conversion & mask).sum()))
        now = t0 + timedelta(seconds=step)

        def cum(v: str, m: str) -> npt.NDArray[np.int64]:
            return np.cumsum(looks[v][m]).astype(np.int64)

        hist = {
            v: np.cumsum(np.array(looks[v]["latency"]), axis=0).astype(np.int64)
            for v in ("off", "on")
        }
        users = [
            VariantSeries(v, cum(v, "exposure"), cum(v, "error"), cum(v, "conversion"), hist[v])
            for v in ("off", "on")
        ]
        requests = [
            VariantSeries(
                v, cum(v, "requests"), cum(v, "error_events"), cum(v, "conversion_events"), hist[v]
            )
            for v in ("off", "on")
        ]
        window = Window(start, now, timedelta(seconds=step))
        request = EvidenceRequest("on", "off", specs, sc.false_positive_rate, 500, stage == 0)
        w = weights[stage]
        evidence = evidence_from_series(
            users, requests, request, window, stage_start, {"on": float(w), "off": float(FULL - w)}
        )
        verdict = decide(plan, stages[stage], Clock(now, stage_start), evidence)
        if verdict.action == Action.ROLLBACK:
            return {
                "outcome": "rolled_back",
                "stage": stage,
                "accounts_exposed": int(ever_on.sum()),
                "reasons": [r.message for r in verdict.reasons],
            }
        if verdict.action == Action.PROGRESS:
            if verdict.completes:
                return {
                    "outcome": "completed",
                    "stage": stage,
                    "accounts_exposed": int(ever_on.sum()),
                    "reasons": [],
                }
            stage, stage_start = stage + 1, now
    return {
        "outcome": "held",
        "stage": stage,
        "accounts_exposed": int(ever_on.sum()),
        "reasons": [],
    }


def _below(
    buckets: npt.NDArray[np.int64], weight: int, accounts: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    served: npt.NDArray[np.bool_] = buckets[accounts] < weight
    return served


def false_rollback_figure(runs: int, base: Scenario) -> dict[str, Any]:
    """The healthy scenario ``runs`` times with seeds seed..seed+runs-1 on the light path."""
    outcomes = [run_light(Scenario(**{**asdict(base), "seed": base.seed + i})) for i in range(runs)]
    rolled = sum(1 for o in outcomes if o["outcome"] == "rolled_back")
    completed = sum(1 for o in outcomes if o["outcome"] == "completed")
    return {
        "runs": runs,
        "rolled_back": rolled,
        "completed": completed,
        "held": runs - rolled - completed,
        "false_rollback_rate": rolled / runs,
        "configured_false_positive_rate": base.false_positive_rate,
    }


class SdkCohort:
    """Which accounts the SDK serves the flag to, asked once per account and step."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.cache: dict[int, bool] = {}

    def on_of(self, accounts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        out = np.empty(len(accounts), bool)
        for i, a in enumerate(accounts.tolist()):
            hit = self.cache.get(a)
            if hit is None:
                context = {"targetingKey": f"acct-{a}", "accountId": f"acct-{a}"}
                hit = self.cache[a] = self.client.variant("new-engine", context) == "on"
            out[i] = hit
        return out


# --- The full path -----------------------------------------------------------------------------


def run_full(sc: Scenario, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Runs the scenario through the real plan, SDK, events endpoint and check task."""
    from django.contrib.auth.models import User
    from django.test import Client, override_settings
    from flagsite_sdk import FlagsiteClient
    from flagsite_sdk.events import build_payload

    from apikeys import services as apikey_services
    from flags import services as flag_services
    from flags.models import Environment, FlagState, Ruleset
    from rollouts import services, tasks
    from rollouts.models import RolloutPlan
    from rollouts.plan_templates import StageTemplate

    wall_start = time.monotonic()
    tag = uuid.uuid4().hex[:8]
    system = flag_services.Actor.automation("simulate_rollout")
    source = flag_services.Source.SYSTEM
    user, _ = User.objects.get_or_create(
        username="rollout-simulator", defaults={"is_superuser": True, "is_staff": True}
    )
    project = flag_services.create_project(
        key=f"sim-{tag}", name=f"Simulation {tag}", actor=system, source=source, reason="simulation"
    )
    env = Environment.objects.get(project=project, key="development")
    flag = flag_services.create_flag(
        project,
        data={"key": "new-engine", "name": "New engine"},
        actor=system,
        source=source,
        reason="simulation",
    )
    state = FlagState.objects.get(flag=flag, environment=env)
    _, server_key = apikey_services.provision(env, kind="server", name="simulator", created_by=user)
    step = sc.check_minutes * 60
    stages = [
        StageTemplate(
            f"{p:g}%", round(p * 1000), int(sc.bake_hours * 3600), min_sample=sc.min_sample
        )
        for p in sc.stages
    ]
    total = sum(s.bake_seconds for s in stages)
    horizon = min(timedelta(seconds=total * 1.5 + 6 * 3600), timedelta(days=28))
    sim_start = datetime.fromtimestamp(
        int((datetime.now(UTC) - horizon).timestamp()) // 60 * 60, UTC
    )
    plan = services.create_from_template(
        state, template="", user=user, name=f"simulation {tag}", bucket_by="accountId",
        check_interval_seconds=int(step), min_sample=sc.min_sample, stages=stages,
    )  # fmt: skip
    RolloutPlan.objects.filter(pk=plan.pk).update(false_positive_rate=sc.false_positive_rate)
    http = Client(HTTP_AUTHORIZATION=f"Bearer {server_key}")
    model = Model(sc)
    reports: dict[int, StageReport] = {}
    ever_on: set[int] = set()
    on_before: set[int] = set()
    grew_only = True
    first_failure: float | None = None
    rollback_at: float | None = None

    def sdk() -> Any:
        doc = Ruleset.objects.get(environment=env).document
        return FlagsiteClient(bootstrap=doc, offline=True, record_exposures=False)

    with override_settings(FLAGSITE_ROLLOUT_TIME_SCALE=1.0):
        services.start(plan, user=user, reason="simulation", now=sim_start)
        client = sdk()
        current_stage = 0
        k = 0
        while True:
            plan.refresh_from_db()
            t0 = sim_start + timedelta(seconds=k * step)
            t1 = t0 + timedelta(seconds=step)
            if t1 > datetime.now(UTC) or plan.status != RolloutPlan.Status.RUNNING:
                break
            if plan.current_stage != current_stage:
                client.close()
                client = sdk()
                now_on = {
                    a
                    for a in ever_on
                    if client.variant(
                        "new-engine", {"targetingKey": f"acct-{a}", "accountId": f"acct-{a}"}
                    )
                    == "on"
                }
                grew_only &= on_before <= now_on
                current_stage = plan.current_stage
            cohort = SdkCohort(client)
            traffic = model.step(t0.timestamp(), step, cohort.on_of)
            report = reports.setdefault(
                current_stage, StageReport(current_stage + 1, sc.stages[current_stage])
            )
            _post(http, traffic, build_payload, k)
            on_accounts = set(traffic.account[traffic.on].tolist())
            ever_on |= on_accounts
            on_before = {a for a, hit in cohort.cache.items() if hit} | on_before
            report.accounts_exposed = len(ever_on)
            for variant, mask in (("on", traffic.on), ("off", ~traffic.on)):
                report.requests[variant] += int(mask.sum())
                report.errors[variant] += int((traffic.error & mask).sum())
            failing = traffic.on & model.failing[traffic.account]
            if first_failure is None and failing.any():
                first_failure = float(traffic.at[failing][0])
            tasks.check_rollouts.apply(kwargs={"now": t1.isoformat()})
            last = plan.checks.order_by("-sequence").first()
            if last is not None and last.checked_at == t1:
                report.verdict = last.verdict
                report.reasons = [r["message"] for r in last.reasons]
                if last.verdict == "rollback":
                    rollback_at = t1.timestamp()
            progress(
                f"t+{(t1 - sim_start).total_seconds() / 3600:5.1f} h  stage {current_stage + 1} "
                f"({sc.stages[current_stage]:g}%)  "
                f"exposed {len(ever_on):5d}  verdict {report.verdict}"
            )
            k += 1
        client.close()
    plan.refresh_from_db()
    outcome = {"rolled_back": "rolled_back", "completed": "completed"}.get(plan.status, "held")
    regression = None
    if rollback_at is not None:
        regression = rollback_at - (
            first_failure if first_failure is not None else sim_start.timestamp()
        )
    return {
        "outcome": outcome,
        "accounts_exposed": len(ever_on),
        "regression_to_rollback_seconds": regression,
        "wall_seconds": round(time.monotonic() - wall_start, 2),
        "exposure_only_grew": grew_only,
        "plan_id": plan.pk,
        "checks": plan.checks.count(),
        "scenario": asdict(sc),
        "stages": [asdict(r) for r in reports.values()],
    }


def _post(
    http: Any, traffic: Traffic, build_payload: Callable[..., dict[str, Any]], k: int
) -> None:
    """Exposures in the SDK's payload format (one per account and variant per step, as the
    SDK's dedup would send them), then metric events with the flag assignments in force."""
    seen: set[tuple[int, bool]] = set()
    exposures = []
    events: list[dict[str, Any]] = []
    for at, account, on, error, latency, conversion in zip(
        traffic.at.tolist(), traffic.account.tolist(), traffic.on.tolist(), traffic.error.tolist(),
        traffic.latency.tolist(), traffic.conversion.tolist(), strict=True,
    ):  # fmt: skip
        variant = "on" if on else "off"
        key = f"acct-{account}"
        if (account, on) not in seen:
            seen.add((account, on))
            exposures.append(("new-engine", variant, key, at))
        stamp = datetime.fromtimestamp(at, UTC).isoformat()
        common = {"context_key": key, "timestamp": stamp, "assignments": {"new-engine": variant}}
        events.append({"type": "latency", "value": round(latency, 3), **common})
        if error:
            events.append({"type": "error", **common})
        if conversion:
            events.append({"type": "conversion", **common})
    payload = build_payload(f"sim-exp-{uuid.uuid4().hex}", exposures)
    payload["events"] += events
    for offset in range(0, max(1, len(payload["events"])), 10_000):
        chunk = {
            "batch_id": f"{payload['batch_id']}-{offset}",
            "events": payload["events"][offset : offset + 10_000],
        }
        response = http.post("/api/v1/events", json.dumps(chunk), content_type="application/json")
        if response.status_code != 202:
            raise RuntimeError(
                f"the events endpoint refused a batch: {response.status_code} "
                f"{response.content[:300]!r}"
            )
