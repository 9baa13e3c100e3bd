"""One HTTP delivery of a batch to a vendor, through the vendor's official library, with the
answer classified: accepted, refused for good (per event, with the reason), or to be retried.

Neither library fits a cursor as it is: mixpanel's Consumer retries 5xx only on https and with
no jitter (not 429 unless Retry-After is sent), and amplitude's client queues events in threads
and retries in the background without jitter (429 after a fixed 30 s). So both are used
synchronously, library retries off, and analytics.exports.delivery retries with jitter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import mixpanel
import requests
from amplitude import Config
from amplitude.http_client import HttpClient, HttpStatus

from analytics.exports.payloads import Exposure, amplitude_event, mixpanel_messages

logger = logging.getLogger(__name__)
MIXPANEL_DEFAULT_HOST = "https://api.mixpanel.com"
REQUEST_TIMEOUT_SECONDS = 10


@dataclass
class SendResult:
    """Indexes are positions in the batch handed to ``send``."""

    rejected: dict[int, str] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)
    error: str = ""
    retry_after: float | None = None

    def merge(self, other: SendResult, offset: int) -> None:
        self.rejected.update({i + offset: r for i, r in other.rejected.items()})
        self.retry.extend(i + offset for i in other.retry)
        self.error = self.error or other.error
        if other.retry_after is not None:
            self.retry_after = max(self.retry_after or 0.0, other.retry_after)


class Sender(Protocol):
    def send(self, batch: Sequence[Exposure]) -> SendResult: ...


def _transient(count: int, error: str, retry_after: float | None = None) -> SendResult:
    return SendResult(retry=list(range(count)), error=error, retry_after=retry_after)


T = TypeVar("T")


def _split_when_too_large(
    batch: Sequence[T], send_one: Callable[[Sequence[T]], SendResult | None]
) -> SendResult:
    """``send_one`` returns None for "payload too large": halve the batch and send both halves;
    a single event that is still too large is refused."""
    result = send_one(batch)
    if result is not None:
        return result
    if len(batch) == 1:
        return SendResult(rejected={0: "payload too large (HTTP 413) for a single event"})
    middle = len(batch) // 2
    merged = _split_when_too_large(batch[:middle], send_one)
    merged.merge(_split_when_too_large(batch[middle:], send_one), middle)
    return merged


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class MixpanelSender:
    """Events to /import (strict: a 400 lists each refused event; any age is accepted), with
    the project token as basic-auth user; then the profiles' assignments to /engage."""

    def __init__(self, token: str, server_url: str = "") -> None:
        base = (server_url or MIXPANEL_DEFAULT_HOST).rstrip("/")
        self.token = token
        self.consumer = mixpanel.Consumer(
            events_url=f"{base}/track",
            people_url=f"{base}/engage",
            import_url=f"{base}/import?strict=1",
            request_timeout=REQUEST_TIMEOUT_SECONDS,
            retry_limit=0,
        )
        self._responses: list[requests.Response] = []
        # The library raises one exception type for every failure; the status code it does
        # not expose is what tells a rate limit from a refused event.
        self.consumer._session.hooks["response"].append(self._keep_response)

    def _keep_response(self, response: requests.Response, *_: Any, **__: Any) -> None:
        self._responses.append(response)

    def _post(self, endpoint: str, messages: list[dict[str, Any]]) -> requests.Response | str:
        """The response, or the error text when there was none (connection, timeout)."""
        self._responses.clear()
        try:
            self.consumer.send(endpoint, json.dumps(messages), api_secret=self.token)
        # KeyError: the library expects /track's {"status": 1} and trips over /import's
        # documented {"code": 200, "status": "OK"}; the status code below is what counts.
        except (mixpanel.MixpanelException, KeyError) as exc:
            if not self._responses:
                return str(exc) or type(exc).__name__
        return self._responses[-1]

    def send(self, batch: Sequence[Exposure]) -> SendResult:
        messages = [mixpanel_messages(self.token, exposure) for exposure in batch]
        result = _split_when_too_large([event for event, _ in messages], self._import)
        if result.retry:
            return result
        refused = set(result.rejected)
        profiles = {m[1]["$distinct_id"]: m[1] for i, m in enumerate(messages) if i not in refused}
        if profiles:
            answer = self._post("people", list(profiles.values()))
            if isinstance(answer, str) or answer.status_code == 429 or answer.status_code >= 500:
                text = answer if isinstance(answer, str) else f"HTTP {answer.status_code}"
                # The events are in (deduplicated on resend); the profiles must follow them.
                return _transient(len(batch), f"profile update failed: {text}")
            if answer.status_code != 200:
                logger.warning(
                    "mixpanel refused profile updates",
                    extra={"status": answer.status_code, "body": answer.text[:500]},
                )
        return result

    def _import(self, events: Sequence[dict[str, Any]]) -> SendResult | None:
        answer = self._post("imports", list(events))
        if isinstance(answer, str):
            return _transient(len(events), answer)
        status = answer.status_code
        if status == 200:
            return SendResult()
        if status == 413:
            return None
        if status in (401, 403):
            return _transient(len(events), f"HTTP {status}: check the project token")
        if status in (408, 429) or status >= 500:
            after = _retry_after(answer.headers.get("Retry-After"))
            return _transient(len(events), f"HTTP {status}", after)
        body = _json(answer)
        failed = body.get("failed_records") if isinstance(body, dict) else None
        if status == 400 and isinstance(failed, list) and failed:
            return SendResult(
                rejected={
                    int(r["index"]): f"{r.get('field', '')}: {r.get('message', '')}".strip(": ")
                    for r in failed
                }
            )
        reason = f"HTTP {status}: {body.get('error', '') if isinstance(body, dict) else ''}"
        return SendResult(rejected={i: reason for i in range(len(events))})


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class AmplitudeSender:
    """$exposure events to the HTTP V2 API (or the server_url given), built and posted with
    amplitude-analytics' event, config and HTTP client classes."""

    def __init__(self, api_key: str, server_url: str = "") -> None:
        # Context keys are often shorter than Amplitude's default minimum id length of 5.
        self.config = Config(api_key=api_key, server_url=server_url or None, min_id_length=1)

    def send(self, batch: Sequence[Exposure]) -> SendResult:
        return _split_when_too_large(batch, self._post)

    def _post(self, batch: Sequence[Exposure]) -> SendResult | None:
        payload = {
            "api_key": self.config.api_key,
            "events": [amplitude_event(e).get_event_body() for e in batch],
            "options": self.config.options,
        }
        answer = HttpClient.post(
            self.config.server_url, json.dumps(payload, sort_keys=True).encode()
        )
        status = answer.status
        if status == HttpStatus.SUCCESS:
            return SendResult()
        if status == HttpStatus.PAYLOAD_TOO_LARGE:
            return None
        if status == HttpStatus.TOO_MANY_REQUESTS:
            quota = {
                i: "exceeded Amplitude's daily quota for this user"
                for i, e in enumerate(batch)
                if answer.throttled_events
                and i in answer.throttled_events
                and answer.exceed_daily_quota(amplitude_event(e))
            }
            retry = [i for i in range(len(batch)) if i not in quota]
            return SendResult(rejected=quota, retry=retry, error="HTTP 429 (throttled)")
        if status == HttpStatus.INVALID_REQUEST:
            if answer.error.startswith("Invalid API key"):
                return _transient(len(batch), "HTTP 400: invalid API key")
            invalid = answer.invalid_or_silenced_index()
            if answer.missing_field or not invalid:
                reason = answer.error or f"missing field {answer.missing_field}"
                return SendResult(rejected={i: f"HTTP 400: {reason}" for i in range(len(batch))})
            rejected = {i: f"HTTP 400: {answer.error or 'invalid event'}" for i in invalid}
            rest = [i for i in range(len(batch)) if i not in invalid]
            # The valid events of a refused request were not stored: send them again.
            return SendResult(rejected=rejected, retry=rest, error="resend the valid events")
        return _transient(len(batch), f"HTTP {answer.code}: {answer.error}".rstrip(": "))
