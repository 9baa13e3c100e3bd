"""Replays a rollout on simulated time (``manage.py simulate_rollout``).

Two paths share one traffic model (``Scenario`` and ``Model``):

* The full path (``run_full``) goes through the real pieces: a plan from rollouts.services, the
  Python SDK evaluating the flag for every request from the ruleset the server compiled (rebuilt
  whenever the rollout changes it), exposures in the SDK's own payload format and metric events
  posted to the real events endpoint (in-process, through Django's URL routing and the view),
  each carrying the randomization unit (``units: {"accountId": ...}``), and the real beat task
  ``rollouts.tasks.check_rollouts`` called with the simulated time. Simulated time runs in the
  recent past (events must be within the raw-event retention and not in the future).
* The light path (``run_light``) serves the repeated runs of the calibration bench: the same
  traffic, bucketed by account with the engine's hash, summed per account over the current
  stage's window into the ``StageUnits`` the server builds from its raw events, then the same
  ``evidence_from_stage`` and ``decide`` as the check service, once per check.

Scenarios (``SCENARIOS``) are named sets of ``Scenario`` fields; any field can be overridden.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from flagsite_sdk.engine import bucket as engine_bucket

from analytics.stage_units import CONVERSION_RATE, ERROR_RATE, CohortUnits, StageUnits
from analytics.stats import VariantSeries
from analytics.stats.histogram import N_BUCKETS, LatencyLooks, bucket_index, log_moments_per_row
from analytics.stats.proportions import wilson_interval
from analytics.stats.ratio import RatioSums
from rollouts.decision import (
    Action,
    Clock,
    GuardrailSpec,
    PlanSpec,
    StageSpec,
    Verdict,
    decide,
)
from rollouts.evidence import EvidenceRequest, evidence_from_stage
from rollouts.plan_templates import DEFAULT_GUARDRAILS

FULL = 100_000  # the engine's weight units: 100,000 = 100 %
HOUR = 3600.0
ON, OFF = "on", "off"
UNIT_ATTRIBUTE = "accountId"  # the plans of the seed bucket by account
DESIGN_SAMPLE = 500  # RolloutPlan.design_sample's default
LATENCY_SIGMA = 0.5  # lognormal request latency: p95 is about 2.3x the median

TIERS = ("free", "team", "enterprise")
# Invoice line items per account: lognormal around a median per tier. Heavy-tailed on purpose:
# a minority of every tier has invoices far above its median, which is what broke seed 004's
# PDF engine. With the default tier shares (60/30/10 %) about 3 % of accounts are enterprise
# accounts with invoices over 200 line items.
LINE_ITEMS_MEDIAN = (4.0, 20.0, 110.0)
LINE_ITEMS_SIGMA = 1.2

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass
class Scenario:
    accounts: int = 12_000
    # Who the new code hurts. By default a random share of accounts ...
    fail_share: float = 0.0
    # ... or, when ``fail_tier`` is set, the accounts of that tier whose invoices have more than
    # ``fail_min_line_items`` line items (``fail_share`` is then ignored).
    fail_tier: str = ""
    fail_min_line_items: int = 0
    fail_rate: float = 0.5  # extra chance that a flag-on request of a failing account fails
    error_ratio: float = 1.0  # flag-on error rate of a failing account, times its own base rate
    tier_shares: list[float] = field(default_factory=lambda: [0.6, 0.3, 0.1])  # free/team/ent.
    # Errors only under load: flag-on requests fail with this extra chance while the flag-on
    # share of the stage in force is at or above ``load_threshold`` (0.5 = 50 %).
    load_threshold: float = 0.0
    load_error_rate: float = 0.0
    base_error_rate: float = 0.01  # per request, both cohorts
    error_sigma: float = 0.0  # accounts' own error rates: lognormal spread, mean kept at base
    latency_factor: float = 1.0  # flag-on latency multiplier
    base_latency_ms: float = 100.0  # median; lognormal with sigma 0.5 (p95 about 2.3x median)
    conversion_change: float = 0.0  # relative change of the flag-on conversion chance
    base_conversion: float = 0.05  # per request
    traffic_per_hour: int = 3000
    traffic_sigma: float = 0.0  # accounts' traffic weights: lognormal spread (0: all alike)
    # A shared incident (the flag innocent): while it lasts, every request of both cohorts fails
    # with this extra chance. It starts ``incident_start_hours`` after stage ``incident_stage``
    # (1 = the first stage; 0 = no incident) starts, and lasts ``incident_hours`` of wall time,
    # whatever the rollout does meanwhile.
    incident_stage: int = 0
    incident_start_hours: float = 2.0
    incident_hours: float = 4.0
    incident_error_rate: float = 0.05
    # Before the plan: the flag served off to everyone for this long (off exposures recorded).
    dark_hours: float = 0.0
    # A first attempt at the first stage that ran this long and was aborted; the plan then
    # starts again (its first attempt is not checked: how it ended is not the question).
    retry_hours: float = 0.0
    stages: list[float] = field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])  # percent
    bake_hours: float = 24.0
    check_minutes: float = 15.0
    min_sample: int = 200
    false_positive_rate: float = 0.05
    seed: int = 1

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid scenario: " + "; ".join(problems))

    def problems(self) -> list[str]:
        out: list[str] = []

        def share(name: str, value: float) -> None:
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                out.append(f"{name} must be between 0 and 1 (got {value!r})")

        def at_least(name: str, value: float, low: float) -> None:
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= low):
                out.append(f"{name} must be a number >= {low:g} (got {value!r})")

        for name in ("fail_share", "fail_rate", "load_threshold", "load_error_rate",
                     "base_error_rate", "incident_error_rate", "base_conversion",
                     "false_positive_rate"):  # fmt: skip
            share(name, getattr(self, name))
        for name, low in (("accounts", 1), ("fail_min_line_items", 0), ("error_ratio", 0),
                          ("error_sigma", 0), ("traffic_per_hour", 0), ("traffic_sigma", 0),
                          ("incident_start_hours", 0), ("incident_hours", 0), ("dark_hours", 0),
                          ("retry_hours", 0), ("bake_hours", 0), ("min_sample", 0),
                          ("conversion_change", -1), ("incident_stage", 0)):  # fmt: skip
            at_least(name, getattr(self, name), low)
        for name in ("latency_factor", "base_latency_ms", "check_minutes"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                out.append(f"{name} must be a number > 0 (got {value!r})")
        if self.fail_tier not in ("", *TIERS):
            out.append(f"fail_tier must be one of {', '.join(TIERS)} or empty")
        if len(self.tier_shares) != len(TIERS) or min(self.tier_shares) < 0:
            out.append(f"tier_shares: {len(TIERS)} shares >= 0 ({', '.join(TIERS)})")
        elif sum(self.tier_shares) <= 0:
            out.append("tier_shares must not all be 0")
        if not self.stages or any(not 0 < p <= 100 for p in self.stages):
            out.append("stages: one or more percentages in (0, 100]")
        elif any(b < a for a, b in zip(self.stages, self.stages[1:], strict=False)):
            out.append("stages: percentages never decrease")
        elif self.incident_stage > len(self.stages):
            out.append(f"incident_stage: 0 (none) or a stage number up to {len(self.stages)}")
        if not 0 < self.false_positive_rate < 1:
            out.append("false_positive_rate must be strictly between 0 and 1")
        if self.base_conversion * (1 + self.conversion_change) > 1:
            out.append("the flag-on conversion chance is above 1")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown scenario fields: {', '.join(unknown)}")
        return cls(**data)

    @property
    def weights(self) -> list[int]:
        return [round(p * 1000) for p in self.stages]


SCENARIOS: dict[str, dict[str, Any]] = {
    # Seed 004: the new PDF engine fails for the 3 % of accounts with large invoices.
    "pdf-engine": {"fail_share": 0.03, "fail_rate": 0.9, "base_error_rate": 0.002},
    "healthy": {"traffic_per_hour": 1000, "check_minutes": 60.0},
    "latency": {"latency_factor": 2.5},
    "conversion": {"conversion_change": -0.5, "traffic_per_hour": 6000},
    # The new code fails only once it serves half the traffic or more (a shared resource
    # saturates): healthy at 5 and 25 %, 2.2 % errors against 0.2 % from 50 %.
    "load-dependent": {"load_threshold": 0.5, "load_error_rate": 0.02, "base_error_rate": 0.002},
    # Seed 004 as it happened: the failing accounts are the enterprise accounts with invoices
    # over 200 line items (about 3 %), chosen by their attributes rather than at random.
    "enterprise-cohort": {
        "fail_tier": "enterprise",
        "fail_min_line_items": 200,
        "fail_rate": 0.9,
        "base_error_rate": 0.002,
    },
    # Errors up by 5 points for everyone for 4 hours, 2 hours into the 25 % stage: the flag is
    # innocent and must not be rolled back.
    "shared-incident": {"base_error_rate": 0.002, "incident_stage": 2},
    # A few accounts send most of the requests (lognormal weights, sigma 2: the top 1 % of
    # accounts send about a third), and accounts differ in their own error rates.
    "heterogeneous": {"base_error_rate": 0.002, "traffic_sigma": 2.0, "error_sigma": 1.0},
    "no-traffic": {"traffic_per_hour": 0},
    # Shipped dark: served off to everyone for two days before the plan starts.
    "dark-launch": {"base_error_rate": 0.002, "dark_hours": 48.0},
    # The retried plan: a first attempt ran 23.5 hours at 5 % and was aborted.
    "retried": {"base_error_rate": 0.002, "retry_hours": 23.5},
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
    requests: dict[str, int] = field(default_factory=lambda: {ON: 0, OFF: 0})
    errors: dict[str, int] = field(default_factory=lambda: {ON: 0, OFF: 0})
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)


# --- The traffic model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Requests:
    """Requests of a span of time before anyone decided what they are served: who sends each
    one and when, and the random draws that decide its outcome once its variant is known."""

    at: FloatArray  # epoch seconds, sorted
    account: IntArray
    u_error: FloatArray
    u_conversion: FloatArray
    latency: FloatArray  # the request's latency under the old code

    def part(self, begin: int, end: int | None = None) -> Requests:
        return Requests(
            self.at[begin:end],
            self.account[begin:end],
            self.u_error[begin:end],
            self.u_conversion[begin:end],
            self.latency[begin:end],
        )


@dataclass(frozen=True)
class Traffic:
    """Requests with their outcome: which variant, and what happened."""

    at: FloatArray  # epoch seconds, sorted
    account: IntArray
    on: BoolArray
    error: BoolArray
    latency: FloatArray
    conversion: BoolArray
    harmed: BoolArray  # flag-on and hurt by the new code (the regression, if there is one)
    latency_bucket: IntArray  # analytics.stats.histogram's bucket of ``latency``

    def part(self, begin: int, end: int) -> Traffic:
        return Traffic(
            self.at[begin:end],
            self.account[begin:end],
            self.on[begin:end],
            self.error[begin:end],
            self.latency[begin:end],
            self.conversion[begin:end],
            self.harmed[begin:end],
            self.latency_bucket[begin:end],
        )


class Model:
    """The accounts (their attributes, traffic and error rates) and the requests they send.

    Two random streams from the seed: one for the accounts, one for the requests, so that the
    same seed gives the same accounts whatever the traffic settings.
    """

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        people = np.random.default_rng([sc.seed, 1])
        self.rng = np.random.default_rng([sc.seed, 2])
        n = sc.accounts
        # Drawn in a fixed order whatever the scenario uses, so that one field's change does
        # not reshuffle the accounts.
        shares = np.asarray(sc.tier_shares, np.float64)
        self.tier: IntArray = people.choice(len(TIERS), size=n, p=shares / shares.sum())
        spread = np.exp(people.normal(0.0, LINE_ITEMS_SIGMA, n))
        median = np.asarray(LINE_ITEMS_MEDIAN)[self.tier]
        self.line_items: IntArray = np.maximum(1, np.rint(median * spread)).astype(np.int64)
        random_failing = people.random(n) < sc.fail_share
        traffic_z = people.normal(0.0, 1.0, n)
        error_z = people.normal(0.0, 1.0, n)
        if sc.fail_tier:
            tier = TIERS.index(sc.fail_tier)
            self.failing: BoolArray = (self.tier == tier) & (
                self.line_items > sc.fail_min_line_items
            )
        else:
            self.failing = random_failing
        # Traffic weights: who sends the next request. Lognormal weights make a heavy tail.
        self.traffic_weight: FloatArray = np.exp(sc.traffic_sigma * traffic_z)
        self.traffic_weight /= self.traffic_weight.sum()
        self._cdf: FloatArray | None = None
        if sc.traffic_sigma > 0:
            self._cdf = np.cumsum(self.traffic_weight)
            self._cdf[-1] = 1.0
        # Each account's own error rate, with the mean over accounts kept at the base rate.
        spread = np.exp(sc.error_sigma * error_z - sc.error_sigma**2 / 2)
        self.error_rate: FloatArray = np.minimum(1.0, sc.base_error_rate * spread)
        self.incident: tuple[float, float] | None = None
        self._cohort_effect = bool(self.failing.any()) and (
            sc.fail_rate > 0 or sc.error_ratio != 1.0
        )
        self._global_effect = sc.latency_factor != 1.0 or sc.conversion_change != 0.0

    def context(self, account: int) -> dict[str, Any]:
        """The evaluation context the SDK sees for an account's request."""
        key = account_key(account)
        return {
            "targetingKey": key,
            UNIT_ATTRIBUTE: key,
            "plan": TIERS[int(self.tier[account])],
            "lineItems": int(self.line_items[account]),
        }

    def begin_stage(self, stage: int, at: float) -> None:
        """The plan entered ``stage`` (0-based) at ``at``: the shared incident, if it belongs
        to that stage, is now placed in wall time (and stays there if the stage changes)."""
        sc = self.sc
        if self.incident is None and sc.incident_stage == stage + 1 and sc.incident_hours > 0:
            start = at + sc.incident_start_hours * HOUR
            self.incident = (start, start + sc.incident_hours * HOUR)

    def requests(self, start: float, seconds: float) -> Requests:
        """A Poisson process of requests over [start, start + seconds)."""
        sc, rng = self.sc, self.rng
        n = int(rng.poisson(sc.traffic_per_hour * seconds / HOUR)) if seconds > 0 else 0
        at = np.sort(start + rng.random(n) * seconds)
        if self._cdf is None:
            account = rng.integers(0, sc.accounts, n).astype(np.int64)
        else:
            picked = np.searchsorted(self._cdf, rng.random(n), side="right")
            account = np.minimum(picked, sc.accounts - 1).astype(np.int64)
        u_error = rng.random(n)
        u_conversion = rng.random(n)
        latency = sc.base_latency_ms * np.exp(rng.normal(0.0, LATENCY_SIGMA, n))
        return Requests(at, account, u_error, u_conversion, latency)

    def outcomes(self, req: Requests, on: BoolArray, share: float) -> Traffic:
        """What happens to each request, given its variant and the flag-on share in force."""
        sc = self.sc
        account = req.account
        chance = self.error_rate[account]
        # Independent causes of failure combine as 1 - prod(1 - p).
        harmed = np.zeros(len(account), bool)
        if self._cohort_effect:
            hit = on & self.failing[account]
            harmed |= hit
            worse = np.minimum(1.0, chance * sc.error_ratio)
            worse = 1.0 - (1.0 - worse) * (1.0 - sc.fail_rate)
            chance = np.where(hit, worse, chance)
        if sc.load_error_rate > 0 and share > 0 and share >= sc.load_threshold - 1e-12:
            harmed |= on
            chance = np.where(on, 1.0 - (1.0 - chance) * (1.0 - sc.load_error_rate), chance)
        if self.incident is not None and sc.incident_error_rate > 0:
            a, b = self.incident
            inside = (req.at >= a) & (req.at < b)
            chance = np.where(inside, 1.0 - (1.0 - chance) * (1.0 - sc.incident_error_rate), chance)
        if self._global_effect:
            harmed |= on
        error = req.u_error < chance
        latency = np.where(on, req.latency * sc.latency_factor, req.latency)
        converts = np.where(on, sc.base_conversion * (1 + sc.conversion_change), sc.base_conversion)
        conversion = req.u_conversion < converts
        return Traffic(
            req.at, account, on, error, latency, conversion, harmed, bucket_index(latency)
        )

    def step(
        self,
        start: float,
        seconds: float,
        on_of: Callable[[IntArray], BoolArray],
        share: float = 0.0,
    ) -> Traffic:
        """The requests of [start, start + seconds), served by ``on_of``."""
        req = self.requests(start, seconds)
        return self.outcomes(req, on_of(req.account), share)


