"""The simulator's light path: the stage window it builds, and whole runs (no database).

The window must hand ``evidence_from_stage`` what the server's read of the raw events would:
per account, the requests, errors and conversions of the current stage only, as RatioSums;
latency looks as LatencyLooks.of would compute them from the cumulative histograms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from analytics.stage_units import CONVERSION_RATE, ERROR_RATE
from analytics.stats.histogram import N_BUCKETS, LatencyLooks
from analytics.stats.ratio import RatioSums
from rollouts.management.commands.simulate_rollout import OPTIONS
from rollouts.simulation import (
    HOUR,
    OFF,
    ON,
    SCENARIOS,
    UNIT_ATTRIBUTE,
    Model,
    StageWindow,
    Traffic,
    _post,
    account_buckets,
    run_light,
    scenario,
    summarise,
    wilson,
)

STEP = 900.0


def steps(model: Model, on_accounts: Any, count: int, start: float = 0.0) -> list[Traffic]:
    out = []
    for k in range(count):
        req = model.requests(start + k * STEP, STEP)
        out.append(model.outcomes(req, on_accounts[req.account], 0.25))
    return out


def test_the_window_sums_equal_ratio_sums_over_the_exposed_accounts() -> None:
    model = Model(scenario("heterogeneous", accounts=3000, traffic_per_hour=20_000))
    on_accounts = account_buckets(3000) < 25_000
    window = StageWindow(on_accounts, 0.0, comparable=True)
    parts = steps(model, on_accounts, 12)
    for part in parts:
        window.add(part)
    units = window.units(12 * STEP)
    at = np.concatenate([p.account for p in parts])
    errors = np.concatenate([p.error for p in parts])
    conversions = np.concatenate([p.conversion for p in parts])
    r = np.bincount(at, minlength=3000)
    x_err = np.bincount(at, weights=errors, minlength=3000)
    x_conv = np.bincount(at, weights=conversions, minlength=3000)
    for variant, members in ((ON, on_accounts), (OFF, ~on_accounts)):
        exposed = members & (r > 0)
        cohort = units.cohort(variant)
        assert cohort.units == int(exposed.sum())
        assert cohort.requests == int(r[exposed].sum())
        for metric, x in ((ERROR_RATE, x_err), (CONVERSION_RATE, x_conv)):
            expected = RatioSums.of_units(x[exposed], r[exposed])
            got = cohort.metrics[metric]
            assert got.units == expected.units
            for name in ("x", "r", "xx", "rr", "xr"):
                assert getattr(got, name) == pytest.approx(getattr(expected, name)), (metric, name)
    assert units.both_variants == 0
    assert units.error_events == int(errors.sum())
    assert units.last_event_age_seconds == pytest.approx(12 * STEP - parts[-1].at[-1])


def test_several_intervals_in_one_pass_equal_one_interval_at_a_time() -> None:
    model = Model(scenario("enterprise-cohort", accounts=1500, traffic_per_hour=30_000))
    on_accounts = account_buckets(1500) < 50_000
    req = model.requests(0.0, 10 * STEP)
    traffic = model.outcomes(req, on_accounts[req.account], 0.5)
    ends = np.searchsorted(req.at, STEP * np.arange(1, 11))
    ends[3] = ends[2]  # an interval without a request
    together = StageWindow(on_accounts, 0.0, comparable=True)
    together.advance(traffic, ends)
    one_by_one = StageWindow(on_accounts, 0.0, comparable=True)
    begin = 0
    for i, end in enumerate(ends):
        one_by_one.add(traffic.part(begin, int(end)))
        begin = int(end)
        now = (i + 1) * STEP
        assert together.units(now, i) == one_by_one.units(now)
        pair, single = together.latency(i), one_by_one.latency()
        assert pair is not None
        assert single is not None
        for a, b in zip(pair, single, strict=True):
            assert np.array_equal(a.exposed_users, b.exposed_users)
            assert np.array_equal(a.final_latency(), b.final_latency())
            assert np.allclose(
                a.latency_summary().log_means, b.latency_summary().log_means, equal_nan=True
            )


def test_the_window_latency_looks_are_those_of_the_cumulative_histograms() -> None:
    model = Model(scenario("latency", accounts=2000, traffic_per_hour=5000))
    on_accounts = account_buckets(2000) < 25_000
    window = StageWindow(on_accounts, 0.0, comparable=True)
    rows: list[Any] = [[], []]
    hist = np.zeros((2, N_BUCKETS), np.int64)
    for part in steps(model, on_accounts, 6):
        window.add(part)
        for v in (0, 1):
            mask = part.on == bool(v)
            hist[v] += np.bincount(part.latency_bucket[mask], minlength=N_BUCKETS)
            rows[v].append(hist[v].copy())
    latency = window.latency()
    assert latency is not None
    for series, v, name in ((latency[0], 0, OFF), (latency[1], 1, ON)):
        expected = LatencyLooks.of(np.array(rows[v]))
        looks = series.latency_summary()
        assert series.name == name
        assert np.array_equal(looks.counts, expected.counts)
        assert np.allclose(looks.log_means, expected.log_means, equal_nan=True)
        assert np.allclose(looks.log_variances, expected.log_variances, equal_nan=True)
        assert np.array_equal(series.final_latency(), hist[v])
        assert np.array_equal(series.exposed_users, expected.counts)


def test_a_window_at_100_percent_keeps_units_but_compares_nothing() -> None:
    model = Model(scenario("healthy", accounts=1000, traffic_per_hour=5000))
    on_accounts = np.ones(1000, bool)
    window = StageWindow(on_accounts, 0.0, comparable=False)
    for part in steps(model, on_accounts, 4):
        window.add(part)
    units = window.units(4 * STEP)
    assert units.cohort(ON).units > 0
    assert units.cohort(OFF).units == 0
    assert units.cohort(ON).metrics == {}
    assert window.latency() is None


def test_an_empty_window_is_a_defined_answer() -> None:
    window = StageWindow(np.zeros(10, bool), 0.0, comparable=True)
    window.add(Model(scenario("no-traffic", accounts=10)).step(0.0, STEP, lambda a: a < 0))
    units = window.units(STEP)
    assert units.last_event_age_seconds is None
    assert units.events == 0
    assert units.cohort(ON).metrics[ERROR_RATE] == RatioSums()


# --- Whole runs -----------------------------------------------------------------------------------

SHORT: dict[str, Any] = {"accounts": 2000, "bake_hours": 2.0, "check_minutes": 60.0}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_runs_on_the_light_path(name: str) -> None:
    result = run_light(scenario(name, **SHORT))
    assert result["outcome"] in {"rolled_back", "completed", "held"}
    assert set(result) >= {"outcome", "stage", "accounts_exposed",
                           "regression_to_rollback_seconds", "reasons", "caught"}  # fmt: skip
    if result["outcome"] != "rolled_back":
        assert result["regression_to_rollback_seconds"] is None


def test_zero_traffic_holds_without_crashing_and_says_why() -> None:
    result = run_light(scenario("no-traffic", **SHORT))
    assert result["outcome"] == "held"
    assert result["accounts_exposed"] == 0
    assert result["reasons"]  # people are told why it does not move


def test_the_seed_incident_is_rolled_back_in_its_first_stage_with_its_time_measured() -> None:
    result = run_light(scenario("pdf-engine"))
    assert result["outcome"] == "rolled_back"
    assert result["stage"] == 0
    assert 0 < result["regression_to_rollback_seconds"] < result["hours"] * HOUR + 1
    assert result["caught"] is True


def test_a_retried_plan_counts_its_first_attempts_exposures_as_exposed() -> None:
    fresh = run_light(scenario("healthy", seed=3, **SHORT))
    retried = run_light(scenario("retried", seed=3, retry_hours=6.0, **SHORT))
    assert retried["accounts_exposed"] >= 1
    # hours run from the restart, not from the first attempt
    assert retried["hours"] <= 2 * 4 * SHORT["bake_hours"] + 1
    assert fresh["hours"] <= 2 * 4 * SHORT["bake_hours"] + 1


# --- Figures --------------------------------------------------------------------------------------


def test_summaries_carry_wilson_intervals() -> None:
    results: list[dict[str, Any]] = [
        {"outcome": "rolled_back", "accounts_exposed": 100, "caught": True,
         "regression_to_rollback_seconds": 600.0, "reached_full": False},
        *({"outcome": "completed", "accounts_exposed": 1000, "caught": False,
           "regression_to_rollback_seconds": None, "reached_full": True} for _ in range(19)),
    ]  # fmt: skip
    s = summarise(results, 0.05)
    assert s["rolled_back"] == 1
    assert s["rollback_rate"] == pytest.approx(0.05)
    low, high = s["rollback_rate_95"]
    assert low == pytest.approx(0.0089, abs=1e-3)
    assert high == pytest.approx(0.2361, abs=1e-3)
    assert s["median_regression_to_rollback_seconds"] == 600.0
    assert s["reached_full"] == 19
    assert wilson(0, 0) == (0.0, 1.0)


def test_the_command_offers_every_scalar_field() -> None:
    names = {name for name, _ in OPTIONS}
    assert {"incident_stage", "load_threshold", "fail_tier", "traffic_sigma", "dark_hours",
            "retry_hours", "error_ratio", "accounts"} <= names  # fmt: skip


# --- The full path's batches ----------------------------------------------------------------------


class FakeHttp:
    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []

    def post(self, path: str, body: str, content_type: str) -> Any:
        import json

        self.batches.append(json.loads(body))
        return type("Response", (), {"status_code": 202, "content": b""})()


def test_every_posted_event_names_its_account_and_a_quiet_step_posts_nothing() -> None:
    from flagsite_sdk.events import build_payload

    model = Model(scenario("healthy", accounts=500, traffic_per_hour=4000))
    http = FakeHttp()
    traffic = model.step(1.7e9, STEP, lambda a: a % 2 == 0)
    posted = _post(http, traffic, build_payload)
    events = [e for batch in http.batches for e in batch["events"]]
    assert posted == len(events) > 0
    assert all(e["units"] == {UNIT_ATTRIBUTE: e["context_key"]} for e in events)
    assert {e["type"] for e in events} >= {"exposure", "latency"}
    quiet = Model(scenario("no-traffic")).step(1.7e9, STEP, lambda a: a % 2 == 0)
    http = FakeHttp()
    assert _post(http, quiet, build_payload) == 0
    assert http.batches == []
