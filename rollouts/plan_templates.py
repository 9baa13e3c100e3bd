"""Plan templates and the default guardrails (seed 000's rollback criteria).

Weights are in the engine's units, 1/100,000 (5 % = 5000).
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 24 * 3600


@dataclass(frozen=True)
class StageTemplate:
    name: str
    weight: int
    bake_seconds: int
    requires_approval: bool = False
    uses_segment: bool = False  # served to the plan's segment (internal users) first
    min_sample: int | None = None


@dataclass(frozen=True)
class GuardrailTemplate:
    metric: str
    mode: str
    yellow: float
    red: float
    higher_is_worse: bool = True


# Seed 000: red at error rate over 2x control or over 2 %, p95 over 500 ms, conversion down
# more than 10 %; yellow from 1.5x / 1 % / 300 ms / -5 %.
DEFAULT_GUARDRAILS: tuple[GuardrailTemplate, ...] = (
    GuardrailTemplate("error_rate", "relative", yellow=1.5, red=2.0),
    GuardrailTemplate("error_rate", "absolute", yellow=0.01, red=0.02),
    GuardrailTemplate("latency_p95", "absolute", yellow=300.0, red=500.0),
    GuardrailTemplate("conversion_rate", "relative", yellow=0.95, red=0.90, higher_is_worse=False),
)

TEMPLATES: dict[str, tuple[str, tuple[StageTemplate, ...]]] = {
    "standard": (
        "5% → 25% → 50% → 100%, 24 h at each stage",
        (
            StageTemplate("5%", 5_000, DAY),
            StageTemplate("25%", 25_000, DAY),
            StageTemplate("50%", 50_000, DAY),
            StageTemplate("100%", 100_000, DAY),
        ),
    ),
    # Seed 001's phases of a feature launch.
    "launch-phases": (
        "Internal users, 10 %, 50 % for a week, 75 % for a day, 95 % with a 5 % holdout",
        (
            StageTemplate(
                "test in production (internal segment)",
                0,
                2 * DAY,
                requires_approval=True,
                uses_segment=True,
                min_sample=0,
            ),
            StageTemplate("debugging 10%", 10_000, 2 * DAY),
            StageTemplate("maximum power ramp 50%", 50_000, 7 * DAY),
            StageTemplate("scalability 75%", 75_000, DAY),
            StageTemplate("learning 95% (5% holdout)", 95_000, 30 * DAY),
        ),
    ),
}
