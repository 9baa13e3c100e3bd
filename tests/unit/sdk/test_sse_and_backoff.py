"""The SSE line parser and the reconnection backoff."""

from __future__ import annotations

from flagsite_sdk.store import RulesetStore
from flagsite_sdk.sync import Synchronizer, SyncOptions
from flagsite_sdk.transport import SseEvent, SseParser, Transport


def feed(parser: SseParser, text: str) -> list[SseEvent]:
    events = []
    for line in text.split("\n"):
        event = parser.feed(line)
        if event is not None:
            events.append(event)
    return events


def test_parses_events_ids_retry_and_skips_comments() -> None:
    parser = SseParser()
    preamble = ["retry: 1000", "", ": heartbeat", ""]
    event = ["id: 7", "event: ruleset", 'data: {"version": 7,', 'data: "x": 1}', "", ""]
    stream = "\n".join([*preamble, *event])
    events = feed(parser, stream)
    assert events == [SseEvent("ruleset", '{"version": 7,\n"x": 1}', "7")]
    assert parser.retry_ms == 1000
    assert parser.last_event_id == "7"


def test_an_event_without_a_name_is_a_message_and_ids_persist() -> None:
    parser = SseParser()
    assert feed(parser, "id: 3\ndata:x\n\ndata: y\n\n") == [
        SseEvent("message", "x", "3"),
        SseEvent("message", "y", "3"),
    ]


def test_an_unterminated_event_is_not_dispatched() -> None:
    assert feed(SseParser(), "event: ruleset\ndata: {}") == []


def test_backoff_grows_is_capped_and_respects_the_server_retry() -> None:
    sync = Synchronizer(
        RulesetStore(),
        Transport("http://127.0.0.1:9", "fs_srv_x"),
        SyncOptions(backoff_initial=0.5, backoff_max=4.0),
    )
    for attempt in range(1, 30):
        delay = sync._backoff(attempt, None)
        assert 0.25 <= delay <= min(4.0, 0.5 * 2 ** (attempt - 1))
    assert all(0.5 <= sync._backoff(1, 1000) <= 1.0 for _ in range(50))
    delays = {round(sync._backoff(10, None), 3) for _ in range(50)}
    assert len(delays) > 10  # jittered, so a fleet does not reconnect in lockstep
