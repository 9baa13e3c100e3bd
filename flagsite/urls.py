"""Root URLs. Each app owns its own urls module; this file only mounts them."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from flagsite import demo, health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    # Before the admin's own URLs, whose catch-all would otherwise answer these paths.
    path("admin/dashboards/", include("dashboards.urls")),
    path("admin/", admin.site.urls),
    path("demo/", demo.demo_page, name="demo"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    # The evaluation endpoints first: URL resolution tries patterns in order, on every request.
    path("", include("flags.api.urls")),
    path("", include("analytics.urls")),
    path("", include("apikeys.urls")),
    # "/" and the admin's "View site" lead to the admin home (the dashboard).
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("api/v1/", include("hygiene.api.urls")),
    path("", include("rollouts.urls")),
]

# JSON on the API's paths, Django's pages elsewhere (flags.api.errors).
handler400 = "flags.api.errors.bad_request"
handler404 = "flags.api.errors.page_not_found"
handler500 = "flags.api.errors.server_error"
