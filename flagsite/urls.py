"""Root URLs. Each app owns its own urls module; this file only mounts them."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from flagsite import demo, health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("demo/", demo.demo_page, name="demo"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # The evaluation endpoints first: URL resolution tries patterns in order, on every request.
    path("", include("flags.api.urls")),
    path("", include("analytics.urls")),
]

# JSON on the API's paths, Django's pages elsewhere (flags.api.errors).
handler400 = "flags.api.errors.bad_request"
handler404 = "flags.api.errors.page_not_found"
handler500 = "flags.api.errors.server_error"
