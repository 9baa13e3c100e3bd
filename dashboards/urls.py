from django.urls import path

from dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:project>/<slug:flag>/<slug:environment>/", views.flag_page, name="flag"),
    path(
        "<slug:project>/<slug:flag>/<slug:environment>/data.json",
        views.flag_data,
        name="flag-data",
    ),
    path(
        "<slug:project>/<slug:flag>/<slug:environment>/variants.csv",
        views.flag_csv,
        name="flag-csv",
    ),
]
