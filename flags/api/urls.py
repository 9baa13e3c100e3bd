"""The public API: evaluation, SDK rulesets and stream, OFREP, and management."""

from django.urls import include, path

from flags.api import evaluate, ofrep, sse

urlpatterns = [
    path("api/v1/evaluate", evaluate.EvaluateView.as_view(), name="api-evaluate"),
    path("api/v1/evaluate/all", evaluate.EvaluateAllView.as_view(), name="api-evaluate-all"),
    path("api/v1/sdk/ruleset", evaluate.RulesetView.as_view(), name="api-sdk-ruleset"),
    path("api/v1/sdk/stream", sse.sdk_stream, name="api-sdk-stream"),
    path("ofrep/v1/evaluate/flags", ofrep.OfrepBulkView.as_view(), name="ofrep-bulk"),
    path("ofrep/v1/evaluate/flags/<str:key>", ofrep.OfrepFlagView.as_view(), name="ofrep-flag"),
    path("ofrep/v1/configuration", ofrep.OfrepConfigurationView.as_view(), name="ofrep-config"),
    path("api/v1/", include("flags.api.management_urls")),
]
