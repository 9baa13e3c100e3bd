from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        # Registers the OpenAPI description of key authentication with drf-spectacular.
        from apikeys import schema  # noqa: F401