def account_key(account: int) -> str:
    return f"acct-{account}"


@lru_cache(maxsize=4)
def account_buckets(accounts: int, salt: str = "sim") -> IntArray:
    """The engine's bucket of every account (cached: hashing 12,000 keys costs more than a
    whole light run)."""
    out = np.array([engine_bucket(salt, account_key(i)) for i in range(accounts)], np.int64)
    out.setflags(write=False)
    return out


def guardrail_specs() -> tuple[GuardrailSpec, ...]:
    return tuple(
        GuardrailSpec(g.metric, g.mode, g.yellow, g.red, g.higher_is_worse)
        for g in DEFAULT_GUARDRAILS
    )


def plan_spec(sc: Scenario) -> PlanSpec:
    stages = tuple(
        StageSpec(i, w, sc.bake_hours * HOUR, sc.min_sample) for i, w in enumerate(sc.weights)
    )
    return PlanSpec(stages, guardrail_specs(), sc.bake_hours * HOUR)


def evidence_request(sc: Scenario) -> EvidenceRequest:
    comparable = sum(1 for w in sc.weights if 0 < w < FULL)
    return EvidenceRequest(
        ON,
        OFF,
        guardrail_specs(),
        sc.false_positive_rate,
        DESIGN_SAMPLE,
        comparable_stages=max(1, comparable),
        unit_attribute=UNIT_ATTRIBUTE,
    )


