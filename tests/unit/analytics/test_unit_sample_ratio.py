"""The sample-ratio check of one stage's unit counts (analytics.stage_units.unit_sample_ratio)."""

from __future__ import annotations

from analytics.stage_units import CohortUnits, StageUnits, unit_sample_ratio


def stage(**units: int) -> StageUnits:
    return StageUnits(cohorts={v: CohortUnits(units=n) for v, n in units.items()})


def test_a_mismatch_is_read_on_the_always_valid_p_value() -> None:
    # 1,100 against 900 on 50/50: fixed-horizon p ~ 8e-6, always-valid p ~ 0.0016. The check is
    # read at every poll, so only the always-valid one may call it a mismatch.
    near = unit_sample_ratio(stage(on=1100, off=900), {"on": 1.0, "off": 1.0})
    assert near.p_value < 1e-4
    assert near.sequential_p_value > 0.001
    assert not near.mismatch
    far = unit_sample_ratio(stage(on=1150, off=850), {"on": 1.0, "off": 1.0})
    assert far.mismatch
    assert far.observed == {"on": 1150, "off": 850}


def test_the_counts_are_units_against_the_stage_weights() -> None:
    check = unit_sample_ratio(stage(on=260, off=740), {"on": 25_000.0, "off": 75_000.0})
    assert check.status == "ok"
    assert check.expected == {"on": 250.0, "off": 750.0}
    assert not check.mismatch


def test_too_few_units_or_one_variant_is_not_enough_data() -> None:
    assert unit_sample_ratio(stage(on=1, off=30), {"on": 1.0, "off": 9.0}).status == (
        "insufficient_data"
    )
    assert unit_sample_ratio(stage(), {"on": 1.0, "off": 1.0}).status == "insufficient_data"
    only = unit_sample_ratio(stage(on=500), {"on": 1.0})
    assert (only.status, only.mismatch) == ("insufficient_data", False)
