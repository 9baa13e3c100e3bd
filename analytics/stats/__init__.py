"""Pure statistics for flag analytics: no Django here, so it is unit-tested on its own."""

from analytics.stats.compare import (
    ComparisonConfig,
    ComparisonReport,
    MetricComparison,
    SampleRatioCheck,
    VariantComparison,
    VariantSeries,
    VariantSummary,
    compare,
)
from analytics.stats.histogram import BUCKET_EDGES_MS, N_BUCKETS, RELATIVE_ERROR_BOUND

__all__ = [
    "BUCKET_EDGES_MS",
    "N_BUCKETS",
    "RELATIVE_ERROR_BOUND",
    "ComparisonConfig",
    "ComparisonReport",
    "MetricComparison",
    "SampleRatioCheck",
    "VariantComparison",
    "VariantSeries",
    "VariantSummary",
    "compare",
]
