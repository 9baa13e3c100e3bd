"""HTTP entry points of analytics; the work happens in analytics.services."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import services
from analytics.selectors import Window
from analytics.serializers import BatchInvalidError, offset_problem
from apikeys.authentication import ApiKeyAuthentication, AuthenticatedKey
from flags.api.parsers import EventBatchJSONParser
from flags.api.throttling import EventsThrottle, ReportsThrottle

EVENT_KEY_KINDS = frozenset({"server", "client"})
REPORT_KEY_KINDS = frozenset({"server", "management"})
DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=92)
MAX_LOOKS = 20_000  # bounds the memory of one comparison: looks x histogram buckets


class CanSendEvents(permissions.BasePermission):
    message = "Events need a server or client API key."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        return isinstance(key, AuthenticatedKey) and key.kind in EVENT_KEY_KINDS


class EventBatchView(APIView):
    """POST a batch of exposure and metric events; all stored or none."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [CanSendEvents]
    throttle_classes = [EventsThrottle]
    parser_classes = [EventBatchJSONParser]  # orjson, with a limit fit for 10,000 events

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={
            202: OpenApiResponse(OpenApiTypes.OBJECT, description="{accepted, duplicate}"),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="errors by event index"),
        },
        description="A batch {batch_id, events: [...]} of exposure and metric events "
        "(fields: docs/api.md, 'Events'; each may carry units, attribute -> unit id, e.g. "
        '{"accountId": "acct-7"}, for rollouts that bucket by that attribute); stored '
        "atomically, idempotent under batch_id.",
    )
    def post(self, request: Request) -> Response:
        key = request.auth
        assert isinstance(key, AuthenticatedKey)
        try:
            result = services.ingest(key.environment_id, request.data)
        except BatchInvalidError as invalid:
            return Response({"errors": invalid.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {"accepted": result.accepted, "duplicate": result.duplicate},
            status=status.HTTP_202_ACCEPTED,
        )


class CanReadReports(permissions.BasePermission):
    message = "Comparisons need a server or management API key."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        return isinstance(key, AuthenticatedKey) and key.kind in REPORT_KEY_KINDS


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars become Python numbers, NaN and infinities become null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# The window must lie in these years: datetime arithmetic (end - 24 h, looks) stays in range.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _moment(raw: str) -> datetime | str:
    """An aware date-time in UTC, or why ``raw`` is not one."""
    try:
        parsed = parse_datetime(raw)
    except ValueError:  # a well-formed but impossible date, or an offset of a day or more
        parsed = None
    if parsed is None:
        return "Not an ISO 8601 date-time."
    if timezone.is_naive(parsed):
        return "Give a time zone, for example 2026-11-23T10:00:00Z."
    problem = offset_problem(parsed)
    if problem:
        return f"The date-time {problem}."
    try:
        moment = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return "Out of range."
    if not EARLIEST <= moment < LATEST:
        return "Must be between 1970-01-01 and 9000-01-01."
    return moment


def _window(params: Any) -> tuple[Window | None, dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    moments = {}
    for name in ("start", "end"):
        raw = params.get(name)
        if raw is None:
            continue
        moment = _moment(raw)
        if isinstance(moment, str):
            errors[name] = [moment]
        else:
            moments[name] = moment
    look = params.get("look_minutes", "5")
    if not (look.isascii() and look.isdigit()) or not 1 <= int(look) <= 1440:
        errors["look_minutes"] = ["A whole number of minutes from 1 to 1440."]
    if errors:
        return None, errors
    end = moments.get("end") or timezone.now()
    start = moments.get("start") or end - DEFAULT_WINDOW
    window = Window(start, end, timedelta(minutes=int(look)))
    if start >= end:
        errors["start"] = ["Must be before end."]
    elif end - start > MAX_WINDOW:
        errors["start"] = [f"The window may span at most {MAX_WINDOW.days} days."]
    elif window.looks > MAX_LOOKS:
        errors["look_minutes"] = [f"The window holds more than {MAX_LOOKS} looks; widen them."]
    return (None if errors else window), errors


class FlagComparisonView(APIView):
    """GET the per-variant comparison of a flag in the key's environment, from rollups."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [CanReadReports]
    throttle_classes = [ReportsThrottle]

    @extend_schema(
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATETIME, description="default: end - 24h"),
            OpenApiParameter("end", OpenApiTypes.DATETIME, description="default: now"),
            OpenApiParameter("look_minutes", int, description="minutes per sequential look (5)"),
            OpenApiParameter("control", str, description="default: the flag's off variant"),
        ],
        description="Per-variant comparison over the window, from rollups. The sample-ratio "
        "check (sample_ratio, sample_ratio_window) counts the randomization units exposed "
        "since the flag's last targeting change, up to the window's end, against the split "
        "served since then.",
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="see docs/statistics.md"),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="errors by parameter"),
        },
    )
    def get(self, request: Request, key: str) -> Response:
        api_key = request.auth
        assert isinstance(api_key, AuthenticatedKey)
        window, errors = _window(request.query_params)
        if window is None:
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        control = request.query_params.get("control") or None
        try:
            result = services.compare_flag(api_key.environment_id, key, window, control)
        except services.UnknownFlagError:
            return Response(
                {"detail": f"No flag {key!r} in environment {api_key.environment_key!r}."},
                status=status.HTTP_404_NOT_FOUND,
            )
        report = dataclasses.asdict(result.report)
        srm = result.sample_ratio
        report["sample_ratio_note"] = srm.note
        # The check counts the units exposed since the split was set, not the window's
        # cumulative exposures: say which units and since when.
        report["sample_ratio_window"] = {
            "start": srm.start.isoformat() if srm.start else None,
            "end": srm.end.isoformat(),
            "since": f"the flag's last targeting change (version {result.split.version})",
            "unit": srm.unit_attribute,
            "both_variants": srm.both_variants,
            "missing_unit": srm.missing_unit,
        }
        report["window"] = {
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
            "looks": window.looks,
        }
        return Response(_plain(report))
