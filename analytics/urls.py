from django.urls import URLPattern, path

from analytics.views import EventBatchView, FlagComparisonView

urlpatterns: list[URLPattern] = [
    path("api/v1/events", EventBatchView.as_view(), name="analytics-events"),
    path(
        "api/v1/analytics/flags/<str:key>/comparison",
        FlagComparisonView.as_view(),
        name="analytics-flag-comparison",
    ),
]
