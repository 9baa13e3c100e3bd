"""Retrying a batch: exponential backoff with jitter, honouring a vendor's Retry-After."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from analytics.exports.payloads import Exposure
from analytics.exports.senders import Sender


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 30.0

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before retry number ``retry`` (1, 2, ...): "equal jitter", half of the
        exponential step fixed and half random, so concurrent exporters spread out but never
        hammer; a Retry-After from the vendor is a floor (up to the cap)."""
        step = min(self.cap_seconds, self.base_seconds * 2 ** (retry - 1))
        jittered = step / 2 + rng.uniform(0, step / 2)
        floor = min(self.cap_seconds, retry_after or 0.0)
        return float(max(jittered, floor))


@dataclass
class DeliveryReport:
    """``rejected``: raw event id -> reason. ``error``: set when events were still pending
    after the last attempt (the batch is not done; the cursor must not move)."""

    rejected: dict[int, str] = field(default_factory=dict)
    error: str = ""
    attempts: int = 0


def deliver(
    sender: Sender,
    batch: Sequence[Exposure],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> DeliveryReport:
    rng = rng or random.Random()
    report = DeliveryReport()
    pending = list(batch)
    while pending:
        report.attempts += 1
        result = sender.send(pending)
        for index, reason in result.rejected.items():
            report.rejected[pending[index].raw_id] = reason
        pending = [pending[i] for i in result.retry]
        if not pending:
            return report
        if report.attempts >= policy.attempts:
            report.error = f"{result.error} (after {report.attempts} attempts)"
            return report
        sleep(policy.delay(report.attempts, result.retry_after, rng))
    return report