# --- The light path -------------------------------------------------------------------------------

# Requests are drawn a few thousand at a time (numpy calls cost per call), in whole check
# intervals, at most CHUNK_STEPS of them: a run that ends early draws little beyond its end.
CHUNK_REQUESTS = 5000
CHUNK_STEPS = 32


class _Growing:
    """Rows appended a few at a time, read as one (rows, ...) array without copying."""

    def __init__(self, shape: tuple[int, ...], dtype: type[np.generic]) -> None:
        self.rows: npt.NDArray[Any] = np.zeros((64, *shape), dtype)
        self.size = 0

    def extend(self, rows: npt.NDArray[Any]) -> None:
        needed = self.size + len(rows)
        if needed > len(self.rows):
            grown = np.zeros(
                (max(needed, 2 * len(self.rows)), *self.rows.shape[1:]), self.rows.dtype
            )
            grown[: self.size] = self.rows[: self.size]
            self.rows = grown
        self.rows[self.size : needed] = rows
        self.size = needed

    def view(self, size: int) -> npt.NDArray[Any]:
        return self.rows[:size]


# Columns of a cohort's sums: units, then the RatioSums sums of requests (r), errors (e) and
# conversions (c) over its units: r, e, c, r^2, e^2, c^2, e r, c r.
_UNITS, _R, _E, _C, _RR, _EE, _CC, _ER, _CR = range(9)
_SUMS = 9


