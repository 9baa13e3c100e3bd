"""The simulator's traffic model, scenario by scenario (rollouts.simulation.Model; no database).

Each generator is checked for the property its scenario exists to show: a shared incident moves
both cohorts alike, the enterprise cohort is chosen by attributes, load-dependent errors appear
only from their threshold, heterogeneous traffic is heavy-tailed, and no traffic is no crash.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rollouts.simulation import (
    HOUR,
    SCENARIOS,
    TIERS,
    Model,
    Scenario,
    Traffic,
    account_buckets,
    scenario,
)


def served(model: Model, start: float, hours: float, share: float) -> Traffic:
    """Requests of ``hours`` from ``start`` with the accounts below ``share`` served flag-on."""
    buckets = account_buckets(model.sc.accounts)
    req = model.requests(start, hours * HOUR)
    on = buckets[req.account] < round(share * 100_000)
    return model.outcomes(req, on, share)


def rate(mask: Any) -> float:
    return float(np.mean(mask)) if len(mask) else float("nan")


# --- Shared incident ------------------------------------------------------------------------------


def incident_model(**fields: Any) -> Model:
    sc = scenario("shared-incident", accounts=2000, traffic_per_hour=200_000, **fields)
    return Model(sc)


def test_a_shared_incident_raises_both_cohorts_equally_and_only_while_it_lasts() -> None:
    model = incident_model(incident_stage=2)  # 2 h into the second stage, for 4 h
    model.begin_stage(0, 0.0)
    assert model.incident is None  # not the incident's stage
    model.begin_stage(1, 10 * HOUR)
    assert model.incident == (12 * HOUR, 16 * HOUR)
    traffic = served(model, 10 * HOUR, 8.0, 0.25)
    inside = (traffic.at >= 12 * HOUR) & (traffic.at < 16 * HOUR)
    on_in, off_in = (
        rate(traffic.error[inside & traffic.on]),
        rate(traffic.error[inside & ~traffic.on]),
    )
    on_out = rate(traffic.error[~inside & traffic.on])
    off_out = rate(traffic.error[~inside & ~traffic.on])
    expected = 1 - (1 - 0.002) * (1 - 0.05)  # +5 points on top of the base rate
    assert on_in == pytest.approx(expected, abs=0.003)
    assert off_in == pytest.approx(expected, abs=0.002)
    assert abs(on_in - off_in) < 0.003  # the flag is innocent: both cohorts alike
    assert on_out == pytest.approx(0.002, abs=0.001)
    assert off_out == pytest.approx(0.002, abs=0.001)
    assert not traffic.harmed.any()  # no request is hurt by the new code


def test_the_incident_keeps_its_wall_time_when_the_rollout_moves_on() -> None:
    model = incident_model(incident_stage=1, incident_start_hours=22.0)
    model.begin_stage(0, 0.0)
    model.begin_stage(1, 24 * HOUR)  # the next stage starts while the incident is on
    assert model.incident == (22 * HOUR, 26 * HOUR)


def test_no_incident_without_an_incident_stage() -> None:
    model = incident_model(incident_stage=0)
    for stage in range(4):
        model.begin_stage(stage, stage * 24 * HOUR)
    assert model.incident is None


# --- Enterprise cohort ----------------------------------------------------------------------------


def test_the_enterprise_cohort_is_chosen_by_attributes_not_at_random() -> None:
    sc = scenario("enterprise-cohort")
    model = Model(sc)
    enterprise = model.tier == TIERS.index("enterprise")
    big = model.line_items > 200
    assert np.array_equal(model.failing, enterprise & big)
    assert 0.02 <= model.failing.mean() <= 0.04  # about 3 % of accounts, like seed 004's
    # Large invoices outside the enterprise tier exist and do not fail.
    assert (big & ~enterprise).any()
    # The same cohort whatever fail_share says: the attributes decide.
    assert np.array_equal(
        Model(scenario("enterprise-cohort", fail_share=0.5)).failing, model.failing
    )


def test_invoice_sizes_are_heavy_tailed_and_tiers_follow_their_shares() -> None:
    model = Model(Scenario(accounts=20_000))
    shares = np.bincount(model.tier, minlength=len(TIERS)) / 20_000
    assert shares == pytest.approx([0.6, 0.3, 0.1], abs=0.02)
    items = model.line_items[model.tier == TIERS.index("enterprise")]
    assert np.percentile(items, 99) > 5 * np.median(items)
    assert items.min() >= 1


def test_only_the_failing_accounts_flag_on_requests_fail_more() -> None:
    sc = scenario("enterprise-cohort", traffic_per_hour=100_000)
    model = Model(sc)
    traffic = served(model, 0.0, 4.0, 0.5)
    failing = model.failing[traffic.account]
    assert rate(traffic.error[failing & traffic.on]) > 0.85
    assert rate(traffic.error[failing & ~traffic.on]) < 0.01
    assert rate(traffic.error[~failing & traffic.on]) < 0.01
    assert np.array_equal(traffic.harmed, failing & traffic.on)


def test_the_error_ratio_multiplies_the_flag_on_rate_of_the_cohort() -> None:
    sc = Scenario(traffic_per_hour=400_000, base_error_rate=0.01, fail_share=1.0, fail_rate=0.0,
                  error_ratio=2.0)  # fmt: skip
    traffic = served(Model(sc), 0.0, 2.0, 0.5)
    on, off = rate(traffic.error[traffic.on]), rate(traffic.error[~traffic.on])
    assert on / off == pytest.approx(2.0, rel=0.1)


# --- Load-dependent errors ------------------------------------------------------------------------


def test_load_dependent_errors_appear_only_at_or_above_the_threshold() -> None:
    sc = scenario("load-dependent", traffic_per_hour=100_000)
    for share, extra in ((0.05, 0.0), (0.25, 0.0), (0.5, 0.02), (1.0, 0.02)):
        traffic = served(Model(sc), 0.0, 4.0, share)
        on = rate(traffic.error[traffic.on])
        assert on == pytest.approx(1 - (1 - 0.002) * (1 - extra), abs=0.003), share
        if share < 1.0:
            assert rate(traffic.error[~traffic.on]) == pytest.approx(0.002, abs=0.001)
        assert traffic.harmed.any() == (extra > 0)


# --- Heterogeneous traffic ------------------------------------------------------------------------


def top_share(model: Model, requests: Traffic, top: float) -> float:
    counts = np.sort(np.bincount(requests.account, minlength=model.sc.accounts))[::-1]
    return float(counts[: int(top * len(counts))].sum() / counts.sum())


def test_heterogeneous_traffic_is_heavy_tailed() -> None:
    heavy = Model(scenario("heterogeneous", traffic_per_hour=100_000))
    even = Model(scenario("healthy", traffic_per_hour=100_000))
    heavy_traffic = served(heavy, 0.0, 4.0, 0.05)
    even_traffic = served(even, 0.0, 4.0, 0.05)
    assert top_share(heavy, heavy_traffic, 0.01) > 0.25  # a few accounts send most requests
    assert top_share(heavy, heavy_traffic, 0.10) > 0.6
    assert top_share(even, even_traffic, 0.01) < 0.03
    # Accounts' own error rates differ, around the same mean.
    assert heavy.error_rate.std() > heavy.error_rate.mean()
    assert heavy.error_rate.mean() == pytest.approx(0.002, rel=0.1)


# --- No traffic -----------------------------------------------------------------------------------


def test_no_traffic_gives_empty_arrays_not_errors() -> None:
    model = Model(scenario("no-traffic"))
    traffic = served(model, 0.0, 24.0, 0.05)
    assert len(traffic.at) == 0
    assert traffic.error.dtype == bool
    assert traffic.account.dtype == np.int64
    assert len(model.step(0.0, 900.0, lambda a: np.zeros(len(a), bool)).at) == 0


# --- Scenarios and their fields -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_named_scenario_is_valid(name: str) -> None:
    sc = scenario(name)
    assert sc.problems() == []
    Model(sc)  # the accounts can be drawn


def test_the_new_scenarios_are_named_as_the_issue_names_them() -> None:
    assert {"load-dependent", "enterprise-cohort", "shared-incident", "heterogeneous",
            "no-traffic", "dark-launch", "retried", "pdf-engine", "healthy", "latency",
            "conversion"} <= set(SCENARIOS)  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fail_share": 1.5}, "fail_share"),
        ({"fail_tier": "gold"}, "fail_tier"),
        ({"traffic_per_hour": -1}, "traffic_per_hour"),
        ({"stages": [50.0, 25.0]}, "never decrease"),
        ({"stages": []}, "stages"),
        ({"incident_stage": 5}, "incident_stage"),
        ({"check_minutes": 0}, "check_minutes"),
        ({"load_threshold": 2.0}, "load_threshold"),
        ({"tier_shares": [1.0, 0.0]}, "tier_shares"),
        ({"error_ratio": float("nan")}, "error_ratio"),
    ],
)
def test_a_bad_field_is_refused_with_its_name(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scenario.from_dict(fields)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="acounts"):
        Scenario.from_dict({"acounts": 5})


def test_the_same_seed_gives_the_same_accounts_whatever_the_traffic() -> None:
    a = Model(Scenario(seed=7, traffic_per_hour=100))
    b = Model(Scenario(seed=7, traffic_per_hour=9000, traffic_sigma=0.0))
    assert np.array_equal(a.tier, b.tier)
    assert np.array_equal(a.line_items, b.line_items)
    assert not np.array_equal(a.tier, Model(Scenario(seed=8)).tier)
