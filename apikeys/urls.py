"""Management URLs of API keys, under /api/v1/ (mounted by flagsite.urls)."""

from django.urls import path

from apikeys import api

E = "api/v1/projects/<str:project>/environments/<str:env>/api-keys"

urlpatterns = [
    path(E, api.KeyList.as_view(), name="api-keys"),
    path(f"{E}/<int:pk>/revoke", api.KeyRevoke.as_view(), name="api-key-revoke"),
]
