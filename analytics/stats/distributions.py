"""The few distribution functions a comparison calls, straight from scipy.special.

scipy.stats' distribution objects check and broadcast their arguments on every call (50 to
100 µs each, and a rollout check makes a dozen such calls). For the standard normal scipy.stats
computes sf(x) as ndtr(-x) and ppf(q) as ndtri(q), and chisquare's p-value as chdtrc(k - 1, x)
of the Pearson statistic, so these give the same floats (tests/unit/analytics/
test_vectorised_stats.py compares them with scipy.stats).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special


def normal_sf(x: float) -> float:
    """P(Z > x) for a standard normal Z."""
    return float(special.ndtr(-x))


def normal_ppf(q: float) -> float:
    """The q-quantile of the standard normal (0 < q < 1)."""
    return float(special.ndtri(q))


def chi_square(
    observed: npt.NDArray[np.float64], expected: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Pearson's goodness-of-fit statistic and its p-value (k - 1 degrees of freedom), as
    scipy.stats.chisquare; the totals of ``observed`` and ``expected`` must agree."""
    statistic = ((observed - expected) ** 2 / expected).sum()
    return float(statistic), float(special.chdtrc(len(observed) - 1, statistic))
