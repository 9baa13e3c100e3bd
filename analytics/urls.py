from django.urls import URLPattern, path

from analytics.views import EventBatchView

urlpatterns: list[URLPattern] = [
    path("api/v1/events", EventBatchView.as_view(), name="analytics-events"),
]