class StageWindow:
    """What one stage's window holds, per account, at each check: the light path's StageUnits.

    Units are accounts. ``advance`` takes the requests of several check intervals at once and
    works out the cohorts' sums at the end of each interval in one pass: a request adds to its
    account's counts, and so to its cohort's sums of squares and products, an amount that
    depends only on what that account had before it (one more request: r^2 grows by 2 r + 1),
    so sorting the requests by account gives every request's "before"; summing what they add
    per interval and cohort, then over the intervals, gives the sums at every check. A check
    then only reads its row (numpy's cost is per call: this keeps the calls per check to a
    handful, whatever the traffic). The sums are those of ``RatioSums.of_units`` over each
    cohort's exposed accounts (tests/unit/rollouts/test_simulation_light.py).

    ``comparable`` (both cohorts served) says whether the metrics are compared at all: at
    100 % the latency histograms are not kept (the server does not read them there).
    """

    def __init__(self, on_accounts: BoolArray, started: float, *, comparable: bool) -> None:
        self.on_accounts = on_accounts
        self.n = len(on_accounts)
        self.started = started
        self.comparable = comparable
        # Per account: requests, errors and conversions in the window so far.
        self.data: FloatArray = np.zeros((3, self.n))
        self.sums: FloatArray = np.zeros((2, _SUMS))  # row 0 control, row 1 flag-on
        self.last_at = math.nan  # the newest request of the window (nan: none yet)
        self.hist = np.zeros((2, N_BUCKETS), np.int64)  # cumulative latency histograms
        # Per look (one per check): the counts and the cumulative histograms' log moments,
        # which is all the latency test reads of earlier looks.
        self.look_counts = _Growing((2, 3), np.int64)  # requests, errors, conversions
        self.look_moments = _Growing((3, 2), np.float64)  # samples, log mean, log variance
        # The intervals of the last ``advance``: sums, newest request, histograms at each end.
        self.looks_before = 0
        self.step_sums: FloatArray = np.zeros((1, 2, _SUMS))
        self.step_last_at: FloatArray = np.full(1, math.nan)
        self.step_hist: npt.NDArray[np.int64] = np.zeros((1, 2, N_BUCKETS), np.int64)

    def advance(self, traffic: Traffic, ends: IntArray) -> None:
        """The requests of consecutive check intervals; interval i ends at request ends[i]."""
        steps, n = len(ends), len(traffic.at)
        self.looks_before = self.look_counts.size
        interval = np.repeat(np.arange(steps), np.diff(ends, prepend=0))  # of each request
        if n:
            added = self._interval_sums(traffic, interval, steps)
            self.step_sums = self.sums + np.cumsum(added, axis=0)
            newest = np.concatenate(([self.last_at], traffic.at))
            self.step_last_at = newest[ends]
            acc = traffic.account
            self.data[0] += np.bincount(acc, minlength=self.n)
            self.data[1] += np.bincount(acc, weights=traffic.error, minlength=self.n)
            self.data[2] += np.bincount(acc, weights=traffic.conversion, minlength=self.n)
        else:
            self.step_sums = np.repeat(self.sums[np.newaxis], steps, axis=0)
            self.step_last_at = np.full(steps, self.last_at)
        self.sums = self.step_sums[-1]
        self.last_at = float(self.step_last_at[-1])
        if not self.comparable:
            return
        # Latency: each request's (interval, variant, bucket), counted, then cumulated.
        key = (interval * 2 + traffic.on) * N_BUCKETS + traffic.latency_bucket
        counts = np.bincount(key, minlength=steps * 2 * N_BUCKETS).reshape(steps, 2, N_BUCKETS)
        self.step_hist = self.hist + np.cumsum(counts, axis=0)
        self.hist = self.step_hist[-1]
        moments = np.stack(log_moments_per_row(self.step_hist.reshape(steps * 2, N_BUCKETS)))
        self.look_moments.extend(moments.reshape(3, steps, 2).transpose(1, 0, 2))
        self.look_counts.extend(self.step_sums[:, :, _R : _C + 1].astype(np.int64))

    def _interval_sums(self, traffic: Traffic, interval: IntArray, steps: int) -> FloatArray:
        """What each interval's requests add to each cohort's sums: (steps, cohort, sum)."""
        acc = traffic.account
        n = len(acc)
        # By account, in time order within each. Stable sorts of 16-bit keys are radix sorts
        # in numpy (linear time), and the seed's 12,000 accounts fit in 16 bits.
        keys = acc.astype(np.uint16) if self.n <= 1 << 16 else acc
        order = np.argsort(keys, kind="stable")
        ranked = acc[order]
        position = np.arange(n)
        first = np.empty(n, bool)
        first[0] = True
        np.not_equal(ranked[1:], ranked[:-1], out=first[1:])
        group = np.maximum.accumulate(np.where(first, position, 0))  # its account's first row
        errors = traffic.error.astype(np.float64)
        conversions = traffic.conversion.astype(np.float64)
        # What each request's account had before it: in the window before these requests,
        # plus its earlier requests among them.
        before = self.data[:, acc]  # fancy indexing: a copy
        before[0, order] += position - group
        for row, flags in ((1, errors), (2, conversions)):
            ranked_flags = flags[order]
            earlier = np.cumsum(ranked_flags) - ranked_flags
            before[row, order] += earlier - earlier[group]
        r, e, c = before
        adds = np.stack(
            (
                r == 0,  # a unit exposed for the first time in the window
                np.ones(n),
                errors,
                conversions,
                2 * r + 1,
                errors * (2 * e + 1),
                conversions * (2 * c + 1),
                e + errors * (r + 1),
                c + conversions * (r + 1),
            )
        )
        # Summed per (interval, cohort) by bincount: a sum per group, where a running total
        # over every request would cost far more and only its values at the ends are read.
        group_of = interval * 2 + traffic.on
        per_group: FloatArray = np.stack(
            [np.bincount(group_of, weights=row, minlength=2 * steps) for row in adds]
        ).astype(np.float64)
        return per_group.reshape(_SUMS, steps, 2).transpose(1, 2, 0)

    def _cohort(self, sums: list[float]) -> CohortUnits:
        # Sums of whole counts, exact in float64 (far below 2^53).
        units, r = int(sums[_UNITS]), sums[_R]
        if not self.comparable:
            return CohortUnits(units, int(r))
        rr = sums[_RR]
        return CohortUnits(
            units,
            int(r),
            {
                ERROR_RATE: RatioSums(units, sums[_E], r, sums[_EE], rr, sums[_ER]),
                CONVERSION_RATE: RatioSums(units, sums[_C], r, sums[_CC], rr, sums[_CR]),
            },
        )

    def units(self, now: float, step: int = -1) -> StageUnits:
        """The window at the end of interval ``step`` of the last ``advance``."""
        control_sums, treatment_sums = self.step_sums[step].tolist()
        control, treatment = self._cohort(control_sums), self._cohort(treatment_sums)
        last = float(self.step_last_at[step])
        requests = control_sums[_R] + treatment_sums[_R]
        errors = control_sums[_E] + treatment_sums[_E]
        conversions = control_sums[_C] + treatment_sums[_C]
        return StageUnits(
            cohorts={ON: treatment, OFF: control},
            both_variants=0,  # one variant per account within a stage (bucketing by account)
            # Each exposed unit's exposure (the SDK sends one per unit and variant), then its
            # latency, error and conversion events.
            events=control.units + treatment.units + int(requests + errors + conversions),
            missing_unit=0,
            error_events=int(errors),
            last_event_age_seconds=None if math.isnan(last) else now - last,
        )

    def latency(self, step: int = -1) -> tuple[VariantSeries, VariantSeries] | None:
        """(control, flag-on) at the end of interval ``step`` of the last ``advance``: the
        cumulative latency histograms, one look per check (None where the cohorts are not
        compared, as the server gives)."""
        if not self.comparable:
            return None
        looks = self.looks_before + (step % len(self.step_hist)) + 1
        counts = self.look_counts.view(looks)
        moments = self.look_moments.view(looks)
        last = self.step_hist[step]
        no_rows = np.zeros((0, N_BUCKETS), np.int64)  # the looks carry what is read

        def series(v: int, name: str) -> VariantSeries:
            summary = LatencyLooks(
                moments[:, 0, v].astype(np.int64), moments[:, 1, v], moments[:, 2, v], last[v]
            )
            c = counts[:, v]
            return VariantSeries(name, c[:, 0], c[:, 1], c[:, 2], no_rows, summary)

        return series(0, OFF), series(1, ON)

    def add(self, traffic: Traffic) -> None:
        """One check interval's requests."""
        self.advance(traffic, np.array([len(traffic.at)], np.int64))


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def run_light(sc: Scenario) -> dict[str, Any]:
    """One rollout of the scenario on the light path: the result of the run.

    ``outcome`` (rolled_back, completed or held at the horizon: twice the plan's total bake
    time), ``stage`` (0-based) and ``percent`` where it ended, ``accounts_exposed`` (accounts
    ever served flag-on), ``regression_to_rollback_seconds`` (from the first request the new
    code hurt to the rollback; None without either), ``alert_stage`` (the first stage at which
    a hold told people something: a guardrail beyond its yellow line, a stage overdue with a
    guardrail still inconclusive, a health check; None if none did), ``reached_full`` (a stage
    serving 100 % started), ``caught`` (rolled back, or stopped short of 100 % with people
    alerted: held at the horizon, no stage serving 100 % ever started, and a hold alerted),
    ``hours`` since the plan started, ``checks`` and the last verdict's
    ``reasons`` (none for a completed rollout).
    """
    model = Model(sc)
    step = sc.check_minutes * 60
    weights = sc.weights
    buckets = account_buckets(sc.accounts)
    plan = plan_spec(sc)
    request = evidence_request(sc)
    ever_on = np.zeros(sc.accounts, bool)
    first_harm: list[float] = []

    def note(traffic: Traffic) -> None:
        ever_on[traffic.account[traffic.on]] = True
        if not first_harm and traffic.harmed.any():
            first_harm.append(float(traffic.at[np.argmax(traffic.harmed)]))

    # Before the plan: what was served then is outside every stage's window by construction
    # (windows start when their stage starts), exactly what the server's reads must achieve.
    t = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    if sc.dark_hours > 0:
        req = model.requests(t, sc.dark_hours * HOUR)
        note(model.outcomes(req, np.zeros(len(req.at), bool), 0.0))
        t += sc.dark_hours * HOUR
    if sc.retry_hours > 0:
        req = model.requests(t, sc.retry_hours * HOUR)
        note(model.outcomes(req, buckets[req.account] < weights[0], weights[0] / FULL))
        t += sc.retry_hours * HOUR
    plan_start = t

    stage, stage_start = 0, plan_start
    on_accounts = buckets < weights[0]
    window = StageWindow(on_accounts, stage_start, comparable=0 < weights[0] < FULL)
    model.begin_stage(0, plan_start)
    horizon = int(2 * sum(s.bake_seconds for s in plan.stages) // step) + 1
    alert_stage: int | None = None
    checks = 0
    verdict: Verdict | None = None

    # "Caught" means the regression never reached everyone and people were told: a rollback,
    # or a rollout held short of 100 % with an alert. An alert at 5 % followed by progress to
    # 100 % is not caught: everyone was served in the end.
    full_stage = next((i for i, w in enumerate(weights) if w >= FULL), len(weights))
    reached_full = full_stage == 0

    def result(outcome: str, now: float, last: Verdict | None) -> dict[str, Any]:
        rollback = outcome == "rolled_back"
        return {
            "outcome": outcome,
            "stage": stage,
            "percent": sc.stages[stage],
            "accounts_exposed": int(ever_on.sum()),
            "regression_to_rollback_seconds": (
                now - first_harm[0] if rollback and first_harm else None
            ),
            "alert_stage": alert_stage,
            "reached_full": reached_full,
            "caught": rollback or (alert_stage is not None and not reached_full),
            "hours": (now - plan_start) / HOUR,
            "checks": checks,
            "reasons": [r.message for r in last.reasons] if last is not None else [],
        }

    per_step = sc.traffic_per_hour * step / HOUR
    chunk = max(1, min(CHUNK_STEPS, int(CHUNK_REQUESTS / per_step) if per_step else CHUNK_STEPS))
    k = 0
    while k < horizon:
        steps = min(chunk, horizon - k)
        chunk_start = plan_start + k * step
        req = model.requests(chunk_start, steps * step)
        ends = np.searchsorted(req.at, chunk_start + step * np.arange(1, steps + 1))
        # A segment: the chunk's intervals served at one stage. ``traffic`` holds its requests,
        # from request ``base`` of the chunk and interval ``first`` on.
        base, first = 0, 0
        traffic = model.outcomes(req, on_accounts[req.account], weights[stage] / FULL)
        window.advance(traffic, ends - base)
        for j in range(steps):
            now = chunk_start + (j + 1) * step
            weight = weights[stage]
            evidence = evidence_from_stage(
                window.units(now, j - first),
                request,
                weight=weight,
                comparable=window.comparable,
                latency=window.latency(j - first),
            )
            verdict = decide(
                plan,
                plan.stages[stage],
                Clock(_timestamp(now), _timestamp(stage_start)),
                evidence,
            )
            checks += 1
            if alert_stage is None and verdict.action == Action.HOLD and verdict.alert:
                alert_stage = stage
            if verdict.action == Action.ROLLBACK:
                note(traffic.part(0, int(ends[j]) - base))
                return result("rolled_back", now, verdict)
            if verdict.action == Action.PROGRESS:
                note(traffic.part(0, int(ends[j]) - base))
                if verdict.completes:
                    return result("completed", now, None)
                stage, stage_start = stage + 1, now
                reached_full |= stage >= full_stage
                on_accounts = buckets < weights[stage]
                window = StageWindow(on_accounts, stage_start, comparable=0 < weights[stage] < FULL)
                model.begin_stage(stage, now)
                # The rest of the chunk is served at the new stage's weight.
                base, first = int(ends[j]), j + 1
                rest = req.part(base)
                traffic = model.outcomes(rest, on_accounts[rest.account], weights[stage] / FULL)
                if first < steps:
                    window.advance(traffic, ends[first:] - base)
        note(traffic)
        k += steps
    return result("held", plan_start + horizon * step, verdict)


# --- Many runs ------------------------------------------------------------------------------------


def seeds_of(base: Scenario, runs: int) -> list[Scenario]:
    """``runs`` copies of ``base`` with seeds seed..seed+runs-1."""
    values = asdict(base)
    return [Scenario(**{**values, "seed": base.seed + i}) for i in range(runs)]


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """The Wilson 95 % interval of a proportion ((0, 1) with no trials)."""
    if trials == 0:
        return 0.0, 1.0
    low, high = wilson_interval(successes, trials, 0.95)
    # The formula's low end for 0 successes is 0 up to rounding: say 0.
    return (0.0 if successes == 0 else float(low)), (1.0 if successes == trials else float(high))


def _median(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.median(kept)) if kept else None


def summarise(results: list[dict[str, Any]], configured_rate: float) -> dict[str, Any]:
    """Counts, rates with their Wilson 95 % intervals and medians over light runs (``caught``:
    see ``run_light``)."""
    runs = len(results)
    rolled = sum(1 for r in results if r["outcome"] == "rolled_back")
    completed = sum(1 for r in results if r["outcome"] == "completed")
    caught = sum(1 for r in results if r["caught"])
    full = sum(1 for r in results if r.get("reached_full"))
    rolled_runs = [r for r in results if r["outcome"] == "rolled_back"]
    return {
        "runs": runs,
        "rolled_back": rolled,
        "completed": completed,
        "held": runs - rolled - completed,
        "caught": caught,
        "rollback_rate": rolled / runs if runs else 0.0,
        "rollback_rate_95": wilson(rolled, runs),
        "caught_rate": caught / runs if runs else 0.0,
        "caught_rate_95": wilson(caught, runs),
        "reached_full": full,
        "configured_false_positive_rate": configured_rate,
        "median_accounts_exposed": _median(r["accounts_exposed"] for r in results),
        "median_accounts_exposed_at_rollback": _median(r["accounts_exposed"] for r in rolled_runs),
        "median_regression_to_rollback_seconds": _median(
            r["regression_to_rollback_seconds"] for r in rolled_runs
        ),
    }


def repeat_light(runs: int, base: Scenario) -> list[dict[str, Any]]:
    return [run_light(sc) for sc in seeds_of(base, runs)]


def false_rollback_figure(runs: int, base: Scenario) -> dict[str, Any]:
    """The scenario ``runs`` times with seeds seed..seed+runs-1 on the light path: for a
    healthy scenario, the false-rollback rate with its Wilson 95 % interval."""
    summary = summarise(repeat_light(runs, base), base.false_positive_rate)
    summary["false_rollback_rate"] = summary["rollback_rate"]
    summary["false_rollback_rate_95"] = summary["rollback_rate_95"]
    return summary


# --- The full path --------------------------------------------------------------------------------


class SdkCohort:
    """Which accounts the SDK serves the flag to, asked once per account and step."""

    def __init__(self, client: Any, model: Model) -> None:
        self.client = client
        self.model = model
        self.cache: dict[int, bool] = {}

    def on_of(self, accounts: IntArray) -> BoolArray:
        out = np.empty(len(accounts), bool)
        for i, a in enumerate(accounts.tolist()):
            hit = self.cache.get(a)
            if hit is None:
                variant = self.client.variant("new-engine", self.model.context(a))
                hit = self.cache[a] = variant == ON
            out[i] = hit
        return out


def _nobody(accounts: IntArray) -> BoolArray:
    return np.zeros(len(accounts), bool)


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
        StageTemplate(f"{p:g}%", w, int(sc.bake_hours * HOUR), min_sample=sc.min_sample)
        for p, w in zip(sc.stages, sc.weights, strict=True)
    ]
    before = (sc.dark_hours + sc.retry_hours) * HOUR
    total = sum(s.bake_seconds for s in stages)
    horizon = min(timedelta(seconds=before + total * 1.5 + 6 * HOUR), timedelta(days=28))
    sim_start = datetime.fromtimestamp(
        int((datetime.now(UTC) - horizon).timestamp()) // 60 * 60, UTC
    )

    def new_plan(name: str) -> RolloutPlan:
        plan = services.create_from_template(
            state, template="", user=user, name=f"simulation {tag}{name}",
            bucket_by=UNIT_ATTRIBUTE, check_interval_seconds=int(step),
            min_sample=sc.min_sample, stages=stages,
        )  # fmt: skip
        RolloutPlan.objects.filter(pk=plan.pk).update(false_positive_rate=sc.false_positive_rate)
        return plan

    http = Client(HTTP_AUTHORIZATION=f"Bearer {server_key}")
    model = Model(sc)
    reports: dict[int, StageReport] = {}
    ever_on: set[int] = set()
    on_before: set[int] = set()
    grew_only = True
    first_failure: float | None = None
    rollback_at: float | None = None
    posted = 0

    def sdk() -> Any:
        doc = Ruleset.objects.get(environment=env).document
        return FlagsiteClient(bootstrap=doc, offline=True, record_exposures=False)

    def send(traffic: Traffic) -> None:
        nonlocal first_failure, posted
        posted += _post(http, traffic, build_payload)
        ever_on.update(traffic.account[traffic.on].tolist())
        if first_failure is None and traffic.harmed.any():
            first_failure = float(traffic.at[np.argmax(traffic.harmed)])

    with override_settings(FLAGSITE_ROLLOUT_TIME_SCALE=1.0):
        t = sim_start
        # Shipped dark: the flag served off to everyone (the SDK records those exposures).
        while t < sim_start + timedelta(hours=sc.dark_hours):
            seconds = min(step, (sim_start + timedelta(hours=sc.dark_hours) - t).total_seconds())
            send(model.step(t.timestamp(), seconds, _nobody))
            t += timedelta(seconds=seconds)
        plan = new_plan("")
        first_attempt: int | None = None
        if sc.retry_hours > 0:
            # A first attempt, served at its first stage by the SDK, then aborted. The beat is
            # not run for it: what its checks said is not the question, only what it leaves.
            services.start(plan, user=user, reason="simulation, first attempt", now=t)
            client = sdk()
            until = t + timedelta(hours=sc.retry_hours)
            while t < until:
                seconds = min(step, (until - t).total_seconds())
                cohort = SdkCohort(client, model)
                send(model.step(t.timestamp(), seconds, cohort.on_of, sc.weights[0] / FULL))
                t += timedelta(seconds=seconds)
            client.close()
            services.abort(plan, user=user, reason="simulation: the first attempt is aborted")
            first_attempt = plan.pk
            plan = new_plan(" (retried)")
        plan_start = t
        services.start(plan, user=user, reason="simulation", now=plan_start)
        model.begin_stage(0, plan_start.timestamp())
        client = sdk()
        current_stage = 0
        k = 0
        while True:
            plan.refresh_from_db()
            t0 = plan_start + timedelta(seconds=k * step)
            t1 = t0 + timedelta(seconds=step)
            if t1 > datetime.now(UTC) or plan.status != RolloutPlan.Status.RUNNING:
                break
            if plan.current_stage != current_stage:
                client.close()
                client = sdk()
                now_on = {
                    a for a in ever_on if client.variant("new-engine", model.context(a)) == ON
                }
                grew_only &= on_before <= now_on
                current_stage = plan.current_stage
                model.begin_stage(current_stage, t0.timestamp())
            cohort = SdkCohort(client, model)
            share = sc.weights[current_stage] / FULL
            traffic = model.step(t0.timestamp(), step, cohort.on_of, share)
            report = reports.setdefault(
                current_stage, StageReport(current_stage + 1, sc.stages[current_stage])
            )
            send(traffic)
            on_before = {a for a, hit in cohort.cache.items() if hit} | on_before
            report.accounts_exposed = len(ever_on)
            for variant, mask in ((ON, traffic.on), (OFF, ~traffic.on)):
                report.requests[variant] += int(mask.sum())
                report.errors[variant] += int((traffic.error & mask).sum())
            tasks.check_rollouts.apply(kwargs={"now": t1.isoformat()})
            last = plan.checks.order_by("-sequence").first()
            if last is not None and last.checked_at == t1:
                report.verdict = last.verdict
                report.reasons = [r["message"] for r in last.reasons]
                if last.verdict == "rollback":
                    rollback_at = t1.timestamp()
            progress(
                f"t+{(t1 - plan_start).total_seconds() / HOUR:5.1f} h  stage {current_stage + 1} "
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
            first_failure if first_failure is not None else plan_start.timestamp()
        )
    return {
        "outcome": outcome,
        "accounts_exposed": len(ever_on),
        "regression_to_rollback_seconds": regression,
        "wall_seconds": round(time.monotonic() - wall_start, 2),
        "exposure_only_grew": grew_only,
        "plan_id": plan.pk,
        "first_attempt_plan_id": first_attempt,
        "checks": plan.checks.count(),
        "events_posted": posted,
        "scenario": asdict(sc),
        "stages": [asdict(r) for r in reports.values()],
    }


