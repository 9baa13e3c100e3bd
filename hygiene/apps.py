from django.apps import AppConfig


class HygieneConfig(AppConfig):
    name = "hygiene"
    verbose_name = "Flag hygiene"
    default_auto_field = "django.db.models.BigAutoField"
