"""Rollout management URLs, mounted at the root by flagsite.urls."""

from django.urls import path

from rollouts import api

urlpatterns = [
    path("api/v1/rollouts/", api.RolloutList.as_view(), name="api-rollouts"),
    path("api/v1/rollouts/<int:pk>", api.RolloutDetail.as_view(), name="api-rollout"),
    path(
        "api/v1/rollouts/<int:pk>/timeline",
        api.RolloutTimeline.as_view(),
        name="api-rollout-timeline",
    ),
    path(
        "api/v1/rollouts/<int:pk>/<str:action>",
        api.RolloutAction.as_view(),
        name="api-rollout-action",
    ),
]