BATCH = 10_000  # the events endpoint's largest batch


def _post(http: Any, traffic: Traffic, build_payload: Callable[..., dict[str, Any]]) -> int:
    """Exposures in the SDK's payload format (one per account and variant per step, as the
    SDK's dedup would send them), then metric events with the flag assignments in force; every
    event names its account (the plan's randomization unit). Returns the events posted: none
    for a quiet step (the endpoint refuses an empty batch)."""
    seen: set[tuple[int, bool]] = set()
    exposures = []
    events: list[dict[str, Any]] = []
    for at, account, on, error, latency, conversion in zip(
        traffic.at.tolist(), traffic.account.tolist(), traffic.on.tolist(), traffic.error.tolist(),
        traffic.latency.tolist(), traffic.conversion.tolist(), strict=True,
    ):  # fmt: skip
        variant = ON if on else OFF
        key = account_key(account)
        if (account, on) not in seen:
            seen.add((account, on))
            # The SDK's exposure: the flag buckets by account, so it carries the account.
            exposures.append(("new-engine", variant, key, at, {UNIT_ATTRIBUTE: key}))
        stamp = datetime.fromtimestamp(at, UTC).isoformat()
        common = {
            "context_key": key,
            "timestamp": stamp,
            "assignments": {"new-engine": variant},
            "units": {UNIT_ATTRIBUTE: key},
        }
        events.append({"type": "latency", "value": round(latency, 3), **common})
        if error:
            events.append({"type": "error", **common})
        if conversion:
            events.append({"type": "conversion", **common})
    if not exposures:
        return 0
    payload = build_payload(f"sim-exp-{uuid.uuid4().hex}", exposures)
    payload["events"] += events
    for offset in range(0, len(payload["events"]), BATCH):
        chunk = {
            "batch_id": f"{payload['batch_id']}-{offset}",
            "events": payload["events"][offset : offset + BATCH],
        }
        response = http.post("/api/v1/events", json.dumps(chunk), content_type="application/json")
        if response.status_code != 202:
            raise RuntimeError(
                f"the events endpoint refused a batch: {response.status_code} "
                f"{response.content[:300]!r}"
            )
    return len(payload["events"])
