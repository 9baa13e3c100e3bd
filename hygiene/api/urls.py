"""Hygiene API URLs, mounted under /api/v1/."""

from django.urls import path

from hygiene.api import views

urlpatterns = [
    path(
        "projects/<str:project>/code-references",
        views.CodeReferences.as_view(),
        name="api-code-references",
    ),
]
