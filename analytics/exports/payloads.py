"""Vendor payloads of one stored exposure, built with the vendors' own libraries.

Pure: the same stored event always gives the same payload, including its deduplication id, so
a resent batch is recognised by the vendor as the same events (Mixpanel dedups on event, time,
distinct_id and $insert_id; Amplitude on insert_id per user/device for 7 days).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import amplitude
import mixpanel

# Fixed forever: changing it would give every stored event a new dedup id.
_INSERT_ID_NAMESPACE = uuid.UUID("5b0c3f0e-8d2a-4f4e-9a57-2f6f7c1d9e10")
EXPERIMENT_PROPERTY = "[Experiment] {flag}"
MIXPANEL_EXPOSURE_EVENT = "$experiment_started"
AMPLITUDE_EXPOSURE_EVENT = "$exposure"


@dataclass(frozen=True)
class Exposure:
    """What an export needs of a stored exposure event (analytics.models.RawEvent)."""

    raw_id: int
    environment_id: int
    flag_key: str
    variant: str
    context_key: str
    occurred_at: datetime
    assignments: dict[str, str]

    @property
    def insert_id(self) -> str:
        """36 characters (Mixpanel's maximum), stable for the stored event."""
        return str(uuid.uuid5(_INSERT_ID_NAMESPACE, f"{self.environment_id}:{self.raw_id}"))

    @property
    def time_ms(self) -> int:
        return int(self.occurred_at.timestamp() * 1000)


def experiment_properties(exposure: Exposure) -> dict[str, str]:
    """Every flag assignment in force at the exposure, as "[Experiment] <flag>" = variant."""
    assigned = {**exposure.assignments, exposure.flag_key: exposure.variant}
    return {EXPERIMENT_PROPERTY.format(flag=flag): v for flag, v in sorted(assigned.items())}


class _Collector:
    """A Mixpanel consumer that keeps the messages the library builds instead of sending them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def send(self, endpoint: str, json_message: str, *_: Any, **__: Any) -> None:
        self.messages.append((endpoint, json.loads(json_message)))


def mixpanel_messages(token: str, exposure: Exposure) -> tuple[dict[str, Any], dict[str, Any]]:
    """The $experiment_started event and the profile update ($set of the assignments)."""
    collector = _Collector()
    client = mixpanel.Mixpanel(token, consumer=collector)
    client.track(
        exposure.context_key,
        MIXPANEL_EXPOSURE_EVENT,
        {
            "Experiment name": exposure.flag_key,
            "Variant name": exposure.variant,
            "time": exposure.time_ms,
            "$insert_id": exposure.insert_id,
            "$source": "flagsite",
        },
    )
    client.people_set(
        exposure.context_key,
        experiment_properties(exposure),
        # The profile's "last seen" is not moved by an export, and $time stays deterministic.
        meta={"$time": exposure.time_ms, "$ignore_time": True},
    )
    (_, event), (_, profile) = collector.messages
    return event, profile


def amplitude_event(exposure: Exposure) -> amplitude.BaseEvent:
    """The $exposure event; its $set of user properties carries every assignment."""
    return amplitude.BaseEvent(
        event_type=AMPLITUDE_EXPOSURE_EVENT,
        user_id=exposure.context_key,
        time=exposure.time_ms,
        insert_id=exposure.insert_id,
        event_properties={"flag_key": exposure.flag_key, "variant": exposure.variant},
        user_properties={"$set": experiment_properties(exposure)},
    )
